// The rule model: what an `iptables-save` file says for the tables xnat
// applies (nat; filter's FORWARD chain; raw and rawpost, stateless), resolved
// for fast evaluation.
//
// Addresses are kept in host byte order here (prefix arithmetic), unlike the
// packet tuples. Interface names are resolved to a bitmask over the gateway's
// interfaces once, by RuleSet::bind_interfaces, so a rule matches a packet
// with integer tests only.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/rng.h"
#include "packet/addr.h"
#include "packet/tuple.h"

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

// Connection tracking state bits, for -m conntrack --ctstate and -m state.
// SNAT and DNAT are conntrack's virtual states: the connection is translated.
enum CtState : uint8_t {
  kCtInvalid = 1 << 0,
  kCtEstablished = 1 << 1,
  kCtRelated = 1 << 2,
  kCtNew = 1 << 3,
  kCtUntracked = 1 << 4,
  kCtSnat = 1 << 5,
  kCtDnat = 1 << 6,
};
// --ctstatus bits.
enum CtStatus : uint8_t {
  kCtExpected = 1 << 0,
  kCtSeenReply = 1 << 1,
  kCtAssured = 1 << 2,
  kCtConfirmed = 1 << 3,
};

// What -m conntrack (and -m state) tests; each part only when given.
struct CtMatch {
  bool has_state = false, state_invert = false;
  uint8_t state = 0;  // CtState bits: any of them matches
  bool has_status = false, status_invert = false;
  uint8_t status = 0;  // CtStatus bits: any of them matches
  bool has_dir = false;
  uint8_t dir = 0;  // 0: ORIGINAL, 1: REPLY
  bool has_proto = false, proto_invert = false;
  uint8_t proto = 0;
  // --ctorigsrc, --ctorigdst, --ctreplsrc, --ctrepldst (host order).
  struct Addr {
    bool present = false, invert = false;
    Prefix prefix;
  } orig_src, orig_dst, repl_src, repl_dst;
  // --ctorigsrcport, --ctorigdstport, --ctreplsrcport, --ctrepldstport.
  struct Port {
    bool present = false, invert = false;
    PortRange range;
  } orig_sport, orig_dport, repl_sport, repl_dport;
};

// What -m limit and -m statistic --mode nth keep between packets: one per
// rule, shared by the workers' copies of the rule set, as the kernel keeps
// one xt_limit_priv / xt_statistic_priv per rule for all its CPUs, so a
// rule's rate and its every-nth hold for the gateway, however many workers.
struct MatchState {
  std::atomic<uint32_t> nth{0};
  std::atomic<uint64_t> credit{0};   // -m limit, in 1/10000 s
  std::atomic<uint64_t> prev_ms{0};  // the packets' clock when last refilled; 0: no packet yet
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
  // -m conntrack / -m state; shared by copies of the rule set (read only).
  std::shared_ptr<const CtMatch> ct;
  // -m length (IPv4 total length), -m ttl (--ttl-eq/-lt/-gt), -m mac
  // --mac-source, -m pkttype --pkt-type.
  bool has_length = false, length_invert = false;
  uint16_t length_lo = 0, length_hi = 0;
  enum class Ttl : uint8_t { kNone, kEq, kLt, kGt } ttl = Ttl::kNone;
  bool ttl_invert = false;  // --ttl-eq only: '! --ttl-eq' is --ttl-ne
  uint8_t ttl_value = 0;
  bool has_mac = false, mac_invert = false;
  uint8_t mac[6] = {};
  uint8_t pkt_type = 0;  // 1 unicast, 2 broadcast, 3 multicast; 0: not used
  bool pkt_type_invert = false;
  // -m connmark --mark: (connection mark & connmark_mask) == connmark_value.
  bool has_connmark = false, connmark_invert = false;
  uint32_t connmark_value = 0, connmark_mask = 0xFFFFFFFF;
  // -m limit (xt_limit): a token bucket per rule, in units of 1/10000 s:
  // each match costs `limit_cost`, the bucket holds `limit_cap`.
  bool has_limit = false;
  uint32_t limit_cost = 0, limit_cap = 0;
  // The nth counter and the bucket (set when the rule has either).
  std::shared_ptr<MatchState> state;
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
  kDrop,
  kReject,
  kLog,  // not terminal: the packet is logged, then on to the next rule
  kConnmark,  // not terminal: the connection's mark set, saved or restored
  kTcpmss,    // not terminal: a SYN's MSS option lowered
};

