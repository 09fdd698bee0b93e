#include "nat/rules_parser.h"

#include "nat/rules_syntax.h"

#include <fmt/format.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <cmath>
#include <fstream>
#include <optional>
#include <span>
#include <unordered_map>
#include <sstream>

#include "packet/headers.h"
#include "packet/tuple.h"

namespace xnat {
namespace {

using namespace syntax;

// The targets xnat implements: the name iptables-save writes, what it does,
// and the table it belongs in (empty: any).
struct BuiltinTarget {
  std::string_view name;
  TargetKind kind;
  std::string_view table;
};
constexpr BuiltinTarget kBuiltinTargets[] = {
    {"ACCEPT", TargetKind::kAccept, ""},        {"RETURN", TargetKind::kReturn, ""},
    {"SNAT", TargetKind::kSnat, "nat"},         {"DNAT", TargetKind::kDnat, "nat"},
    {"MASQUERADE", TargetKind::kMasquerade, "nat"}, {"REDIRECT", TargetKind::kRedirect, "nat"},
    {"NETMAP", TargetKind::kNetmap, "nat"},     {"RAWSNAT", TargetKind::kRawSnat, "rawpost"},
    {"RAWDNAT", TargetKind::kRawDnat, "raw"},   {"NOTRACK", TargetKind::kNotrack, "raw"},
    {"CT", TargetKind::kNone, "raw"},        {"MARK", TargetKind::kMark, ""},
    {"DROP", TargetKind::kDrop, ""},         {"REJECT", TargetKind::kReject, "filter"},
    {"LOG", TargetKind::kLog, ""},           {"CONNMARK", TargetKind::kConnmark, ""},
    {"TCPMSS", TargetKind::kTcpmss, ""},
};
const BuiltinTarget* builtin_target(std::string_view name) {
  for (const BuiltinTarget& b : kBuiltinTargets)
    if (b.name == name) return &b;
  return nullptr;
}

class Parser {
 public:
  explicit Parser(std::string file) : file_(std::move(file)) {}

  Result<RuleSet> run(std::string_view text) {
    size_t pos = 0;
    while (pos <= text.size()) {
      size_t nl = text.find('\n', pos);
      std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
      ++line_no_;
      if (auto e = line_(line)) return fail(*e);
      if (nl == std::string_view::npos) break;
      pos = nl + 1;
    }
    if (table_) return fail_at(line_no_, {"", fmt::format("table '{}' has no COMMIT line", table_->name)});
    for (Table* t : {&rs_.nat, &rs_.raw, &rs_.rawpost, &rs_.filter, &rs_.mangle}) {
      t->resolve_hooks();
      if (auto r = validate(*t); !r) return r.error();
      t->build_dispatch();
    }
    return std::move(rs_);
  }

 private:
  Error fail(const ParseError& e) { return fail_at(line_no_, e); }
  Error fail_at(int line, const ParseError& e) {
    if (e.token.empty()) return Error{fmt::format("{}:{}: {}", file_, line, e.message)};
    return Error{fmt::format("{}:{}: '{}': {}", file_, line, e.token, e.message)};
  }

  std::optional<ParseError> line_(std::string_view raw) {
    // A comment is not tokenized: iptables-restore skips it whole, so a quote
    // in it must not matter.
    const size_t first = raw.find_first_not_of(" \t\r");
    if (first == std::string_view::npos || raw[first] == '#') return std::nullopt;
    ParseError err;
    auto toks_opt = tokenize(raw, &err);
    if (!toks_opt) return err;
    std::vector<std::string>& toks = *toks_opt;
    if (toks.empty() || toks[0][0] == '#') return std::nullopt;
    // `iptables-save -c` prefixes rules with [packets:bytes].
    if (toks[0].front() == '[' && toks[0].back() == ']') toks.erase(toks.begin());
    if (toks.empty()) return ParseError{"", "counters with no rule"};
    const std::string& t0 = toks[0];
    if (t0[0] == '*') return begin_table(t0.substr(1));
    if (t0 == "COMMIT") {
      if (!table_) return ParseError{t0, "COMMIT outside a table"};
      table_ = nullptr;
      return std::nullopt;
    }
    if (!table_) return ParseError{t0, "expected a table line such as '*nat' first"};
    if (t0[0] == ':') return declare_chain(t0.substr(1), toks, true);
    if (t0 == "-N" || t0 == "--new-chain") {
      if (toks.size() != 2) return ParseError{t0, "expected '-N CHAIN'"};
      return declare_chain(toks[1], toks, false);
    }
    if (t0 == "-A" || t0 == "--append") return append_rule(toks);
    return ParseError{t0, "expected '-A CHAIN ...', ':CHAIN POLICY [p:b]', '-N CHAIN' or 'COMMIT' "
                          "(xnat reads the format iptables-save prints)"};
  }

  std::optional<ParseError> begin_table(const std::string& name) {
    if (table_) return ParseError{"*" + name, fmt::format("table '{}' has no COMMIT before this line", table_->name)};
    if (name == "nat") table_ = &rs_.nat;
    else if (name == "raw") table_ = &rs_.raw;
    else if (name == "rawpost") table_ = &rs_.rawpost;
    else if (name == "filter") table_ = &rs_.filter;
    else if (name == "mangle") table_ = &rs_.mangle;
    else
      return ParseError{"*" + name, "xnat reads the tables nat, filter, mangle, raw and rawpost"};
    if (table_->present) return ParseError{"*" + name, "table appears twice"};
    table_->present = true;
    return std::nullopt;
  }

