// -j TCPMSS: lowers a SYN's MSS option as xt_TCPMSS does
// (tcpmss_mangle_packet), for PPPoE and tunnel gateways whose path MTU is
// below what the ends assume.
#include <cstring>

#include "dataplane/engine.h"
#include "packet/checksum.h"
#include "packet/headers.h"

namespace xnat {

void Engine::tcpmss(const Rule& r, const RulePacket& rp) {
  if (!cur_pkt_ || !cur_parsed_) return;
  Packet& pkt = *cur_pkt_;
  ParsedPacket& p = *cur_parsed_;
  if (p.tuple.proto != kProtoTcp || p.frag != FragKind::kNone || p.icmp_error) return;
  uint8_t* frame = pkt.data;
  auto* ip = reinterpret_cast<Ipv4Hdr*>(frame + p.l3);
  auto* th = reinterpret_cast<TcpHdr*>(frame + p.l4);
  const unsigned hlen = th->header_len();
  if (hlen < sizeof(TcpHdr) || p.l4_len < hlen) return;
  uint16_t newmss = r.target.mss;
  if (newmss == Target::kClampToPmtu) {
    // The smaller of the two paths' MTUs, less the IPv4 and TCP headers.
    uint32_t mtu = rp.out_if >= 0 ? cfg_.fib.interface(rp.out_if).mtu : 1500;
    if (pkt.in_if >= 0 && static_cast<size_t>(pkt.in_if) < cfg_.fib.interface_count())
      mtu = std::min(mtu, cfg_.fib.interface(pkt.in_if).mtu);
    if (mtu <= 40) return;
    newmss = static_cast<uint16_t>(mtu - 40);
  }
  const bool partial = pkt.l4_csum == L4Csum::kPartial;  // the field holds the pseudo-header sum only
  uint8_t* opt = frame + p.l4 + sizeof(TcpHdr);
  const unsigned olen = hlen - sizeof(TcpHdr);
  for (unsigned i = 0; i < olen;) {
    const uint8_t kind = opt[i];
    if (kind == 0) break;  // end of options
    if (kind == 1) {       // no-op
      ++i;
      continue;
    }
    if (i + 1 >= olen || opt[i + 1] < 2 || i + opt[i + 1] > olen) break;
    if (kind == 2 && opt[i + 1] == 4) {
      const uint16_t oldmss = static_cast<uint16_t>(opt[i + 2] << 8 | opt[i + 3]);
      if (oldmss <= newmss) return;
      opt[i + 2] = static_cast<uint8_t>(newmss >> 8);
      opt[i + 3] = static_cast<uint8_t>(newmss);
      // The checksum is a sum of 16-bit words from the header's start, where
      // the option may sit at either parity: the words the two bytes are in.
      if (!partial) {
        const unsigned at = static_cast<unsigned>(sizeof(TcpHdr)) + i + 2;  // the MSS's offset in the segment
        const uint8_t* seg = frame + p.l4;
        auto word = [](uint8_t hi, uint8_t lo) {
          uint16_t w;
          const uint8_t b[2] = {hi, lo};
          std::memcpy(&w, b, 2);
          return w;
        };
        const uint8_t oh = static_cast<uint8_t>(oldmss >> 8), ol = static_cast<uint8_t>(oldmss);
        const uint8_t nh = static_cast<uint8_t>(newmss >> 8), nl = static_cast<uint8_t>(newmss);
        uint32_t d;
        if (at % 2 == 0) {
          d = csum_delta16(word(oh, ol), word(nh, nl));
        } else {
          const uint8_t before = seg[at - 1], after = at + 2 < p.l4_len ? seg[at + 2] : 0;
          d = csum_delta16(word(before, oh), word(before, nh)) + csum_delta16(word(ol, after), word(nl, after));
        }
        th->check = csum_apply(th->check, csum_fold(d));
      }
      return;
    }
    i += opt[i + 1];
  }
  // No MSS option: one is added, at the default a peer assumes without one
  // (RFC 1122: 536) if that is lower, when the header has room and the
  // segment no payload to move.
  if (p.l4_len > hlen || hlen + 4 > 60 || pkt.capacity < p.ip_end + 4u) return;
  newmss = std::min<uint16_t>(newmss, 536);
  std::memmove(opt + 4, opt, olen);
  opt[0] = 2;
  opt[1] = 4;
  opt[2] = static_cast<uint8_t>(newmss >> 8);
  opt[3] = static_cast<uint8_t>(newmss);
  th->doff_res = static_cast<uint8_t>(((hlen + 4) / 4) << 4 | (th->doff_res & 0x0F));
  const uint16_t tot = static_cast<uint16_t>(ip->tot_len.host() + 4);
  ip->tot_len.set(tot);
  ip->check = 0;
  ip->check = csum_finish(csum_partial(ip, ip->header_len()));
  p.l4_len = static_cast<uint16_t>(p.l4_len + 4);
  p.ip_end = static_cast<uint16_t>(p.ip_end + 4);
  if (pkt.len < p.ip_end) pkt.len = p.ip_end;
  if (!partial) {
    th->check = 0;
    th->check = l4_checksum(ip->saddr.raw, ip->daddr.raw, kProtoTcp, frame + p.l4, p.l4_len);
  }
}

}  // namespace xnat
