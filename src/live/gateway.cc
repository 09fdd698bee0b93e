#include "live/gateway.h"

#include <bpf/bpf.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <mutex>
#include <thread>

#include "dataplane/report.h"
#include "control/config.h"
#include "live/backend.h"
#include "live/bpf_steer.h"
#include "live/host_port.h"
#include "live/handoff_ring.h"
#include "live/local_claims.h"
#include "live/neighbor_queue.h"
#include "live/netlink.h"
#include "live/rule_claims.h"
#include "live/software_offload.h"
#include "live/worker.h"

// The claims' layout and the host-reply map's key (the decision itself is
// compiled only where its lookups are defined: the BPF program, worker.cc).
#include "live/steer.h"

namespace xnat {
namespace {

volatile sig_atomic_t g_stop = 0;
volatile sig_atomic_t g_dump = 0;

void on_stop(int) { g_stop = 1; }
void on_dump(int) { g_dump = 1; }

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

// The BPF map of reply tuples the egress program takes to the host port.
struct HostReplyMap {
  int fd = -1;
  std::atomic<uint64_t> failed{0};  // updates the kernel refused (map full): those answers leave untranslated
};
static_assert(sizeof(xnat_tuple_key) == sizeof(Tuple) && offsetof(xnat_tuple_key, sport) == offsetof(Tuple, sport) &&
                  offsetof(xnat_tuple_key, proto) == offsetof(Tuple, proto),
              "the egress program keys host_replies by the reply tuple's bytes");

void update_host_reply(void* ctx, const Tuple& reply, bool add) {
  auto* m = static_cast<HostReplyMap*>(ctx);
  const uint8_t one = 1;
  const int err = add ? bpf_map_update_elem(m->fd, &reply, &one, BPF_ANY) : bpf_map_delete_elem(m->fd, &reply);
  if (err && add) m->failed.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

int run_gateway(const RunOptions& o) {
  auto fail = [](const std::string& msg) {
    std::fprintf(stderr, "xnat run: %s\n", msg.c_str());
    return 1;
  };
  if (o.backend != "af_xdp" && o.backend != "af_packet")
    return fail(fmt::format("unknown backend '{}': use af_xdp or af_packet", o.backend));
  if (o.workers < 1 || o.workers > static_cast<int>(FlowDirectory::kMaxWorkers))
    return fail(fmt::format("--workers {}: use 1 to {}", o.workers, FlowDirectory::kMaxWorkers));
  const uint32_t nworkers = static_cast<uint32_t>(o.workers);
  auto cfg = load_config(o.config, ConfigMode::kLive);
  if (!cfg) return fail(cfg.error().message);
  for (const std::string& n : config_notices(*cfg)) fmt::print(stderr, "xnat: note: {}\n", n);
  cfg->hold_unresolved = true;

  Rtnl rtnl;
  if (auto r = rtnl.open(); !r) return fail(r.error().message);
  auto kernel = rtnl.dump();
  if (!kernel) return fail(kernel.error().message);
  auto fib = live_fib(*cfg, *kernel);
  if (!fib) return fail(fib.error().message);
  cfg->fib = *fib;

  BackendOptions bo;
  bo.ring_size = o.ring_size;
  bo.busy_poll = o.busy_poll;
  bo.workers = nworkers;
  bo.fanout_id = static_cast<uint16_t>(getpid() * 8);
  for (const Interface& i : cfg->fib.interfaces()) {
    const KernelLink* l = kernel->link(i.name);
    bo.ifnames.push_back(i.name);
    bo.ifindexes.push_back(l->ifindex);
    bo.mtus.push_back(l->mtu);
    if (!l->up) std::fprintf(stderr, "xnat run: warning: interface %s is down\n", i.name.c_str());
  }
  BpfSteer steer;
  if (auto r = steer.load(); !r) return fail(r.error().message);
  if (auto r = steer.set_local_addrs(local_addrs(cfg->fib)); !r) return fail(r.error().message);
  uint64_t* claim_counts = steer.claims();
  std::memset(claim_counts, 0, XNAT_CLAIM_ENTRIES * sizeof(uint64_t));
  claim_dnat_ports(cfg->rules, [&](uint8_t proto, uint16_t port) {
    if (const int idx = xnat_claim_index(proto, port); idx >= 0) ++claim_counts[idx];
  });

  // The host port, when a rule can translate a connection for the host's own
  // stack: REDIRECT always, DNAT and NETMAP when they map to a host address.
  std::unique_ptr<HostPort> host;
  HostReplyMap host_map{steer.host_replies_fd(), {}};
  if (translates_for_host(cfg->rules)) {
    auto hp = HostPort::open("xnat-host");
    if (!hp) return fail(hp.error().message);
    host = std::move(*hp);
    if (!host->warning().empty()) std::fprintf(stderr, "xnat run: warning: %s\n", host->warning().c_str());
    if (auto r = steer.set_host_port(host->ifindex()); !r) return fail(r.error().message);
    // Its egress program takes nothing before a flow is entered in host_replies.
    for (size_t i = 0; i < bo.ifnames.size() && host; ++i)
      if (auto r = steer.attach_egress(bo.ifindexes[i], bo.ifnames[i]); !r) {
        std::fprintf(stderr,
                     "xnat run: warning: %s; without a host port, REDIRECT and DNAT to the gateway's own addresses "
                     "are dropped (drop_host_port_claimed)\n",
                     r.error().message.c_str());
        host.reset();
      }
  }

  // nf_conntrack_max is the whole gateway's, held by a shared count; each
  // worker's table has room for twice its fair share (up to the whole), as
  // flows never spread exactly evenly.
  const uint64_t total_max = cfg->conntrack.nf_conntrack_max;
  SharedLimit limit;
  limit.max = total_max;
  limit.reserve = std::min<uint64_t>(total_max / 4, std::max<uint64_t>(64 * nworkers, total_max / 64));
  limit.overdraft = std::min<uint64_t>(total_max / 16, 8 * nworkers);
  if (nworkers > 1) {
    const uint64_t share = std::min<uint64_t>(total_max, (2 * total_max + nworkers - 1) / nworkers);
    if (auto r = cfg->conntrack.set("nf_conntrack_max", static_cast<int64_t>(share)); !r)
      return fail(fmt::format("nf_conntrack_max {} over {} workers: {}", total_max, nworkers, r.error().message));
  }
  uint64_t shard_seed = 0;
  if (getrandom(&shard_seed, sizeof shard_seed, 0) != sizeof shard_seed) shard_seed = now_ms() * 0x9E3779B97F4A7C15ull;
  // Held flows (conntrack.h) keep their directory entries: room for each
  // worker's hold as well as the table.
  FlowDirectory directory(nworkers > 1 ? total_max + nworkers * uint64_t{cfg->conntrack.xnat_evicted_hold} : 1);

  Shared sh;
  sh.fib = cfg->fib;
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::unique_ptr<HandoffRing>> rings;
  const bool xdp = o.backend == "af_xdp";
  for (uint32_t i = 0; i < nworkers; ++i) {
    auto w = std::make_unique<Worker>();
    EngineConfig ec = *cfg;
    ec.seed = cfg->seed + i * 0x9E3779B97F4A7C15ull;
    ec.shard = Shard{i, nworkers, shard_seed, nworkers > 1 ? &directory : nullptr, nworkers > 1 ? &limit : nullptr};
    w->engine = std::make_unique<Engine>(std::move(ec));
    w->claims.counts = claim_counts;
    w->frags_fd = steer.frags_fd();
    set_claim_addrs(&w->claims, w->engine->fib());
    if (host) {
      w->claims.host_reply = update_host_reply;
      w->claims.host_reply_ctx = &host_map;
      w->host = host.get();
      w->host_reader = i == 0;
    }
    w->engine->set_flow_observer(&w->claims);
    BackendOptions wo = bo;
    wo.worker = i;
    auto backend = xdp ? make_afxdp_backend(wo, steer) : make_afpacket_backend(wo);
    if (!backend) return fail(backend.error().message);
    w->io = std::move(*backend);
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0) return fail(fmt::format("eventfd: {}", std::strerror(errno)));
    workers.push_back(std::move(w));
  }
  for (auto& a : workers) {
    a->to.assign(nworkers, nullptr);
    a->from.assign(nworkers, nullptr);
    for (auto& b : workers) a->peers.push_back(b.get());
  }
  // A ring per ordered pair of workers, 2 KiB a slot: 4 MiB each at 2
  // workers, down to 512 KiB each from 16 on (a worker's inbound total
  // stays about 4-8 MiB).
  const uint32_t ring_slots = nworkers > 1 ? std::clamp<uint32_t>(std::bit_floor(4096u / (nworkers - 1)), 256, 2048) : 0;
  for (uint32_t a = 0; a < nworkers; ++a)
    for (uint32_t b = 0; b < nworkers; ++b)
      if (a != b) {
        rings.push_back(std::make_unique<HandoffRing>(ring_slots));
        workers[a]->to[b] = workers[b]->from[a] = rings.back().get();
      }
  // Sockets exist before the program steers anything to them.
  for (size_t i = 0; i < bo.ifnames.size(); ++i)
    if (auto r = steer.attach(xdp ? SteerHook::kXdp : SteerHook::kTc, bo.ifindexes[i], bo.ifnames[i]); !r)
      return fail(r.error().message);

  struct sigaction sa{};
  sa.sa_handler = on_stop;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sa.sa_handler = on_dump;
  sigaction(SIGUSR1, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const Engine& first = *workers[0]->engine;
  std::printf("xnat: %s on", workers[0]->io->name());
  for (const Interface& i : first.fib().interfaces())
    std::printf(" %s (%s/%u)", i.name.c_str(), ip_to_string(i.addr).c_str(), i.prefix_len);
  std::printf("; %u worker%s; %s; nf_conntrack_max %lu", nworkers, nworkers > 1 ? "s" : "",
              workers[0]->io->describe().c_str(), static_cast<unsigned long>(total_max));
  if (host) std::printf("; host port %s", host->name().c_str());
  std::printf("\n");
  std::fflush(stdout);

  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&, wp = w.get()] { run_worker(*wp, sh, bo, /*steer_filter=*/!xdp); });