  static bool builtin_for(const std::string& table, const std::string& chain) {
    if (table == "nat")
      return chain == "PREROUTING" || chain == "INPUT" || chain == "OUTPUT" || chain == "POSTROUTING";
    if (table == "filter") return chain == "INPUT" || chain == "FORWARD" || chain == "OUTPUT";
    if (table == "mangle")
      return chain == "PREROUTING" || chain == "INPUT" || chain == "FORWARD" || chain == "OUTPUT" ||
             chain == "POSTROUTING";
    if (table == "raw") return chain == "PREROUTING" || chain == "OUTPUT";
    return chain == "POSTROUTING";  // rawpost
  }

  std::optional<ParseError> declare_chain(const std::string& name,
                                          const std::vector<std::string>& toks, bool colon_form) {
    if (name.empty() || name.size() > 28)
      return ParseError{name, "chain names are 1 to 28 characters"};
    if (chain_index(name) >= 0)
      return ParseError{name, fmt::format("chain already declared in table {}", table_->name)};
    const bool builtin = builtin_for(table_->name, name);
    if (colon_form) {
      if (toks.size() < 2) return ParseError{":" + name, "expected ':CHAIN POLICY [packets:bytes]'"};
      const std::string& policy = toks[1];
      const bool filters = table_->name != "nat";  // iptables refuses a DROP policy in nat only
      if (builtin && policy != "ACCEPT" && !(filters && policy == "DROP"))
        return ParseError{policy, filters ? "a built-in chain's policy is ACCEPT or DROP"
                                          : "the policy of a NAT table's built-in chain must be ACCEPT"};
      if (!builtin && policy != "-")
        return ParseError{policy, fmt::format("'{}' is not a built-in chain of table {}, so its "
                                              "policy must be '-'", name, table_->name)};
    }
    Chain c{name, builtin, {}, TargetKind::kAccept, line_no_};
    if (colon_form && builtin && toks[1] == "DROP") c.policy = TargetKind::kDrop;
    chains_[table_].emplace(name, static_cast<int>(table_->chains.size()));
    table_->chains.push_back(std::move(c));
    return std::nullopt;
  }

  std::optional<ParseError> append_rule(const std::vector<std::string>& toks) {
    if (toks.size() < 2) return ParseError{toks[0], "expected a chain name"};
    int ci = chain_index(toks[1]);
    if (ci < 0)
      return ParseError{toks[1], fmt::format("chain not declared in table {} (declare it with "
                                             "':{} - [0:0]')", table_->name, toks[1])};
    Rule r;
    r.file = file_;
    r.line = line_no_;
    if (auto e = parse_rule_body(toks, 2, &r)) return e;
    if (auto e = check_rule(table_->chains[ci], r)) return e;
    table_->chains[ci].rules.push_back(std::move(r));
    return std::nullopt;
  }

