#include "dataplane/engine.h"

#include <algorithm>
#include <cassert>
#include <optional>

#include "dataplane/ip_options.h"
#include "dataplane/tcp_reset.h"

#include <fmt/format.h>
#include "nat/targets.h"
#include "nat/translate.h"
#include "packet/checksum.h"
#include "packet/headers.h"
#include "packet/offload.h"

namespace xnat {

namespace {
uint16_t host16(uint16_t raw) { return __builtin_bswap16(raw); }
uint32_t host32(uint32_t raw) { return __builtin_bswap32(raw); }

FragmentKey fragment_key(const ParsedPacket& p) {
  return FragmentKey{p.tuple.src, p.tuple.dst, p.ip_id, p.tuple.proto};
}

DropReason parse_drop_reason(ParseStatus s) {
  switch (s) {
    case ParseStatus::kTruncated: return Counter::drop_truncated;
    case ParseStatus::kBadIpHeader: return Counter::drop_bad_ip_header;
    case ParseStatus::kBadIpChecksum: return Counter::drop_bad_checksum;
    case ParseStatus::kFragment: return Counter::drop_fragment;
    case ParseStatus::kBadL4Header: return Counter::drop_bad_l4_header;
    case ParseStatus::kBadL4Checksum: return Counter::drop_bad_l4_checksum;
    case ParseStatus::kBadIcmpError: return Counter::drop_bad_icmp_error;
    case ParseStatus::kOk:
    case ParseStatus::kNotIpv4: break;
  }
  return Counter::drop_truncated;
}
}  // namespace

Engine::Engine(EngineConfig cfg)
    : cfg_(std::move(cfg)),
      ct_(cfg_.conntrack, cfg_.seed),
      rng_(cfg_.seed * 0x9E3779B97F4A7C15ull + 1),
      icmp_limit_(cfg_.icmp_limit ? cfg_.icmp_limit
                                  : std::make_shared<IcmpRateLimit>(cfg_.icmp_msgs_per_sec, cfg_.icmp_msgs_burst)),
      icmp_peer_limit_(cfg_.icmp_peer_limit ? cfg_.icmp_peer_limit
                                            : std::make_shared<IcmpPeerLimit>(cfg_.icmp_ratelimit)) {
  bind_rules();
  ct_.set_shard(cfg_.shard);
  note_mtus();
}

void Engine::note_mtus() {
  min_mtu_ = UINT32_MAX;
  for (const Interface& i : cfg_.fib.interfaces()) min_mtu_ = std::min(min_mtu_, i.mtu);
}

void Engine::swap_rules(RuleSet& rules) {
  std::swap(cfg_.rules, rules);
  rule_flags();
  // Rules that must see every packet now: the fast path's connections come
  // back to pass them.
  if (forward_rules_ && ct_.offloaded())
    ct_.for_each_offloaded([&](uint32_t idx, const Flow&) { ct_.withdraw(idx); });
}

void Engine::bind_rules() {
  std::vector<std::string> names;
  for (const Interface& i : cfg_.fib.interfaces()) names.push_back(i.name);
  cfg_.rules.bind_interfaces(names);
  rule_flags();
}

void Engine::rule_flags() {
  has_stateless_rules_ = false;
  for (const Table* t : {&cfg_.rules.raw, &cfg_.rules.rawpost})
    for (const Chain& c : t->chains)
      if (!c.rules.empty()) has_stateless_rules_ = true;
  const RuleSet& rs = cfg_.rules;
  filter_forward_ = rs.filters_forward();
  mangle_pre_ = RuleSet::applies(rs.mangle, Hook::kPrerouting);
  mangle_on_ = mangle_pre_ || RuleSet::applies(rs.mangle, Hook::kForward) ||
               RuleSet::applies(rs.mangle, Hook::kPostrouting);
  forward_rules_ = filter_forward_ || mangle_on_;
  ct_.hold_updates(forward_rules_);
  if (rs.uses_connmark) ct_.keep_marks();
}

void Engine::process_burst(Packet* pkts, size_t n, uint64_t now_ms) {
  now_ms_ = now_ms;
  // Bounded: twice what a burst can create, so expiry keeps up with any load.
  ct_.expire_some(now_ms, 64 + 2 * n);
  ct_.repay();
  ParseOptions opts{.verify_l4_checksum = cfg_.conntrack.nf_conntrack_checksum};
  while (n > 0) {
    const size_t m = std::min(n, kBurst);
    // Stage 1: parse and hash everything, and prefetch the index slots, so the
    // memory latency of one packet's lookup overlaps with the next one's parse.
    for (size_t i = 0; i < m; ++i) {
      opts.l4_csum = pkts[i].l4_csum;
      status_[i] = parse_frame(pkts[i].data, pkts[i].len, opts, &parsed_[i]);
      if (parsed_[i].l4_csum_completed) [[unlikely]]
        complete_l4_checksum(pkts[i], parsed_[i]);
      // Verified (or completed here): the backend may coalesce it with its
      // neighbours (offload.h).
      if (((opts.verify_l4_checksum && opts.l4_csum != L4Csum::kPartial) || parsed_[i].l4_csum_completed) &&
          status_[i] == ParseStatus::kOk && parsed_[i].tuple.proto == kProtoTcp &&
          parsed_[i].frag == FragKind::kNone && !parsed_[i].icmp_error)
        pkts[i].l4_csum = L4Csum::kVerified;
      if (status_[i] == ParseStatus::kOk && !parsed_[i].icmp_error) {
        hash_[i] = ct_.hash(parsed_[i].tuple);
        ct_.prefetch(hash_[i]);
      }
    }
    // Stage 2: with the slots arriving, prefetch the flows they point at. At
    // 1 M flows and more both are DRAM misses; overlapping them across the
    // burst is what keeps the established path near its in-cache speed.
    // A packet whose tag is in no slot will likely open a flow: what that
    // touches is loaded too.
    found_[0] = kProbeOn;  // one packet: nothing looked up yet
    if (m > 1) {
      uint32_t fresh = 0, fresh_tcp = 0;
      for (size_t i = 0; i < m; ++i) {
        found_[i] = kNoRef;
        if (status_[i] == ParseStatus::kOk && !parsed_[i].icmp_error) {
          found_[i] = ct_.prefetch_flow(hash_[i]);
          if (found_[i] == kNoRef) {
            const bool tcp = parsed_[i].tuple.proto == kProtoTcp;
            new_bucket_[fresh] = ct_.prefetch_new(parsed_[i].tuple, fresh, fresh_tcp);
            ++fresh;
            fresh_tcp += tcp;
            bring_in_reply_guess(parsed_[i].tuple);
          }
        }
      }
      // Stage 2b: the neighbour entry each found flow will leave through. With
      // many neighbours (65 000 clients on one LAN) it is a third random line
      // per packet, so it is loaded here for the whole burst at once (a real
      // load: a prefetch instruction, here or a few packets ahead in stage 3,
      // gained almost nothing).
      // For each packet that will likely open a flow, the first flow of its
      // by-source chain (its head was loaded in stage 2). A TCP flow's window
      // state, whose index is in the flow's line, is loaded here too.
      for (size_t i = 0; i < m; ++i) {
        bring_in_next_hop(found_[i]);
        ct_.prefetch_window(found_[i]);
      }
      for (uint32_t k = 0; k < fresh; ++k) ct_.prefetch_new_chain(new_bucket_[k]);
    }
    // Stage 3: look up, track, translate, route.
    for (size_t i = 0; i < m; ++i) {
      // One call site, so handle() stays inlined here: a second would make
      // GCC keep an out-of-line copy and call it.
      const bool first_fragment = parsed_[i].frag == FragKind::kFirst && status_[i] == ParseStatus::kOk;
      if (first_fragment) [[unlikely]]
        first_key_ = fragment_key(parsed_[i]);  // as received: handling rewrites it
      handle(pkts[i], parsed_[i], status_[i], hash_[i], found_[i], now_ms);
      if (first_fragment) [[unlikely]]
        note_first_fragment(pkts[i], parsed_[i], first_key_, now_ms);
      if (pkts[i].l4_csum == L4Csum::kPartial) [[unlikely]]
        keep_partial(pkts[i]);
    }
    pkts += m;
    n -= m;
  }
}

// The sender left the checksum partial and the backend could not say so
// (L4Csum::kMaybePartial): it is completed here, as a NIC would have.
void Engine::complete_l4_checksum(Packet& pkt, const ParsedPacket& p) {
  const size_t at = p.l4 + (p.tuple.proto == kProtoTcp ? offsetof(TcpHdr, check) : offsetof(UdpHdr, check));
  std::memcpy(pkt.data + at, &p.l4_csum_full, 2);
  counters_.inc(Counter::l4_csum_completed);
}

// A partial checksum (L4Csum::kPartial) stays partial, as netfilter keeps
// CHECKSUM_PARTIAL through NAT: the field becomes the pseudo-header sum of
// the translated header, whatever translation did to it. A frame that is no
// longer TCP/UDP (replaced by an ICMP error) has a full checksum.
void Engine::keep_partial(Packet& pkt) {
  if (pkt.verdict == Verdict::kDrop || !set_partial_l4_checksum(pkt.data, pkt.len)) {
    pkt.l4_csum = L4Csum::kFull;
    pkt.gso = Gso::kNone;
    pkt.gso_size = 0;
  }
}

// A packet of direction d leaves for invert(tuple[1 - d]).dst, which is
// tuple[1 - d].src: its neighbour if directly connected. A routed
// destination's neighbour is its gateway, one entry, hot anyway; a ref from a
// tag that matched another flow costs one line for nothing.
inline void Engine::bring_in_next_hop(uint32_t ref) const {
  if (ref >= kProbeOn) return;
  cfg_.fib.bring_in_neighbor(ct_.flow(ref >> 1).tuple[(ref & 1) ^ 1].src);
}

// A new flow's source mapping first tries to keep its port (nat_unique_tuple
// step 3), so its reply tuple's uniqueness probe looks up the original tuple
// with the mapped source, inverted: a random index slot that depends on the
// rule's outcome. Guessing the address of the last source mapping (one
// MASQUERADE or SNAT address is the common case) loads that slot with the
// burst's other misses; a wrong guess costs a hash and a line.
inline void Engine::bring_in_reply_guess(const Tuple& orig) const {
  if (snat_guess_ == 0) return;
  Tuple t = orig;
  t.src = snat_guess_;
  ct_.bring_in_slot(ct_.hash(invert(t)));
}

// A resource ran out: the drop, and a line for the log at most every five
// seconds per reason (as the kernel's net_ratelimit'd "nf_conntrack: table
// full, dropping packet"), naming the counter that counts every one.
[[gnu::noinline, gnu::cold]] void Engine::exhausted(Packet& pkt, DropReason r, const Tuple& t) {
  drop(pkt, r);
  const size_t i = r == Counter::drop_table_full ? 0
                   : r == Counter::drop_no_port   ? 1
                   : r == Counter::drop_no_address ? 3
                                                   : 2;
  if (now_ms_ < next_exhausted_log_[i]) return;
  next_exhausted_log_[i] = now_ms_ + 5000;
  LogLine* line = log_.slot();
  if (!line) {
    counters_.inc(Counter::log_lines_lost);
    return;
  }
  const auto* s = reinterpret_cast<const uint8_t*>(&t.src);
  std::string_view what;
  if (i == 0) what = "table full, dropping packet (nf_conntrack_max reached, nothing to evict)";
  else if (i == 1) what = "port pool exhausted, dropping packet (no free translated tuple in the NAT range)";
  else if (i == 3) what = "an interface with no IPv4 address to MASQUERADE or REDIRECT to, dropping packet";
  else what = "flow directory full, dropping packet";
  const auto res = fmt::format_to_n(line->text, sizeof line->text,
                                    "xnat: {}: a new connection from {}.{}.{}.{}; counted as {}, {} so far", what,
                                    s[0], s[1], s[2], s[3], counter_name(r), counters_.get(r));
  line->len = static_cast<uint16_t>(std::min(res.size, sizeof line->text));
  line->level = 4;  // warning, as the kernel's
  log_.publish();
}

void Engine::drop(Packet& pkt, DropReason r) {
  pkt.verdict = Verdict::kDrop;
  pkt.reason = r;
  counters_.inc(r);
}

void Engine::to_host(Packet& pkt) {
  pkt.verdict = Verdict::kToHost;
  counters_.inc(Counter::to_host);
}

[[gnu::always_inline]] inline RulePacket Engine::rule_packet(const Packet& pkt, const ParsedPacket& p) {
  RulePacket rp;
  rp.actions = this;
  rp.frame = pkt.data;
  rp.l3 = p.l3;
  rp.now_ms = now_ms_;
  const int in_if = pkt.in_if;
  rp.src = host32(p.tuple.src);
  rp.dst = host32(p.tuple.dst);
  rp.proto = p.tuple.proto;
  rp.tcp_flags = p.tcp_flags;
  if (p.tuple.has_ports()) {
    rp.sport = host16(p.tuple.sport);
    rp.dport = host16(p.tuple.dport);
  } else if (p.tuple.proto == kProtoIcmp) {
    rp.icmp_type = p.tuple.icmp_type();
    rp.icmp_code = p.tuple.icmp_code();
  }
  rp.in_if = in_if;
  if (cfg_.rules.uses_addrtype) {
    rp.src_type = cfg_.fib.addr_type(p.tuple.src);
    rp.dst_type = cfg_.fib.addr_type(p.tuple.dst);
  }
  return rp;
}

[[gnu::always_inline]] inline void Engine::handle(Packet& pkt, ParsedPacket& p, ParseStatus st, uint64_t h,
                                                  uint32_t cand, uint64_t now) {
  if (!(pkt.hops | pkt.released)) counters_.inc(Counter::rx_frames);  // once, by the worker that received it
  pkt.out_if = -1;
  pkt.reason = Counter::kCount;
  pkt.frag_mtu = 0;
  if (st == ParseStatus::kNotIpv4) return to_host(pkt);
  if (st != ParseStatus::kOk) return drop(pkt, parse_drop_reason(st));
  if (pkt.in_if < 0 || static_cast<size_t>(pkt.in_if) >= cfg_.fib.interface_count()) [[unlikely]] {
    if (pkt.in_if == kHostPort) return from_host(pkt, p, h, now);
    assert(false && "frame from an interface the engine does not know");
    return drop(pkt, Counter::drop_no_route);
  }
  // Per packet, only bit tests: multicast, class E and limited broadcast (and
  // 0.0.0.0) go to the host; sources 0/8, 127/8 and >= 224/4 are martians.
  // Directed broadcasts and our own addresses as source are checked where a
  // connection is created (new_flow, try_stateless): a tracked flow cannot
  // carry them.
  const uint32_t dh = host32(p.tuple.dst), sh = host32(p.tuple.src);
  if (dh >= 0xE0000000u || dh == 0) return to_host(pkt);
  if ((sh >> 24) == 0 || (sh >> 24) == 127 || sh >= 0xE0000000u) return drop(pkt, Counter::drop_martian_source);
  if (pkt.data[p.l3] != 0x45) [[unlikely]]
    return with_ip_options(pkt, p, h, cand, now);
  dispatch(pkt, p, h, cand, now);
}

// handle()'s rest, for a datagram that may be forwarded.
[[gnu::always_inline]] inline void Engine::dispatch(Packet& pkt, ParsedPacket& p, uint64_t h, uint32_t cand,
                                                    uint64_t now) {
  if (p.frag == FragKind::kLater) [[unlikely]]
    return later_fragment(pkt, p, now);
  if (has_stateless_rules_ && try_stateless(pkt, p, now)) return;
  if (p.icmp_error) return handle_icmp_error(pkt, p, now);

  const uint32_t ref = ct_.find(p.tuple, h, cand, now);
  if (ref == kNoRef) {
    if (ct_.holds() && late_packet(pkt, p, h, now)) return;
    if (cfg_.shard.active() && !pkt.adopt && (hand_off(pkt, p.tuple) || adopt_elsewhere(pkt, p.tuple))) return;
    return new_flow(pkt, p, now);
  }
  forward_tracked(pkt, p, ref >> 1, static_cast<int>(ref & 1), now);
}

// Out of line: handle() must stay small enough to be inlined in process_burst.
[[gnu::noinline, gnu::cold]] void Engine::from_host(Packet& pkt, ParsedPacket& p, uint64_t h, uint64_t now) {
  if (p.frag == FragKind::kLater) return later_fragment(pkt, p, now);
  if (p.icmp_error) return handle_icmp_error(pkt, p, now);
  const uint32_t ref = ct_.find(p.tuple, h, now);
  if (ref != kNoRef) return forward_tracked(pkt, p, ref >> 1, static_cast<int>(ref & 1), now, /*own_output=*/true);
  if (ct_.holds() && late_packet(pkt, p, h, now)) return;
  if (cfg_.shard.active() && hand_off(pkt, p.tuple)) return;
  drop(pkt, Counter::drop_host_untracked);
}

bool Engine::late_packet(Packet& pkt, ParsedPacket& p, uint64_t h, uint64_t now) {
  const uint32_t held = ct_.find_held(p.tuple, h, now);
  if (held == kNoRef) return false;
  const int dir = static_cast<int>(held & 1);
  if (dir == 0 && p.tuple.proto == kProtoTcp && (p.tcp_flags & (kTcpSyn | kTcpAck)) == kTcpSyn) {
    ct_.drop_held(held >> 1);  // a new connection on the old tuple
    return false;
  }
  Flow rec;
  const uint32_t idx = ct_.readmit(held >> 1, now, &rec);
  if (idx != kNoRef) {
    forward_tracked(pkt, p, idx, dir, now, pkt.in_if == kHostPort);
    return true;
  }
  // The table is full of live flows: the flow stays held, tracked there, and
  // the packet is translated as the connection was.
  switch (ct_.track_held(held >> 1, dir, p, now)) {
    case TrackVerdict::kInvalid:
      drop(pkt, Counter::drop_invalid);
      return true;
    case TrackVerdict::kReopen:
      return false;  // a new connection
    case TrackVerdict::kAccept:
      break;
  }
  NextHop nh;
  if (!route(pkt, p, flow_output_tuple(rec, dir).dst, &nh)) {
    if (pkt.verdict == Verdict::kToHost) translate_for_host(pkt, p, rec, dir);
    return true;
  }
  uint32_t held_mark = 0;  // a held flow keeps no connection mark
  if (forward_rules_ && pkt.in_if != kHostPort && !forward_allowed(pkt, p, rec, &held_mark, dir, nh.ifindex, 0))
    return true;
  if (flow_translates(rec)) rewrite_flow_packet(pkt.data, p, rec, dir);
  counters_.inc(Counter::held_frames);
  emit(pkt, p, nh, pkt.in_if == kHostPort);
  return true;
}

// Inlined into handle(), the per-packet path, as it was before late_packet()
// shared it.
[[gnu::always_inline]] inline void Engine::forward_tracked(Packet& pkt, ParsedPacket& p, uint32_t idx, int dir,
                                                           uint64_t now, bool own_output) {
  // The fast path passes on SYN, FIN and RST: the connection comes back to
  // the engine before they are tracked, as a flowtable's teardown comes
  // before conntrack sees the packet (an RST is then judged without the
  // highest ACK the offloaded packets made stale).
  if ((ct_.flow(idx).status & kStatusOffload) && (p.tcp_flags & (kTcpSyn | kTcpFin | kTcpRst))) [[unlikely]]
    ct_.withdraw(idx, now);
  switch (ct_.track(idx, dir, p, now)) {
    case TrackVerdict::kInvalid:
      return drop(pkt, Counter::drop_invalid);
    case TrackVerdict::kReopen:
      return new_flow(pkt, p, now);
    case TrackVerdict::kAccept:
      break;
  }
  // The flow may have just been deleted (a RST as the only reply); its slot is
  // not reused before the next insert, so reading it for this packet is safe.
  const Flow& f = ct_.flow(idx);
  // Whatever else moved it out of ESTABLISHED: the engine tracks it to its end.
  if ((f.status & kStatusOffload) && f.tcp_state != TcpState::kEstablished) [[unlikely]]
    ct_.withdraw(idx, now);
  NextHop nh;
  if (!route(pkt, p, flow_output_tuple(f, dir).dst, &nh)) {
    if (pkt.verdict == Verdict::kToHost) [[unlikely]]
      translate_for_host(pkt, p, f, dir);
    return;
  }
  if (forward_rules_) [[unlikely]] {
    if (!own_output && !forward_allowed(pkt, p, f, ct_.mark_ref(idx), dir, nh.ifindex, 0)) {
      // A REJECT's answer passes netfilter's confirm as the flow's (related)
      // packet, and the events this one caused go out with it.
      if (pkt.reason == Counter::drop_rejected) ct_.accepted(idx, now);
      return;
    }
    ct_.accepted(idx, now);  // the UPDATE the packet caused, now it passed
  }
  // As it arrived: the fast path knows it by its headers before translation.
  if (f.status & kStatusOffload) [[unlikely]]
    ct_.offloaded_segment(idx, dir, pkt.data + p.l3);
  if (flow_translates(f)) rewrite_flow_packet(pkt.data, p, f, dir);
  counters_.inc(Counter::tracked_frames);
  emit(pkt, p, nh, own_output);
  // Offered once established both ways, as nft's flow offload does, but
  // only by a segment of bulk data (a super-frame, or 1 KiB or more): the
  // fast path's entries cost two map updates and two deletes, system calls,
  // which a connection of a few small segments (a request and its answer)
  // would pay for nothing. Not while other rules (filter FORWARD, mangle)
  // must see every packet.
  if (ct_.offloading() && f.tcp_state == TcpState::kEstablished && !(f.status & kStatusOffload) && !forward_rules_ &&
      !own_output && pkt.verdict == Verdict::kForward && pkt.reason == Counter::kCount && p.l3 == sizeof(EthHdr) &&
      (pkt.gso != Gso::kNone || static_cast<uint32_t>(p.ip_end - p.l4) >= kOffloadSegment)) [[unlikely]]
    offer_offload(idx, now);
}

bool Engine::offload_paths(const Fib& fib, const Flow& f, OffloadPath (&dirs)[2]) const {
  for (int d = 0; d < 2; ++d) {
    OffloadPath& path = dirs[d];
    path.match = f.tuple[d];
    path.out = flow_output_tuple(f, d);
    NextHop nh;
    if (fib.resolve(path.out.dst, &nh, path.match.src) != RouteKind::kForward) return false;
    const MacAddr* mac = fib.neighbor(nh.addr);
    if (!mac) return false;
    path.out_if = nh.ifindex;
    path.mtu = fib.interface(nh.ifindex).mtu;
    path.src = fib.interface_mac(nh.ifindex);
    path.dst = *mac;
  }
  return true;
}

void Engine::offer_offload(uint32_t idx, uint64_t now) {
  const Flow& f = ct_.flow(idx);
  OffloadPath dirs[2];
  if ((f.status & kStatusAssured) && offload_paths(cfg_.fib, f, dirs)) (void)ct_.offload(idx, dirs, now);
}

void Engine::replace_fib(Fib fib) {
  if (ct_.offloaded()) {
    // Neighbours change state often (REACHABLE, STALE, ...) without changing
    // a MAC: only flows whose output, its MTU or next hop did are taken back.
    ct_.for_each_offloaded([&](uint32_t idx, const Flow& f) {
      OffloadPath was[2], now[2];
      const bool had = offload_paths(cfg_.fib, f, was);
      if (!had || !offload_paths(fib, f, now)) return ct_.withdraw(idx);
      for (int d = 0; d < 2; ++d)
        if (was[d].out_if != now[d].out_if || was[d].mtu != now[d].mtu || !(was[d].src == now[d].src) ||
            !(was[d].dst == now[d].dst))
          return ct_.withdraw(idx);
    });
  }
  cfg_.fib = std::move(fib);
  note_mtus();
}

// A frame of a connection translated for the host's stack (REDIRECT, DNAT to
// a host address) goes to the host as the connection's translation left it.
[[gnu::noinline, gnu::cold]] void Engine::translate_for_host(Packet& pkt, ParsedPacket& p, const Flow& f, int dir) {
  if (flow_translates(f)) rewrite_flow_packet(pkt.data, p, f, dir);
  pkt.len = p.ip_end;
}

void Engine::note_first_fragment(const Packet& pkt, const ParsedPacket& p, const FragmentKey& k, uint64_t now) {
  FragmentFate f;
  switch (pkt.verdict) {
    case Verdict::kForward:
    case Verdict::kNeighborPending:
      if (pkt.reason != Counter::kCount) {  // dropped, and replaced by the ICMP error it caused
        f.reason = pkt.reason;
        break;
      }
      {
        const auto* ip = reinterpret_cast<const Ipv4Hdr*>(pkt.data + p.l3);  // as it leaves
        f.kind = FragmentFate::kForward;
        f.out_src = ip->saddr.raw;
        f.out_dst = ip->daddr.raw;
      }
      break;
    case Verdict::kHandoff:
      f.kind = FragmentFate::kHandoff;
      f.worker = static_cast<uint16_t>(pkt.out_if);
      break;
    case Verdict::kToHost:
      f.kind = FragmentFate::kToHost;
      break;
    case Verdict::kDrop:
    case Verdict::kHeld:  // never a first fragment's
      f.reason = pkt.reason;
      break;
  }
  frags_.record(k, f, now);
  if (hold_.waiting()) [[unlikely]]
    hold_.release(k);
}

void Engine::later_fragment(Packet& pkt, ParsedPacket& p, uint64_t now) {
  const FragmentKey k = fragment_key(p);
  const FragmentFate* f = frags_.find(k, now);
  if (!f) {
    if (cfg_.fib.is_local(p.tuple.dst)) return to_host(pkt);  // the host's stack reassembles its own
    // Ahead of its first fragment: it waits for it (RFC 4787 REQ-14).
    const FragmentHold::Held held = pkt.released ? FragmentHold::Held::kNo : hold_.hold(k, pkt, now);
    if (held == FragmentHold::Held::kNo) return drop(pkt, Counter::drop_fragment_unmatched);
    if (held == FragmentHold::Held::kYesEvicting) counters_.inc(Counter::drop_fragment_unmatched);
    counters_.inc(Counter::fragments_held);
    pkt.verdict = Verdict::kHeld;
    return;
  }
  switch (f->kind) {
    case FragmentFate::kDrop:
      return drop(pkt, f->reason);
    case FragmentFate::kToHost:
      return to_host(pkt);
    case FragmentFate::kHandoff:
      return hand_to(pkt, f->worker);
    case FragmentFate::kForward:
      break;
  }
  NextHop nh;
  if (!route(pkt, p, f->out_dst, &nh)) return;
  auto* ip = reinterpret_cast<Ipv4Hdr*>(pkt.data + p.l3);
  const uint32_t d = csum_delta32(ip->saddr.raw, f->out_src) + csum_delta32(ip->daddr.raw, f->out_dst);
  ip->saddr.raw = f->out_src;
  ip->daddr.raw = f->out_dst;
  ip->check = csum_apply(ip->check, csum_fold(d));
  counters_.inc(Counter::fragments_translated);
  emit(pkt, p, nh, pkt.in_if == kHostPort);
}

size_t Engine::take_released(Packet* out, size_t max, uint64_t now_ms) {
  if (const uint32_t n = hold_.expire(now_ms)) [[unlikely]]
    counters_.inc(Counter::drop_fragment_unmatched, n);
  return hold_.ready() ? hold_.take(out, max) : 0;
}

bool Engine::hand_off(Packet& pkt, const Tuple& t) {
  const uint32_t w = cfg_.shard.owner(t);
  if (w == cfg_.shard.index) return false;
  hand_to(pkt, w);
  return true;
}

// A new connection from a source whose connections another worker maps
// (a port it changed, an address from a pool: SourceMap) goes to the
// worker that owns the reply that mapping would give it, which takes it
// although its original tuple is this worker's by hash (entering that in the
// directory), so a client keeps one mapping on every worker (RFC 4787 REQ-1)
// and the reply's uniqueness is checked in the one table that holds its
// rivals. With ports the owner hash leaves the addresses out, so the mapped
// port decides it before any rule is evaluated.
[[gnu::noinline]] bool Engine::adopt_elsewhere(Packet& pkt, const Tuple& t) {
  const SourceMap* shared = cfg_.shard.mappings;
  if (!shared || !(t.has_ports() || t.proto == kProtoIcmp)) return false;
  uint64_t v;
  if (!shared->find(ct_.source_key(t), &v)) return false;
  Tuple mapped = t;
  mapped.src = SourceMap::mapped_addr(v);
  mapped.sport = SourceMap::mapped_port(v);
  const uint32_t w = cfg_.shard.owner_by_hash(mapped);
  if (w == cfg_.shard.index) return false;
  pkt.adopt = true;
  counters_.inc(Counter::adoptions);
  hand_to(pkt, w);
  return true;
}

void Engine::hand_to(Packet& pkt, uint32_t worker) {
  if (pkt.hops >= 3) return drop(pkt, Counter::drop_handoff_loop);
  ++pkt.hops;
  pkt.verdict = Verdict::kHandoff;
  pkt.out_if = static_cast<int16_t>(worker);
  counters_.inc(Counter::handoffs);
}

[[gnu::always_inline]] inline bool Engine::route(Packet& pkt, const ParsedPacket& p, uint32_t dst, NextHop* nh) {
  // The source as it came, as the kernel routes before POSTROUTING's SNAT.
  return routed(pkt, p, cfg_.fib.resolve(dst, nh, p.tuple.src)) && fits(pkt, p, nh->ifindex);
}
// Whether the datagram may leave on interface `out` as it is, or cut into
// fragments; false when it was dropped for its size (fits_output).
[[gnu::always_inline]] inline bool Engine::fits(Packet& pkt, const ParsedPacket& p, int out) {
  if (static_cast<uint32_t>(p.ip_end - p.l3) <= min_mtu_) [[likely]] return true;
  return fits_output(pkt, p, out);
}
// Out of line: a datagram larger than the smallest MTU, against its
// output's. Larger than that, as ip_forward (ip_exceeds_mtu) and
// ip_fragment treat it: with DF, dropped and an ICMP "fragmentation needed"
// carrying the MTU sent back (RFC 1191), so the sender learns the path's
// MTU; without, it leaves in fragments (Packet::frag_mtu: the worker cuts
// them with fragment_ipv4, counted here). A super-frame whose segments fit
// is not too big.
[[gnu::noinline]] bool Engine::fits_output(Packet& pkt, const ParsedPacket& p, int out) {
  const uint32_t mtu = cfg_.fib.interface(out).mtu;
  if (static_cast<uint32_t>(p.ip_end - p.l3) <= mtu) return true;
  const auto* ip = reinterpret_cast<const Ipv4Hdr*>(pkt.data + p.l3);
  if (pkt.gso != Gso::kNone) {
    uint32_t l4_hdr = sizeof(UdpHdr);
    if (p.tuple.proto == kProtoTcp) l4_hdr = reinterpret_cast<const TcpHdr*>(pkt.data + p.l4)->header_len();
    if (p.l4 - p.l3 + l4_hdr + pkt.gso_size <= mtu) return true;
  }
  if (ip->frag_off.host() & 0x4000) {
    send_icmp_error(pkt, p, kIcmpDestUnreach, 4 /* fragmentation needed and DF set */, Counter::drop_frag_needed,
                    static_cast<uint16_t>(mtu));
    return false;
  }
  const uint32_t hlen = ip->header_len();
  const uint32_t per = (mtu - hlen) & ~7u;
  if (mtu < hlen + 8 || pkt.gso != Gso::kNone) {  // a super-frame of UDP datagrams without DF: not cut twice
    drop(pkt, Counter::drop_frag_needed);
    return false;
  }
  pkt.frag_mtu = static_cast<uint16_t>(mtu);
  counters_.inc(Counter::fragmented);
  counters_.inc(Counter::fragments_created, (p.ip_end - p.l3 - hlen + per - 1) / per);
  return true;
}
// route() for a destination already resolved.
[[gnu::always_inline]] inline bool Engine::routed(Packet& pkt, const ParsedPacket& p, RouteKind k) {
  const auto* ip = reinterpret_cast<const Ipv4Hdr*>(pkt.data + p.l3);
  if (k == RouteKind::kForward && (ip->ttl > 1 || pkt.in_if == kHostPort)) [[likely]] return true;
  not_routed(pkt, p, k);
  return false;
}
// Out of line: what route() does with a packet it does not forward.
[[gnu::noinline, gnu::cold]] void Engine::not_routed(Packet& pkt, const ParsedPacket& p, RouteKind k) {
  switch (k) {
    case RouteKind::kLocal:
      return to_host(pkt);
    case RouteKind::kNone:
      return send_icmp_error(pkt, p, kIcmpDestUnreach, 0 /* net unreachable */, Counter::drop_no_route);
    // The kernel's ip_error, by the route's type.
    case RouteKind::kBlackhole:
      return drop(pkt, Counter::drop_blackhole_route);
    case RouteKind::kUnreachable:
      return send_icmp_error(pkt, p, kIcmpDestUnreach, 1 /* host unreachable */, Counter::drop_unreachable_route);
    case RouteKind::kProhibit:
      return send_icmp_error(pkt, p, kIcmpDestUnreach, 13 /* administratively prohibited */,
                             Counter::drop_prohibit_route);
    case RouteKind::kForward:  // a route, but the TTL runs out here
      return send_icmp_error(pkt, p, kIcmpTimeExceeded, 0 /* TTL exceeded in transit */, Counter::drop_ttl_expired);
  }
}

[[gnu::always_inline]] inline void Engine::emit(Packet& pkt, const ParsedPacket& p, const NextHop& nh, bool own_output) {
  const MacAddr* mac = cfg_.fib.neighbor(nh.addr);
  if (!mac && !cfg_.hold_unresolved) return drop(pkt, Counter::drop_no_neighbor);
  if (!own_output) decrement_ttl(pkt.data, p);  // the host's own output (host port) keeps its TTL
  auto* eth = reinterpret_cast<EthHdr*>(pkt.data);
  eth->src = cfg_.fib.interface_mac(nh.ifindex);
  pkt.len = p.ip_end;  // drop link-layer padding; the sender pads again if needed
  pkt.out_if = static_cast<int16_t>(nh.ifindex);
  if (!mac) {
    pkt.verdict = Verdict::kNeighborPending;
    pkt.next_hop = nh.addr;
    counters_.inc(Counter::neighbor_wait);
    return;
  }
  eth->dst = *mac;
  pkt.verdict = Verdict::kForward;
  counters_.inc(Counter::tx_frames);
}

bool Engine::admissible_new(Packet& pkt, const ParsedPacket& p) {
  if (cfg_.fib.is_directed_broadcast(p.tuple.dst)) {
    to_host(pkt);  // directed broadcast of a connected network
    return false;
  }
  if (cfg_.fib.is_local(p.tuple.src)) {
    drop(pkt, Counter::drop_martian_source);  // one of the host's addresses, from outside
    return false;
  }
  // As the kernel's rp_filter; a connection's later packets follow it.
  if (const uint8_t rpf = cfg_.fib.interface(pkt.in_if).rp_filter) [[unlikely]]
    if (!cfg_.fib.reverse_path_ok(p.tuple.src, pkt.in_if, rpf == 1)) {
      drop(pkt, Counter::drop_rp_filter);
      return false;
    }
  return true;
}

void Engine::new_flow(Packet& pkt, ParsedPacket& p, uint64_t now) {
  if (pkt.in_if == kHostPort) [[unlikely]]
    return drop(pkt, Counter::drop_host_untracked);  // a reopened connection: the host's answers open none
  if (!admissible_new(pkt, p)) return;
  if (!ct_.can_open(p)) {
    ct_.count_invalid();
    return drop(pkt, Counter::drop_invalid);
  }
  if (ct_.source_at_limit(p.tuple.src)) {
    ct_.count_source_limited();
    return drop(pkt, Counter::drop_source_limit);
  }
  NatContext ctx{ct_, now, rng_, cfg_.shard};
  const Tuple orig = p.tuple;
  Tuple t = orig;  // the original tuple as it will leave the gateway
  RulePacket rp = rule_packet(pkt, p);
  rp.rng = &rng_;
  // The connection as -m conntrack sees it: NEW, unconfirmed, its reply
  // tuple as the translation so far makes it.
  std::optional<CtView> ct;
  if (cfg_.rules.uses_conntrack) [[unlikely]]
    rp.ct = &ct.emplace(CtView{kCtNew, 0, 0, orig, invert(orig)});
  uint32_t ctmark = 0;  // the new connection's mark, kept once it is inserted
  rp.ctmark = &ctmark;
  if (forward_rules_) [[unlikely]] {
    if (mangle_pre_) {
      if (!ct) rp.ct = &ct.emplace(CtView{kCtNew, 0, 0, orig, invert(orig)});
      if (!mangle(pkt, p, rp, Hook::kPrerouting)) return;
      if (!cfg_.rules.uses_conntrack) rp.ct = nullptr;
    }
  }

  const Rule* pre = evaluate(cfg_.rules.nat, Hook::kPrerouting, rp);
  if (pre) {
    const uint32_t in_addr = cfg_.fib.interface(pkt.in_if).addr;
    // nf_nat_redirect_ipv4: no address on the input, nothing to redirect to.
    if (!in_addr && pre->target.kind == TargetKind::kRedirect) [[unlikely]]
      return exhausted(pkt, Counter::drop_no_address, orig);
    apply_dst_target(pre->target, &t, in_addr, ctx);
  }
  const bool dnat = t.dst != orig.dst || t.dport != orig.dport;
  if (ct && dnat) {
    ct->state |= kCtDnat;
    ct->reply = invert(t);
  }

  NextHop nh;
  const RouteKind dest = cfg_.fib.resolve(t.dst, &nh, t.src);
  const bool local = dest == RouteKind::kLocal;
  if (local && !dnat) return to_host(pkt);  // the host's own traffic: not ours to track
  if (!local && !(routed(pkt, p, dest) && fits(pkt, p, nh.ifindex))) return;

  bool masquerade = false;
  if (!local) {
    rp.dst = host32(t.dst);
    if (t.has_ports()) rp.dport = host16(t.dport);
    if (cfg_.rules.uses_addrtype) rp.dst_type = cfg_.fib.addr_type(t.dst);
    rp.out_if = nh.ifindex;
    rp.ttl_dec = 1;  // forwarded: the kernel decrements the TTL before FORWARD
    if (forward_rules_) [[unlikely]] {
      if (!ct) ct.emplace(CtView{static_cast<uint8_t>(kCtNew | (dnat ? kCtDnat : 0)), 0, 0, orig, invert(t)});
      rp.ct = &*ct;
      if (!forward_allowed(pkt, p, rp)) return;
      if (!cfg_.rules.uses_conntrack) rp.ct = nullptr;
    }
    rp.in_if = -1;
    if (const Rule* post = evaluate(cfg_.rules.nat, Hook::kPostrouting, rp)) {
      const uint32_t out_addr = cfg_.fib.source_for(nh.ifindex, nh.addr);
      // The kernel's "ate my IP address": an output whose address left has
      // nothing to masquerade to.
      if (!out_addr && post->target.kind == TargetKind::kMasquerade) [[unlikely]]
        return exhausted(pkt, Counter::drop_no_address, orig);
      if (!apply_src_target(post->target, &t, out_addr, ctx))
        return exhausted(pkt, Counter::drop_no_port, orig);
      masquerade = post->target.kind == TargetKind::kMasquerade;
    }
  }
  if (t.src == orig.src && t.sport == orig.sport && nat_tuple_used(t, ctx)) {
    // No source mapping, yet the reply tuple is taken (two clients DNATed to
    // one server with the same source port): netfilter's null binding picks
    // another source port, keeping the address.
    NatRange keep;
    keep.map_ips = true;
    keep.min_ip = keep.max_ip = host32(t.src);
    if (!nat_unique_tuple(&t, keep, Manip::kSrc, ctx)) return exhausted(pkt, Counter::drop_no_port, orig);
  }
  const bool snat = t.src != orig.src || t.sport != orig.sport;
  if (snat) snat_guess_ = t.src;

  const auto [idx, failure] = ct_.insert(orig, invert(t), now);
  if (idx == kNoRef)
    return exhausted(pkt, failure == Conntrack::InsertFailure::kDirectoryFull ? Counter::drop_directory_full
                                                                               : Counter::drop_table_full,
                     orig);
  Flow& f = ct_.flow(idx);
  if (cfg_.rules.uses_connmark) [[unlikely]]
    *ct_.mark_ref(idx) = ctmark;
  if (snat) {
    ct_.set_src_nat(idx);
    if (ctx.share) ct_.share_source(idx);
  }
  if (dnat) f.status |= kStatusDstNat;
  if (masquerade) f.status |= kStatusMasquerade;
  flow_compute_deltas(f);
  counters_.inc(Counter::flows_created);
  if (snat) counters_.inc(Counter::snat_flows);
  if (dnat) counters_.inc(Counter::dnat_flows);
  ct_.track_opening(idx, p, now);  // TCP state, timer; then the NEW event

  if (local) {
    // REDIRECT (or DNAT to one of our own addresses): translated, for the host.
    to_host(pkt);
    return translate_for_host(pkt, p, f, 0);
  }
  if (flow_translates(f)) rewrite_flow_packet(pkt.data, p, f, 0);
  counters_.inc(Counter::tracked_frames);
  emit(pkt, p, nh, false);
}

void Engine::handle_icmp_error(Packet& pkt, ParsedPacket& p, uint64_t now) {
  const Tuple key = invert(p.inner);
  const uint64_t h = ct_.hash(key);
  uint32_t ref = ct_.find(key, h, now);
  const Flow* held = nullptr;
  if (ref == kNoRef && ct_.holds() && (ref = ct_.find_held(key, h, now)) != kNoRef)
    held = &ct_.held_flow(ref >> 1);  // about an evicted flow: translated as it was, left held
  if (ref == kNoRef) {
    if (cfg_.shard.active() && hand_off(pkt, key)) return;
    if (cfg_.fib.is_local(p.tuple.dst)) return to_host(pkt);  // about the host's own traffic
    ct_.count_untracked_error();
    return drop(pkt, Counter::drop_icmp_error_untracked);
  }
  const Flow& f = held ? *held : ct_.flow(ref >> 1);
  const int dir = static_cast<int>(ref & 1);
  const Tuple out = flow_output_tuple(f, dir);
  const uint32_t dst = f.tuple[dir].dst != out.dst ? out.dst : p.tuple.dst;
  NextHop nh;
  if (!route(pkt, p, dst, &nh)) {
    if (pkt.verdict == Verdict::kToHost && flow_translates(f)) {
      rewrite_icmp_error(pkt.data, p, f, dir);
      pkt.len = p.ip_end;
    }
    return;
  }
  uint32_t mark_copy = 0;
  uint32_t* ctmark = held ? &mark_copy : ct_.mark_ref(ref >> 1);
  if (forward_rules_ && pkt.in_if != kHostPort && !forward_allowed(pkt, p, f, ctmark, dir, nh.ifindex, kCtRelated))
    return;
  if (flow_translates(f)) rewrite_icmp_error(pkt.data, p, f, dir);
  counters_.inc(Counter::icmp_errors_translated);
  emit(pkt, p, nh, pkt.in_if == kHostPort);
}

bool Engine::mangle(Packet& pkt, const ParsedPacket& p, RulePacket& rp, Hook h) {
  cur_pkt_ = &pkt;
  cur_parsed_ = const_cast<ParsedPacket*>(&p);  // the engine's own burst array
  if (!evaluate(cfg_.rules.mangle, h, rp)) return true;
  drop(pkt, Counter::drop_filtered);  // DROP, the only verdict mangle has here
  return false;
}

bool Engine::forward_allowed(Packet& pkt, const ParsedPacket& p, RulePacket& rp) {
  if (mangle_on_ && !mangle(pkt, p, rp, Hook::kForward)) return false;
  if (filter_forward_) {
    cur_pkt_ = &pkt;
    cur_parsed_ = const_cast<ParsedPacket*>(&p);
    if (const Rule* r = evaluate(cfg_.rules.filter, Hook::kForward, rp)) {
      if (r->target.kind == TargetKind::kReject) reject(pkt, p, r->target.reject_with);
      else drop(pkt, Counter::drop_filtered);
      return false;
    }
  }
  // mangle POSTROUTING sees the source as it is still: nat POSTROUTING comes after.
  const int in_if = rp.in_if;
  rp.in_if = -1;
  const bool ok = !mangle_on_ || mangle(pkt, p, rp, Hook::kPostrouting);
  rp.in_if = in_if;
  return ok;
}

[[gnu::noinline]] bool Engine::forward_allowed(Packet& pkt, const ParsedPacket& p, const Flow& f, uint32_t* ctmark,
                                               int dir, int out_if, uint8_t state) {
  const uint32_t mark = ctmark ? *ctmark : 0;
  const bool ok = forward_checked(pkt, p, f, ctmark, dir, out_if, state);
  if (ctmark && *ctmark != mark) [[unlikely]]
    ct_.mark_changed(ctmark, now_ms_);
  return ok;
}

bool Engine::forward_checked(Packet& pkt, const ParsedPacket& p, const Flow& f, uint32_t* ctmark, int dir,
                             int out_if, uint8_t state) {
  RulePacket rp = rule_packet(pkt, p);
  rp.rng = &rng_;
  rp.ctmark = ctmark;
  // The destination as PREROUTING's translation left it.
  const Tuple out = flow_output_tuple(f, dir);
  if (!p.icmp_error) {
    rp.dst = host32(out.dst);
    if (out.has_ports()) rp.dport = host16(out.dport);
  } else if (f.tuple[dir].dst != out.dst) {
    rp.dst = host32(out.dst);
  }
  if (cfg_.rules.uses_addrtype) rp.dst_type = cfg_.fib.addr_type(__builtin_bswap32(rp.dst));
  CtView ct;
  ct.state = state ? state : static_cast<uint8_t>((dir == 1 || (f.status & kStatusSeenReply)) ? kCtEstablished : kCtNew);
  if (f.status & kStatusSrcNat) ct.state |= kCtSnat;
  if (f.status & kStatusDstNat) ct.state |= kCtDnat;
  ct.status = kCtConfirmed;
  if (f.status & kStatusSeenReply) ct.status |= kCtSeenReply;
  if (f.status & kStatusAssured) ct.status |= kCtAssured;
  ct.dir = static_cast<uint8_t>(dir);
  ct.orig = f.tuple[0];
  ct.reply = f.tuple[1];
  rp.ct = &ct;
  if (mangle_pre_) {
    // mangle PREROUTING: before the destination's translation.
    RulePacket pre = rp;
    pre.dst = host32(p.tuple.dst);
    if (p.tuple.has_ports()) pre.dport = host16(p.tuple.dport);
    if (cfg_.rules.uses_addrtype) pre.dst_type = cfg_.fib.addr_type(p.tuple.dst);
    if (!mangle(pkt, p, pre, Hook::kPrerouting)) return false;
    rp.mark = pre.mark;
  }
  rp.out_if = out_if;
  rp.ttl_dec = 1;
  return forward_allowed(pkt, p, rp);
}

// REJECT: the packet is dropped and answered, as ipt_REJECT answers it.
void Engine::reject(Packet& pkt, const ParsedPacket& p, RejectWith w) {
  if (w != RejectWith::kTcpReset) {
    static constexpr uint8_t kCode[] = {0 /* net */, 1 /* host */, 3 /* port */, 2 /* protocol */,
                                        9 /* net prohibited */, 10 /* host prohibited */, 13 /* admin prohibited */};
    return send_icmp_error(pkt, p, kIcmpDestUnreach, kCode[static_cast<int>(w)], Counter::drop_rejected);
  }
  drop(pkt, Counter::drop_rejected);
  if (!tcp_reset_due(p) || pkt.capacity < p.l3 + 40u || pkt.in_if == kHostPort) return;
  const Interface& itf = cfg_.fib.interface(pkt.in_if);
  pkt.len = build_tcp_reset(pkt.data, p, itf.mac);
  pkt.out_if = pkt.in_if;
  pkt.verdict = Verdict::kForward;
  counters_.inc(Counter::tcp_resets_sent);
  counters_.inc(Counter::tx_frames);
}

bool Engine::try_stateless(Packet& pkt, ParsedPacket& p, uint64_t now) {
  (void)now;
  if (!admissible_new(pkt, p)) return true;
  RulePacket rp = rule_packet(pkt, p);
  rp.rng = &rng_;
  bool stateless = false, notrack = false;
  if (const Rule* r = evaluate(cfg_.rules.raw, Hook::kPrerouting, rp)) {
    if (r->target.kind == TargetKind::kRawDnat) {
      rewrite_stateless(pkt.data, p, /*src=*/false, r->target.prefix);
      stateless = true;
    } else if (r->target.kind == TargetKind::kNotrack) {
      notrack = true;
    }
  }
  NextHop nh;
  const bool has_route = cfg_.fib.lookup(p.tuple.dst, &nh);  // false for local addresses too
  const Rule* post = nullptr;
  if (has_route) {
    rp.dst = host32(p.tuple.dst);
    if (cfg_.rules.uses_addrtype) rp.dst_type = cfg_.fib.addr_type(p.tuple.dst);
    rp.out_if = nh.ifindex;
    rp.in_if = -1;
    rp.ttl_dec = 1;
    post = evaluate(cfg_.rules.rawpost, Hook::kPostrouting, rp);
    if (post && post->target.kind != TargetKind::kRawSnat) post = nullptr;
  }
  if (!stateless && !notrack && !post) return false;  // the tracked path decides
  if (!route(pkt, p, p.tuple.dst, &nh)) return true;
  if (forward_rules_) {
    RulePacket fp = rule_packet(pkt, p);  // UNTRACKED: no connection
    if (mangle_pre_ && !mangle(pkt, p, fp, Hook::kPrerouting)) return true;
    fp.out_if = nh.ifindex;
    fp.ttl_dec = 1;
    fp.mark = rp.mark;
    fp.rng = &rng_;
    if (!forward_allowed(pkt, p, fp)) return true;
  }
  if (post) {
    rewrite_stateless(pkt.data, p, /*src=*/true, post->target.prefix);
    stateless = true;
  }
  counters_.inc(stateless ? Counter::stateless_frames : Counter::notrack_frames);
  emit(pkt, p, nh, false);  // never from the host port (from_host tracks only)
  return true;
}

// A datagram with IPv4 options (ip_options.h), out of the per-packet path.
// Checked before it is tracked: the kernel drops a bad one in ip_rcv_finish,
// so conntrack never confirms a connection for it. Once its output is known,
// the gateway goes into its options as ip_forward_options writes itself: the
// output interface's address in a record route; the time (and the address
// facing the source, from the route back to the source as received) in a
// timestamp. Not for the host's own output through the host port
// (from_host): its kernel built those options; nor for an ICMP error that
// replaced the datagram (its header has none).
[[gnu::noinline, gnu::cold]] void Engine::with_ip_options(Packet& pkt, ParsedPacket& p, uint64_t h, uint32_t cand,
                                                          uint64_t now) {
  const IpOptionsVerdict v = check_ip_options(pkt.data + p.l3);
  if (v.check == IpOptionsCheck::kSourceRoute) return drop(pkt, Counter::drop_source_route);
  if (v.check == IpOptionsCheck::kMalformed)
    return send_icmp_error(pkt, p, kIcmpParamProblem, 0, Counter::drop_bad_ip_options, uint32_t{v.pointer} << 24);
  const uint32_t src = p.tuple.src;  // as received: handling rewrites the tuple
  dispatch(pkt, p, h, cand, now);
  if ((pkt.verdict != Verdict::kForward && pkt.verdict != Verdict::kNeighborPending) || pkt.out_if < 0 ||
      pkt.data[p.l3] == 0x45)
    return;
  IpOptionsStamp stamp;
  stamp.out_addr = cfg_.fib.source_addr(pkt.out_if);
  NextHop back;
  const int back_if = cfg_.fib.resolve(src, &back) == RouteKind::kForward ? back.ifindex : pkt.in_if;
  stamp.back_addr = cfg_.fib.source_addr(back_if);
  stamp.now_ms = ip_timestamp_now();
  forward_ip_options(pkt.data + p.l3, stamp, cfg_.fib);
}

void Engine::send_icmp_error(Packet& pkt, const ParsedPacket& p, uint8_t type, uint8_t code, DropReason reason,
                             uint32_t rest) {
  drop(pkt, reason);
  // RFC 1812 4.3.2.7: never about an ICMP error, a non-initial fragment, or a
  // packet whose source does not name a single host.
  // Nor back into the host port: the host's own output is not ours to answer.
  if (p.icmp_error || p.frag == FragKind::kLater || pkt.in_if == kHostPort || cfg_.fib.is_martian_source(p.tuple.src) ||
      (cfg_.fib.addr_type(p.tuple.dst) & (kAddrBroadcast | kAddrMulticast)))
    return;
  const uint32_t quote = icmp_error_quote(pkt.data, pkt.capacity, p.l3, p.ip_end);
  if (!quote) return;
  // As icmp_send: "fragmentation needed" is never limited (path MTU
  // discovery must not stall); the rest takes a token of the gateway's
  // bucket, then of its destination's.
  if (IcmpPeerLimit::limits(type, code)) {
    if (!icmp_limit_->allow(now_ms_)) {
      counters_.inc(Counter::icmp_errors_ratelimited);
      return;
    }
    if (!icmp_peer_limit_->allow(p.tuple.src, now_ms_)) {
      icmp_limit_->refund();
      counters_.inc(Counter::icmp_errors_ratelimited_host);
      return;
    }
  }
  // Back where it came from: to the previous hop on the ingress interface.
  const Interface& itf = cfg_.fib.interface(pkt.in_if);
  pkt.len = build_icmp_error(pkt.data, p.l3, quote, cfg_.fib.source_addr(pkt.in_if), p.tuple.src, itf.mac, type, code, rest);
  pkt.out_if = pkt.in_if;
  pkt.verdict = Verdict::kForward;
  counters_.inc(Counter::icmp_errors_sent);
  counters_.inc(Counter::tx_frames);
}

}  // namespace xnat
