#include "nat/rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace xnat {

int Table::find_chain(const std::string& n) const {
  for (size_t i = 0; i < chains.size(); ++i)
    if (chains[i].name == n) return static_cast<int>(i);
  return -1;
}

void Table::resolve_hooks() {
  static constexpr const char* kNames[kHookCount] = {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "FORWARD"};
  for (int h = 0; h < kHookCount; ++h) {
    const int i = find_chain(kNames[h]);
    hook_index[h] = (i >= 0 && chains[i].builtin) ? i : -1;
    hook_drops[h] = hook_index[h] >= 0 && chains[i].policy == TargetKind::kDrop;
    hook_policy[h] = Rule{};
    if (hook_drops[h]) {
      hook_policy[h].target.kind = TargetKind::kDrop;
      hook_policy[h].line = chains[i].line;
    }
  }
}

bool RuleSet::applies(const Table& t, Hook h) {
  const int c = t.hook_chain(h);
  if (c < 0) return false;
  const Chain& ch = t.chains[static_cast<size_t>(c)];
  return !ch.rules.empty() || ch.policy != TargetKind::kAccept;
}

bool RuleSet::filters_forward() const { return applies(filter, Hook::kForward); }

namespace {
// Whether a rule tests an exact destination, protocol and destination port
// and nothing else (its comment aside).
bool dispatchable(const Match& m) {
  return m.has_dst && !m.dst_invert && m.dst.len == 32 && m.proto && !m.proto_invert && m.has_dport &&
         !m.dport_invert && m.dport.lo == m.dport.hi && !m.has_src && !m.has_sport &&
         m.multi == Match::Multi::kNone && !m.in.present && !m.out.present && !m.dst_type && !m.src_type &&
         !m.has_icmp && !m.has_rare;
}
}  // namespace

void Table::build_dispatch() {
  for (Chain& c : chains) {
    c.runs.clear();
    c.run_of.clear();
    const uint32_t n = static_cast<uint32_t>(c.rules.size());
    for (uint32_t i = 0; i < n;) {
      uint32_t j = i;
      while (j < n && dispatchable(c.rules[j].match)) ++j;
      if (j - i >= kMinRun) {
        if (c.run_of.empty()) c.run_of.assign(n, -1);
        DispatchRun run;
        run.begin = i;
        run.end = j;
        for (uint32_t k = i; k < j; ++k) {
          const Match& m = c.rules[k].match;
          run.by_key[DispatchRun::key(m.dst.addr, m.proto, m.dport.lo)].push_back(k);
          c.run_of[k] = static_cast<int32_t>(c.runs.size());
        }
        c.runs.push_back(std::move(run));
      }
      i = j == i ? i + 1 : j;
    }
  }
}

size_t RuleSet::rule_count() const {
  size_t n = 0;
  for (const Table* t : {&nat, &raw, &rawpost, &filter, &mangle})
    for (const Chain& c : t->chains) n += c.rules.size();
  return n;
}

static void bind(InterfaceMatch& m, const std::vector<std::string>& names) {
  m.mask = 0;
  if (!m.present) return;
  const bool wildcard = !m.name.empty() && m.name.back() == '+';
  const std::string stem = wildcard ? m.name.substr(0, m.name.size() - 1) : m.name;
  for (size_t i = 0; i < names.size() && i < 64; ++i) {
    const bool hit = wildcard ? names[i].compare(0, stem.size(), stem) == 0 : names[i] == stem;
    if (hit) m.mask |= uint64_t{1} << i;
  }
}

void RuleSet::bind_interfaces(const std::vector<std::string>& names) {
  uses_addrtype = uses_conntrack = uses_connmark = false;
  for (Table* t : {&nat, &raw, &rawpost, &filter, &mangle})
    for (Chain& c : t->chains)
      for (Rule& r : c.rules) {
        bind(r.match.in, names);
        bind(r.match.out, names);
        uses_addrtype |= r.match.src_type != 0 || r.match.dst_type != 0;
        uses_conntrack |= t != &filter && r.match.ct != nullptr;
        uses_connmark |= r.match.has_connmark || r.target.kind == TargetKind::kConnmark;
      }
}

