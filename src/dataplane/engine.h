// Engine: frames in, verdicts and translated frames out.
//
//   parse -> [raw PREROUTING / rawpost POSTROUTING: stateless NAT, NOTRACK]
//         -> conntrack lookup (both directions, one probe)
//              hit:  track state -> route -> TTL -> rewrite -> emit
//              miss: nat PREROUTING (DNAT, REDIRECT, NETMAP) -> route -> TTL
//                    -> nat POSTROUTING (SNAT, MASQUERADE, NETMAP)
//                    -> unique tuple + insert in one step -> rewrite -> emit
//         ICMP errors: matched through their embedded datagram (RFC 5508)
//         later IPv4 fragments: as their first fragment went (fragments.h)
//
// Nothing here allocates or throws after construction. Every frame ends as
// Forward (out_if set, frame rewritten in place, Ethernet addresses filled),
// ToHost (for the host's own stack), or Drop with a reason that is also a
// counter. A dropped frame may be replaced by the ICMP error it causes (TTL
// expired, no route); the verdict is then Forward on the ingress interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "conntrack/conntrack.h"
#include "dataplane/counters.h"
#include "dataplane/fragments.h"
#include "dataplane/icmp_error.h"
#include "dataplane/log_ring.h"
#include "dataplane/packet.h"
#include "nat/port_allocator.h"
#include "nat/rules.h"
#include "packet/parse.h"
#include "route/fib.h"

namespace xnat {

struct EngineConfig {
  ConntrackSettings conntrack;
  RuleSet rules;
  Fib fib;
  uint64_t seed = 1;  // hashes and port offsets: fixed in replay for exact output, random live
  Shard shard;        // several workers: this one's share of flows and ports (conntrack/shard.h)
  uint32_t icmp_msgs_per_sec = 1000;  // net.ipv4.icmp_msgs_per_sec
  uint32_t icmp_msgs_burst = 50;      // net.ipv4.icmp_msgs_burst
  uint32_t icmp_ratelimit = 1000;     // net.ipv4.icmp_ratelimit (ms, per destination), 0..1000
  // Their buckets, shared by the workers' copies of the configuration; the
  // engine makes its own when none is set.
  std::shared_ptr<IcmpRateLimit> icmp_limit;
  std::shared_ptr<IcmpPeerLimit> icmp_peer_limit;
  // Live gateway: a frame whose next hop has no MAC yet leaves as
  // kNeighborPending (translated, TTL decremented, source MAC set) for the
  // caller to hold while the kernel resolves it. Replay drops it (no_neighbor).
  bool hold_unresolved = false;
  // The config lists [[route]]s: the live gateway uses them instead of the kernel's.
  bool routes_pinned = false;
};

class Engine final : private RuleActions {
 public:
  static constexpr size_t kBurst = xnat::kBurst;

  explicit Engine(EngineConfig cfg);

  void process(Packet& pkt, uint64_t now_ms) { process_burst(&pkt, 1, now_ms); }
  // Parses and hashes a burst, prefetches its index slots, then processes it.
  void process_burst(Packet* pkts, size_t n, uint64_t now_ms);

