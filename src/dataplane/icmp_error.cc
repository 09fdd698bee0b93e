#include "dataplane/icmp_error.h"

#include <algorithm>
#include <cstring>

#include "packet/checksum.h"

namespace xnat {

namespace {
constexpr uint32_t kHdrs = sizeof(Ipv4Hdr) + sizeof(IcmpHdr);
}  // namespace

void put_ipv4_header(Ipv4Hdr* ip, uint16_t tot_len, uint8_t tos, uint16_t frag_off, uint8_t proto, uint32_t src,
                     uint32_t dst) {
  ip->ver_ihl = 0x45;
  ip->tos = tos;
  ip->tot_len.set(tot_len);
  ip->id.set(0);
  ip->frag_off.set(frag_off);
  ip->ttl = 64;
  ip->proto = proto;
  ip->check = 0;
  ip->saddr.raw = src;
  ip->daddr.raw = dst;
  ip->check = csum_finish(csum_partial(ip, sizeof(Ipv4Hdr)));
}

uint32_t icmp_error_quote(const uint8_t* frame, uint32_t capacity, uint32_t l3, uint32_t ip_end) {
  if (capacity < l3 + kHdrs) return 0;
  const uint32_t quote = std::min({ip_end - l3, 576 - kHdrs, capacity - l3 - kHdrs});
  const uint32_t min_quote = reinterpret_cast<const Ipv4Hdr*>(frame + l3)->header_len() + 8;
  return quote < min_quote ? 0 : quote;
}

uint32_t build_icmp_error(uint8_t* frame, uint32_t l3, uint32_t quote, uint32_t src, uint32_t dst,
                          const MacAddr& src_mac, uint8_t type, uint8_t code, uint32_t rest) {
  uint8_t* at = frame + l3;
  std::memmove(at + kHdrs, at, quote);
  // TOS IPTOS_PREC_INTERNETCONTROL, as Linux sends its ICMP errors.
  put_ipv4_header(reinterpret_cast<Ipv4Hdr*>(at), static_cast<uint16_t>(kHdrs + quote), 0xC0, 0, kProtoIcmp, src, dst);
  auto* icmp = reinterpret_cast<IcmpHdr*>(at + sizeof(Ipv4Hdr));
  icmp->type = type;
  icmp->code = code;
  icmp->check = 0;
  icmp->id.set(static_cast<uint16_t>(rest >> 16));
  icmp->seq.set(static_cast<uint16_t>(rest));
  icmp->check = csum_finish(csum_partial(icmp, sizeof(IcmpHdr) + quote));
  auto* eth = reinterpret_cast<EthHdr*>(frame);
  eth->dst = eth->src;
  eth->src = src_mac;
  return l3 + kHdrs + quote;
}

}  // namespace xnat