std::vector<std::string> RuleSet::notices(const std::vector<std::string>& names) const {
  std::vector<std::string> out;
  auto known = [&](const InterfaceMatch& m) {
    if (!m.present) return true;
    const bool wildcard = !m.name.empty() && m.name.back() == '+';
    const std::string_view stem = wildcard ? std::string_view(m.name).substr(0, m.name.size() - 1) : m.name;
    for (const std::string& n : names)
      if (wildcard ? std::string_view(n).starts_with(stem) : n == m.name) return true;
    return false;
  };
  for (const Table* t : {&nat, &raw, &rawpost, &filter, &mangle})
    for (const Chain& c : t->chains)
      for (const Rule& r : c.rules)
        for (const auto& [m, opt] : {std::pair{&r.match.in, "-i"}, std::pair{&r.match.out, "-o"}})
          if (!known(*m))
            out.push_back(fmt::format("{}:{}: {} {}: no interface of this gateway has that name, so the rule {}",
                                      r.file, r.line, opt, m->name, m->invert ? "matches every packet" : "never matches"));
  if (const int out_chain = nat.hook_chain(Hook::kOutput); out_chain >= 0) {
    // Rules reached from nat OUTPUT: the host's own connections, which leave
    // through the host's stack, not through the gateway's forwarding path.
    size_t n = nat.chains[static_cast<size_t>(out_chain)].rules.size();
    if (n)
      out.push_back(fmt::format("nat OUTPUT: {} rule(s) for the host's own connections: the host's kernel applies "
                                "them (iptables), xnat does not",
                                n));
  }
  // filter INPUT and OUTPUT: the host's own traffic, which never takes the
  // gateway's forwarding path. The host's kernel filters it, with the rules
  // loaded there.
  for (const Table* t : {&filter, &mangle})
    for (Hook h : {Hook::kInput, Hook::kOutput}) {
      if (!applies(*t, h)) continue;
      const Chain& ch = t->chains[static_cast<size_t>(t->hook_chain(h))];
      out.push_back(fmt::format("{} {}: {} rule(s), policy {}: the host's own traffic, enforced by the host's "
                                "kernel (keep them loaded there), not by xnat",
                                t->name, ch.name, ch.rules.size(), ch.policy == TargetKind::kDrop ? "DROP" : "ACCEPT"));
    }
  return out;
}

[[gnu::noinline]] static bool statistic_matches(const Match& m, const RulePacket& p) {
  bool hit = false;
  if (m.statistic == Match::Statistic::kRandom) {
    hit = p.rng && (p.rng->next() & 0x7FFFFFFF) < m.probability;
  } else {
    // xt_statistic's compare-and-swap: the rule's one counter, whatever worker counts.
    std::atomic<uint32_t>& n = m.state->nth;
    uint32_t old = n.load(std::memory_order_relaxed), next;
    do next = old == m.every ? 0 : old + 1;
    while (!n.compare_exchange_weak(old, next, std::memory_order_relaxed));
    hit = next == 0;
  }
  return hit != m.statistic_invert;
}

// xt_conntrack's checks, in its order. A packet without a connection
// (UNTRACKED, INVALID) matches on its state alone: with no state test, never.
[[gnu::noinline]] static bool ct_matches(const CtMatch& m, const RulePacket& p) {
  const CtView untracked;
  const CtView& c = p.ct ? *p.ct : untracked;
  if (m.has_state && ((c.state & m.state) != 0) == m.state_invert) return false;
  if (c.state & (kCtUntracked | kCtInvalid)) return m.has_state;
  if (m.has_dir && c.dir != m.dir) return false;
  auto addr = [](const CtMatch::Addr& a, uint32_t raw) {
    return !a.present || a.prefix.contains(__builtin_bswap32(raw)) != a.invert;
  };
  if (!addr(m.orig_src, c.orig.src) || !addr(m.orig_dst, c.orig.dst) || !addr(m.repl_src, c.reply.src) ||
      !addr(m.repl_dst, c.reply.dst))
    return false;
  if (m.has_proto && (c.orig.proto == m.proto) == m.proto_invert) return false;
  // The ports as the tuple keeps them, whatever the protocol (src.u.all).
  auto port = [](const CtMatch::Port& q, uint16_t raw) {
    return !q.present || q.range.contains(__builtin_bswap16(raw)) != q.invert;
  };
  if (!port(m.orig_sport, c.orig.sport) || !port(m.orig_dport, c.orig.dport) || !port(m.repl_sport, c.reply.sport) ||
      !port(m.repl_dport, c.reply.dport))
    return false;
  if (m.has_status && ((c.status & m.status) != 0) == m.status_invert) return false;
  return true;
}

// -m length, ttl, mac, pkttype: read from the frame as received.
[[gnu::noinline]] static bool frame_matches(const Match& m, const RulePacket& p) {
  if (!p.frame) return false;
  const uint8_t* ip = p.frame + p.l3;
  if (m.has_length) {
    const uint16_t len = static_cast<uint16_t>(ip[2] << 8 | ip[3]);
    if ((len >= m.length_lo && len <= m.length_hi) == m.length_invert) return false;
  }
  if (m.ttl != Match::Ttl::kNone) {
    const uint8_t ttl = static_cast<uint8_t>(ip[8] - p.ttl_dec);
    const bool hit = m.ttl == Match::Ttl::kEq   ? (ttl == m.ttl_value) != m.ttl_invert
                     : m.ttl == Match::Ttl::kLt ? ttl < m.ttl_value
                                                : ttl > m.ttl_value;
    if (!hit) return false;
  }
  if (m.has_mac && (std::memcmp(p.frame + 6, m.mac, 6) == 0) == m.mac_invert) return false;
  if (m.pkt_type) {
    // As the kernel classifies a received frame by its destination MAC.
    const uint8_t* d = p.frame;
    const bool bcast = (d[0] & d[1] & d[2] & d[3] & d[4] & d[5]) == 0xFF;
    const uint8_t type = bcast ? 2 : (d[0] & 1) ? 3 : 1;
    if ((type == m.pkt_type) == m.pkt_type_invert) return false;
  }
  return true;
}