  std::optional<ParseError> parse_rule_body(const std::vector<std::string>& toks, size_t i, Rule* r) {
    Match& m = r->match;
    bool invert = false;
    bool saw_tcp_udp_module = false;
    std::string target_name;
    auto need_arg = [&](const std::string& opt) -> std::optional<ParseError> {
      if (i + 1 >= toks.size()) return ParseError{opt, "option needs a value"};
      return std::nullopt;
    };
    auto no_invert = [&](const std::string& opt) -> std::optional<ParseError> {
      if (invert) return ParseError{opt, "'!' cannot be used with this option"};
      return std::nullopt;
    };
    for (; i < toks.size(); ++i) {
      const std::string& o = toks[i];
      if (o == "!") {
        if (invert) return ParseError{o, "double '!'"};
        invert = true;
        continue;
      }
      const bool inv = invert;
      invert = false;
      if (o == "-s" || o == "--source" || o == "-d" || o == "--destination") {
        if (auto e = need_arg(o)) return e;
        const std::string& v = toks[++i];
        Prefix p;
        if (!parse_prefix(v, &p)) return ParseError{v, "expected an IPv4 address or prefix (a.b.c.d[/len])"};
        if (o[1] == 's' || o == "--source") { m.has_src = true; m.src = p; m.src_invert = inv; }
        else { m.has_dst = true; m.dst = p; m.dst_invert = inv; }
      } else if (o == "-p" || o == "--protocol") {
        if (auto e = need_arg(o)) return e;
        const std::string& v = toks[++i];
        if (!parse_proto(v, &m.proto)) return ParseError{v, "unknown protocol"};
        m.proto_invert = inv;
      } else if (o == "-i" || o == "--in-interface" || o == "-o" || o == "--out-interface") {
        if (auto e = need_arg(o)) return e;
        InterfaceMatch& im = (o == "-i" || o == "--in-interface") ? m.in : m.out;
        im.present = true;
        im.invert = inv;
        im.name = toks[++i];
        if (im.name.empty() || im.name.size() > 15) return ParseError{im.name, "interface names are 1 to 15 characters"};
      } else if (o == "-m" || o == "--match") {
        if (auto e = no_invert(o)) return e;
        if (auto e = need_arg(o)) return e;
        const std::string& mod = toks[++i];
        if (mod == "tcp" || mod == "udp") {
          if (!(m.proto == 6 && mod == "tcp") && !(m.proto == 17 && mod == "udp"))
            return ParseError{mod, fmt::format("'-m {0}' needs '-p {0}' before it", mod)};
          saw_tcp_udp_module = true;
        } else if (mod == "icmp") {
          if (m.proto != 1) return ParseError{mod, "'-m icmp' needs '-p icmp' before it"};
        } else if (mod == "conntrack" || mod == "state") {
          ct_module_ = mod;
        } else if (mod == "connmark" || mod == "mark") {
          mark_module_ = mod;
        } else if (mod != "multiport" && mod != "addrtype" && mod != "comment" &&
                   mod != "statistic" && mod != "iprange" && mod != "limit" && mod != "length" && mod != "ttl" &&
                   mod != "mac" && mod != "pkttype") {
          return ParseError{mod, "unsupported match module; xnat supports tcp, udp, icmp, multiport, addrtype, "
                                 "iprange, mark, connmark, statistic, conntrack, state, limit, length, ttl, mac, "
                                 "pkttype and comment"};
        }
      } else if (o == "--sport" || o == "--source-port" || o == "--dport" || o == "--destination-port") {
        if (auto e = need_arg(o)) return e;
        if (m.proto != 6 && m.proto != 17)
          return ParseError{o, "port matches need '-p tcp' or '-p udp'"};
        const std::string& v = toks[++i];
        PortRange pr;
        if (!parse_port_range(v, &pr)) return ParseError{v, "expected a port or PORT:PORT"};
        if (o == "--sport" || o == "--source-port") { m.has_sport = true; m.sport = pr; m.sport_invert = inv; }
        else { m.has_dport = true; m.dport = pr; m.dport_invert = inv; }
      } else if (o == "--dports" || o == "--destination-ports" || o == "--sports" ||
                 o == "--source-ports" || o == "--ports") {
        if (auto e = need_arg(o)) return e;
        if (m.proto != 6 && m.proto != 17 && m.proto != 132 && m.proto != 136 && m.proto != 33)
          return ParseError{o, "multiport needs '-p tcp', '-p udp', '-p sctp', '-p dccp' or '-p udplite'"};
        if (m.multi != Match::Multi::kNone) return ParseError{o, "only one multiport list per rule"};
        m.multi = o == "--ports" ? Match::Multi::kEither
                  : (o == "--sports" || o == "--source-ports") ? Match::Multi::kSource
                                                               : Match::Multi::kDest;
        m.multi_invert = inv;
        std::stringstream ss(toks[++i]);
        std::string item;
        while (std::getline(ss, item, ',')) {
          PortRange pr;
          if (!parse_port_range(item, &pr)) return ParseError{item, "expected a port or PORT:PORT"};
          m.multi_ports.push_back(pr);
        }
        if (m.multi_ports.empty() || m.multi_ports.size() > 15)
          return ParseError{toks[i], "multiport takes 1 to 15 ports"};
      } else if (o == "--dst-type" || o == "--src-type") {
        if (auto e = need_arg(o)) return e;
        uint16_t bits;
        if (!parse_addrtypes(toks[++i], &bits))
          return ParseError{toks[i], "expected address types such as LOCAL or UNICAST,BROADCAST"};
        if (o == "--dst-type") { m.dst_type = bits; m.dst_type_invert = inv; }
        else { m.src_type = bits; m.src_type_invert = inv; }
      } else if (o == "--src-range" || o == "--dst-range") {
        if (auto e = need_arg(o)) return e;
        const std::string& v = toks[++i];
        const size_t dash = v.find('-');
        uint32_t lo, hi;
        if (dash == std::string::npos || !parse_addr_host(v.substr(0, dash), &lo) ||
            !parse_addr_host(v.substr(dash + 1), &hi) || lo > hi)
          return ParseError{v, "expected FROM-TO, two addresses in order"};
        if (o == "--src-range") m.has_src_range = true, m.src_range_invert = inv, m.src_lo = lo, m.src_hi = hi;
        else m.has_dst_range = true, m.dst_range_invert = inv, m.dst_lo = lo, m.dst_hi = hi;
        m.has_rare = true;
      } else if (o == "--tcp-flags" || o == "--syn") {
        if (m.proto != 6) return ParseError{o, "TCP flag matches need '-p tcp'"};
        if (o == "--syn") {
          m.tcp_mask = kTcpSyn | kTcpRst | kTcpAck | kTcpFin;
          m.tcp_cmp = kTcpSyn;
        } else {
          if (i + 2 >= toks.size()) return ParseError{o, "needs MASK and COMP, such as SYN,RST,ACK,FIN SYN"};
          if (!parse_tcp_flags(toks[i + 1], &m.tcp_mask) || !parse_tcp_flags(toks[i + 2], &m.tcp_cmp))
            return ParseError{toks[i + 1] + " " + toks[i + 2], "expected flag lists of SYN ACK FIN RST URG PSH ECE CWR ALL NONE"};
          i += 2;
        }
        m.has_tcp_flags = m.has_rare = true;
        m.tcp_flags_invert = inv;
      } else if (o == "--mark" && target_name.empty()) {
        // -m mark's, or -m connmark's when that module came last.
        if (auto e = need_arg(o)) return e;
        const bool conn = mark_module_ == "connmark";
        if (!parse_value_mask(toks[++i], conn ? &m.connmark_value : &m.mark_value, conn ? &m.connmark_mask : &m.mark_mask))
          return ParseError{toks[i], "expected VALUE[/MASK], decimal or 0x hex"};
        if (conn) m.has_connmark = true, m.connmark_invert = inv;
        else m.has_mark = true, m.mark_invert = inv;
        m.has_rare = true;
      } else if (o == "--mode") {
        if (auto e = need_arg(o)) return e;
        const std::string& v = toks[++i];
        if (v == "random") m.statistic = Match::Statistic::kRandom;
        else if (v == "nth") m.statistic = Match::Statistic::kNth;
        else return ParseError{v, "expected random or nth"};
        m.statistic_invert = inv;
        m.has_rare = true;
      } else if (o == "--probability") {
        // iptables-save writes an inverted one as '--mode random ! --probability P'.
        m.statistic_invert |= inv;
        if (auto e = need_arg(o)) return e;
        if (m.statistic != Match::Statistic::kRandom) return ParseError{o, "needs '--mode random' before it"};
        const std::string& v = toks[++i];
        char* end = nullptr;
        const double prob = std::strtod(v.c_str(), &end);
        if (end != v.c_str() + v.size() || !(prob >= 0.0 && prob <= 1.0))
          return ParseError{v, "expected a probability from 0 to 1"};
        m.probability = static_cast<uint32_t>(std::lround(0x80000000 * prob));  // as libxt_statistic
      } else if (o == "--every" || o == "--packet") {
        m.statistic_invert |= inv;
        if (auto e = need_arg(o)) return e;
        if (m.statistic != Match::Statistic::kNth) return ParseError{o, "needs '--mode nth' before it"};
        uint64_t v;
        if (!parse_uint(toks[++i], 0xFFFFFFFFu, &v)) return ParseError{toks[i], "expected a number"};
        if (o == "--every") {
          if (v == 0) return ParseError{toks[i], "--every must be at least 1"};
          m.every = static_cast<uint32_t>(v - 1);
          every_seen_ = true;
        } else {
          m.packet = static_cast<uint32_t>(v);
        }
      } else if (o == "--length") {
        if (auto e = need_arg(o)) return e;
        PortRange r16;
        if (!parse_port_range(toks[++i], &r16)) return ParseError{toks[i], "expected LENGTH or MIN:MAX"};
        m.has_length = m.has_rare = true, m.length_invert = inv, m.length_lo = r16.lo, m.length_hi = r16.hi;
      } else if (o == "--ttl-eq" || o == "--ttl-lt" || o == "--ttl-gt") {
        if (auto e = need_arg(o)) return e;
        if (inv && o != "--ttl-eq") return ParseError{o, "'!' goes with --ttl-eq only"};
        uint64_t v;
        if (!parse_uint(toks[++i], 255, &v)) return ParseError{toks[i], "expected a TTL from 0 to 255"};
        m.ttl = o == "--ttl-eq" ? Match::Ttl::kEq : o == "--ttl-lt" ? Match::Ttl::kLt : Match::Ttl::kGt;
        m.ttl_invert = inv, m.ttl_value = static_cast<uint8_t>(v), m.has_rare = true;
      } else if (o == "--mac-source") {
        if (auto e = need_arg(o)) return e;
        MacAddr mac;
        if (!parse_mac(toks[++i], &mac)) return ParseError{toks[i], "expected a MAC address XX:XX:XX:XX:XX:XX"};
        std::memcpy(m.mac, mac.b, 6);
        m.has_mac = m.has_rare = true, m.mac_invert = inv;
      } else if (o == "--pkt-type") {
        if (auto e = need_arg(o)) return e;
        const std::string& v = toks[++i];
        m.pkt_type = v == "unicast" ? 1 : v == "broadcast" ? 2 : v == "multicast" ? 3 : 0;
        if (!m.pkt_type) return ParseError{v, "expected unicast, broadcast or multicast"};
        m.pkt_type_invert = inv, m.has_rare = true;
      } else if (o == "--limit" || o == "--limit-burst") {
        if (auto e = no_invert(o)) return e;
        if (auto e = need_arg(o)) return e;
        if (o == "--limit") {
          if (!parse_limit_rate(toks[++i], &limit_avg_))
            return ParseError{toks[i], "expected RATE[/second|/minute|/hour|/day], at most 10000/second"};
        } else {
          uint64_t b;
          if (!parse_uint(toks[++i], 10000, &b) || b == 0) return ParseError{toks[i], "expected a burst from 1 to 10000"};
          limit_burst_ = static_cast<uint32_t>(b);
        }
        m.has_limit = m.has_rare = true;
      } else if ((o.starts_with("--ct") && o != "--ctmask") || o == "--state") {
        if (auto e = ct_option(o, inv, toks, &i, r)) return e;
      } else if (o == "--comment") {
        if (auto e = no_invert(o)) return e;
        if (auto e = need_arg(o)) return e;
        ++i;  // documentation only
      } else if (o == "--icmp-type") {
        if (auto e = need_arg(o)) return e;
        if (m.proto != 1) return ParseError{o, "'--icmp-type' needs '-p icmp'"};
        m.has_icmp = true;
        m.icmp_invert = inv;
        if (!parse_icmp_type(toks[++i], &m.icmp_type, &m.icmp_code))
          return ParseError{toks[i], "expected an ICMP type name or TYPE[/CODE]"};
      } else if (o == "-j" || o == "--jump" || o == "-g" || o == "--goto") {
        if (auto e = no_invert(o)) return e;
        if (auto e = need_arg(o)) return e;
        if (!target_name.empty()) return ParseError{o, "a rule has one target"};
        target_name = toks[++i];
        if (auto e = set_target(target_name, o == "-g" || o == "--goto", r)) return e;
      } else if (o == "--to-source" || o == "--to-destination" || o == "--to-ports" || o == "--to" ||
                 o == "--random" || o == "--random-fully" || o == "--persistent" || o == "--notrack" ||
                 o == "--set-xmark" || o == "--set-mark" || o == "--and-mark" || o == "--or-mark" ||
                 o == "--xor-mark" || o == "--reject-with" || o.starts_with("--log-") || o == "--save-mark" ||
                 o == "--restore-mark" || o == "--nfmask" || o == "--ctmask" || o == "--mask" || o == "--set-mss" ||
                 o == "--clamp-mss-to-pmtu" || (o == "--mark" && !target_name.empty())) {
        if (auto e = no_invert(o)) return e;
        if (target_name.empty()) return ParseError{o, "target option before '-j TARGET'"};
        if (auto e = target_option(o, toks, &i, target_name, r)) return e;
      } else if (o == "-f" || o == "--fragment") {
        return ParseError{o, "fragment matches are not supported: xnat drops fragments (counted as 'fragment')"};
      } else {
        return ParseError{o, "unknown option"};
      }
    }
    if (invert) return ParseError{"!", "'!' at the end of a rule"};
    (void)saw_tcp_udp_module;
    if (m.statistic == Match::Statistic::kNth) {
      // As libxt_statistic: the counter starts at every - packet (every
      // already n - 1), and the rule matches when it comes round to every.
      if (!every_seen_) return ParseError{"--mode", "nth mode needs --every N"};
      if (m.packet > m.every) return ParseError{"--packet", "--packet P must be 0 <= P <= N-1"};
      m.state = std::make_shared<MatchState>();
      m.state->nth.store(m.every - m.packet, std::memory_order_relaxed);
    }
    every_seen_ = false;
    ct_module_.clear();
    mark_module_.clear();
    if (m.has_limit) {
      // libxt_limit's defaults: 3/hour, burst 5.
      m.limit_cost = limit_avg_ ? limit_avg_ : 10000 * 3600 / 3;
      m.limit_cap = m.limit_cost * (limit_burst_ ? limit_burst_ : 5);
      if (!m.state) m.state = std::make_shared<MatchState>();
      m.state->credit.store(m.limit_cap, std::memory_order_relaxed);  // the first packet finds it full
    }
    limit_avg_ = limit_burst_ = 0;
    return finish_target(target_name, r);
  }