  // Control: kernel changes, neighbour requests, reports. Figures come from
  // the workers' snapshots while they run, from the engines after they stop.
  const size_t nports = bo.ifnames.size();
  auto gather = [&](bool live_threads, uint64_t now, std::vector<CounterSource>* src, Counters* live,
                    std::vector<PortStats>* ports, std::string* table) {
    ports->assign(nports, PortStats{});
    for (auto& w : workers) {
      Snapshot snap;
      if (live_threads) {
        // The figures; the listing only when asked for, and taken, not copied
        // (a copy of a big one under the lock would hold up the worker).
        std::lock_guard<std::mutex> lock(w->mu);
        snap.engine = w->snap.engine;
        snap.live = w->snap.live;
        snap.ports = w->snap.ports;
        if (table) snap.table.swap(w->snap.table);
      } else {
        publish(*w, now, w->snap.dump_done + 1);
        snap = w->snap;
      }
      src->push_back(snap.engine);
      for (size_t c = 0; c < kCounterCount; ++c) live->v[c] += snap.live.v[c];
      for (size_t p = 0; p < nports && p < snap.ports.size(); ++p) {
        (*ports)[p].rx += snap.ports[p].rx;
        (*ports)[p].tx += snap.ports[p].tx;
        (*ports)[p].tx_ring_full += snap.ports[p].tx_ring_full;
        (*ports)[p].rx_ring_dropped += snap.ports[p].rx_ring_dropped;
        (*ports)[p].rx_gso += snap.ports[p].rx_gso;
        (*ports)[p].tx_gso += snap.ports[p].tx_gso;
      }
      if (table) *table += snap.table;
    }
  };
  auto write_dump = [&](bool live_threads, uint64_t now) {
    std::vector<CounterSource> src;
    Counters live;
    std::vector<PortStats> ports;
    std::string table;
    gather(live_threads, now, &src, &live, &ports, &table);
    write_file(o.conntrack_out, table);
    // The loop's own count of super-frames it cut, beside the engine's counters.
    if (!src.empty()) src[0].counters.inc(Counter::gso_segmented, live.get(Counter::gso_segmented));
    std::string c = format_counters(src);
    for (Counter k : {Counter::drop_neighbor_timeout, Counter::drop_host_port_claimed, Counter::drop_tx_ring_full,
                      Counter::drop_handoff_full, Counter::drop_host_port_write})
      if (live.get(k)) c += fmt::format("live_{} {}\n", counter_name(k), live.get(k));
    if (host) {
      c += fmt::format("live_host_port_in {}\nlive_host_port_out {}\nlive_host_replies_failed {}\n",
                       live.get(Counter::host_port_in), live.get(Counter::host_port_out),
                       host_map.failed.load(std::memory_order_relaxed));
      c += fmt::format("live_host_port_steered {}\n", steer.stats()[3]);
      // The host's frames the tun device's queue had no room for (the gateway
      // did not read them in time): the kernel counts them, as the device's
      // transmit drops.
      c += fmt::format("live_host_port_queue_dropped {}\n", host->queue_dropped());
    }
    for (size_t p = 0; p < nports; ++p) {
      c += fmt::format("live_rx_{} {}\nlive_tx_{} {}\nlive_rx_ring_dropped_{} {}\n", bo.ifnames[p], ports[p].rx,
                       bo.ifnames[p], ports[p].tx, bo.ifnames[p], ports[p].rx_ring_dropped);
      c += fmt::format("live_rx_gso_{} {}\nlive_tx_gso_{} {}\n", bo.ifnames[p], ports[p].rx_gso, bo.ifnames[p],
                       ports[p].tx_gso);
    }
    if (nworkers > 1) c += fmt::format("live_directory_entries {}\n", directory.size());
    write_file(o.counters_out, c);
  };

