#include "nat/rules_syntax.h"

#include <cstdio>
#include <cstring>
#include <span>
#include <sstream>
#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include "packet/tuple.h"

namespace xnat::syntax {


// Splits a line as iptables-save quotes it: whitespace separates, double
// quotes group, backslash escapes the next character inside quotes.
std::optional<std::vector<std::string>> tokenize(std::string_view line, ParseError* err) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    if (i >= line.size()) break;
    std::string tok;
    bool quoted = false;
    while (i < line.size() && (quoted || (line[i] != ' ' && line[i] != '\t' && line[i] != '\r'))) {
      char c = line[i++];
      if (c == '"') {
        quoted = !quoted;
      } else if (c == '\\' && quoted && i < line.size()) {
        tok += line[i++];
      } else {
        tok += c;
      }
    }
    if (quoted) {
      *err = {tok, "unterminated double quote"};
      return std::nullopt;
    }
    out.push_back(std::move(tok));
  }
  return out;
}

bool parse_uint(std::string_view s, uint64_t max, uint64_t* v) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && p == s.data() + s.size() && *v <= max;
}

// A comma-separated list of conntrack states (or, status, statuses) as
// libxt_conntrack prints them.
bool parse_ct_bits(const std::string& s, bool status, uint8_t* bits) {
  static constexpr std::pair<std::string_view, uint8_t> kStates[] = {
      {"INVALID", kCtInvalid}, {"ESTABLISHED", kCtEstablished}, {"RELATED", kCtRelated}, {"NEW", kCtNew},
      {"UNTRACKED", kCtUntracked}, {"SNAT", kCtSnat}, {"DNAT", kCtDnat}};
  static constexpr std::pair<std::string_view, uint8_t> kStatuses[] = {
      {"NONE", 0}, {"EXPECTED", kCtExpected}, {"SEEN_REPLY", kCtSeenReply}, {"ASSURED", kCtAssured},
      {"CONFIRMED", kCtConfirmed}};
  *bits = 0;
  std::stringstream ss(s);
  std::string item;
  bool any = false;
  while (std::getline(ss, item, ',')) {
    bool known = false;
    using Names = std::span<const std::pair<std::string_view, uint8_t>>;
    for (const auto& [name, bit] : status ? Names(kStatuses) : Names(kStates))
      if (item == name) *bits |= bit, known = true;
    if (!known) return false;
    any = true;
  }
  return any;
}

// --limit N[/unit]: the interval between packets in 1/10000 s, as
// libxt_limit keeps it (XT_LIMIT_SCALE); the unit may be abbreviated.
bool parse_limit_rate(const std::string& s, uint32_t* avg) {
  const size_t slash = s.find('/');
  uint64_t rate;
  if (!parse_uint(s.substr(0, slash), 1000000, &rate) || rate == 0) return false;
  uint64_t mult = 1;
  if (slash != std::string::npos) {
    const std::string unit = s.substr(slash + 1);
    auto is = [&](std::string_view full) { return !unit.empty() && full.starts_with(unit); };
    if (is("second")) mult = 1;
    else if (is("minute")) mult = 60;
    else if (is("hour")) mult = 3600;
    else if (is("day")) mult = 86400;
    else return false;
  }
  if (rate > 10000 * mult) return false;  // "Rate too fast"
  *avg = static_cast<uint32_t>(10000 * mult / rate);
  return true;
}