// CONNMARK's operations, as xt_connmark keeps them: ctmark = (ctmark &
// ~mask) ^ value (set); ctmark = (ctmark & ~ctmask) ^ (mark & nfmask) (save);
// mark = (mark & ~nfmask) ^ (ctmark & ctmask) (restore).
enum class ConnmarkOp : uint8_t { kSet, kSave, kRestore };

// REJECT --reject-with (ipt_REJECT's choices).
enum class RejectWith : uint8_t {
  kNetUnreachable,
  kHostUnreachable,
  kPortUnreachable,
  kProtoUnreachable,
  kNetProhibited,
  kHostProhibited,
  kAdminProhibited,
  kTcpReset,
};

// LOG's flags, as xt_LOG keeps them.
enum : uint8_t {
  kLogTcpSeq = 1 << 0,
  kLogTcpOpt = 1 << 1,
  kLogIpOpt = 1 << 2,
  kLogUid = 1 << 3,
  kLogMacDecode = 1 << 5,
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
  RejectWith reject_with = RejectWith::kPortUnreachable;
  // LOG: --log-prefix, --log-level (syslog priority) and its flags.
  std::string log_prefix;
  uint8_t log_level = 4;
  uint8_t log_flags = 0;  // kLogTcpSeq, ...
  // CONNMARK: its operation; mark_value / mark_mask are --set-xmark's,
  // nfmask / ctmask --save-mark's and --restore-mark's.
  ConnmarkOp connmark = ConnmarkOp::kSet;
  uint32_t nfmask = 0xFFFFFFFF, ctmask = 0xFFFFFFFF;
  // TCPMSS: --set-mss, or kClampToPmtu.
  static constexpr uint16_t kClampToPmtu = 0xFFFF;
  uint16_t mss = 0;

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

// A run of consecutive rules that each test exactly a destination address,
// a protocol and one destination port, and nothing else (kube-proxy's
// KUBE-SERVICES: a rule per Service). Evaluation looks the packet's key up
// instead of scanning the run: of the rules before the next one with its
// key, none can match.
struct DispatchRun {
  uint32_t begin = 0, end = 0;  // rule indices [begin, end)
  std::unordered_map<uint64_t, std::vector<uint32_t>> by_key;  // key -> its rules' indices, ascending
  static uint64_t key(uint32_t dst, uint8_t proto, uint16_t dport) {
    return uint64_t{dst} << 32 | uint64_t{proto} << 16 | dport;
  }
};

struct Chain {
  std::string name;
  bool builtin = false;
  std::vector<Rule> rules;
  TargetKind policy = TargetKind::kAccept;  // a built-in chain's: ACCEPT or DROP
  int line = 0;                             // where it was declared
  std::vector<DispatchRun> runs;            // set by Table::build_dispatch()
  std::vector<int32_t> run_of;              // per rule: its run's index, or -1 (empty without runs)
};

enum class Hook : uint8_t { kPrerouting, kInput, kOutput, kPostrouting, kForward };
inline constexpr int kHookCount = 5;

struct Table {
  std::string name;
  bool present = false;
  std::vector<Chain> chains;
  int hook_index[kHookCount] = {-1, -1, -1, -1, -1};  // built-in chain per Hook, set by resolve_hooks()
  bool hook_drops[kHookCount] = {};  // the hook's chain has policy DROP, set by resolve_hooks()
  // A DROP policy as the rule evaluate() returns: target DROP, the line
  // that declared the chain.
  Rule hook_policy[kHookCount];
  int find_chain(const std::string& name) const;
  // Index of a built-in chain, or -1 if this table has none for the hook.
  int hook_chain(Hook h) const { return hook_index[static_cast<int>(h)]; }
  void resolve_hooks();
  // Finds the chains' dispatch runs (DispatchRun) of at least kMinRun rules.
  void build_dispatch();
  static constexpr uint32_t kMinRun = 8;
};

struct RuleSet {
  Table nat{"nat"};
  Table raw{"raw"};
  Table rawpost{"rawpost"};
  // filter: FORWARD is the gateway's firewall; INPUT and OUTPUT are the
  // host's own traffic, which its kernel filters.
  Table filter{"filter"};
  bool uses_addrtype = false;  // set by bind_interfaces: any rule matches on address type
  bool uses_conntrack = false;  // set by bind_interfaces: a nat or raw rule matches on -m conntrack
  // mangle: PREROUTING, FORWARD and POSTROUTING apply to forwarded packets
  // (MARK, CONNMARK, TCPMSS, DROP); INPUT and OUTPUT are the host's.
  Table mangle{"mangle"};
  bool uses_connmark = false;  // set by bind_interfaces: a rule reads or writes connection marks
  // Whether forwarded packets pass filter FORWARD: it has rules, or its
  // policy is not ACCEPT.
  bool filters_forward() const;
  // Whether the hook's chain of `t` does anything (rules, or a DROP policy).
  static bool applies(const Table& t, Hook h);
  size_t rule_count() const;
  // Resolves interface names against the gateway's interfaces (index order).
  void bind_interfaces(const std::vector<std::string>& names);
  // What an operator should know of rules that load but may not do what they
  // say, one line each with file:line: an -i/-o naming no interface of
  // `names` (a typo never matches), rules in chains the host's kernel
  // applies rather than xnat (nat OUTPUT: the host's own connections).
  std::vector<std::string> notices(const std::vector<std::string>& names) const;
};

// The connection a packet belongs to, as -m conntrack sees it; tuples as
// conntrack keeps them (network order): the reply tuple is the one the
// translation decided so far (a new connection's source mapping comes after
// FORWARD).
struct CtView {
  uint8_t state = kCtUntracked;  // one CtState bit, plus kCtSnat / kCtDnat
  uint8_t status = 0;            // CtStatus bits
  uint8_t dir = 0;
  Tuple orig, reply;
};

struct Rule;
struct RulePacket;
// What a rule does to more than the packet's mark: -j LOG (the engine formats
// and queues the line) and -j TCPMSS (the engine edits the segment).
class RuleActions {
 public:
  virtual void log(const Rule& r, const RulePacket& p) = 0;
  virtual void tcpmss(const Rule& r, const RulePacket& p) = 0;

