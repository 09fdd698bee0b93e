#include "live/gateway.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <mutex>

#include "live/backend_choice.h"
#include "live/cpus.h"
#include "live/handoff_ring.h"
#include "live/local_claims.h"
#include "live/rule_claims.h"

// The claims' layout (the decision itself is compiled only where its lookups
// are defined: the BPF program, worker.cc).
#include "live/steer.h"

namespace xnat {

void Gateway::warn_policy_rules(const std::vector<std::string>& before) const {
  if (kernel_.policy_rules.empty() || kernel_.policy_rules == before) return;
  fmt::print(stderr,
             "xnat run: warning: policy routing rules are not followed, the gateway routes by the main table alone "
             "(ip rule: {})\n",
             fmt::join(kernel_.policy_rules, "; "));
}

Status Gateway::set_host_addresses(const Fib& fib) {
  const std::vector<uint32_t> addrs = host_addresses(fib);
  size_t all = fib.other_locals().size();
  for (const Interface& i : fib.interfaces()) all += i.addr != 0;
  if (all > addrs.size() && !addresses_capped_) {
    addresses_capped_ = true;
    fmt::print(stderr,
               "xnat run: warning: the host has {} IPv4 addresses; the first {} are its own to the gateway, frames to "
               "the others are forwarded as to any address\n",
               all, addrs.size());
  }
  return platform_.steering->set_local_addrs(addrs);
}

void Gateway::set_host_reply(void* ctx, const Tuple& reply, bool add) {
  auto* m = static_cast<HostReplies*>(ctx);
  if (!m->steering->set_host_reply(reply, add) && add) m->failed.fetch_add(1, std::memory_order_relaxed);
}

Result<std::unique_ptr<Gateway>> Gateway::start(EngineConfig cfg, const RunOptions& o, Platform& platform) {
  std::unique_ptr<Gateway> g(new Gateway(platform));
  if (auto r = g->open(std::move(cfg), o); !r) {
    g->stop();
    return r.error();
  }
  return g;
}

Status Gateway::open(EngineConfig cfg, const RunOptions& o) {
  if (o.workers < 1 || o.workers > static_cast<int>(FlowDirectory::kMaxWorkers))
    return Error{fmt::format("--workers {}: use 1 to {}", o.workers, FlowDirectory::kMaxWorkers)};
  const uint32_t nworkers = static_cast<uint32_t>(o.workers);
  if (!o.worker_cpus.empty()) {
    auto cpus = parse_cpu_list(o.worker_cpus);
    if (!cpus) return Error{fmt::format("--worker-cpus {}", cpus.error().message)};
    auto allowed = allowed_cpus();
    if (!allowed) return allowed.error();
    auto rest = check_worker_cpus(*cpus, o.workers, *allowed);
    if (!rest) return rest.error();
    worker_cpus_ = std::move(*cpus);
    control_cpus_ = std::move(*rest);
  }
  if (!o.rps_cpus.empty()) {
    auto cpus = parse_cpu_list(o.rps_cpus);
    if (!cpus) return Error{fmt::format("--rps-cpus {}", cpus.error().message)};
    // sysfs would refuse the mask (an I/O error): said here, with the list.
    auto online = online_cpus();
    if (!online) return online.error();
    for (int c : *cpus)
      if (std::find(online->begin(), online->end(), c) == online->end())
        return Error{fmt::format("--rps-cpus {}: CPU {} is not online (online: {})", o.rps_cpus, c,
                                 cpu_list_text(*online))};
    rps_cpus_ = std::move(*cpus);
  }
  Steering& steering = *platform_.steering;
  fast_path_ = o.fast_path;
  gro_ = o.gro;
  cfg_ = std::move(cfg);
  cfg_.hold_unresolved = true;
  config_path_ = o.config;
  backend_reason_ = o.backend_reason;
  auto kernel = platform_.kernel->dump();
  if (!kernel) return kernel.error();
  conf_fib_ = cfg_.fib;
  auto fib = live_fib(conf_fib_, cfg_.routes_pinned, *kernel, true);
  if (!fib) return fib.error();
  cfg_.fib = *fib;
  kernel_ = *kernel;
  warn_policy_rules({});

  bo_.ring_size = o.ring_size;
  bo_.busy_poll = o.busy_poll;
  bo_.workers = nworkers;
  bo_.fanout_id = static_cast<uint16_t>(getpid() * 8);
  for (const Interface& i : cfg_.fib.interfaces()) {
    const KernelLink* l = kernel->link(i.name);
    bo_.ifnames.push_back(i.name);
    bo_.ifindexes.push_back(l->ifindex);
    bo_.mtus.push_back(l->mtu);
    if (!l->up) fmt::print(stderr, "xnat run: warning: interface {} is down\n", i.name);
  }
  // Bound once (the interfaces stay for the run): the pools read it so.
  cfg_.rules.bind_interfaces(bo_.ifnames);
  if (auto r = set_host_addresses(cfg_.fib); !r) return r;
  uint64_t* claim_counts = steering.claims();
  std::memset(claim_counts, 0, XNAT_CLAIM_ENTRIES * sizeof(uint64_t));
  claim_dnat_ports(cfg_.rules, [&](uint8_t proto, uint16_t port) {
    if (const int idx = xnat_claim_index(proto, port); idx >= 0) ++claim_counts[idx];
  });

  // The host port, when a rule can translate a connection for the host's own
  // stack: REDIRECT always, DNAT and NETMAP when they map to a host address.
  host_replies_.steering = &steering;
  if (translates_for_host(cfg_.rules)) {
    if (!platform_.open_host_port) return Error{"the rules translate for the host's own stack, which needs a host port"};
    auto hp = platform_.open_host_port();
    if (!hp) return hp.error();
    host_ = std::move(*hp);
    if (!host_->warning().empty()) fmt::print(stderr, "xnat run: warning: {}\n", host_->warning());
    if (auto r = steering.set_host_port(host_->ifindex()); !r) return r;
    // Its egress program takes nothing before a flow is entered in host_replies.
    for (size_t i = 0; i < bo_.ifnames.size() && host_; ++i)
      if (auto r = steering.attach_egress(bo_.ifindexes[i], bo_.ifnames[i]); !r) {
        fmt::print(stderr,
                   "xnat run: warning: {}; without a host port, REDIRECT and DNAT to the gateway's own addresses "
                   "are dropped (drop_host_port_claimed)\n",
                   r.error().message);
        host_.reset();
      }
  }

  // nf_conntrack_max is the whole gateway's, held by a shared count; each
  // worker's table has room for twice its fair share (up to the whole), as
  // flows never spread exactly evenly.
  total_max_ = start_max_ = cfg_.conntrack.nf_conntrack_max;
  limit_.max.store(total_max_);
  limit_.reserve = std::min<uint64_t>(total_max_ / 4, std::max<uint64_t>(64 * nworkers, total_max_ / 64));
  limit_.overdraft = std::min<uint64_t>(total_max_ / 16, 8 * nworkers);
  EngineConfig per_worker = cfg_;
  // One set of ICMP error buckets for the gateway, as the kernel's (the rules' -m
  // limit and nth state is shared by the copies already).
  per_worker.icmp_limit = std::make_shared<IcmpRateLimit>(cfg_.icmp_msgs_per_sec, cfg_.icmp_msgs_burst);
  per_worker.icmp_peer_limit = std::make_shared<IcmpPeerLimit>(cfg_.icmp_ratelimit);
  if (nworkers > 1) {
    const uint64_t share = std::min<uint64_t>(total_max_, (2 * total_max_ + nworkers - 1) / nworkers);
    if (auto r = per_worker.conntrack.set("nf_conntrack_max", static_cast<int64_t>(share)); !r)
      return Error{fmt::format("nf_conntrack_max {} over {} workers: {}", total_max_, nworkers, r.error().message)};
  }
  // The secrets of the hashes and the ports' random offsets, as netfilter's
  // (nf_conntrack_hash_rnd, get_random_u16): never the same twice.
  uint64_t secrets[2];
  if (getrandom(secrets, sizeof secrets, 0) != sizeof secrets)
    return Error{fmt::format("getrandom: {}", std::strerror(errno))};
  const uint64_t shard_seed = secrets[0];
  // Held flows (conntrack.h) keep their directory entries: room for each
  // worker's hold as well as the table.
  directory_ = std::make_unique<FlowDirectory>(
      nworkers > 1 ? total_max_ + nworkers * uint64_t{cfg_.conntrack.xnat_evicted_hold} : 1);
  if (nworkers > 1) {
    mappings_ = std::make_unique<SourceMap>(total_max_);
    if (cfg_.conntrack.xnat_max_flows_per_source) flow_counts_ = std::make_unique<SourceMap>(total_max_);
  }

  if (o.fast_path && steering.fast_path_fd() < 0) return Error{"--fast-path: this platform has no fast path"};
  sh_.fib = cfg_.fib;
  update_pools();
  for (uint32_t i = 0; i < nworkers; ++i) {
    auto w = std::make_unique<Worker>();
    w->held = NeighborQueue(bo_.largest_mtu());
    w->ports_before.assign(bo_.ifnames.size(), PortStats{});
    EngineConfig ec = per_worker;
    ec.seed = secrets[1] + i * 0x9E3779B97F4A7C15ull;
    ec.shard = Shard{i, nworkers, shard_seed, nworkers > 1 ? directory_.get() : nullptr, mappings_.get(),
                     flow_counts_.get(), nworkers > 1 ? &limit_ : nullptr};
    w->engine = std::make_unique<Engine>(std::move(ec));
    // Several drains' worth at the rate of new flows a worker takes.
    w->events = std::make_unique<EventRing>(16384);
    w->claims.counts = claim_counts;
    set_claim_addrs(&w->claims, w->engine->fib());
    if (host_) {
      w->claims.host_reply = set_host_reply;
      w->claims.host_reply_ctx = &host_replies_;
      w->host = host_.get();
      w->host_reader = i == 0;
    }
    w->engine->set_flow_observer(&w->claims);
    if (o.fast_path) {
      const uint32_t first = XNAT_FAST_SLOTS / nworkers * i;
      w->fast = std::make_unique<FastPath>(steering.fast_path_fd(), steering.fast_seen(), steering.fast_sent(), first,
                                           XNAT_FAST_SLOTS / nworkers, bo_.ifindexes,
                                           w->engine->conntrack().capacity());
      w->engine->set_flow_offload(w->fast.get());
    }
    BackendOptions wo = bo_;
    wo.worker = i;
    auto backend = platform_.open_backend(wo, steering);
    if (!backend) return backend.error();
    w->io = std::move(*backend);
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0) return Error{fmt::format("eventfd: {}", std::strerror(errno))};
    workers_.push_back(std::move(w));
  }
  for (auto& a : workers_) {
    a->to.assign(nworkers, nullptr);
    a->from.assign(nworkers, nullptr);
    for (auto& b : workers_) a->peers.push_back(b.get());
  }
  // A ring per ordered pair of workers, 2 KiB a slot: 4 MiB each at 2
  // workers, down to 512 KiB each from 16 on (a worker's inbound total
  // stays about 4-8 MiB).
  const uint32_t ring_slots = nworkers > 1 ? std::clamp<uint32_t>(std::bit_floor(4096u / (nworkers - 1)), 256, 2048) : 0;
  for (uint32_t a = 0; a < nworkers; ++a)
    for (uint32_t b = 0; b < nworkers; ++b)
      if (a != b) {
        rings_.push_back(std::make_unique<HandoffRing>(ring_slots));
        workers_[a]->to[b] = workers_[b]->from[a] = rings_.back().get();
      }
  // Sockets exist before the program steers anything to them.
  for (size_t i = 0; i < bo_.ifnames.size(); ++i)
    if (auto r = attach_port(i); !r) return r;
  for (const std::string& w : steering.warnings()) fmt::print(stderr, "xnat run: warning: {}\n", w);
  set_receive();
  return start_workers();
}

