#include "live/gateway.h"

#include <fmt/format.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <mutex>

#include "live/handoff_ring.h"
#include "live/local_claims.h"
#include "live/rule_claims.h"
#include "nat/rules_parser.h"

// The claims' layout (the decision itself is compiled only where its lookups
// are defined: the BPF program, worker.cc).
#include "live/steer.h"

namespace xnat {
namespace {

std::vector<uint32_t> local_addrs(const Fib& fib) {
  std::vector<uint32_t> out;
  for (const Interface& i : fib.interfaces()) out.push_back(i.addr);
  return out;
}

}  // namespace

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
  Steering& steering = *platform_.steering;
  cfg_ = std::move(cfg);
  cfg_.hold_unresolved = true;
  config_path_ = o.config;
  auto kernel = platform_.kernel->dump();
  if (!kernel) return kernel.error();
  auto fib = live_fib(cfg_, *kernel);
  if (!fib) return fib.error();
  cfg_.fib = *fib;

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
  if (auto r = steering.set_local_addrs(local_addrs(cfg_.fib)); !r) return r;
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
  if (nworkers > 1) {
    const uint64_t share = std::min<uint64_t>(total_max_, (2 * total_max_ + nworkers - 1) / nworkers);
    if (auto r = per_worker.conntrack.set("nf_conntrack_max", static_cast<int64_t>(share)); !r)
      return Error{fmt::format("nf_conntrack_max {} over {} workers: {}", total_max_, nworkers, r.error().message)};
  }
  uint64_t shard_seed = 0;
  if (getrandom(&shard_seed, sizeof shard_seed, 0) != sizeof shard_seed) shard_seed = now_ms() * 0x9E3779B97F4A7C15ull;
  // Held flows (conntrack.h) keep their directory entries: room for each
  // worker's hold as well as the table.
  directory_ = std::make_unique<FlowDirectory>(
      nworkers > 1 ? total_max_ + nworkers * uint64_t{cfg_.conntrack.xnat_evicted_hold} : 1);