  // -m conntrack's options (and -m state's --state), into the rule's CtMatch.
  std::optional<ParseError> ct_option(const std::string& o, bool inv, const std::vector<std::string>& toks, size_t* i,
                                      Rule* r) {
    if (ct_module_.empty() || (o == "--state") != (ct_module_ == "state"))
      return ParseError{o, o == "--state" ? "needs '-m state' before it" : "needs '-m conntrack' before it"};
    if (*i + 1 >= toks.size()) return ParseError{o, "option needs a value"};
    const std::string& v = toks[++*i];
    Match& m = r->match;
    auto ct = std::make_shared<CtMatch>(m.ct ? *m.ct : CtMatch{});
    m.has_rare = true;
    if (o == "--ctstate" || o == "--state") {
      if (!parse_ct_bits(v, /*status=*/false, &ct->state))
        return ParseError{v, "expected states such as NEW,ESTABLISHED,RELATED,INVALID,UNTRACKED,SNAT,DNAT"};
      if (o == "--state" && (ct->state & (kCtSnat | kCtDnat)))
        return ParseError{v, "SNAT and DNAT are states of -m conntrack --ctstate, not of -m state"};
      ct->has_state = true, ct->state_invert = inv;
    } else if (o == "--ctstatus") {
      if (!parse_ct_bits(v, /*status=*/true, &ct->status))
        return ParseError{v, "expected statuses such as NONE,EXPECTED,SEEN_REPLY,ASSURED,CONFIRMED"};
      ct->has_status = true, ct->status_invert = inv;
    } else if (o == "--ctdir") {
      if (inv) return ParseError{o, "'!' cannot be used with this option"};
      if (v != "ORIGINAL" && v != "REPLY") return ParseError{v, "expected ORIGINAL or REPLY"};
      ct->has_dir = true, ct->dir = v == "REPLY";
    } else if (o == "--ctproto") {
      if (!parse_proto(v, &ct->proto)) return ParseError{v, "unknown protocol"};
      ct->has_proto = true, ct->proto_invert = inv;
    } else if (o == "--ctorigsrc" || o == "--ctorigdst" || o == "--ctreplsrc" || o == "--ctrepldst") {
      CtMatch::Addr& a = o == "--ctorigsrc" ? ct->orig_src : o == "--ctorigdst" ? ct->orig_dst
                         : o == "--ctreplsrc" ? ct->repl_src : ct->repl_dst;
      if (!parse_prefix(v, &a.prefix)) return ParseError{v, "expected an IPv4 address or prefix (a.b.c.d[/len])"};
      a.present = true, a.invert = inv;
    } else if (o == "--ctorigsrcport" || o == "--ctorigdstport" || o == "--ctreplsrcport" || o == "--ctrepldstport") {
      CtMatch::Port& q = o == "--ctorigsrcport" ? ct->orig_sport : o == "--ctorigdstport" ? ct->orig_dport
                         : o == "--ctreplsrcport" ? ct->repl_sport : ct->repl_dport;
      if (!parse_port_range(v, &q.range)) return ParseError{v, "expected a port or PORT:PORT"};
      q.present = true, q.invert = inv;
    } else {
      return ParseError{o, "unsupported conntrack option; xnat supports --ctstate, --ctstatus, --ctdir, --ctproto, "
                           "--ctorigsrc/--ctorigdst/--ctreplsrc/--ctrepldst and their ports"};
    }
    m.ct = std::move(ct);
    return std::nullopt;
  }