bool parse_mac(const std::string& s, MacAddr* mac) {
  unsigned b[6];
  char tail;
  if (std::sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
    return false;
  for (int k = 0; k < 6; ++k) mac->b[k] = static_cast<uint8_t>(b[k]);
  return true;
}

bool parse_reject_with(const std::string& s, RejectWith* w) {
  // The names iptables-save prints, and the short forms libxt_REJECT accepts.
  static constexpr std::pair<std::string_view, RejectWith> kNames[] = {
      {"icmp-net-unreachable", RejectWith::kNetUnreachable},   {"net-unreach", RejectWith::kNetUnreachable},
      {"icmp-host-unreachable", RejectWith::kHostUnreachable}, {"host-unreach", RejectWith::kHostUnreachable},
      {"icmp-port-unreachable", RejectWith::kPortUnreachable}, {"port-unreach", RejectWith::kPortUnreachable},
      {"icmp-proto-unreachable", RejectWith::kProtoUnreachable}, {"proto-unreach", RejectWith::kProtoUnreachable},
      {"icmp-net-prohibited", RejectWith::kNetProhibited},     {"net-prohib", RejectWith::kNetProhibited},
      {"icmp-host-prohibited", RejectWith::kHostProhibited},   {"host-prohib", RejectWith::kHostProhibited},
      {"icmp-admin-prohibited", RejectWith::kAdminProhibited}, {"admin-prohib", RejectWith::kAdminProhibited},
      {"tcp-reset", RejectWith::kTcpReset},                    {"tcp-rst", RejectWith::kTcpReset}};
  for (const auto& [name, v] : kNames)
    if (s == name) {
      *w = v;
      return true;
    }
  return false;
}

// VALUE[/MASK] as iptables-save writes marks: decimal or 0x hex; MASK
// defaults to all ones.
bool parse_value_mask(const std::string& s, uint32_t* value, uint32_t* mask) {
  auto num = [](std::string_view t, uint32_t* out) {
    int base = 10;
    if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
      t.remove_prefix(2);
      base = 16;
    }
    if (t.empty()) return false;
    uint64_t v;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v, base);
    if (ec != std::errc() || p != t.data() + t.size() || v > 0xFFFFFFFFu) return false;
    *out = static_cast<uint32_t>(v);
    return true;
  };
  const size_t slash = s.find('/');
  *mask = 0xFFFFFFFF;
  if (!num(std::string_view(s).substr(0, slash), value)) return false;
  return slash == std::string::npos || num(std::string_view(s).substr(slash + 1), mask);
}

// A comma-separated TCP flag list as iptables writes it (SYN,RST,ACK,FIN;
// ALL; NONE).
bool parse_tcp_flags(const std::string& s, uint8_t* out) {
  static constexpr std::pair<std::string_view, uint8_t> kFlags[] = {
      {"FIN", kTcpFin}, {"SYN", kTcpSyn}, {"RST", kTcpRst}, {"PSH", kTcpPsh}, {"ACK", kTcpAck},
      {"URG", kTcpUrg}, {"ECE", kTcpEce}, {"CWR", kTcpCwr}, {"ALL", 0xFF},     {"NONE", 0}};
  uint8_t v = 0;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = std::min(s.find(',', start), s.size());
    const std::string_view name = std::string_view(s).substr(start, comma - start);
    bool known = false;
    for (const auto& [n, bit] : kFlags)
      if (n == name) v |= bit, known = true;
    if (!known) return false;
    start = comma + 1;
  }
  *out = v;
  return true;
}

bool parse_addr_host(const std::string& s, uint32_t* host) {
  uint32_t raw;
  if (!parse_ipv4(s, &raw)) return false;
  *host = __builtin_bswap32(raw);
  return true;
}

// ADDR, ADDR/LEN or ADDR/DOTTED-MASK (iptables-save prints /32 forms).
bool parse_prefix(const std::string& s, Prefix* p) {
  size_t slash = s.find('/');
  uint32_t a;
  if (!parse_addr_host(s.substr(0, slash), &a)) return false;
  uint8_t len = 32;
  if (slash != std::string::npos) {
    std::string m = s.substr(slash + 1);
    uint64_t n;
    if (parse_uint(m, 32, &n)) {
      len = static_cast<uint8_t>(n);
    } else {
      uint32_t mask;
      if (!parse_addr_host(m, &mask)) return false;
      int ones = __builtin_popcount(mask);
      if (ones != 32 && mask != (ones == 0 ? 0u : ~uint32_t{0} << (32 - ones))) return false;
      len = static_cast<uint8_t>(ones);
    }
  }
  p->len = len;
  p->addr = a & p->mask();
  return true;
}

bool parse_port(std::string_view s, uint16_t* p) {
  uint64_t v;
  if (!parse_uint(s, 65535, &v)) return false;
  *p = static_cast<uint16_t>(v);
  return true;
}

// P or P:P (iptables), also P-P in NAT target ranges. "P:" and ":P" are open ranges.
bool parse_port_range(std::string_view s, PortRange* r, char sep) {
  size_t c = s.find(sep);
  if (c == std::string_view::npos) {
    if (!parse_port(s, &r->lo)) return false;
    r->hi = r->lo;
    return true;
  }
  std::string_view a = s.substr(0, c), b = s.substr(c + 1);
  r->lo = 0;
  r->hi = 65535;
  if (!a.empty() && !parse_port(a, &r->lo)) return false;
  if (!b.empty() && !parse_port(b, &r->hi)) return false;
  return r->lo <= r->hi;
}