 protected:
  ~RuleActions() = default;
};

// What a rule match needs to know about a packet; addresses and ports in host order.
struct RulePacket {
  uint32_t src = 0, dst = 0;
  uint16_t sport = 0, dport = 0;
  uint8_t proto = 0;
  uint8_t icmp_type = 0, icmp_code = 0;
  uint8_t tcp_flags = 0;
  int in_if = -1, out_if = -1;  // -1: not known at this hook
  uint16_t src_type = 0, dst_type = 0;  // addrtype of src and dst, as kAddr* bits
  uint32_t mark = 0;     // the packet's mark (skb->mark): MARK sets it, -m mark reads it
  // The frame as received, for -m length, ttl, mac, pkttype: its Ethernet
  // header and, at l3, its IPv4 header. ttl_dec: 1 at hooks after the
  // routing decision (FORWARD, POSTROUTING), where the kernel has already
  // decremented the TTL.
  uint16_t l3 = 0;
  uint8_t ttl_dec = 0;
  const uint8_t* frame = nullptr;
  uint64_t now_ms = 0;  // for -m limit
  Rng* rng = nullptr;    // for -m statistic --mode random; without one, such a rule never matches
  const CtView* ct = nullptr;  // for -m conntrack; without one, the packet is UNTRACKED
  RuleActions* actions = nullptr;  // for -j LOG and TCPMSS; without them, such rules only pass the packet on
  // The connection's mark (CONNMARK, -m connmark); null for a packet
  // without a connection (UNTRACKED), whose connmark never matches.
  uint32_t* ctmark = nullptr;
};

// Runs the table's chain for `hook` on the packet (jumps, gotos, RETURN,
// ACCEPT, policy) and returns the rule whose target decides (the chain's
// policy rule when that is DROP), or nullptr when the packet falls through or
// is ACCEPTed.
// MARK rules on the way change p.mark.
const Rule* evaluate_from(const Table& t, Hook hook, RulePacket& p, int start);
inline const Rule* evaluate(const Table& t, Hook hook, RulePacket& p) {
  const int h = static_cast<int>(hook);
  const int start = t.hook_index[h];
  if (start < 0) return nullptr;
  // An empty built-in chain (a SNAT-only gateway's nat PREROUTING): its policy.
  if (t.chains[static_cast<size_t>(start)].rules.empty()) return t.hook_drops[h] ? &t.hook_policy[h] : nullptr;
  return evaluate_from(t, hook, p, start);
}

bool rule_matches(const Match& m, const RulePacket& p);

}  // namespace xnat