  sh_.fib = cfg_.fib;
  update_pools();
  for (uint32_t i = 0; i < nworkers; ++i) {
    auto w = std::make_unique<Worker>();
    EngineConfig ec = per_worker;
    ec.seed = cfg_.seed + i * 0x9E3779B97F4A7C15ull;
    ec.shard = Shard{i, nworkers, shard_seed, nworkers > 1 ? directory_.get() : nullptr, nworkers > 1 ? &limit_ : nullptr};
    w->engine = std::make_unique<Engine>(std::move(ec));
    // Several drains' worth at the rate of new flows a worker takes.
    w->events = std::make_unique<EventRing>(16384);
    w->claims.counts = claim_counts;
    w->frags_fd = steering.frags_fd();
    set_claim_addrs(&w->claims, w->engine->fib());
    if (host_) {
      w->claims.host_reply = set_host_reply;
      w->claims.host_reply_ctx = &host_replies_;
      w->host = host_.get();
      w->host_reader = i == 0;
    }
    w->engine->set_flow_observer(&w->claims);
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
    if (auto r = steering.attach(platform_.hook, bo_.ifindexes[i], bo_.ifnames[i]); !r) return r;
  for (auto& w : workers_) {
    threads_.emplace_back([this, wp = w.get()] { run_worker(*wp, sh_, bo_, platform_.backend_filters); });
    // "xnat-worker N" in top -H and /proc: the thread to pin or watch.
    const std::string name = fmt::format("xnat-worker {}", threads_.size() - 1);
    (void)pthread_setname_np(threads_.back().native_handle(), name.c_str());
  }
  last_ports_.assign(bo_.ifnames.size(), PortStats{});
  started_ms_ = now_ms();
  return {};
}

Gateway::~Gateway() { stop(); }

std::string Gateway::banner() const {
  const Engine& first = *workers_[0]->engine;
  std::string s = fmt::format("xnat: {} on", workers_[0]->io->name());
  for (const Interface& i : first.fib().interfaces())
    s += fmt::format(" {} ({}/{})", i.name, ip_to_string(i.addr), i.prefix_len);
  s += fmt::format("; {} worker{}; {}; nf_conntrack_max {}", workers_.size(), workers_.size() > 1 ? "s" : "",
                   workers_[0]->io->describe(), total_max_);
  if (host_) s += fmt::format("; host port {}", host_->name());
  return s;
}

void Gateway::poll() {
  if (platform_.kernel->changed()) {
    auto k = platform_.kernel->dump();
    if (k) {
      auto f = live_fib(cfg_, *k);
      if (f) {
        (void)platform_.steering->set_local_addrs(local_addrs(*f));
        {
          std::lock_guard<std::mutex> lock(sh_.fib_mu);
          sh_.fib = std::move(*f);
          sh_.fib_version.fetch_add(1, std::memory_order_release);
        }
        update_pools();
      } else {
        fmt::print(stderr, "xnat run: kernel change not applied: {}\n", f.error().message);
      }
    }
  }
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
  RuleSet rules = cfg_.rules;  // bound to the interfaces, as the workers' copies are
  std::vector<std::string> names;
  for (const Interface& i : cfg_.fib.interfaces()) names.push_back(i.name);
  rules.bind_interfaces(names);
  std::vector<uint32_t> addrs;
  {
    std::lock_guard<std::mutex> lock(sh_.fib_mu);
    for (const Interface& i : sh_.fib.interfaces()) addrs.push_back(i.addr);
  }
  pools_ = source_pools(rules, addrs);
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

void Gateway::collect_listing() {
  listing_.clear();
  (void)walk(nullptr, &listing_);
}

uint64_t Gateway::start_walk(std::shared_ptr<const ConntrackQuery> q) {
  uint64_t gen;
  {
    std::lock_guard<std::mutex> lock(sh_.query_mu);
    sh_.query = std::move(q);
    gen = sh_.dump_gen.fetch_add(1, std::memory_order_release) + 1;
  }
  for (auto& w : workers_) w->wake();
  return gen;
}

bool Gateway::take_chunks(uint64_t gen, std::string* out) {
  bool done = true;
  for (auto& w : workers_) {
    std::vector<std::string> chunks;
    {
      std::lock_guard<std::mutex> lock(w->mu);
      chunks.swap(w->snap.chunks);
      done &= w->snap.dump_done >= gen;
    }
    size_t bytes = 0;
    for (std::string& c : chunks) {
      bytes += c.size();
      if (out) *out += c;
    }
    if (bytes && w->backlog.fetch_sub(bytes, std::memory_order_relaxed) > Worker::kBacklogMax) w->wake();
  }
  return done;
}

bool Gateway::walk(std::shared_ptr<const ConntrackQuery> q, std::string* out) {
  if (streamed_walk_) return false;  // a listing streams: one walk at a time
  const uint64_t gen = start_walk(std::move(q));
  // A piece per worker loop: about a second per million slots.
  for (int waited = 0; waited <= 60'000; waited += 2) {
    if (take_chunks(gen, out)) {
      (void)take_chunks(gen, out);  // what was published with the last piece
      return true;
    }
    struct timespec t{0, 2 * 1000 * 1000};
    nanosleep(&t, nullptr);
  }
  return false;
}

// `conntrack -L` as a stream: the workers walk their tables a piece per loop,
// and each piece goes to the client as it takes them; a worker waits while
// Worker::kBacklogMax of its pieces are not yet taken. A client that leaves
// cancels the walk (Gateway::poll).
class Gateway::ListingStream final : public ControlStream {
 public:
  ListingStream(Gateway* g, uint64_t gen, bool xml) : g_(g), gen_(gen), xml_(xml) {}
  ~ListingStream() override { g_->listing_gone_ = gen_; }

  void take(std::string* out, std::string* err) override {
    if (done_) return;
    std::string text;
    const bool finished = g_->take_chunks(gen_, &text);
    if (!text.empty()) {
      if (xml_ && !xml_open_) {
        *out += kXmlHead;
        xml_open_ = true;
      }
      *out += text;
    }
    if (!finished) return;
    uint64_t matched = 0;
    for (auto& w : g_->workers_) {
      std::lock_guard<std::mutex> lock(w->mu);
      matched += w->snap.matched;
    }
    if (xml_open_) *out += kXmlTail;
    *err += fmt::format("conntrack v1.4.7 (conntrack-tools): {} flow entries have been shown.\n", matched);
    done_ = true;
    g_->streamed_walk_ = 0;
  }
  bool done() const override { return done_; }

 private:
  Gateway* g_;
  uint64_t gen_;
  bool xml_;
  bool xml_open_ = false;
  bool done_ = false;
};

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

ControlReply Gateway::control(const std::vector<std::string>& args) {
  if (args.empty()) return {2, "", "empty request\n"};
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "conntrack") return conntrack(rest);
  if (args[0] == "sysctl") return sysctl(rest);
  if (args[0] == "status") return {0, status_text(), ""};
  if (args[0] == "reload") return reload(nullptr);
  if (args[0] == "restore") {
    if (args.size() != 2) return {2, "", "restore: expected the rules as one argument\n"};
    return reload(&args[1]);
  }
  return {2, "", fmt::format("unknown request '{}': conntrack, sysctl, status, reload or restore\n", args[0])};
}

ControlReply Gateway::conntrack(const std::vector<std::string>& args) {
  auto q = parse_conntrack_args(args);
  if (!q) return {2, "", fmt::format("conntrack v1.4.7 (conntrack-tools): {}\n", q.error().message)};
  using C = ConntrackQuery::Command;
  if (q->command == C::kStats) return {0, format_conntrack_stats(report(false).engines), ""};
  if (q->command == C::kEvents) {
    ControlReply r;
    r.stream = events_.add(std::move(*q));
    pump_events();  // the workers start recording now
    return r;
  }
  const C cmd = q->command;
  const bool xml = q->output == EntryFormat::kXml;
  if (streamed_walk_)
    return {1, "", "conntrack v1.4.7 (conntrack-tools): a listing is being sent: one walk of the tables at a time, "
                   "try again when it ends\n"};
  if (cmd == C::kList) {
    ControlReply r;
    streamed_walk_ = start_walk(std::make_shared<const ConntrackQuery>(std::move(*q)));
    r.stream = std::make_shared<ListingStream>(this, streamed_walk_, xml);
    return r;
  }
  ControlReply r;
  if (!walk(std::make_shared<const ConntrackQuery>(std::move(*q)), &r.out))
    return {1, "", "the workers did not finish the walk in time\n"};
  uint64_t matched = 0;
  for (auto& w : workers_) {
    std::lock_guard<std::mutex> lock(w->mu);
    matched += w->snap.matched;
  }
  if (xml && !r.out.empty() && cmd != C::kCount) r.out = kXmlHead + r.out + kXmlTail;
  // conntrack's summary lines, on stderr as it prints them.
  switch (cmd) {
    case C::kList:
      r.err = fmt::format("conntrack v1.4.7 (conntrack-tools): {} flow entries have been shown.\n", matched);
      break;
    case C::kGet:
      if (matched == 0) r = {1, "", "conntrack v1.4.7 (conntrack-tools): No such file or directory\n"};
      else r.err = fmt::format("conntrack v1.4.7 (conntrack-tools): {} flow entries have been shown.\n", matched);
      break;
    case C::kDelete:
      if (matched == 0) r = {1, "", "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n"};
      else r.err = fmt::format("conntrack v1.4.7 (conntrack-tools): {} flow entries have been deleted.\n", matched);
      break;
    case C::kFlush:
      r.err = "conntrack v1.4.7 (conntrack-tools): connection tracking table has been emptied.\n";
      break;
    case C::kCount:
      r.out = fmt::format("{}\n", matched);
      break;
    case C::kStats:
    case C::kEvents:
      break;  // answered above
  }
  return r;
}

ControlReply Gateway::sysctl(const std::vector<std::string>& args) {
  // sysctl's forms: NAME..., -a, -w NAME=VALUE (not yet while running).
  std::vector<std::string> names;
  std::vector<std::pair<std::string, std::string>> writes;
  bool quiet = false, values = false, keys = false, ignore = false;
  for (const std::string& a : args) {
    if (a == "--write") continue;
    if (a == "--quiet" || a == "--values" || a == "--names" || a == "--ignore") {
      (a == "--quiet" ? quiet : a == "--values" ? values : a == "--names" ? keys : ignore) = true;
      continue;
    }
    if (a.size() > 1 && a[0] == '-' && a[1] != '-') {
      // sysctl's short flags, combined as it takes them (-qw, -n).
      bool all = false;
      for (char c : a.substr(1)) {
        switch (c) {
          case 'w': break;
          case 'q': quiet = true; break;
          case 'n': values = true; break;
          case 'N': keys = true; break;
          case 'e': ignore = true; break;
          case 'a': all = true; break;
          default:
            return {2, "", fmt::format("sysctl: invalid option -- '{}' (xnat's sysctl takes -a, -w, -q, -n, -N, -e)\n", c)};
        }
      }
      if (!all) continue;
    } else if (a.starts_with("--")) {
      if (a != "--all")
        return {2, "", fmt::format("sysctl: unrecognized option '{}' (xnat's sysctl takes -a, -w, -q, -n, -N, -e)\n", a)};
    }
    if (const size_t eq = a.find('='); eq != std::string::npos) {
      writes.emplace_back(a.substr(0, eq), a.substr(eq + 1));
      continue;
    }
    if (a == "--all" || a.starts_with("-")) {
      names.push_back("net.netfilter.nf_conntrack_count");
      names.push_back("net.netfilter.nf_conntrack_max");
      for (size_t i = 0; i < static_cast<size_t>(TimeoutClass::kCount); ++i)
        names.push_back(std::string("net.netfilter.") + timeout_sysctl_name(static_cast<TimeoutClass>(i)));
      continue;
    }
    names.push_back(a);
  }
  if (!writes.empty()) {
    if (!names.empty()) return {2, "", "sysctl: give NAME=VALUE pairs to write, or NAMEs to read, not both\n"};
    ControlReply w = sysctl_write(writes);
    if (quiet) w.out.clear();
    return w;
  }
  if (names.empty()) return {2, "", "sysctl: give NAME... or -a\n"};
  ControlReply r;
  const ConntrackSettings& s = cfg_.conntrack;
  for (const std::string& full : names) {
    const std::string n = full.starts_with("net.netfilter.") ? full.substr(14) : full;
    // The count is the tables'; the limit the gateway's (each worker's copy holds its share).
    const std::optional<uint64_t> v = n == "nf_conntrack_count" ? live_count()
                                      : n == "nf_conntrack_max" ? total_max_
                                                                : s.get(n);
    if (!v) {
      if (ignore) continue;
      r.status = 255;
      r.err += fmt::format("sysctl: cannot stat /proc/sys/{}: No such file or directory\n", [&] {
        std::string p = full;
        for (char& c : p) if (c == '.') c = '/';
        return p;
      }());
      continue;
    }
    const std::string key = full.starts_with("net.") ? full : "net.netfilter." + n;
    if (values) r.out += fmt::format("{}\n", *v);
    else if (keys) r.out += key + "\n";
    else r.out += fmt::format("{} = {}\n", key, *v);
  }
  return r;
}

uint64_t Gateway::live_count() {
  // Asked of the workers: the figures they publish are up to 100 ms old.
  auto q = std::make_shared<ConntrackQuery>();
  q->command = ConntrackQuery::Command::kCount;
  q->table_count = true;
  uint64_t n = 0;
  if (!walk(std::move(q), nullptr)) {
    // A listing is walking the tables: their counts as last published.
    for (const CounterSource& s : report(false).engines) n += s.count;
    return n;
  }
  for (auto& w : workers_) {
    std::lock_guard<std::mutex> lock(w->mu);
    n += w->snap.matched;
  }
  return n;
}

ControlReply Gateway::reload(const std::string* rules_text) {
  EngineConfig next;
  std::string source;
  if (rules_text) {
    auto rs = parse_rules(*rules_text, "<stdin>");
    if (!rs) return {1, "", fmt::format("xnat restore: {}; the running rules are unchanged\n", rs.error().message)};
    next = cfg_;
    next.rules = std::move(*rs);
    source = "rules from standard input";
  } else {
    if (config_path_.empty()) return {1, "", "xnat reload: this gateway was not started from a file\n"};
    auto c = load_config(config_path_, ConfigMode::kLive);
    if (!c) return {1, "", fmt::format("xnat reload: {}; the running configuration is unchanged\n", c.error().message)};
    next = std::move(*c);
    source = config_path_;
  }
  // What reload cannot change: the interfaces, what sizes the tables, the host port.
  std::vector<std::string> was, now;
  for (const Interface& i : cfg_.fib.interfaces()) was.push_back(i.name);
  for (const Interface& i : next.fib.interfaces()) now.push_back(i.name);
  const ConntrackSettings &a = cfg_.conntrack, &b = next.conntrack;
  std::string why;
  if (was != now) why = "the interfaces changed";
  else if (a.nf_conntrack_buckets != b.nf_conntrack_buckets || a.xnat_tcp_window_tracking != b.xnat_tcp_window_tracking ||
           a.xnat_max_flows_per_source != b.xnat_max_flows_per_source || a.xnat_evicted_hold != b.xnat_evicted_hold)
    why = "a setting that sizes the tables changed (nf_conntrack_buckets, xnat_*)";
  else if (b.nf_conntrack_max > start_max_)
    why = fmt::format("nf_conntrack_max {} is above the {} the tables were built for", b.nf_conntrack_max, start_max_);
  else if (translates_for_host(next.rules) && !host_)
    why = "the new rules translate for the host's own stack, which needs the host port this gateway did not open";
  if (!why.empty())
    return {1, "", fmt::format("xnat reload: {}: restart to apply it; the running configuration is unchanged\n", why)};

  // The ports the destination rules claim from the kernel: the new rules' in,
  // the old ones' out.
  uint64_t* counts = platform_.steering->claims();
  claim_dnat_ports(next.rules, [&](uint8_t proto, uint16_t port) {
    if (const int i = xnat_claim_index(proto, port); i >= 0) __atomic_fetch_add(&counts[i], 1, __ATOMIC_RELAXED);
  });
  claim_dnat_ports(cfg_.rules, [&](uint8_t proto, uint16_t port) {
    if (const int i = xnat_claim_index(proto, port); i >= 0) __atomic_fetch_sub(&counts[i], 1, __ATOMIC_RELAXED);
  });
  uint64_t gen;
  {
    std::lock_guard<std::mutex> lock(sh_.query_mu);
    // Each worker's copy (its nth and limit state is its own), bound here.
    sh_.rules.clear();
    std::vector<std::string> names;
    for (const Interface& i : cfg_.fib.interfaces()) names.push_back(i.name);
    for (size_t w = 0; w < workers_.size(); ++w) {
      sh_.rules.push_back(std::make_unique<RuleSet>(next.rules));
      sh_.rules.back()->bind_interfaces(names);
    }
    gen = sh_.rules_gen.fetch_add(1, std::memory_order_release) + 1;
  }
  // The workers' old rules come back in sh_.rules, freed here rather than in
  // their loops; not before every worker has swapped (else at the next reload).
  const bool taken = await(&Snapshot::rules_done, gen, 1000);
  cfg_.rules = std::move(next.rules);
  update_pools();
  if (taken) {
    std::lock_guard<std::mutex> lock(sh_.query_mu);
    sh_.rules.clear();
  }
  ControlReply r;
  r.out = fmt::format("xnat: reloaded {}: {} rules for new connections; existing connections keep their "
                      "translation\n",
                      source, cfg_.rules.rule_count());
  // The conntrack settings that may change live, as sysctl -w changes them.
  if (!rules_text) {
    std::vector<std::pair<std::string, std::string>> w;
    for (size_t i = 0; i < static_cast<size_t>(TimeoutClass::kCount); ++i)
      if (a.timeout_s[i] != b.timeout_s[i])
        w.emplace_back(timeout_sysctl_name(static_cast<TimeoutClass>(i)), std::to_string(b.timeout_s[i]));
    auto flag = [&](const char* name, uint64_t x, uint64_t y) {
      if (x != y) w.emplace_back(name, std::to_string(y));
    };
    flag("nf_conntrack_max", total_max_, b.nf_conntrack_max);
    flag("nf_conntrack_tcp_loose", a.nf_conntrack_tcp_loose, b.nf_conntrack_tcp_loose);
    flag("nf_conntrack_checksum", a.nf_conntrack_checksum, b.nf_conntrack_checksum);
    flag("nf_conntrack_tcp_be_liberal", a.nf_conntrack_tcp_be_liberal, b.nf_conntrack_tcp_be_liberal);
    flag("nf_conntrack_tcp_ignore_invalid_rst", a.nf_conntrack_tcp_ignore_invalid_rst,
         b.nf_conntrack_tcp_ignore_invalid_rst);
    flag("nf_conntrack_tcp_max_retrans", a.nf_conntrack_tcp_max_retrans, b.nf_conntrack_tcp_max_retrans);
    if (!w.empty()) {
      ControlReply s = sysctl_write(w);
      r.out += s.out;
      r.err += s.err;
      r.status = s.status;
    }
  }
  for (const std::string& n : config_notices(cfg_)) r.err += fmt::format("xnat: note: {}\n", n);
  return r;
}

ControlReply Gateway::sysctl_write(const std::vector<std::pair<std::string, std::string>>& writes) {
  ConntrackSettings next = cfg_.conntrack;
  uint64_t max = total_max_;
  ControlReply r;
  for (const auto& [full, value] : writes) {
    const std::string n = full.starts_with("net.netfilter.") ? full.substr(14) : full;
    bool live = n == "nf_conntrack_max" || n == "nf_conntrack_tcp_loose" || n == "nf_conntrack_checksum" ||
                n == "nf_conntrack_tcp_be_liberal" || n == "nf_conntrack_tcp_ignore_invalid_rst" ||
                n == "nf_conntrack_tcp_max_retrans";
    for (size_t i = 0; i < static_cast<size_t>(TimeoutClass::kCount); ++i)
      live |= n == timeout_sysctl_name(static_cast<TimeoutClass>(i));
    char* end = nullptr;
    const long long v = std::strtoll(value.c_str(), &end, 10);
    if (value.empty() || *end) return {1, "", fmt::format("sysctl: setting key \"{}\": Invalid argument\n", full)};
    ConntrackSettings probe = next;
    if (auto st = probe.set(n, v); !st) {
      if (st.error().message.starts_with("unknown"))
        return {255, "", fmt::format("sysctl: cannot stat /proc/sys/net/netfilter/{}: No such file or directory\n", n)};
      return {1, "", fmt::format("sysctl: setting key \"{}\": {}\n", full, st.error().message)};
    }
    if (!live)
      return {1, "", fmt::format("sysctl: setting key \"{}\": {} sizes the tables xnat built at start: set it in "
                                 "[conntrack] and restart\n",
                                 full, n)};
    if (n == "nf_conntrack_max") {
      if (static_cast<uint64_t>(v) > start_max_)
        return {1, "", fmt::format("sysctl: setting key \"{}\": the tables were built for {} flows at start; "
                                   "nf_conntrack_max can go up to that live, beyond it only with a restart\n",
                                   full, start_max_)};
      max = static_cast<uint64_t>(v);
    }
    next = probe;
    r.out += fmt::format("{} = {}\n", full.starts_with("net.") ? full : "net.netfilter." + n, v);
  }
  if (auto st = next.check(); !st) return {1, "", fmt::format("sysctl: {}\n", st.error().message)};
  // To the workers, which take it between bursts; the shared count's limit here.
  uint64_t gen;
  {
    std::lock_guard<std::mutex> lock(sh_.query_mu);
    sh_.settings = std::make_shared<const ConntrackSettings>(next);
    // One worker: its table's limit is the gateway's. Several: each table
    // keeps its room and the shared count holds the total.
    sh_.table_max = workers_.size() == 1 ? max : UINT64_MAX;
    gen = sh_.settings_gen.fetch_add(1, std::memory_order_release) + 1;
  }
  limit_.max.store(max, std::memory_order_relaxed);
  (void)await(&Snapshot::settings_done, gen, 1000);
  cfg_.conntrack = next;
  total_max_ = max;
  return r;
}

std::string Gateway::status_text() {
  GatewayReport r = report(false);
  const uint64_t flows = live_count();
  Counters all;
  for (const CounterSource& s : r.engines)
    for (size_t c = 0; c < kCounterCount; ++c) all.v[c] += s.counters.v[c];
  for (size_t c = 0; c < kCounterCount; ++c) all.v[c] += r.live.v[c];
  std::string out = banner() + "\n";
  out += fmt::format("uptime {} s; flows {} of {}\n", (now_ms() - started_ms_) / 1000, flows, total_max_);
  for (size_t p = 0; p < r.ports.size(); ++p)
    out += fmt::format("{}: rx {} tx {} rx ring dropped {}\n", bo_.ifnames[p], r.ports[p].rx, r.ports[p].tx,
                       r.ports[p].rx_ring_dropped);
  std::vector<std::pair<uint64_t, size_t>> drops;
  for (size_t c = 0; c < kDropReasonCount; ++c)
    if (all.v[c]) drops.emplace_back(all.v[c], c);
  std::sort(drops.rbegin(), drops.rend());
  out += "drops:";
  if (drops.empty()) out += " none";
  for (size_t k = 0; k < drops.size() && k < 5; ++k)
    out += fmt::format(" {} {}", counter_name(static_cast<Counter>(drops[k].second)), drops[k].first);
  out += "\n";
  // The fullest pools first: what may run out.
  std::vector<std::pair<uint64_t, std::string>> pools;
  for (const PortPool& p : pools_) {
    auto flows = [&](uint8_t proto) {
      const auto it = r.translated.find({p.addr, proto});
      return it == r.translated.end() ? uint64_t{0} : it->second;
    };
    const uint64_t tcp = flows(kProtoTcp), udp = flows(kProtoUdp);
    pools.emplace_back(std::max(tcp, udp), fmt::format("pool {}: {} tcp, {} udp flows; {} ports", ip_to_string(p.addr),
                                                       tcp, udp, p.ports));
  }
  std::sort(pools.rbegin(), pools.rend());
  for (size_t k = 0; k < pools.size() && k < 5; ++k) out += pools[k].second + "\n";
  out += fmt::format("event readers {}; events lost {} (rings full), {} (readers behind)\n", events_.readers(),
                     events_.lost_in_rings(), events_.lost_by_readers());
  return out;
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
      s.rx_gso += o.rx_gso, s.tx_gso += o.tx_gso;
      s.rx_bytes += o.rx_bytes, s.tx_bytes += o.tx_bytes;
    }
    for (const TranslatedCounts::Slot& t : snap.translated) r.translated[{t.addr, t.proto}] += t.flows;
    r.loop_max_ns = std::max(r.loop_max_ns, snap.loop_max_ns);
  }
  if (with_table && !stopped_) r.table = std::move(listing_);  // collect_listing's
  return r;
}

void Gateway::stop() {
  if (stopped_) return;
  stopped_ = true;
  sh_.stop.store(true);
  for (auto& w : workers_) {
    const uint64_t one = 1;
    if (w->wake_fd >= 0) (void)!::write(w->wake_fd, &one, sizeof one);
  }
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  drain_log();
  platform_.steering->detach_all();
  for (auto& w : workers_)
    if (w->wake_fd >= 0) {
      ::close(w->wake_fd);
      w->wake_fd = -1;
    }
}

}  // namespace xnat
