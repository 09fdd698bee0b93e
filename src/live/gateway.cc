#include "live/gateway.h"

#include <fmt/format.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>

#include "cli/replay.h"
#include "control/config.h"
#include "live/backend.h"
#include "live/bpf_steer.h"
#include "live/netlink.h"

namespace xnat {
namespace {

volatile sig_atomic_t g_stop = 0;
volatile sig_atomic_t g_dump = 0;

void on_stop(int) { g_stop = 1; }
void on_dump(int) { g_dump = 1; }

uint64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

// The tc program leaves the kernel's frames to it; AF_PACKET still shows them
// to the gateway, which must skip exactly those.
thread_local const LocalClaims* t_claims = nullptr;
#define XNAT_STEER_IS_LOCAL(a) t_claims->is_local(a)
#define XNAT_STEER_CLAIMED(i) __atomic_load_n(&t_claims->counts[i], __ATOMIC_RELAXED)
#include "live/steer.h"

bool for_gateway(const LocalClaims& c, const Packet& p) {
  t_claims = &c;
  return xnat_steer(p.data, p.data + p.len) == XNAT_STEER_GATEWAY;
}

// Ports the PREROUTING DNAT rules may claim on the host's addresses: a rule's
// --dport / multiport list, or every port of its protocol (all protocols when
// it names none). Each claim is held for the whole run.
void claim_dnat_ports(const RuleSet& rules, uint64_t* counts) {
  const Table& nat = rules.nat;
  const int post = nat.hook_chain(Hook::kPostrouting);
  for (size_t ci = 0; ci < nat.chains.size(); ++ci) {
    if (static_cast<int>(ci) == post) continue;
    for (const Rule& r : nat.chains[ci].rules) {
      const TargetKind k = r.target.kind;
      if (k != TargetKind::kDnat && k != TargetKind::kNetmap) continue;
      const Match& m = r.match;
      std::vector<uint8_t> protos;
      if (m.proto && !m.proto_invert) protos = {m.proto};
      else protos = {kProtoTcp, kProtoUdp, kProtoIcmp};
      for (uint8_t proto : protos) {
        std::vector<PortRange> ranges;
        if (proto != kProtoIcmp && m.has_dport && !m.dport_invert) ranges = {m.dport};
        else if (proto != kProtoIcmp && !m.multi_invert &&
                 (m.multi == Match::Multi::kDest || m.multi == Match::Multi::kEither))
          ranges = m.multi_ports;
        else ranges = {PortRange{0, 65535}};
        for (const PortRange& pr : ranges)
          for (uint32_t port = pr.lo; port <= pr.hi; ++port) {
            const int idx = xnat_claim_index(proto, port);
            if (idx >= 0) ++counts[idx];
          }
      }
    }
  }
}

// Frames whose next hop is being resolved. Copies, so the receive buffers are
// not held; bounded, and each frame waits at most kWaitMs.
class NeighborQueue {
 public:
  static constexpr size_t kSlots = 256;
  static constexpr uint32_t kFrameMax = 2048;
  static constexpr uint64_t kWaitMs = 3000;

  // False when full (the caller counts the drop).
  bool hold(const Packet& p, uint64_t now) {
    if (p.len > kFrameMax) return false;
    for (Slot& s : slots_)
      if (!s.used) {
        s.used = true;
        s.out_if = p.out_if;
        s.next_hop = p.next_hop;
        s.len = p.len;
        s.since = now;
        std::memcpy(s.data, p.data, p.len);
        ++count_;
        return true;
      }
    return false;
  }
  // Sends what resolved; returns how many timed out.
  template <typename Send>
  uint64_t service(const Fib& fib, uint64_t now, Send&& send) {
    uint64_t expired = 0;
    if (!count_) return 0;
    for (Slot& s : slots_) {
      if (!s.used) continue;
      if (const MacAddr* mac = fib.neighbor(s.next_hop)) {
        std::memcpy(s.data, mac->b, 6);
        if (!send(s.out_if, s.data, s.len)) ++expired;
      } else if (now - s.since < kWaitMs) {
        continue;
      } else {
        ++expired;
      }
      s.used = false;
      --count_;
    }
    return expired;
  }
  size_t size() const { return count_; }

 private:
  struct Slot {
    bool used = false;
    int16_t out_if = -1;
    uint32_t next_hop = 0;
    uint32_t len = 0;
    uint64_t since = 0;
    uint8_t data[kFrameMax];
  };
  std::vector<Slot> slots_ = std::vector<Slot>(kSlots);
  size_t count_ = 0;
};

void write_file(const std::string& path, const std::string& text) {
  if (path.empty()) return;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
  }
  std::rename(tmp.c_str(), path.c_str());
}

std::string clock_text() {
  const std::time_t t = std::time(nullptr);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", std::localtime(&t));
  return buf;
}

std::vector<uint32_t> local_addrs(const Fib& fib) {
  std::vector<uint32_t> out;
  for (const Interface& i : fib.interfaces()) out.push_back(i.addr);
  return out;
}

void set_claim_addrs(LocalClaims* c, const Fib& fib) {
  c->naddrs = 0;
  for (const Interface& i : fib.interfaces())
    if (c->naddrs < LocalClaims::kMaxAddrs) c->addrs[c->naddrs++] = i.addr;
}

}  // namespace

