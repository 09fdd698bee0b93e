#include "conntrack/listing.h"

#include <fmt/format.h>

#include <iterator>

#include "conntrack/tcp_tracker.h"

namespace xnat {

namespace {
const char* proto_name(uint8_t p) {
  switch (p) {
    case 1: return "icmp";
    case 6: return "tcp";
    case 17: return "udp";
    case 33: return "dccp";
    case 47: return "gre";
    case 58: return "icmpv6";
    case 132: return "sctp";
    case 136: return "udplite";
    default: return "unknown";
  }
}

void append_tuple(std::string& out, const Tuple& t) {
  fmt::format_to(std::back_inserter(out), "src={} dst={} ", ip_to_string(t.src),
                 ip_to_string(t.dst));
  if (t.has_ports()) {
    fmt::format_to(std::back_inserter(out), "sport={} dport={} ", __builtin_bswap16(t.sport),
                   __builtin_bswap16(t.dport));
  } else if (t.proto == kProtoIcmp) {
    fmt::format_to(std::back_inserter(out), "type={} code={} id={} ", t.icmp_type(),
                   t.icmp_code(), __builtin_bswap16(t.sport));
  }
}
}  // namespace

namespace {
std::string format(const Flow& f, uint64_t now_ms, uint32_t mark, bool l3) {
  std::string out;
  const uint8_t proto = f.tuple[0].proto;
  const uint64_t remaining = f.expires_ms > now_ms ? (f.expires_ms - now_ms) / 1000 : 0;
  if (l3) out += "ipv4     2 ";
  fmt::format_to(std::back_inserter(out), "{:<8} {} {} ", proto_name(proto), proto, remaining);
  if (proto == kProtoTcp) fmt::format_to(std::back_inserter(out), "{} ", tcp_state_name(f.tcp_state));
  append_tuple(out, f.tuple[0]);
  if (!(f.status & kStatusSeenReply)) out += "[UNREPLIED] ";
  append_tuple(out, f.tuple[1]);
  if (f.status & kStatusAssured) out += "[ASSURED] ";
  fmt::format_to(std::back_inserter(out), "mark={} use=1", mark);
  return out;
}
}  // namespace

std::string format_conntrack_extended(const Flow& f, uint64_t now_ms, uint32_t mark) {
  return format(f, now_ms, mark, true);
}

std::string format_conntrack_default(const Flow& f, uint64_t now_ms, uint32_t mark) {
  return format(f, now_ms, mark, false);
}

}  // namespace xnat