// xt_limit's token bucket, on the packets' millisecond clock: the first
// packet finds it full. Lock-free as limit_mt: the worker that moves the
// refill time on adds the credit for the time between.
[[gnu::noinline]] static bool limit_matches(const Match& m, const RulePacket& p) {
  MatchState& s = *m.state;
  uint64_t prev = s.prev_ms.load(std::memory_order_relaxed);
  if (prev == 0 && s.prev_ms.compare_exchange_strong(prev, p.now_ms, std::memory_order_relaxed)) prev = p.now_ms;
  uint64_t increase = 0;
  while (p.now_ms > prev) {
    if (s.prev_ms.compare_exchange_weak(prev, p.now_ms, std::memory_order_relaxed)) {
      increase = (p.now_ms - prev) * 10;
      break;
    }
  }
  uint64_t old = s.credit.load(std::memory_order_relaxed), next;
  bool hit;
  do {
    const uint64_t c = std::min<uint64_t>(m.limit_cap, old + increase);
    hit = c >= m.limit_cost;
    next = hit ? c - m.limit_cost : c;
  } while (!s.credit.compare_exchange_weak(old, next, std::memory_order_relaxed));
  return hit;
}

static bool iface_ok(const InterfaceMatch& m, int ifindex) {
  if (!m.present) return true;
  const bool hit = ifindex >= 0 && ifindex < 64 && (m.mask >> ifindex) & 1;
  return hit != m.invert;
}

static bool port_list_hit(const std::vector<PortRange>& l, uint16_t p) {
  for (const PortRange& r : l)
    if (r.contains(p)) return true;
  return false;
}

// Inlined into evaluate(): a rule's checks are most of a new flow's rule cost.
[[gnu::always_inline]] static inline bool matches(const Match& m, const RulePacket& p) {
  if (m.has_src && m.src.contains(p.src) == m.src_invert) return false;
  if (m.has_dst && m.dst.contains(p.dst) == m.dst_invert) return false;
  if (m.proto && (m.proto == p.proto) == m.proto_invert) return false;
  if (!iface_ok(m.in, p.in_if) || !iface_ok(m.out, p.out_if)) return false;
  if (m.has_sport && m.sport.contains(p.sport) == m.sport_invert) return false;
  if (m.has_dport && m.dport.contains(p.dport) == m.dport_invert) return false;
  if (m.multi != Match::Multi::kNone) {
    bool hit = false;
    switch (m.multi) {
      case Match::Multi::kSource: hit = port_list_hit(m.multi_ports, p.sport); break;
      case Match::Multi::kDest: hit = port_list_hit(m.multi_ports, p.dport); break;
      case Match::Multi::kEither:
        hit = port_list_hit(m.multi_ports, p.sport) || port_list_hit(m.multi_ports, p.dport);
        break;
      case Match::Multi::kNone: break;
    }
    if (hit == m.multi_invert) return false;
  }
  if (m.dst_type && ((p.dst_type & m.dst_type) != 0) == m.dst_type_invert) return false;
  if (m.src_type && ((p.src_type & m.src_type) != 0) == m.src_type_invert) return false;
  if (m.has_icmp) {
    bool hit = p.icmp_type == m.icmp_type && (m.icmp_code < 0 || p.icmp_code == m.icmp_code);
    if (hit == m.icmp_invert) return false;
  }
  // Last: in the rules iptables-save writes (kube-proxy's) it follows the
  // rule's other matches, which decide whether a number is drawn or the
  // counter moves. Written before them, the kernel would move it even when
  // they then fail.
  if (m.has_rare) [[unlikely]] {
    if (m.has_src_range && (p.src >= m.src_lo && p.src <= m.src_hi) == m.src_range_invert) return false;
    if (m.has_dst_range && (p.dst >= m.dst_lo && p.dst <= m.dst_hi) == m.dst_range_invert) return false;
    if (m.has_tcp_flags && ((p.tcp_flags & m.tcp_mask) == m.tcp_cmp) == m.tcp_flags_invert) return false;
    if (m.has_mark && ((p.mark & m.mark_mask) == m.mark_value) == m.mark_invert) return false;
    if (m.has_connmark && (!p.ctmark || ((*p.ctmark & m.connmark_mask) == m.connmark_value) == m.connmark_invert))
      return false;
    if (m.ct && !ct_matches(*m.ct, p)) return false;
    if ((m.has_length || m.ttl != Match::Ttl::kNone || m.has_mac || m.pkt_type) && !frame_matches(m, p)) return false;
    if (m.statistic != Match::Statistic::kNone && !statistic_matches(m, p)) return false;
    if (m.has_limit && !limit_matches(m, p)) return false;
  }
  return true;
}

