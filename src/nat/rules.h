// The NAT rule model: what an `iptables-save` file for the tables nat, raw
// and rawpost says, resolved for fast evaluation.
//
// Addresses are kept in host byte order here (prefix arithmetic), unlike the
// packet tuples. Interface names are resolved to a bitmask over the gateway's
// interfaces once, by RuleSet::bind_interfaces, so a rule matches a packet
// with integer tests only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/rng.h"
#include "packet/addr.h"

namespace xnat {

struct PortRange {
  uint16_t lo = 0, hi = 65535;
  bool contains(uint16_t p) const { return lo <= p && p <= hi; }
};

struct InterfaceMatch {
  bool present = false;
  bool invert = false;
  std::string name;   // as written; a trailing '+' is a prefix wildcard
  uint64_t mask = 0;  // resolved: bit i = interface i matches the name
};

struct Match {
  bool has_src = false, src_invert = false;
  Prefix src;
  bool has_dst = false, dst_invert = false;
  Prefix dst;
  uint8_t proto = 0;  // 0: any
  bool proto_invert = false;
  bool has_sport = false, sport_invert = false;
  PortRange sport;
  bool has_dport = false, dport_invert = false;
  PortRange dport;
  // multiport: up to 15 ports or ranges; `ports` matches either port.
  enum class Multi : uint8_t { kNone, kSource, kDest, kEither } multi = Multi::kNone;
  bool multi_invert = false;
  std::vector<PortRange> multi_ports;
  InterfaceMatch in, out;
  uint16_t dst_type = 0, src_type = 0;  // addrtype bitmasks; 0 = not used
  bool dst_type_invert = false, src_type_invert = false;
  bool has_icmp = false, icmp_invert = false;
  uint8_t icmp_type = 0;
  int icmp_code = -1;  // -1: any code
  bool has_rare = false;  // one test, on the common path, for the rarer matches below
  // -m iprange --src-range / --dst-range LO-HI (host order, inclusive).
  bool has_src_range = false, src_range_invert = false, has_dst_range = false, dst_range_invert = false;
  uint32_t src_lo = 0, src_hi = 0, dst_lo = 0, dst_hi = 0;
  // -m tcp --tcp-flags MASK COMP (and --syn): (flags & tcp_mask) == tcp_cmp.
  bool has_tcp_flags = false, tcp_flags_invert = false;
  uint8_t tcp_mask = 0, tcp_cmp = 0;
  // -m mark: (packet mark & mark_mask) == mark_value.
  bool has_mark = false, mark_invert = false;
  uint32_t mark_value = 0, mark_mask = 0xFFFFFFFF;
  // -m statistic (xt_statistic): random, matching when a 31-bit random
  // number is below `probability` (the fraction times 2^31); nth, matching
  // when the rule's counter, starting at --packet, reaches every - 1.
  enum class Statistic : uint8_t { kNone, kRandom, kNth } statistic = Statistic::kNone;
  bool statistic_invert = false;
  uint32_t probability = 0;
  uint32_t every = 0, packet = 0;  // every: n - 1, as the kernel keeps it
  mutable uint32_t nth_count = 0;  // the rule's own counter (per worker)
};

enum class TargetKind : uint8_t {
  kNone,  // no -j: the rule only counts
  kAccept,
  kReturn,
  kJump,
  kGoto,
  kSnat,
  kDnat,
  kMasquerade,
  kRedirect,
  kNetmap,
  kRawSnat,
  kRawDnat,
  kNotrack,
  kMark,  // not terminal: packet mark = (mark & ~mark_mask) ^ mark_value, then on to the next rule
};

// nf_nat_range2, host order.
struct NatRange {
  bool map_ips = false;
  uint32_t min_ip = 0, max_ip = 0;
  bool proto_specified = false;
  uint16_t min_port = 0, max_port = 0;
  bool random = false;        // --random: random port offset, no source-port preservation
  bool random_fully = false;  // --random-fully
  bool persistent = false;    // --persistent: same address for a client whatever the destination
};

struct Target {
  TargetKind kind = TargetKind::kNone;
  int chain = -1;  // kJump / kGoto: index into the table's chains
  NatRange range;  // SNAT, DNAT, MASQUERADE (ports), REDIRECT (ports)
  Prefix prefix;   // NETMAP --to, RAWSNAT --to-source, RAWDNAT --to-destination
  uint32_t mark_value = 0, mark_mask = 0;  // MARK, as xt_MARK keeps any of its forms

  // Whether the kind is one of `kinds`.
  template <typename... K>
  bool is(K... kinds) const {
    return ((kind == kinds) || ...);
  }
};

struct Rule {
  Match match;
  Target target;
  std::string file;
  int line = 0;  // source line, for messages and `xnat rules` output
};

struct Chain {
  std::string name;
  bool builtin = false;
  std::vector<Rule> rules;
};

enum class Hook : uint8_t { kPrerouting, kInput, kOutput, kPostrouting };

struct Table {
  std::string name;
  bool present = false;
  std::vector<Chain> chains;
  int hook_index[4] = {-1, -1, -1, -1};  // built-in chain per Hook, set by resolve_hooks()
  int find_chain(const std::string& name) const;
  // Index of a built-in chain, or -1 if this table has none for the hook.
  int hook_chain(Hook h) const { return hook_index[static_cast<int>(h)]; }
  void resolve_hooks();
};

struct RuleSet {
  Table nat{"nat"};
  Table raw{"raw"};
  Table rawpost{"rawpost"};
  bool uses_addrtype = false;  // set by bind_interfaces: any rule matches on address type
  size_t rule_count() const;
  // Resolves interface names against the gateway's interfaces (index order).
  void bind_interfaces(const std::vector<std::string>& names);
  // What an operator should know of rules that load but may not do what they
  // say, one line each with file:line: an -i/-o naming no interface of
  // `names` (a typo never matches), rules in chains the host's kernel
  // applies rather than xnat (nat OUTPUT: the host's own connections).
  std::vector<std::string> notices(const std::vector<std::string>& names) const;
};

// What a rule match needs to know about a packet; addresses and ports in host order.
struct RulePacket {
  uint32_t src = 0, dst = 0;
  uint8_t proto = 0;
  uint16_t sport = 0, dport = 0;
  uint8_t icmp_type = 0, icmp_code = 0;
  int in_if = -1, out_if = -1;  // -1: not known at this hook
  uint16_t src_type = 0, dst_type = 0;  // addrtype of src and dst, as kAddr* bits
  uint32_t mark = 0;     // the packet's mark (skb->mark): MARK sets it, -m mark reads it
  uint8_t tcp_flags = 0;
  Rng* rng = nullptr;    // for -m statistic --mode random; without one, such a rule never matches
};

// Runs the table's chain for `hook` on the packet (jumps, gotos, RETURN,
// ACCEPT, policy) and returns the rule whose target decides, or nullptr when
// the packet falls through or is ACCEPTed with no translation.
// MARK rules on the way change p.mark.
const Rule* evaluate(const Table& t, Hook hook, RulePacket& p);

bool rule_matches(const Match& m, const RulePacket& p);

}  // namespace xnat