int run_gateway(const RunOptions& o) {
  auto fail = [](const std::string& msg) {
    std::fprintf(stderr, "xnat run: %s\n", msg.c_str());
    return 1;
  };
  if (o.backend != "af_xdp" && o.backend != "af_packet")
    return fail(fmt::format("unknown backend '{}': use af_xdp or af_packet", o.backend));
  if (o.workers != 1)
    return fail(fmt::format("--workers {}: this build runs one worker; several workers (flow and port-space "
                            "sharding with handoff rings) are not implemented yet",
                            o.workers));
  auto cfg = load_config(o.config, ConfigMode::kLive);
  if (!cfg) return fail(cfg.error().message);
  cfg->hold_unresolved = true;

  Rtnl rtnl;
  if (auto e = rtnl.open()) return fail(e->message);
  auto kernel = rtnl.dump();
  if (!kernel) return fail(kernel.error().message);
  auto fib = live_fib(*cfg, *kernel);
  if (!fib) return fail(fib.error().message);
  cfg->fib = *fib;

  BackendOptions bo;
  bo.ring_size = o.ring_size;
  bo.busy_poll = o.busy_poll;
  for (const Interface& i : cfg->fib.interfaces()) {
    const KernelLink* l = kernel->link(i.name);
    bo.ifnames.push_back(i.name);
    bo.ifindexes.push_back(l->ifindex);
    bo.mtus.push_back(l->mtu);
    if (!l->up) std::fprintf(stderr, "xnat run: warning: interface %s is down\n", i.name.c_str());
  }

  BpfSteer steer;
  if (auto e = steer.load()) return fail(e->message);
  if (auto e = steer.set_local_addrs(local_addrs(cfg->fib))) return fail(e->message);
  LocalClaims claims;
  claims.counts = steer.claims();
  std::memset(claims.counts, 0, XNAT_CLAIM_ENTRIES * sizeof(uint64_t));
  claim_dnat_ports(cfg->rules, claims.counts);
  set_claim_addrs(&claims, cfg->fib);

  Engine engine(std::move(*cfg));
  engine.set_local_claims(&claims);

  const bool xdp = o.backend == "af_xdp";
  Result<std::unique_ptr<Backend>> backend =
      xdp ? make_afxdp_backend(bo, steer) : make_afpacket_backend(bo);
  if (!backend) return fail(backend.error().message);
  Backend& io = **backend;
  // Sockets exist before the program steers anything to them.
  for (size_t i = 0; i < bo.ifnames.size(); ++i)
    if (auto e = steer.attach(xdp ? SteerHook::kXdp : SteerHook::kTc, bo.ifindexes[i], bo.ifnames[i]))
      return fail(e->message);

  struct sigaction sa{};
  sa.sa_handler = on_stop;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sa.sa_handler = on_dump;
  sigaction(SIGUSR1, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::printf("xnat: %s on", io.name());
  for (const Interface& i : engine.fib().interfaces())
    std::printf(" %s (%s/%u)", i.name.c_str(), ip_to_string(i.addr).c_str(), i.prefix_len);
  std::printf("; %s; nf_conntrack_max %u\n", io.describe().c_str(), engine.conntrack().capacity());
  std::fflush(stdout);

  Counters live;  // the loop's own drops, beside the engine's
  NeighborQueue held;
  struct Asked {
    uint32_t addr;
    uint64_t at;
  };
  std::vector<Asked> asked;
  Packet pkts[Engine::kBurst];
  uint64_t next_netlink = 0, next_stats = 0, idle_since = now_ms();
  std::vector<PortStats> last(io.ports());
  Counters last_counters;
  const size_t nports = io.ports();

  auto sync_live = [&] {
    io.update_kernel_stats();
    uint64_t full = 0;
    for (size_t p = 0; p < nports; ++p) full += io.stats(static_cast<int>(p)).tx_ring_full;
    live.v[static_cast<size_t>(Counter::drop_tx_ring_full)] = full;
  };
  auto dump = [&](uint64_t now) {
    sync_live();
    write_file(o.conntrack_out, format_conntrack_table(engine.conntrack(), now));
    std::string c = format_counters(engine);
    for (Counter k : {Counter::drop_neighbor_timeout, Counter::drop_host_port_claimed, Counter::drop_tx_ring_full})
      if (live.get(k)) c += fmt::format("live_{} {}\n", counter_name(k), live.get(k));
    for (size_t p = 0; p < nports; ++p) {
      const PortStats& s = io.stats(static_cast<int>(p));
      c += fmt::format("live_rx_{} {}\nlive_tx_{} {}\nlive_rx_ring_dropped_{} {}\n", bo.ifnames[p], s.rx, bo.ifnames[p],
                       s.tx, bo.ifnames[p], s.rx_ring_dropped);
    }
    write_file(o.counters_out, c);
  };

  while (!g_stop) {
    uint64_t now = now_ms();
    size_t got = 0;
    for (size_t port = 0; port < nports; ++port) {
      size_t n = io.rx(static_cast<int>(port), pkts, Engine::kBurst);
      if (!n) continue;
      got += n;
      if (!xdp) {
        // Keep only the frames the tc program took from the kernel.
        size_t k = 0;
        for (size_t i = 0; i < n; ++i)
          if (for_gateway(claims, pkts[i])) pkts[k++] = pkts[i];
          else pkts[i].verdict = Verdict::kDrop;
        n = k;
      }
      engine.process_burst(pkts, n, now);
      for (size_t i = 0; i < n; ++i) {
        Packet& p = pkts[i];
        if (p.verdict == Verdict::kNeighborPending) {
          if (!held.hold(p, now)) live.inc(Counter::drop_neighbor_timeout);
          bool recent = false;
          for (const Asked& a : asked) recent |= a.addr == p.next_hop && now - a.at < 1000;
          if (!recent) {
            (void)rtnl.resolve(bo.ifindexes[static_cast<size_t>(p.out_if)], p.next_hop);
            asked.push_back({p.next_hop, now});
            if (asked.size() > 64) asked.erase(asked.begin());
          }
        } else if (p.verdict == Verdict::kToHost && xdp && p.len >= 14 && p.data[12] == 0x08 && p.data[13] == 0) {
          // Reached us because its port is claimed; the kernel never sees it.
          live.inc(Counter::drop_host_port_claimed);
        }
      }
      io.complete(pkts, n);
    }
    io.flush();

    if (got) idle_since = now;
    if (now >= next_netlink) {
      next_netlink = now + 10;
      if (rtnl.changed()) {
        auto k = rtnl.dump();
        if (k) {
          auto f = live_fib(engine.config(), *k);
          if (f) {
            engine.replace_fib(std::move(*f));
            (void)steer.set_local_addrs(local_addrs(engine.fib()));
            set_claim_addrs(&claims, engine.fib());
          } else {
            std::fprintf(stderr, "xnat run: kernel change not applied: %s\n", f.error().message.c_str());
          }
        }
      }
      live.inc(Counter::drop_neighbor_timeout,
               held.service(engine.fib(), now, [&](int port, const uint8_t* d, uint32_t len) {
                 return io.send_copy(port, d, len);
               }));
      io.flush();
    }
    if (g_dump) {
      g_dump = 0;
      dump(now);
    }
    if (o.stats_interval > 0 && now >= next_stats) {
      if (next_stats) {
        const double secs = o.stats_interval;
        const std::string t = clock_text();
        sync_live();
        std::printf("%s %-15s %10s %10s %10s %10s %10s\n", t.c_str(), "IFACE", "rxpck/s", "txpck/s", "rxfull/s",
                    "txfull/s", "flows");
        for (size_t p = 0; p < nports; ++p) {
          const PortStats& s = io.stats(static_cast<int>(p));
          std::printf("%s %-15s %10.1f %10.1f %10.1f %10.1f %10u\n", t.c_str(), bo.ifnames[p].c_str(),
                      (s.rx - last[p].rx) / secs, (s.tx - last[p].tx) / secs,
                      (s.rx_ring_dropped - last[p].rx_ring_dropped) / secs,
                      (s.tx_ring_full - last[p].tx_ring_full) / secs, engine.conntrack().count());
          last[p] = s;
        }
        std::string drops;
        Counters now_c = engine.counters();
        for (size_t c = 0; c < kDropReasonCount; ++c) {
          const uint64_t d = now_c.v[c] + live.v[c] - last_counters.v[c];
          if (d) drops += fmt::format(" {} {:.1f}", counter_name(static_cast<Counter>(c)), d / secs);
          last_counters.v[c] = now_c.v[c] + live.v[c];
        }
        std::printf("%s drops/s:%s\n", t.c_str(), drops.empty() ? " none" : drops.c_str());
        std::fflush(stdout);
      }
      next_stats = now + uint64_t(o.stats_interval) * 1000;
    }
    if (!got && !o.busy_poll && now - idle_since > 2) io.wait(held.size() ? 10 : 100);
  }

  const uint64_t now = now_ms();
  dump(now);
  std::printf("xnat: stopping; %u flows in the table, %lu frames in, %lu dropped\n", engine.conntrack().count(),
              static_cast<unsigned long>(engine.counters().get(Counter::rx_frames)),
              static_cast<unsigned long>(engine.counters().total_drops() + live.total_drops()));
  steer.detach_all();
  return 0;
}

}  // namespace xnat
