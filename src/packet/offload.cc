#include "packet/offload.h"

#include <algorithm>
#include <cstring>

#include "packet/checksum.h"
#include "packet/headers.h"

namespace xnat {

namespace {

// Where the IPv4 header of an Ethernet frame (one VLAN tag at most) starts,
// its fixed part inside the frame; 0 for anything else.
uint32_t ipv4_at(const uint8_t* f, uint32_t len) {
  uint32_t l3 = sizeof(EthHdr);
  if (len < l3 + sizeof(Ipv4Hdr)) return 0;
  uint16_t type = static_cast<uint16_t>(f[12] << 8 | f[13]);
  if (type == kEtherTypeVlan) {
    l3 += sizeof(VlanTag);
    if (len < l3 + sizeof(Ipv4Hdr)) return 0;
    type = static_cast<uint16_t>(f[16] << 8 | f[17]);
  }
  return type == kEtherTypeIpv4 ? l3 : 0;
}

}  // namespace

bool locate_l4_checksum(const uint8_t* f, uint32_t len, L4Field* out) {
  const uint32_t l3 = ipv4_at(f, len);
  if (!l3) return false;
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

size_t fragment_ipv4(const uint8_t* f, uint32_t len, uint32_t mtu, uint8_t* out, uint32_t out_len, SegmentSink emit,
                     void* ctx) {
  const uint32_t l3 = ipv4_at(f, len);
  if (!l3) return 0;
  const auto* ip = reinterpret_cast<const Ipv4Hdr*>(f + l3);
  const uint32_t hlen = ip->header_len();
  const uint32_t tot = ip->tot_len.host();
  if (hlen < sizeof(Ipv4Hdr) || tot < hlen || l3 + tot > len || mtu < hlen + 8 || l3 + mtu > out_len) return 0;
  const uint32_t per = (mtu - hlen) & ~7u;  // payload bytes in each fragment but the last
  const uint16_t flags = ip->frag_off.host();
  const uint32_t base = (flags & 0x1FFF) * 8u;  // a fragment already: its own offset
  const bool more = flags & 0x2000;
  const uint32_t payload = tot - hlen;
  size_t n = 0;
  for (uint32_t off = 0; off < payload; off += per) {
    const uint32_t chunk = std::min(per, payload - off);
    const bool last = off + chunk >= payload;
    std::memcpy(out, f, l3 + hlen);
    std::memcpy(out + l3 + hlen, f + l3 + hlen + off, chunk);
    auto* oip = reinterpret_cast<Ipv4Hdr*>(out + l3);
    if (off) {
      // Later fragments: only options with the copied flag (RFC 791 3.1).
      uint8_t* opt = out + l3 + sizeof(Ipv4Hdr);
      for (uint32_t i = 0; i < hlen - sizeof(Ipv4Hdr);) {
        const uint8_t type = opt[i];
        if (type == 0) break;  // end of options
        if (type == 1) {
          ++i;
          continue;
        }
        const uint32_t olen = i + 1 < hlen - sizeof(Ipv4Hdr) ? opt[i + 1] : 0;
        if (olen < 2 || i + olen > hlen - sizeof(Ipv4Hdr)) break;
        if (!(type & 0x80)) std::memset(opt + i, 1, olen);
        i += olen;
      }
    }
    oip->tot_len.set(static_cast<uint16_t>(hlen + chunk));
    oip->frag_off.set(static_cast<uint16_t>((flags & 0x4000) | ((last && !more) ? 0 : 0x2000) | ((base + off) / 8)));
    oip->check = 0;
    oip->check = csum_finish(csum_partial(oip, hlen));
    ++n;
    if (!emit(ctx, out, l3 + hlen + chunk)) break;
  }
  return n;
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

bool tcp_segment_view(const uint8_t* f, uint32_t len, TcpSegmentView* out) {
  L4Field at;
  if (!locate_l4_checksum(f, len, &at) || at.proto != kProtoTcp || at.l4 - at.l3 != sizeof(Ipv4Hdr)) return false;
  const auto* th = reinterpret_cast<const TcpHdr*>(f + at.l4);
  const uint32_t thl = th->header_len();
  if (thl < sizeof(TcpHdr) || thl >= at.l4_len) return false;  // no payload: nothing to join
  if ((th->flags & ~kTcpPsh) != kTcpAck) return false;
  const auto* ip = reinterpret_cast<const Ipv4Hdr*>(f + at.l3);
  out->l3 = static_cast<uint16_t>(at.l3);
  out->l4 = static_cast<uint16_t>(at.l4);
  out->payload_at = static_cast<uint16_t>(at.l4 + thl);
  out->payload = static_cast<uint16_t>(at.l4_len - thl);
  out->ip_end = static_cast<uint16_t>(at.l4 + at.l4_len);
  out->id = ip->id.host();
  out->seq = th->seq.host();
  out->flags = th->flags;
  return true;
}

void TcpRun::open(uint8_t* frame, const TcpSegmentView& s) {
  first = frame;
  head = s;
  bytes = 0;
  segments = 0;
  closed = false;
  add(s);
}

bool TcpRun::accepts(const uint8_t* f, const TcpSegmentView& s) const {
  if (closed || s.l3 != head.l3 || s.payload_at != head.payload_at || s.payload > head.payload) return false;
  // One IPv4 datagram, and the whole frame within 64 KiB.
  if (uint32_t{head.payload_at} + bytes + s.payload > 0xFFFFu) return false;
  if (s.seq != head.seq + bytes || s.id != static_cast<uint16_t>(head.id + segments)) return false;
  if (std::memcmp(f, first, head.l3) != 0) return false;  // the same link header
  const uint8_t* a = first + head.l3;
  const uint8_t* b = f + s.l3;
  // IPv4: version and length, TOS; flags and offset, TTL, protocol; addresses.
  if (a[0] != b[0] || a[1] != b[1] || std::memcmp(a + 6, b + 6, 4) != 0 || std::memcmp(a + 12, b + 12, 8) != 0)
    return false;
  a = first + head.l4;
  b = f + s.l4;
  // TCP: ports; ack; offset; window; urgent pointer; options. Flags were
  // checked by tcp_segment_view, the sequence number above.
  return std::memcmp(a, b, 4) == 0 && std::memcmp(a + 8, b + 8, 5) == 0 && std::memcmp(a + 14, b + 14, 2) == 0 &&
         std::memcmp(a + 18, b + 18, head.payload_at - head.l4 - 18u) == 0;
}

void TcpRun::add(const TcpSegmentView& s) {
  bytes += s.payload;
  ++segments;
  last_flags = s.flags;
  closed = (s.flags & kTcpPsh) || s.payload < head.payload;
}

void TcpRun::finish() const {
  auto* ip = reinterpret_cast<Ipv4Hdr*>(first + head.l3);
  const uint32_t l4_len = head.payload_at - head.l4 + bytes;
  ip->tot_len.set(static_cast<uint16_t>(sizeof(Ipv4Hdr) + l4_len));
  ip->check = 0;
  ip->check = csum_finish(csum_partial(ip, sizeof(Ipv4Hdr)));
  auto* th = reinterpret_cast<TcpHdr*>(first + head.l4);
  th->flags = static_cast<uint8_t>(th->flags | (last_flags & kTcpPsh));
  th->check = csum_fold(pseudo_sum(ip->saddr.raw, ip->daddr.raw, kProtoTcp, l4_len));
}

}  // namespace xnat