Status Gateway::attach_port(size_t i) {
  Steering& steering = *platform_.steering;
  if (auto r = steering.attach(platform_.hook, bo_.ifindexes[i], bo_.ifnames[i]); !r) {
    if (platform_.hook == SteerHook::kXdp && bo_.mtus[i] > kAfXdpMtuMax)
      return Error{fmt::format("{} (its MTU is {}: a frame larger than a page then comes in several buffers, "
                               "XDP multi-buffer, which this driver or kernel does not have; use --backend "
                               "af_packet, which carries jumbo frames, or an MTU of at most {})",
                               r.error().message, bo_.mtus[i], kAfXdpMtuMax)};
    return r;
  }
  if (fast_path_ && platform_.hook == SteerHook::kXdp)
    if (auto r = steering.attach_fast_path(bo_.ifindexes[i], bo_.ifnames[i]); !r) return r;
  return {};
}

void Gateway::set_receive() {
  if (!rps_cpus_.empty() && platform_.set_rps) {
    receive_order_ = platform_.set_rps(bo_.ifnames, rps_cpus_);
    for (const std::string& w : receive_order_->warnings()) fmt::print(stderr, "xnat run: warning: {}\n", w);
  }
  // auto: AF_XDP takes its frames before GRO.
  const bool gro = gro_ == "on" || (gro_ == "auto" && platform_.hook == SteerHook::kTc);
  if (gro && platform_.set_gro) {
    coalescing_ = platform_.set_gro(bo_.ifnames, gro_ == "auto");
    for (const std::string& w : coalescing_->warnings()) fmt::print(stderr, "xnat run: warning: {}\n", w);
  }
}