  std::optional<ParseError> set_target(const std::string& name, bool is_goto, Rule* r) {
    Target& t = r->target;
    ct_target_ = false;
    const BuiltinTarget* b = is_goto ? nullptr : builtin_target(name);
    if (!b) {
      int ci = chain_index(name);
      if (ci < 0) {
        static const char* kKnownOther[] = {"TRACE",
                                            "CLASSIFY", "TPROXY", "NFLOG", "TCPMSS", "SYNPROXY"};
        for (const char* k : kKnownOther)
          if (name == k)
            return ParseError{name, fmt::format("target {} is not supported in table {} by xnat", name, table_->name)};
        return ParseError{name, fmt::format("no such chain in table {} (user chains must be "
                                            "declared before the rules that jump to them)", table_->name)};
      }
      if (table_->chains[ci].builtin) return ParseError{name, "cannot jump to a built-in chain"};
      t.kind = is_goto ? TargetKind::kGoto : TargetKind::kJump;
      t.chain = ci;
      return std::nullopt;
    }
    if (!b->table.empty() && table_->name != b->table)
      return ParseError{name, fmt::format("target {} belongs in table {}, not {}", name, b->table, table_->name)};
    if (b->kind == TargetKind::kDrop && table_->name == "nat")
      return ParseError{name, "the nat table is not for filtering (the kernel refuses DROP there): "
                              "drop in table filter"};
    t.kind = b->kind;  // CT: kNone until --notrack, checked in finish_target
    ct_target_ = b->name == "CT";
    return std::nullopt;
  }

