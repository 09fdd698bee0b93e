#include "dataplane/icmp_error.h"

#include <algorithm>
#include <cstring>

#include "packet/checksum.h"

namespace xnat {

namespace {
constexpr uint32_t kHdrs = sizeof(Ipv4Hdr) + sizeof(IcmpHdr);
}  // namespace

uint32_t icmp_error_quote(const uint8_t* frame, uint32_t capacity, uint32_t l3, uint32_t ip_end) {
  if (capacity < l3 + kHdrs) return 0;
  const uint32_t quote = std::min({ip_end - l3, 576 - kHdrs, capacity - l3 - kHdrs});
  const uint32_t min_quote = reinterpret_cast<const Ipv4Hdr*>(frame + l3)->header_len() + 8;
  return quote < min_quote ? 0 : quote;
}

uint32_t build_icmp_error(uint8_t* frame, uint32_t l3, uint32_t quote, uint32_t src, uint32_t dst,
                          const MacAddr& src_mac, uint8_t type, uint8_t code) {
  uint8_t* at = frame + l3;
  std::memmove(at + kHdrs, at, quote);
  auto* ip = reinterpret_cast<Ipv4Hdr*>(at);
  ip->ver_ihl = 0x45;
  ip->tos = 0xC0;  // IPTOS_PREC_INTERNETCONTROL, as Linux sends its ICMP errors
  ip->tot_len.set(static_cast<uint16_t>(kHdrs + quote));
  ip->id.set(0);
  ip->frag_off.set(0);
  ip->ttl = 64;
  ip->proto = kProtoIcmp;
  ip->check = 0;
  ip->saddr.raw = src;
  ip->daddr.raw = dst;
  ip->check = csum_finish(csum_partial(ip, sizeof(Ipv4Hdr)));
  auto* icmp = reinterpret_cast<IcmpHdr*>(at + sizeof(Ipv4Hdr));
  icmp->type = type;
  icmp->code = code;
  icmp->check = 0;
  icmp->id.set(0);
  icmp->seq.set(0);
  icmp->check = csum_finish(csum_partial(icmp, sizeof(IcmpHdr) + quote));
  auto* eth = reinterpret_cast<EthHdr*>(frame);
  eth->dst = eth->src;
  eth->src = src_mac;
  return l3 + kHdrs + quote;
}

}  // namespace xnat
