// The gateway's control requests (control_server.h): conntrack, sysctl,
// status, reload and restore, and the walks over the workers' tables that
// listings, deletions and counts are.
#include "live/gateway.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <time.h>

#include <algorithm>
#include <mutex>

#include "live/rule_claims.h"
#include "nat/rules_parser.h"

// The claims' layout (the decision itself is compiled only where its lookups
// are defined: the BPF program, worker.cc).
#include "live/steer.h"

namespace xnat {

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

void Gateway::note_masquerade_losses(const KernelState& now, const Fib* next) {
  auto up = [](const KernelState& k, int ifindex) {
    for (const KernelLink& l : k.links)
      if (l.ifindex == ifindex) return l.up;
    return false;  // gone
  };
  // The addresses compared are those the workers masquerade to (sh_.fib,
  // written only here), not the kernel's last state: connections opened
  // while a change could not be applied were masqueraded to the old one.
  const Fib& applied = sh_.fib;
  for (size_t port = 0; port < bo_.ifindexes.size(); ++port) {
    const int i = static_cast<int>(port);
    // masq_device_event: the output went down, every connection through it;
    // masq_inet_event: an address left it, the connections to that address.
    const bool went_down = up(kernel_, bo_.ifindexes[port]) && !up(now, bo_.ifindexes[port]);
    const std::vector<uint32_t> kept = next ? next->interface_addresses(i) : std::vector<uint32_t>{};
    for (uint32_t addr : applied.interface_addresses(i)) {
      const bool left = next && std::find(kept.begin(), kept.end(), addr) == kept.end();
      const bool noted = std::any_of(masq_lost_.begin(), masq_lost_.end(),
                                     [&](const MasqueradeLoss& m) { return m.addr == addr; });
      if ((went_down || left) && !noted) masq_lost_.push_back({addr, port, went_down});
    }
  }
}

void Gateway::forget_masqueraded() {
  // A listing being streamed walks first.
  while (!masq_lost_.empty() && !streamed_walk_) {
    const MasqueradeLoss m = masq_lost_.back();
    auto q = std::make_shared<ConntrackQuery>();
    q->command = ConntrackQuery::Command::kDelete;
    q->masquerade = true;
    q->reply_dst = m.addr;
    std::string deleted;  // a line each, as conntrack -D prints them
    if (!walk(std::move(q), &deleted)) return;  // the next turn again
    masq_lost_.pop_back();
    const auto n = static_cast<uint64_t>(std::count(deleted.begin(), deleted.end(), '\n'));
    masq_forgotten_.fetch_add(n, std::memory_order_relaxed);
    if (n)
      fmt::print(stderr, "xnat run: {}: {} connection{} masqueraded to {} forgotten, as the kernel's MASQUERADE does\n",
                 m.down ? bo_.ifnames[m.port] + " went down" : ip_to_string(m.addr) + " left " + bo_.ifnames[m.port],
                 n, n == 1 ? "" : "s", ip_to_string(m.addr));
  }
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
    // Each worker's copy (its nth and limit state is its own), of the
    // rules bound once here.
    sh_.rules.clear();
    next.rules.bind_interfaces(bo_.ifnames);
    for (size_t w = 0; w < workers_.size(); ++w) sh_.rules.push_back(std::make_unique<RuleSet>(next.rules));
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
  if (!kernel_.policy_rules.empty())
    out += fmt::format("policy routing rules not followed (the main table alone routes): {}\n",
                       fmt::join(kernel_.policy_rules, "; "));
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
  // Where each worker runs, and what sharing its CPU has cost it: time it
  // was ready to run, with frames waiting, while something else ran there.
  for (size_t w = 0; w < r.worker_times.size(); ++w) {
    const GatewayReport::WorkerTime& t = r.worker_times[w];
    out += fmt::format("worker {} ({}): ran {:.3f} s, waited for its CPU {:.3f} s", w,
                       w < worker_cpus_.size() ? fmt::format("CPU {} alone", worker_cpus_[w]) : "any CPU",
                       t.cpu_ns / 1e9, t.runqueue_wait_ns / 1e9);
    if (worker_cpus_.empty() && t.runqueue_wait_ns > t.cpu_ns / 1000)
      out += " (over 0.1 % of its time: give it a CPU of its own, --worker-cpus)";
    out += "\n";
  }
  return out;
}


}  // namespace xnat