  std::optional<ParseError> target_option(const std::string& o, const std::vector<std::string>& toks,
                                          size_t* i, const std::string& target, Rule* r) {
    Target& t = r->target;
    auto bad = [&]() { return ParseError{o, fmt::format("not an option of target {}", target)}; };
    auto arg = [&](std::string* v) -> std::optional<ParseError> {
      if (*i + 1 >= toks.size()) return ParseError{o, "option needs a value"};
      *v = toks[++*i];
      return std::nullopt;
    };
    std::string v;
    // iptables takes any unique abbreviation of an option (getopt_long):
    // SNAT's and DNAT's --to is their --to-source / --to-destination.
    const bool to_abbrev = o == "--to" && t.is(TargetKind::kSnat, TargetKind::kDnat);
    if (o == "--to-source" || o == "--to-destination" || to_abbrev) {
      const bool snat = o == "--to-source" || (to_abbrev && t.kind == TargetKind::kSnat);
      if (t.kind == TargetKind::kRawSnat || t.kind == TargetKind::kRawDnat) {
        if ((t.kind == TargetKind::kRawSnat) != snat) return bad();
        if (auto e = arg(&v)) return e;
        if (!parse_prefix(v, &t.prefix)) return ParseError{v, "expected an address or prefix"};
        range_seen_ = true;
        return std::nullopt;
      }
      if (t.kind != (snat ? TargetKind::kSnat : TargetKind::kDnat)) return bad();
      if (range_seen_) return ParseError{o, "only one range per rule (as in current iptables)"};
      if (auto e = arg(&v)) return e;
      if (!parse_nat_range(v, &t.range))
        return ParseError{v, "expected IP[-IP][:PORT[-PORT]]"};
      range_seen_ = true;
      return std::nullopt;
    }
    if (o == "--to-ports") {
      if (!t.is(TargetKind::kMasquerade, TargetKind::kRedirect)) return bad();
      if (auto e = arg(&v)) return e;
      PortRange pr;
      if (!parse_port_range(v, &pr, '-')) return ParseError{v, "expected PORT or PORT-PORT"};
      t.range.proto_specified = true;
      t.range.min_port = pr.lo;
      t.range.max_port = pr.hi;
      return std::nullopt;
    }
    if (o == "--to") {
      if (t.kind != TargetKind::kNetmap) return bad();
      if (auto e = arg(&v)) return e;
      if (!parse_prefix(v, &t.prefix)) return ParseError{v, "expected a prefix a.b.c.d/len"};
      range_seen_ = true;
      return std::nullopt;
    }
    if (o == "--random") {
      if (!t.is(TargetKind::kSnat, TargetKind::kDnat, TargetKind::kMasquerade, TargetKind::kRedirect)) return bad();
      t.range.random = true;
      return std::nullopt;
    }
    if (o == "--random-fully") {
      if (!t.is(TargetKind::kSnat, TargetKind::kMasquerade)) return bad();
      t.range.random_fully = true;
      return std::nullopt;
    }
    if (o == "--persistent") {
      if (!t.is(TargetKind::kSnat, TargetKind::kDnat)) return bad();
      t.range.persistent = true;
      return std::nullopt;
    }
    if (t.kind == TargetKind::kConnmark && (o == "--save-mark" || o == "--restore-mark")) {
      t.connmark = o == "--save-mark" ? ConnmarkOp::kSave : ConnmarkOp::kRestore;
      mark_seen_ = true;
      return std::nullopt;
    }
    if (t.kind == TargetKind::kConnmark && (o == "--nfmask" || o == "--ctmask" || o == "--mask")) {
      if (auto e = arg(&v)) return e;
      uint32_t value, unused;
      if (!parse_value_mask(v, &value, &unused) || v.find('/') != std::string::npos)
        return ParseError{v, "expected a mask, decimal or 0x hex"};
      if (o != "--ctmask") t.nfmask = value;
      if (o != "--nfmask") t.ctmask = value;
      return std::nullopt;
    }
    if (o == "--set-mss" || o == "--clamp-mss-to-pmtu") {
      if (t.kind != TargetKind::kTcpmss) return bad();
      if (o == "--clamp-mss-to-pmtu") {
        t.mss = Target::kClampToPmtu;
      } else {
        if (auto e = arg(&v)) return e;
        uint64_t mss;
        if (!parse_uint(v, 65534, &mss) || mss == 0) return ParseError{v, "expected an MSS from 1 to 65534"};
        t.mss = static_cast<uint16_t>(mss);
      }
      mark_seen_ = true;
      return std::nullopt;
    }
    if (o == "--set-xmark" || o == "--set-mark" || o == "--and-mark" || o == "--or-mark" || o == "--xor-mark" ||
        (o == "--mark" && t.kind == TargetKind::kConnmark)) {
      if (t.kind != TargetKind::kMark && t.kind != TargetKind::kConnmark) return bad();
      if (t.kind == TargetKind::kConnmark) t.connmark = ConnmarkOp::kSet;
      if (auto e = arg(&v)) return e;
      uint32_t value, mask;
      const bool with_mask = o == "--set-xmark" || o == "--set-mark" || o == "--mark";
      if (!parse_value_mask(v, &value, &mask) || (!with_mask && v.find('/') != std::string::npos))
        return ParseError{v, with_mask ? "expected VALUE[/MASK]" : "expected a VALUE"};
      // The forms xt_MARK keeps, as libxt_MARK converts them.
      if (o == "--set-xmark") t.mark_value = value, t.mark_mask = mask;
      else if (o == "--set-mark" || o == "--mark") t.mark_value = value, t.mark_mask = mask | value;
      else if (o == "--and-mark") t.mark_value = 0, t.mark_mask = ~value;
      else if (o == "--or-mark") t.mark_value = t.mark_mask = value;
      else t.mark_value = value, t.mark_mask = 0;
      mark_seen_ = true;
      return std::nullopt;
    }
    if (o == "--notrack") {
      if (!ct_target_) return bad();
      t.kind = TargetKind::kNotrack;
      return std::nullopt;
    }
    if (o.starts_with("--log-")) {
      if (t.kind != TargetKind::kLog) return bad();
      static constexpr std::pair<std::string_view, uint8_t> kFlags[] = {
          {"--log-tcp-sequence", kLogTcpSeq}, {"--log-tcp-options", kLogTcpOpt}, {"--log-ip-options", kLogIpOpt},
          {"--log-uid", kLogUid},             {"--log-macdecode", kLogMacDecode}};
      for (const auto& [name, bit] : kFlags)
        if (o == name) {
          t.log_flags |= bit;
          return std::nullopt;
        }
      if (auto e = arg(&v)) return e;
      if (o == "--log-prefix") {
        if (v.size() > 29) return ParseError{v, "a log prefix is at most 29 characters"};
        t.log_prefix = v;
        return std::nullopt;
      }
      if (o == "--log-level") {
        static constexpr std::string_view kLevels[] = {"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"};
        uint64_t n;
        if (parse_uint(v, 7, &n)) {
          t.log_level = static_cast<uint8_t>(n);
          return std::nullopt;
        }
        for (uint8_t k = 0; k < 8; ++k)
          if (v == kLevels[k] || (k == 3 && v == "err") || (k == 4 && v == "warn") || (k == 0 && v == "panic")) {
            t.log_level = k;
            return std::nullopt;
          }
        return ParseError{v, "expected a level 0-7 or emerg, alert, crit, error, warning, notice, info, debug"};
      }
      return bad();
    }
    if (o == "--reject-with") {
      if (t.kind != TargetKind::kReject) return bad();
      if (auto e = arg(&v)) return e;
      if (!parse_reject_with(v, &t.reject_with))
        return ParseError{v, "expected icmp-net-unreachable, icmp-host-unreachable, icmp-port-unreachable, "
                             "icmp-proto-unreachable, icmp-net-prohibited, icmp-host-prohibited, "
                             "icmp-admin-prohibited or tcp-reset"};
      if (t.reject_with == RejectWith::kTcpReset && (r->match.proto != kProtoTcp || r->match.proto_invert))
        return ParseError{v, "tcp-reset needs '-p tcp' in the rule (as the kernel requires)"};
      return std::nullopt;
    }
    return bad();
  }

