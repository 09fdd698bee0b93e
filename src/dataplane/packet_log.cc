// -j LOG: a line per packet in the kernel's format (nf_log_syslog's
// dump_ipv4_packet), written into the engine's LogRing without allocating.
#include <fmt/format.h>

#include <algorithm>
#include <string_view>

#include "dataplane/engine.h"

namespace xnat {
namespace {

// Appends to a fixed buffer; what does not fit is cut.
struct LineWriter {
  char* buf;
  size_t cap, len = 0;
  template <typename... Args>
  void put(fmt::format_string<Args...> f, Args&&... args) {
    if (len >= cap) return;
    const auto r = fmt::format_to_n(buf + len, cap - len, f, std::forward<Args>(args)...);
    len = std::min(cap, len + r.size);
  }
  void ip(const uint8_t* a) { put("{}.{}.{}.{}", a[0], a[1], a[2], a[3]); }
  void hex(const uint8_t* b, size_t n, char sep) {
    for (size_t i = 0; i < n; ++i) {
      if (i && sep) put("{}", sep);
      put("{:02x}", b[i]);
    }
  }
};

uint16_t be16(const uint8_t* b) { return static_cast<uint16_t>(b[0] << 8 | b[1]); }
uint32_t be32(const uint8_t* b) { return uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3]; }

}  // namespace

void Engine::log(const Rule& r, const RulePacket& p) {
  LogLine* line = log_.slot();
  if (!line || !p.frame) {
    counters_.inc(Counter::log_lines_lost);
    return;
  }
  const Target& t = r.target;
  LineWriter w{line->text, sizeof line->text};
  auto ifname = [&](int i) -> std::string_view {
    if (i == kHostPort) return "xnat-host";
    return i >= 0 && static_cast<size_t>(i) < cfg_.fib.interface_count() ? std::string_view(cfg_.fib.interface(i).name)
                                                                         : std::string_view();
  };
  w.put("{}IN={} OUT={} ", t.log_prefix, ifname(p.in_if), ifname(p.out_if));
  const uint8_t* eth = p.frame;
  if (p.in_if >= 0) {
    if (t.log_flags & kLogMacDecode) {
      w.put("MACSRC=");
      w.hex(eth + 6, 6, ':');
      w.put(" MACDST=");
      w.hex(eth, 6, ':');
      w.put(" MACPROTO={:04x} ", be16(eth + 12));
    } else {
      w.put("MAC=");
      w.hex(eth, 14, ':');
      w.put(" ");
    }
  }
  const uint8_t* ip = p.frame + p.l3;
  const unsigned ihl = (ip[0] & 0x0F) * 4u;
  const uint16_t frag = be16(ip + 6);
  w.put("SRC=");
  w.ip(ip + 12);
  w.put(" DST=");
  w.ip(ip + 16);
  w.put(" LEN={} TOS=0x{:02X} PREC=0x{:02X} TTL={} ID={} ", be16(ip + 2), ip[1] & 0x1E, ip[1] & 0xE0,
        static_cast<uint8_t>(ip[8] - p.ttl_dec), be16(ip + 4));
  if (frag & 0x8000) w.put("CE ");
  if (frag & 0x4000) w.put("DF ");
  if (frag & 0x2000) w.put("MF ");
  if (frag & 0x1FFF) w.put("FRAG:{} ", frag & 0x1FFF);
  if ((t.log_flags & kLogIpOpt) && ihl > 20) {
    w.put("OPT (");
    w.hex(ip + 20, ihl - 20, 0);
    w.put(") ");
  }
  const uint8_t* l4 = ip + ihl;
  const size_t l4_len = be16(ip + 2) > ihl ? be16(ip + 2) - ihl : 0;
  switch (ip[9]) {
    case kProtoTcp:
      w.put("PROTO=TCP ");
      if (frag & 0x1FFF) break;
      if (l4_len < 20) {
        w.put("INCOMPLETE [{} bytes] ", l4_len);
        break;
      }
      w.put("SPT={} DPT={} ", be16(l4), be16(l4 + 2));
      if (t.log_flags & kLogTcpSeq) w.put("SEQ={} ACK={} ", be32(l4 + 4), be32(l4 + 8));
      w.put("WINDOW={} RES=0x{:02x} ", be16(l4 + 14), (l4[12] & 0x0E) >> 1);
      for (const auto& [bit, name] : {std::pair{0x80, "CWR"}, {0x40, "ECE"}, {0x20, "URG"}, {0x10, "ACK"},
                                      {0x08, "PSH"}, {0x04, "RST"}, {0x02, "SYN"}, {0x01, "FIN"}})
        if (l4[13] & bit) w.put("{} ", name);
      w.put("URGP={} ", be16(l4 + 18));
      if ((t.log_flags & kLogTcpOpt) && (l4[12] >> 4) * 4u > 20 && (l4[12] >> 4) * 4u <= l4_len) {
        w.put("OPT (");
        w.hex(l4 + 20, (l4[12] >> 4) * 4u - 20, 0);
        w.put(") ");
      }
      break;
    case kProtoUdp:
      w.put("PROTO=UDP ");
      if (frag & 0x1FFF) break;
      if (l4_len < 8) {
        w.put("INCOMPLETE [{} bytes] ", l4_len);
        break;
      }
      w.put("SPT={} DPT={} LEN={} ", be16(l4), be16(l4 + 2), be16(l4 + 4));
      break;
    case kProtoIcmp:
      w.put("PROTO=ICMP ");
      if (frag & 0x1FFF) break;
      if (l4_len < 4) {
        w.put("INCOMPLETE [{} bytes] ", l4_len);
        break;
      }
      w.put("TYPE={} CODE={} ", l4[0], l4[1]);
      if ((l4[0] == 0 || l4[0] == 8) && l4_len >= 8) w.put("ID={} SEQ={} ", be16(l4 + 4), be16(l4 + 6));
      break;
    default:
      w.put("PROTO={} ", ip[9]);
  }
  if (p.mark) w.put("MARK=0x{:x} ", p.mark);
  // The kernel's line ends in the space after its last field.
  line->len = static_cast<uint16_t>(w.len);
  line->level = t.log_level;
  log_.publish();
  counters_.inc(Counter::logged);
}

}  // namespace xnat