  const Counters& counters() const { return counters_; }
  Conntrack& conntrack() { return ct_; }
  const Conntrack& conntrack() const { return ct_; }
  const Fib& fib() const { return cfg_.fib; }
  const EngineConfig& config() const { return cfg_; }
  // Live changes from the kernel (addresses, routes, neighbours). The new Fib
  // must list the same interfaces in the same order.
  // Offloaded flows whose paths changed come back to the engine.
  void replace_fib(Fib fib);
  // Every offloaded flow back to the engine (its entries name devices that
  // are gone).
  void withdraw_offloaded() {
    ct_.for_each_offloaded([&](uint32_t idx, const Flow&) { ct_.withdraw(idx); });
  }
  void set_flow_observer(FlowObserver* o) { ct_.set_observer(o); }
  // The fast path (conntrack/flow_offload.h): established TCP flows are
  // offered to it when no rule but nat's sees their packets.
  void set_flow_offload(FlowOffload* o) { ct_.set_offload(o); }
  // About once a second: the fast path's idle flows come back (Conntrack::offload_tick).
  void offload_tick(uint64_t now_ms) {
    if (ct_.offloaded()) ct_.offload_tick(now_ms);
  }
  // `xnat reload`: new rules for new connections; existing ones keep the
  // translation they were given (NAT is decided at a connection's first
  // packet, as in netfilter). Without copying, binding or freeing: `rules`,
  // bound to this engine's interfaces (RuleSet::bind_interfaces), comes in,
  // the old ones go out in it.
  void swap_rules(RuleSet& rules);
  // `xnat sysctl -w`: the conntrack settings that may change live, and this
  // engine's table limit (Conntrack::retune).
  void retune(const ConntrackSettings& s, uint64_t max) {
    cfg_.conntrack.timeout_s = s.timeout_s;
    cfg_.conntrack.nf_conntrack_checksum = s.nf_conntrack_checksum;
    cfg_.conntrack.nf_conntrack_tcp_loose = s.nf_conntrack_tcp_loose;
    cfg_.conntrack.nf_conntrack_tcp_be_liberal = s.nf_conntrack_tcp_be_liberal;
    cfg_.conntrack.nf_conntrack_tcp_ignore_invalid_rst = s.nf_conntrack_tcp_ignore_invalid_rst;
    cfg_.conntrack.nf_conntrack_tcp_max_retrans = s.nf_conntrack_tcp_max_retrans;
    ct_.retune(s, max);
  }
  // Lines of -j LOG rules, for the control thread (or replay) to print.
  LogRing& log_ring() { return log_; }
  // Later fragments that waited for their first (Verdict::kHeld) and whose
  // first has now been handled: up to max of them, as packets over the
  // engine's own bytes, valid until released_done(), for the caller to
  // process as it does frames it does not own. Fragments that waited too
  // long are given up here (drop_fragment_unmatched).
  size_t take_released(Packet* out, size_t max, uint64_t now_ms);
  void released_done() { hold_.done(); }
  // Gives up every fragment still waiting (the end of a replay).
  void drop_waiting_fragments() { counters_.inc(Counter::drop_fragment_unmatched, hold_.clear()); }

 private:
  // cand: the packet's candidate of the burst's bulk lookup (FlowTable::resolve).
  void handle(Packet& pkt, ParsedPacket& p, ParseStatus st, uint64_t h, uint32_t cand, uint64_t now);
  // handle()'s rest: fragments, stateless rules, ICMP errors, lookup, new flows.
  void dispatch(Packet& pkt, ParsedPacket& p, uint64_t h, uint32_t cand, uint64_t now);
  // Fragments (fragments.h): what became of a first fragment, and a later one.
  void note_first_fragment(const Packet& pkt, const ParsedPacket& p, const FragmentKey& k, uint64_t now);
  void later_fragment(Packet& pkt, ParsedPacket& p, uint64_t now);
  void new_flow(Packet& pkt, ParsedPacket& p, uint64_t now);
  void complete_l4_checksum(Packet& pkt, const ParsedPacket& p);
  void keep_partial(Packet& pkt);
  void from_host(Packet& pkt, ParsedPacket& p, uint64_t h, uint64_t now);
  void translate_for_host(Packet& pkt, ParsedPacket& p, const Flow& f, int dir);
  // A packet of a tracked flow (table index, direction): track, route, translate, emit.
  void forward_tracked(Packet& pkt, ParsedPacket& p, uint32_t idx, int dir, uint64_t now, bool own_output = false);
  // A TCP segment (header and payload) this long or longer, or a
  // super-frame, is bulk data: its connection is offered to the fast path.
  static constexpr uint32_t kOffloadSegment = 1024 + 20;
  // Hands flow idx to the fast path if both its directions have a route and
  // a resolved next hop.
  void offer_offload(uint32_t idx, uint64_t now);
  // An offloaded flow's paths as `fib` has them; false if one has none.
  bool offload_paths(const Fib& fib, const Flow& f, OffloadPath (&dirs)[2]) const;
  // A packet that missed the table but matches an evicted flow still held:
  // readmits the flow and forwards the packet. False: no such flow, or a new
  // connection on its tuple.
  bool late_packet(Packet& pkt, ParsedPacket& p, uint64_t h, uint64_t now);
  // Checks a packet that would create state: false when it was dropped or handed to the host.
  bool admissible_new(Packet& pkt, const ParsedPacket& p);
  void handle_icmp_error(Packet& pkt, ParsedPacket& p, uint64_t now);
  // Several workers: true when the packet went to the worker owning `t` (or was dropped).
  bool hand_off(Packet& pkt, const Tuple& t);
  bool adopt_elsewhere(Packet& pkt, const Tuple& t);
  void hand_to(Packet& pkt, uint32_t worker);  // at most 3 hops, then drop_handoff_loop
  bool try_stateless(Packet& pkt, ParsedPacket& p, uint64_t now);
  // Route and TTL checks for a packet that will leave with destination dst.
  // Returns false when the packet was dropped or handed to the host (verdict set).
  bool route(Packet& pkt, const ParsedPacket& p, uint32_t dst, NextHop* nh);
  bool routed(Packet& pkt, const ParsedPacket& p, RouteKind k);
  bool fits(Packet& pkt, const ParsedPacket& p, int out);
  bool fits_output(Packet& pkt, const ParsedPacket& p, int out);
  void note_mtus();  // min_mtu_ from the FIB's interfaces
  void not_routed(Packet& pkt, const ParsedPacket& p, RouteKind k);
  // own_output: the host's own frame (kHostPort), which keeps its TTL.
  void emit(Packet& pkt, const ParsedPacket& p, const NextHop& nh, bool own_output);
  void drop(Packet& pkt, DropReason r);
  void exhausted(Packet& pkt, DropReason r, const Tuple& t);  // a drop for want of room, logged (rate-limited)
  void to_host(Packet& pkt);
  // rest: the ICMP header's second word (build_icmp_error): the next-hop MTU
  // of "fragmentation needed" (RFC 1191), a parameter problem's pointer.
  void send_icmp_error(Packet& pkt, const ParsedPacket& p, uint8_t type, uint8_t code, DropReason reason,
                       uint32_t rest = 0);
  // handle() for a datagram with IPv4 options (ip_options.h).
  void with_ip_options(Packet& pkt, ParsedPacket& p, uint64_t h, uint32_t cand, uint64_t now);
  RulePacket rule_packet(const Packet& pkt, const ParsedPacket& p);
  void bind_rules();  // the rules' interface names and the engine's flags from them
  void rule_flags();  // the engine's flags from its (bound) rules
  void log(const Rule& r, const RulePacket& p) override;  // packet_log.cc
  // filter FORWARD (rules.h): false when the packet was dropped or rejected.
  // rp: the packet as FORWARD sees it, its destination translated, its
  // source not yet.
  bool forward_allowed(Packet& pkt, const ParsedPacket& p, RulePacket& rp);
  // The same for a packet of a tracked (or held) flow leaving on out_if:
  // `state` is kCtRelated for an ICMP error about it, else 0 (NEW or
  // ESTABLISHED by direction and SEEN_REPLY).
  // A mark it changes is an event (conntrack.h: mark_changed).
  bool forward_allowed(Packet& pkt, const ParsedPacket& p, const Flow& f, uint32_t* ctmark, int dir, int out_if,
                       uint8_t state);
  bool forward_checked(Packet& pkt, const ParsedPacket& p, const Flow& f, uint32_t* ctmark, int dir, int out_if,
                       uint8_t state);
  // mangle's chain for `h`: false when a DROP dropped the packet.
  bool mangle(Packet& pkt, const ParsedPacket& p, RulePacket& rp, Hook h);
  void tcpmss(const Rule& r, const RulePacket& p) override;  // tcpmss.cc
  void reject(Packet& pkt, const ParsedPacket& p, RejectWith w);