  std::optional<ParseError> finish_target(const std::string& name, Rule* r) {
    const bool had_range = range_seen_;
    range_seen_ = false;
    const Target& t = r->target;
    const bool had_mark = mark_seen_;
    mark_seen_ = false;
    if (t.kind == TargetKind::kMark && !had_mark)
      return ParseError{name, "MARK needs --set-xmark, --set-mark, --and-mark, --or-mark or --xor-mark"};
    if (t.kind == TargetKind::kConnmark && !had_mark)
      return ParseError{name, "CONNMARK needs --set-xmark, --set-mark, --save-mark or --restore-mark"};
    if (t.kind == TargetKind::kTcpmss) {
      if (!had_mark) return ParseError{name, "TCPMSS needs --set-mss or --clamp-mss-to-pmtu"};
      // As the kernel checks it: the rule must match SYNs only.
      const Match& m = r->match;
      if (m.proto != kProtoTcp || m.proto_invert || !m.has_tcp_flags || m.tcp_flags_invert ||
          !(m.tcp_mask & kTcpSyn) || !(m.tcp_cmp & kTcpSyn))
        return ParseError{name, "TCPMSS only works on TCP SYN packets: the rule needs -p tcp --tcp-flags SYN,RST SYN "
                                "(or --syn)"};
    }
    if (ct_target_ && t.kind != TargetKind::kNotrack)
      return ParseError{"CT", "xnat supports the CT target only as 'CT --notrack'"};
    if (!had_range) {
      const char* needs = t.kind == TargetKind::kSnat       ? "--to-source"
                          : t.kind == TargetKind::kDnat     ? "--to-destination"
                          : t.kind == TargetKind::kNetmap   ? "--to PREFIX"
                          : t.kind == TargetKind::kRawSnat  ? "--to-source PREFIX"
                          : t.kind == TargetKind::kRawDnat  ? "--to-destination PREFIX"
                                                            : nullptr;
      if (needs) return ParseError{name, fmt::format("{} needs {}", name, needs)};
    }
    if (t.range.proto_specified && r->match.proto != 6 && r->match.proto != 17 &&
        r->match.proto != 132 && r->match.proto != 33 && r->match.proto != 136)
      return ParseError{name, "a port range needs '-p tcp' or '-p udp' (or sctp, dccp, udplite) in the rule"};
    return std::nullopt;
  }

  std::optional<ParseError> check_rule(const Chain& c, const Rule& r) {
    if (c.builtin) {
      if (c.name == "PREROUTING" && r.match.out.present)
        return ParseError{"-o", "an output interface is not known yet in PREROUTING"};
      if (c.name == "POSTROUTING" && r.match.in.present)
        return ParseError{"-i", "an input interface is not known any more in POSTROUTING"};
    }
    return std::nullopt;
  }