bool rule_matches(const Match& m, const RulePacket& p) { return matches(m, p); }

// In a dispatch run at rule i: the first rule from i on that can match the
// packet, or the run's end.
[[gnu::noinline]] static size_t dispatch(const Chain& ch, size_t i, const RulePacket& p) {
  const DispatchRun& run = ch.runs[static_cast<size_t>(ch.run_of[i])];
  const auto it = run.by_key.find(DispatchRun::key(p.dst, p.proto, p.dport));
  if (it == run.by_key.end()) return run.end;
  const auto at = std::lower_bound(it->second.begin(), it->second.end(), static_cast<uint32_t>(i));
  return at == it->second.end() ? run.end : *at;
}

// The non-terminal targets other than MARK.
[[gnu::noinline]] static void act(const Rule& r, RulePacket& p) {
  const Target& t = r.target;
  switch (t.kind) {
    case TargetKind::kLog:
      if (p.actions) p.actions->log(r, p);
      break;
    case TargetKind::kTcpmss:
      if (p.actions) p.actions->tcpmss(r, p);
      break;
    case TargetKind::kConnmark:
      if (!p.ctmark) break;  // no connection
      switch (t.connmark) {
        case ConnmarkOp::kSet:
          *p.ctmark = (*p.ctmark & ~t.mark_mask) ^ t.mark_value;
          break;
        case ConnmarkOp::kSave:
          *p.ctmark = (*p.ctmark & ~t.ctmask) ^ (p.mark & t.nfmask);
          break;
        case ConnmarkOp::kRestore:
          p.mark = (p.mark & ~t.nfmask) ^ (*p.ctmark & t.ctmask);
          break;
      }
      break;
    default:
      break;
  }
}

// The hook's policy: ACCEPT (nullptr) or its chain's DROP rule.
static const Rule* policy(const Table& t, Hook hook) {
  const int h = static_cast<int>(hook);
  return t.hook_drops[h] ? &t.hook_policy[h] : nullptr;
}

const Rule* evaluate_from(const Table& t, Hook hook, RulePacket& p, int start) {
  // The parser rejects loops, so the depth is bounded by the chain count;
  // the fixed stack bounds it again without allocating.
  struct Frame {
    int chain;
    size_t next;
  };
  Frame stack[64];
  int depth = 0;
  int chain = start;
  size_t i = 0;
  for (;;) {
    // One chain until a jump, goto or its end: its rules and dispatch runs
    // held in locals.
    const Chain& ch = t.chains[static_cast<size_t>(chain)];
    const Rule* const rules = ch.rules.data();
    const size_t n = ch.rules.size();
    const int32_t* const run_of = ch.run_of.empty() ? nullptr : ch.run_of.data();
    const Rule* next = nullptr;  // a rule whose target leaves the chain
    while (i < n) {
      if (run_of && run_of[i] >= 0) [[unlikely]] {
        i = dispatch(ch, i, p);
        if (i >= n) break;
      }
      const Rule& r = rules[i++];
      if (!matches(r.match, p)) continue;
      if (r.target.kind == TargetKind::kNone) continue;
      if (r.target.kind == TargetKind::kMark) {
        p.mark = (p.mark & ~r.target.mark_mask) ^ r.target.mark_value;
        continue;
      }
      if (r.target.kind == TargetKind::kLog || r.target.kind == TargetKind::kConnmark ||
          r.target.kind == TargetKind::kTcpmss) [[unlikely]] {
        act(r, p);
        continue;
      }
      next = &r;
      break;
    }
    if (!next || next->target.kind == TargetKind::kReturn) {
      // The chain's end, or RETURN: back to the caller, or the policy.
      if (depth == 0) return policy(t, hook);
      --depth;
      chain = stack[depth].chain;
      i = stack[depth].next;
      continue;
    }
    switch (next->target.kind) {
      case TargetKind::kAccept:
        return nullptr;
      case TargetKind::kJump:
        if (depth == 64) return nullptr;  // unreachable: the parser limits nesting
        stack[depth++] = Frame{chain, i};
        chain = next->target.chain;
        i = 0;
        continue;
      case TargetKind::kGoto:
        chain = next->target.chain;
        i = 0;
        continue;
      default:
        return next;
    }
  }
}

}  // namespace xnat
