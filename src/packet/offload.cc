#include "packet/offload.h"

#include <algorithm>
#include <cstring>

#include "packet/checksum.h"
#include "packet/headers.h"

namespace xnat {

bool locate_l4_checksum(const uint8_t* f, uint32_t len, L4Field* out) {
  uint32_t l3 = sizeof(EthHdr);
  if (len < l3 + sizeof(Ipv4Hdr)) return false;
  uint16_t type = static_cast<uint16_t>(f[12] << 8 | f[13]);
  if (type == kEtherTypeVlan) {
    l3 += sizeof(VlanTag);
    if (len < l3 + sizeof(Ipv4Hdr)) return false;
    type = static_cast<uint16_t>(f[16] << 8 | f[17]);
  }
  if (type != kEtherTypeIpv4) return false;
  const auto* ip = reinterpret_cast<const Ipv4Hdr*>(f + l3);
  const uint32_t ihl = ip->header_len(), tot = ip->tot_len.host();
  if (ip->version() != 4 || ihl < sizeof(Ipv4Hdr) || tot < ihl || l3 + tot > len || ip->is_fragment()) return false;
  const uint32_t l4 = l3 + ihl, l4_len = tot - ihl;
  uint32_t field;
  if (ip->proto == kProtoTcp && l4_len >= sizeof(TcpHdr)) field = l4 + offsetof(TcpHdr, check);
  else if (ip->proto == kProtoUdp && l4_len >= sizeof(UdpHdr)) field = l4 + offsetof(UdpHdr, check);
  else return false;
  *out = L4Field{l3, l4, l4_len, field, ip->proto};
  return true;
}

namespace {

uint32_t pseudo_of(const uint8_t* f, const L4Field& at) {
  const auto* ip = reinterpret_cast<const Ipv4Hdr*>(f + at.l3);
  return pseudo_sum(ip->saddr.raw, ip->daddr.raw, at.proto, at.l4_len);
}

}  // namespace

bool finish_l4_checksum(uint8_t* f, uint32_t len) {
  L4Field at;
  if (!locate_l4_checksum(f, len, &at)) return false;
  std::memset(f + at.field, 0, 2);
  uint16_t c = csum_finish(csum_partial(f + at.l4, at.l4_len, pseudo_of(f, at)));
  if (at.proto == kProtoUdp && c == 0) c = 0xFFFF;  // RFC 768
  std::memcpy(f + at.field, &c, 2);
  return true;
}

bool set_partial_l4_checksum(uint8_t* f, uint32_t len) {
  L4Field at;
  if (!locate_l4_checksum(f, len, &at)) return false;
  const uint16_t c = csum_fold(pseudo_of(f, at));
  std::memcpy(f + at.field, &c, 2);
  return true;
}

size_t segment_gso(const uint8_t* f, uint32_t len, uint16_t gso_size, uint8_t* out, uint32_t out_len,
                   SegmentSink emit, void* ctx) {
  L4Field at;
  if (!gso_size || !locate_l4_checksum(f, len, &at)) return 0;
  const auto* ip = reinterpret_cast<const Ipv4Hdr*>(f + at.l3);
  uint32_t l4_hdr = sizeof(UdpHdr);
  if (at.proto == kProtoTcp) {
    l4_hdr = reinterpret_cast<const TcpHdr*>(f + at.l4)->header_len();
    if (l4_hdr < sizeof(TcpHdr) || l4_hdr > at.l4_len) return 0;
  }
  const uint32_t hdrs = at.l4 + l4_hdr;  // link, IPv4 and transport headers
  const uint32_t payload = at.l4_len - l4_hdr;
  if (hdrs + std::min<uint32_t>(gso_size, payload) > out_len) return 0;
  uint16_t id = ip->id.host();
  size_t n = 0;
  for (uint32_t off = 0; off < payload || (payload == 0 && n == 0); off += gso_size) {
    const uint32_t chunk = std::min<uint32_t>(gso_size, payload - off);
    const bool last = off + chunk >= payload;
    std::memcpy(out, f, hdrs);
    std::memcpy(out + hdrs, f + hdrs + off, chunk);
    auto* oip = reinterpret_cast<Ipv4Hdr*>(out + at.l3);
    const uint32_t tot = ip->header_len() + l4_hdr + chunk;
    oip->tot_len.set(static_cast<uint16_t>(tot));
    oip->id.set(id++);
    oip->check = 0;
    oip->check = csum_finish(csum_partial(oip, oip->header_len()));
    if (at.proto == kProtoTcp) {
      auto* th = reinterpret_cast<TcpHdr*>(out + at.l4);
      th->seq.set(reinterpret_cast<const TcpHdr*>(f + at.l4)->seq.host() + off);
      if (!last) th->flags &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
      if (off) th->flags &= static_cast<uint8_t>(~kTcpCwr);
    } else {
      reinterpret_cast<UdpHdr*>(out + at.l4)->len.set(static_cast<uint16_t>(sizeof(UdpHdr) + chunk));
    }
    const uint32_t seg_len = at.l3 + tot;
    finish_l4_checksum(out, seg_len);
    ++n;
    if (!emit(ctx, out, seg_len)) break;
    if (last) break;
  }
  return n;
}

}  // namespace xnat
