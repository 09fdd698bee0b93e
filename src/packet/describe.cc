#include "packet/describe.h"

#include <fmt/format.h>

#include "packet/parse.h"

namespace xnat {

std::string describe_frame(const uint8_t* frame, size_t len) {
  ParsedPacket p;
  const ParseStatus st = parse_frame(frame, len, ParseOptions{.verify_l4_checksum = false}, &p);
  if (st == ParseStatus::kNotIpv4) return fmt::format("non-IPv4 frame, {} bytes", len);
  if (st != ParseStatus::kOk) return fmt::format("malformed frame, {} bytes (parse status {})", len, static_cast<int>(st));
  const auto* ip = reinterpret_cast<const Ipv4Hdr*>(frame + p.l3);
  const Tuple& t = p.tuple;
  std::string s;
  if (t.has_ports()) {
    s = fmt::format("{}:{} > {}:{} {}", ip_to_string(t.src), __builtin_bswap16(t.sport), ip_to_string(t.dst),
                    __builtin_bswap16(t.dport), t.proto == kProtoTcp ? "tcp" : "udp");
    if (t.proto == kProtoTcp) {
      std::string fl;
      if (p.tcp_flags & kTcpSyn) fl += 'S';
      if (p.tcp_flags & kTcpFin) fl += 'F';
      if (p.tcp_flags & kTcpRst) fl += 'R';
      if (p.tcp_flags & kTcpPsh) fl += 'P';
      if (p.tcp_flags & kTcpAck) fl += '.';
      s += " [" + fl + "]";
    }
  } else if (t.proto == kProtoIcmp) {
    s = fmt::format("{} > {} icmp type {} code {}", ip_to_string(t.src), ip_to_string(t.dst), t.icmp_type(), t.icmp_code());
    if (p.icmp_error) {
      s += fmt::format(" quoting {} > {} proto {}", ip_to_string(p.inner.src), ip_to_string(p.inner.dst), p.inner.proto);
      if (p.inner.has_ports()) s += fmt::format(" ports {} > {}", __builtin_bswap16(p.inner.sport), __builtin_bswap16(p.inner.dport));
    } else {
      s += fmt::format(" id {}", __builtin_bswap16(t.sport));
    }
  } else {
    s = fmt::format("{} > {} proto {}", ip_to_string(t.src), ip_to_string(t.dst), t.proto);
  }
  return s + fmt::format(" ttl {}", ip->ttl);
}

}  // namespace xnat