Status Gateway::start_workers() {
  sh_.stop.store(false);
  for (auto& w : workers_) {
    threads_.emplace_back([this, wp = w.get()] { run_worker(*wp, sh_, bo_); });
    // "xnat-worker N" in top -H and /proc: the thread to pin or watch.
    const std::string name = fmt::format("xnat-worker {}", threads_.size() - 1);
    (void)pthread_setname_np(threads_.back().native_handle(), name.c_str());
    if (!worker_cpus_.empty()) {
      // From here rather than from inside the thread: a failure is then
      // the start's error.
      if (auto r = pin_thread(threads_.back().native_handle(), {worker_cpus_[threads_.size() - 1]}); !r)
        return Error{fmt::format("--worker-cpus: {}: {}", name, r.error().message)};
    }
  }
  if (last_ports_.empty()) {
    last_ports_.assign(bo_.ifnames.size(), PortStats{});
    started_ms_ = now_ms();
  }
  return {};
}

void Gateway::stop_workers() {
  sh_.stop.store(true);
  for (auto& w : workers_) {
    const uint64_t one = 1;
    if (w->wake_fd >= 0) (void)!::write(w->wake_fd, &one, sizeof one);
  }
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

// An interface deleted and made again under its name (a PPPoE link
// redialled, a VPN's tun, a container's veth) is a new device: its
// attachments and the workers' sockets went with the old one. The workers
// stop, every socket is opened again (an AF_XDP socket's share of queues is
// the whole interface set's), the programs attached to the new device, and
// the workers go on with their tables, the offloaded connections taken
// back (their entries name the old device).
Status Gateway::rebind(const KernelState& k) {
  std::vector<size_t> moved;
  for (size_t i = 0; i < bo_.ifnames.size(); ++i)
    if (const KernelLink* l = k.link(bo_.ifnames[i]); l && l->ifindex != bo_.ifindexes[i]) moved.push_back(i);
  if (moved.empty()) return {};
  stop_workers();
  Steering& steering = *platform_.steering;
  for (size_t i : moved) steering.detach(bo_.ifindexes[i]);
  receive_order_.reset();
  coalescing_.reset();
  for (size_t i : moved) {
    const KernelLink* l = k.link(bo_.ifnames[i]);
    fmt::print(stderr, "xnat run: {} is a new device (ifindex {}, was {}): its sockets and programs attached again\n",
               bo_.ifnames[i], l->ifindex, bo_.ifindexes[i]);
    bo_.ifindexes[i] = l->ifindex;
    if (l->mtu) bo_.mtus[i] = l->mtu;
  }
  rebinds_.fetch_add(moved.size(), std::memory_order_relaxed);
  // Every old socket closed before a new one opens: an AF_PACKET fanout
  // group belongs to one device, and a new socket could not join its id.
  for (auto& w : workers_) {
    // The figures so far stay: the new sockets count from zero.
    for (size_t p = 0; p < w->io->ports(); ++p) w->ports_before[p] += w->io->stats(static_cast<int>(p));
    w->io.reset();
  }
  for (auto& w : workers_) {
    if (w->fast) {
      w->engine->withdraw_offloaded();
      w->fast->set_ifindexes(bo_.ifindexes);
    }
    BackendOptions wo = bo_;
    wo.worker = static_cast<uint32_t>(&w - workers_.data());
    auto backend = platform_.open_backend(wo, steering);
    if (!backend) return backend.error();
    w->io = std::move(*backend);
  }
  for (size_t i : moved)
    if (auto r = attach_port(i); !r) return r;
  if (host_)
    for (size_t i : moved)
      if (auto r = steering.attach_egress(bo_.ifindexes[i], bo_.ifnames[i]); !r) return r;
  set_receive();
  return start_workers();
}

Gateway::~Gateway() { stop(); }

std::string Gateway::banner() const {
  std::string s = fmt::format("xnat: {} on", workers_[0]->io->name());
  // sh_.fib, not an engine's: the workers replace theirs as they run, and
  // only this thread writes this one.
  for (const Interface& i : sh_.fib.interfaces())
    s += i.addr ? fmt::format(" {} ({}/{})", i.name, ip_to_string(i.addr), i.prefix_len)
                : fmt::format(" {} (no IPv4 address: nothing to masquerade to)", i.name);
  s += fmt::format("; {} worker{}; {}; nf_conntrack_max {}", workers_.size(), workers_.size() > 1 ? "s" : "",
                   workers_[0]->io->describe(), total_max_);
  if (host_) s += fmt::format("; host port {}", host_->name());
  if (!worker_cpus_.empty()) s += fmt::format("; workers on CPU {}", fmt::join(worker_cpus_, ","));
  if (receive_order_ && !receive_order_->describe().empty()) s += "; " + receive_order_->describe();
  if (coalescing_ && !coalescing_->describe().empty()) s += "; " + coalescing_->describe();
  if (!backend_reason_.empty()) s += fmt::format("; --backend auto: {}", backend_reason_);
  return s;
}

void Gateway::poll() {
  // A dump that failed is tried again at the next turn: the change it
  // missed may be the last for a while.
  if (platform_.kernel->changed() || redump_) {
    auto k = platform_.kernel->dump();
    redump_ = !k;
    if (!k && k.error().message != unapplied_) {
      unapplied_ = k.error().message;
      fmt::print(stderr, "xnat run: reading the kernel's interfaces and routes: {}; trying again\n", unapplied_);
    }
    if (k) {
      auto f = live_fib(conf_fib_, cfg_.routes_pinned, *k, false);
      note_masquerade_losses(*k, f ? &*f : nullptr);
      const std::vector<std::string> rules_before = kernel_.policy_rules;
      if (auto r = rebind(*k); !r) {
        // The workers are stopped and their sockets half made: the process
        // ends, for its supervisor to start it again.
        broken_ = fmt::format("an interface came back as a new device, and attaching to it failed: {}",
                              r.error().message);
        return;
      }
      if (f) {
        if (auto r = set_host_addresses(*f); !r && !addresses_failed_) {
          addresses_failed_ = true;
          fmt::print(stderr, "xnat run: the host's addresses not given to the steering program: {}\n", r.error().message);
        }
        {
          std::lock_guard<std::mutex> lock(sh_.fib_mu);
          sh_.fib = std::move(*f);
          sh_.fib_version.fetch_add(1, std::memory_order_release);
        }
        update_pools();
        unapplied_.clear();
      } else if (f.error().message != unapplied_) {
        // Said once, not at every change while it lasts (neighbours change often).
        unapplied_ = f.error().message;
        fmt::print(stderr, "xnat run: kernel change not applied: {}\n", unapplied_);
      }
      kernel_ = std::move(*k);
      warn_policy_rules(rules_before);
    }
  }
  forget_masqueraded();
  {
    std::lock_guard<std::mutex> lock(sh_.resolve_mu);
    resolve_.swap(sh_.resolve);
  }
  for (auto [ifindex, addr] : resolve_) (void)platform_.kernel->resolve(ifindex, addr);
  resolve_.clear();
  drain_log();
  pump_events();
  if (streamed_walk_ && listing_gone_ == streamed_walk_) {
    // The listing's client left: the workers drop the walk, its pieces here.
    sh_.dump_cancel.store(streamed_walk_, std::memory_order_release);
    for (auto& w : workers_) w->wake();
    if (take_chunks(streamed_walk_, nullptr)) streamed_walk_ = 0;
  }
}

void Gateway::update_pools() {
  std::vector<uint32_t> addrs;
  {
    std::lock_guard<std::mutex> lock(sh_.fib_mu);
    for (const Interface& i : sh_.fib.interfaces()) addrs.push_back(i.addr);
  }
  pools_ = source_pools(cfg_.rules, addrs);
}

void Gateway::pump_events() {
  const uint8_t mask = events_.mask();
  if (mask != sh_.event_mask.load(std::memory_order_relaxed)) {
    sh_.event_mask.store(mask, std::memory_order_relaxed);
    for (auto& w : workers_) w->wake();
  }
  std::vector<EventRing*> rings;
  uint64_t lost = 0;
  for (auto& w : workers_) {
    rings.push_back(w->events.get());
    lost += w->events->lost();
  }
  // With no reader left, what the rings still hold is dropped here.
  events_.pump(rings, lost, now_ms());
}

void Gateway::drain_log() {
  // To the journal with its priority ("<N>", as sd-daemon(3) reads stderr);
  // plain on a terminal.
  static const bool tty = isatty(STDERR_FILENO);
  for (auto& w : workers_)
    w->engine->log_ring().drain([&](uint8_t level, std::string_view text) {
      if (tty) fmt::print(stderr, "xnat: {}\n", text);
      else fmt::print(stderr, "<{}>{}\n", level, text);
    });
}

bool Gateway::await(uint64_t Snapshot::*done, uint64_t gen, int timeout_ms) {
  for (auto& w : workers_) w->wake();
  for (int waited = 0; waited <= timeout_ms; waited += 2) {
    bool all = true;
    for (auto& w : workers_) {
      std::lock_guard<std::mutex> lock(w->mu);
      all &= w->snap.*done >= gen;
    }
    if (all) return true;
    struct timespec t{0, 2 * 1000 * 1000};
    nanosleep(&t, nullptr);
  }
  return false;
}

GatewayReport Gateway::report(bool with_table) {
  GatewayReport r;
  const size_t nports = bo_.ifnames.size();
  r.ports.assign(nports, PortStats{});
  const uint64_t now = now_ms();
  for (auto& w : workers_) {
    Snapshot snap;
    if (!stopped_) {
      // The figures; the listing only when asked for, and taken, not copied
      // (a copy of a big one under the lock would hold up the worker).
      std::lock_guard<std::mutex> lock(w->mu);
      snap.engine = w->snap.engine;
      snap.live = w->snap.live;
      snap.ports = w->snap.ports;
      snap.translated = w->snap.translated;
      snap.loop_max_ns = w->snap.loop_max_ns;
      snap.cpu_ns = w->snap.cpu_ns;
      snap.runqueue_wait_ns = w->snap.runqueue_wait_ns;
    } else {
      publish(*w, now, w->snap.dump_done + 1);
      snap = w->snap;
      if (with_table)
        for (const std::string& c : w->snap.chunks) r.table += c;
      w->snap.chunks.clear();
    }
    r.engines.push_back(snap.engine);
    for (size_t c = 0; c < kCounterCount; ++c) r.live.v[c] += snap.live.v[c];
    for (size_t p = 0; p < nports && p < snap.ports.size(); ++p) {
      PortStats& s = r.ports[p];
      const PortStats& o = snap.ports[p];
      s.rx += o.rx, s.tx += o.tx, s.tx_ring_full += o.tx_ring_full, s.rx_ring_dropped += o.rx_ring_dropped;
      s.rx_gso += o.rx_gso, s.tx_gso += o.tx_gso, s.tx_coalesced += o.tx_coalesced;
      s.rx_csum_valid += o.rx_csum_valid, s.socket_errors += o.socket_errors;
      s.rx_bytes += o.rx_bytes, s.tx_bytes += o.tx_bytes;
    }
    for (const TranslatedCounts::Slot& t : snap.translated) r.translated[{t.addr, t.proto}] += t.flows;
    r.loop_max_ns = std::max(r.loop_max_ns, snap.loop_max_ns);
    r.worker_times.push_back({snap.cpu_ns, snap.runqueue_wait_ns});
  }
  if (with_table && !stopped_) r.table = std::move(listing_);  // collect_listing's
  return r;
}

void Gateway::stop() {
  if (stopped_) return;
  stopped_ = true;
  stop_workers();
  drain_log();
  platform_.steering->detach_all();
  receive_order_.reset();  // the interfaces' RPS masks as they were
  coalescing_.reset();     // and their GRO
  for (auto& w : workers_)
    if (w->wake_fd >= 0) {
      ::close(w->wake_fd);
      w->wake_fd = -1;
    }
}

}  // namespace xnat