  uint64_t next_stats = 0;
  std::vector<PortStats> last(nports);
  Counters last_counters;
  std::vector<std::pair<int, uint32_t>> resolve;
  while (!g_stop) {
    struct timespec ts{0, 10 * 1000 * 1000};
    nanosleep(&ts, nullptr);
    const uint64_t now = now_ms();
    if (rtnl.changed()) {
      auto k = rtnl.dump();
      if (k) {
        auto f = live_fib(*cfg, *k);
        if (f) {
          (void)steer.set_local_addrs(local_addrs(*f));
          std::lock_guard<std::mutex> lock(sh.fib_mu);
          sh.fib = std::move(*f);
          sh.fib_version.fetch_add(1, std::memory_order_release);
        } else {
          std::fprintf(stderr, "xnat run: kernel change not applied: %s\n", f.error().message.c_str());
        }
      }
    }
    {
      std::lock_guard<std::mutex> lock(sh.resolve_mu);
      resolve.swap(sh.resolve);
    }
    for (auto [ifindex, addr] : resolve) (void)rtnl.resolve(ifindex, addr);
    resolve.clear();
    if (g_dump) {
      g_dump = 0;
      const uint64_t gen = sh.dump_gen.fetch_add(1, std::memory_order_release) + 1;
      for (auto& w : workers) w->wake();
      // Workers build it a piece per loop: about a second per million slots.
      for (int tries = 0; tries < 6000; ++tries) {
        bool all = true;
        for (auto& w : workers) {
          std::lock_guard<std::mutex> lock(w->mu);
          all &= w->snap.dump_done >= gen;
        }
        if (all) break;
        struct timespec t2{0, 10 * 1000 * 1000};
        nanosleep(&t2, nullptr);
      }
      write_dump(true, now);
    }
    if (o.stats_interval > 0 && now >= next_stats) {
      if (next_stats) {
        const double secs = o.stats_interval;
        const std::string t = clock_text();
        std::vector<CounterSource> src;
        Counters live;
        std::vector<PortStats> ports;
        gather(true, now, &src, &live, &ports, nullptr);
        uint32_t flows = 0;
        Counters all;
        for (const CounterSource& s : src) {
          flows += s.count;
          for (size_t c = 0; c < kCounterCount; ++c) all.v[c] += s.counters.v[c];
        }
        std::printf("%s %-15s %10s %10s %10s %10s %10s\n", t.c_str(), "IFACE", "rxpck/s", "txpck/s", "rxfull/s",
                    "txfull/s", "flows");
        for (size_t p = 0; p < nports; ++p) {
          const PortStats& s = ports[p];
          std::printf("%s %-15s %10.1f %10.1f %10.1f %10.1f %10u\n", t.c_str(), bo.ifnames[p].c_str(),
                      (s.rx - last[p].rx) / secs, (s.tx - last[p].tx) / secs,
                      (s.rx_ring_dropped - last[p].rx_ring_dropped) / secs,
                      (s.tx_ring_full - last[p].tx_ring_full) / secs, flows);
          last[p] = s;
        }
        std::string drops;
        for (size_t c = 0; c < kDropReasonCount; ++c) {
          const uint64_t d = all.v[c] + live.v[c] - last_counters.v[c];
          if (d) drops += fmt::format(" {} {:.1f}", counter_name(static_cast<Counter>(c)), d / secs);
          last_counters.v[c] = all.v[c] + live.v[c];
        }
        std::printf("%s drops/s:%s\n", t.c_str(), drops.empty() ? " none" : drops.c_str());
        if (nworkers > 1) {
          const uint64_t h = all.get(Counter::handoffs) - last_counters.get(Counter::handoffs);
          last_counters.v[static_cast<size_t>(Counter::handoffs)] = all.get(Counter::handoffs);
          std::printf("%s handoffs/s: %.1f; directory entries: %lu\n", t.c_str(), h / secs,
                      static_cast<unsigned long>(directory.size()));
        }
        std::fflush(stdout);
      }
      next_stats = now + uint64_t(o.stats_interval) * 1000;
    }
  }

  sh.stop.store(true);
  for (auto& w : workers) {
    const uint64_t one = 1;
    (void)!::write(w->wake_fd, &one, sizeof one);
  }
  for (std::thread& t : threads) t.join();
  const uint64_t now = now_ms();
  write_dump(false, now);
  uint64_t frames = 0, dropped = 0;
  uint32_t flows = 0;
  for (auto& w : workers) {
    frames += w->engine->counters().get(Counter::rx_frames);
    dropped += w->engine->counters().total_drops() + w->live.total_drops();
    flows += w->engine->conntrack().count();
  }
  std::printf("xnat: stopping; %u flows in the table, %lu frames in, %lu dropped\n", flows,
              static_cast<unsigned long>(frames), static_cast<unsigned long>(dropped));
  steer.detach_all();
  for (auto& w : workers) ::close(w->wake_fd);
  return 0;
}

}  // namespace xnat