  // Post-parse checks over the whole table: loops, and targets used in chains
  // reachable from a hook where they are not allowed (as iptables-restore does).
  Status validate(const Table& t) {
    const size_t n = t.chains.size();
    // reach[c] = hooks (bitmask) from which chain c can be reached.
    std::vector<unsigned> reach(n, 0);
    static constexpr Hook kHooks[] = {Hook::kPrerouting, Hook::kInput, Hook::kOutput, Hook::kPostrouting,
                                      Hook::kForward};
    for (Hook h : kHooks) {
      int start = t.hook_chain(h);
      if (start < 0) continue;
      std::vector<int> state(n, 0);  // 0 new, 1 on the current path, 2 done for this hook
      if (auto r = visit(t, start, 1u << static_cast<int>(h), reach, state, 0); !r) return r;
    }
    for (size_t c = 0; c < n; ++c) {
      for (const Rule& r : t.chains[c].rules) {
        const unsigned hooks = t.chains[c].builtin ? (1u << static_cast<int>(builtin_hook(t.chains[c].name))) : reach[c];
        const unsigned pre = 1u << static_cast<int>(Hook::kPrerouting), out = 1u << static_cast<int>(Hook::kOutput);
        const unsigned post = 1u << static_cast<int>(Hook::kPostrouting), in = 1u << static_cast<int>(Hook::kInput);
        auto err = [&](const char* what, const char* where) {
          return Error{fmt::format("{}:{}: target {} is only valid in {} (chain {} is reached from elsewhere)",
                                   r.file, r.line, what, where, t.chains[c].name)};
        };
        switch (r.target.kind) {
          case TargetKind::kSnat:
          case TargetKind::kMasquerade:
            if (hooks & ~(post | in)) return err(r.target.kind == TargetKind::kSnat ? "SNAT" : "MASQUERADE", "POSTROUTING and INPUT");
            break;
          case TargetKind::kDnat:
          case TargetKind::kRedirect:
            if (hooks & ~(pre | out)) return err(r.target.kind == TargetKind::kDnat ? "DNAT" : "REDIRECT", "PREROUTING and OUTPUT");
            break;
          case TargetKind::kTcpmss:
            if (r.target.mss == Target::kClampToPmtu && (hooks & (pre | in)))
              return err("TCPMSS --clamp-mss-to-pmtu", "FORWARD, OUTPUT and POSTROUTING");
            break;
          default:
            break;
        }
        if (r.match.out.present && (hooks & pre))
          return Error{fmt::format("{}:{}: '-o' in chain {}, which PREROUTING reaches, where the output interface is not known yet", r.file, r.line, t.chains[c].name)};
        if (r.match.in.present && (hooks & post))
          return Error{fmt::format("{}:{}: '-i' in chain {}, which POSTROUTING reaches, where the input interface is not known any more", r.file, r.line, t.chains[c].name)};
      }
    }
    return {};
  }

  static Hook builtin_hook(const std::string& n) {
    if (n == "PREROUTING") return Hook::kPrerouting;
    if (n == "INPUT") return Hook::kInput;
    if (n == "OUTPUT") return Hook::kOutput;
    if (n == "FORWARD") return Hook::kForward;
    return Hook::kPostrouting;
  }

  Status visit(const Table& t, int c, unsigned hookbit, std::vector<unsigned>& reach,
               std::vector<int>& state, int depth) {
    if (state[c] == 2) return {};  // its subtree was already walked from this hook
    if (state[c] == 1)
      return Error{fmt::format("{}: table {}: chain {} jumps back into itself (a loop)", file_, t.name, t.chains[c].name)};
    if (depth >= 63)
      return Error{fmt::format("{}: table {}: jumps nest deeper than 63 chains", file_, t.name)};
    reach[c] |= hookbit;
    state[c] = 1;
    for (const Rule& r : t.chains[c].rules)
      if (r.target.kind == TargetKind::kJump || r.target.kind == TargetKind::kGoto)
        if (auto st = visit(t, r.target.chain, hookbit, reach, state, depth + 1); !st) return st;
    state[c] = 2;
    return {};
  }

  std::string file_;
  RuleSet rs_;
  Table* table_ = nullptr;
  int line_no_ = 0;
  bool range_seen_ = false;
  bool ct_target_ = false;
  bool mark_seen_ = false;  // the rule's MARK target has its value
  std::string ct_module_;   // the rule's -m conntrack or -m state, whose options follow
  std::string mark_module_;  // the rule's last -m mark or -m connmark, whose --mark follows
  // Each table's chains by name: rules name chains tens of thousands of times
  // in kube-proxy's tables.
  std::unordered_map<const Table*, std::unordered_map<std::string, int>> chains_;
  int chain_index(const std::string& name) {
    const auto& m = chains_[table_];
    const auto it = m.find(name);
    return it == m.end() ? -1 : it->second;
  }
  uint32_t limit_avg_ = 0, limit_burst_ = 0;  // the rule's --limit (1/10000 s per packet) and --limit-burst
  bool every_seen_ = false;  // the rule's -m statistic --mode nth has --every  // the rule's target is CT (valid only with --notrack)
};

}  // namespace

bool parse_prefix_text(const std::string& s, Prefix* p) { return parse_prefix(s, p); }

Result<RuleSet> parse_rules(std::string_view text, const std::string& file_name) {
  // A UTF-8 byte order mark, as some editors write one, is not part of the
  // first line.
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  return Parser(file_name).run(text);
}

Result<RuleSet> load_rules_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{fmt::format("{}: cannot open rules file", path)};
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_rules(ss.str(), path);
}

}  // namespace xnat