bool parse_proto(const std::string& s, uint8_t* proto) {
  if (s == "tcp") *proto = 6;
  else if (s == "udp") *proto = 17;
  else if (s == "icmp") *proto = 1;
  else if (s == "all") *proto = 0;
  else if (s == "gre") *proto = 47;
  else if (s == "esp") *proto = 50;
  else if (s == "ah") *proto = 51;
  else if (s == "sctp") *proto = 132;
  else if (s == "udplite") *proto = 136;
  else {
    uint64_t v;
    if (!parse_uint(s, 255, &v)) return false;
    *proto = static_cast<uint8_t>(v);
  }
  return true;
}

bool parse_addrtypes(const std::string& s, uint16_t* bits) {
  *bits = 0;
  std::stringstream ss(s);
  std::string t;
  while (std::getline(ss, t, ',')) {
    if (t == "UNSPEC") *bits |= kAddrUnspec;
    else if (t == "UNICAST") *bits |= kAddrUnicast;
    else if (t == "LOCAL") *bits |= kAddrLocal;
    else if (t == "BROADCAST") *bits |= kAddrBroadcast;
    else if (t == "ANYCAST") *bits |= kAddrAnycast;
    else if (t == "MULTICAST") *bits |= kAddrMulticast;
    else if (t == "BLACKHOLE") *bits |= kAddrBlackhole;
    else if (t == "UNREACHABLE") *bits |= kAddrUnreachable;
    else if (t == "PROHIBIT") *bits |= kAddrProhibit;
    else return false;
  }
  return *bits != 0;
}

bool parse_icmp_type(const std::string& s, uint8_t* type, int* code) {
  static const struct {
    const char* name;
    int type, code;
  } kNames[] = {
      {"any", -1, -1},
      {"echo-reply", 0, -1},           {"pong", 0, -1},
      {"destination-unreachable", 3, -1},
      {"network-unreachable", 3, 0},   {"host-unreachable", 3, 1},
      {"protocol-unreachable", 3, 2},  {"port-unreachable", 3, 3},
      {"fragmentation-needed", 3, 4},  {"source-quench", 4, -1},
      {"redirect", 5, -1},             {"echo-request", 8, -1},
      {"ping", 8, -1},                 {"time-exceeded", 11, -1},
      {"ttl-zero-during-transit", 11, 0}, {"ttl-zero-during-reassembly", 11, 1},
      {"parameter-problem", 12, -1},   {"timestamp-request", 13, -1},
      {"timestamp-reply", 14, -1},     {"address-mask-request", 17, -1},
      {"address-mask-reply", 18, -1},
  };
  for (const auto& n : kNames)
    if (s == n.name) {
      if (n.type < 0) return false;  // "any" is not a single type; xnat does not support it
      *type = static_cast<uint8_t>(n.type);
      *code = n.code;
      return true;
    }
  size_t slash = s.find('/');
  uint64_t t, c;
  if (!parse_uint(s.substr(0, slash), 255, &t)) return false;
  *type = static_cast<uint8_t>(t);
  *code = -1;
  if (slash != std::string::npos) {
    if (!parse_uint(s.substr(slash + 1), 255, &c)) return false;
    *code = static_cast<int>(c);
  }
  return true;
}

// IP[-IP][:PORT[-PORT]] as SNAT/DNAT print it; the address part may be empty
// (":PORT") for DNAT/SNAT that keep the address.
bool parse_nat_range(const std::string& s, NatRange* r) {
  size_t colon = s.find(':');
  std::string ips = s.substr(0, colon);
  if (!ips.empty()) {
    size_t dash = ips.find('-');
    if (!parse_addr_host(ips.substr(0, dash), &r->min_ip)) return false;
    r->max_ip = r->min_ip;
    if (dash != std::string::npos && !parse_addr_host(ips.substr(dash + 1), &r->max_ip))
      return false;
    if (r->max_ip < r->min_ip) return false;
    r->map_ips = true;
  }
  if (colon != std::string::npos) {
    PortRange pr;
    if (!parse_port_range(std::string_view(s).substr(colon + 1), &pr, '-')) return false;
    r->proto_specified = true;
    r->min_port = pr.lo;
    r->max_port = pr.hi;
  }
  return r->map_ips || r->proto_specified;
}


}  // namespace xnat::syntax