  EngineConfig cfg_;
  Conntrack ct_;
  Rng rng_;
  Counters counters_;
  FragmentTable frags_;
  FragmentHold hold_;
  FragmentKey first_key_;  // the first fragment being handled, as received
  bool has_stateless_rules_ = false;
  bool filter_forward_ = false;  // filter FORWARD has rules or a DROP policy
  bool mangle_pre_ = false;      // mangle PREROUTING does
  bool mangle_on_ = false;       // mangle PREROUTING, FORWARD or POSTROUTING does
  bool forward_rules_ = false;   // either: forwarded packets pass rules besides nat's
  uint32_t min_mtu_ = 0;         // the interfaces' smallest MTU: a datagram within it fits any output
  // The packet rules are evaluated for, for targets that edit it (TCPMSS).
  Packet* cur_pkt_ = nullptr;
  ParsedPacket* cur_parsed_ = nullptr;
  std::shared_ptr<IcmpRateLimit> icmp_limit_;
  std::shared_ptr<IcmpPeerLimit> icmp_peer_limit_;
  LogRing log_;
  uint64_t now_ms_ = 0;  // time of the current burst, for ICMP rate limiting
  uint64_t next_exhausted_log_[4] = {};  // table full, no port, directory full, no address
  ParsedPacket parsed_[kBurst];
  ParseStatus status_[kBurst];
  uint64_t hash_[kBurst];
  uint32_t found_[kBurst];  // stage 2: the ref whose flow line was fetched (FlowTable::prefetch_flow)
  uint32_t new_bucket_[kBurst];  // stage 2: the by-source bucket of the burst's k-th likely new flow
  // The translated source address of the last source-translated new flow
  // (network order; 0: none yet): stage 2's guess at a new flow's mapping.
  uint32_t snat_guess_ = 0;
  void bring_in_next_hop(uint32_t ref) const;
  void bring_in_reply_guess(const Tuple& orig) const;
};

}  // namespace xnat
