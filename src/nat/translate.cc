#include "nat/translate.h"

#include "packet/checksum.h"

namespace xnat {
namespace {


struct Deltas {
  uint16_t ip;
  uint16_t l4;
};

// Deltas for rewriting a packet with tuple `from` into tuple `to`.
Deltas deltas_for(const Tuple& from, const Tuple& to) {
  const uint32_t ip = csum_delta32(from.src, to.src) + csum_delta32(from.dst, to.dst);
  uint32_t l4 = 0;
  if (from.has_ports()) {
    // The pseudo-header carries the addresses, so the IP part is in the L4 sum too.
    l4 = ip + csum_delta16(from.sport, to.sport) + csum_delta16(from.dport, to.dport);
  } else if (from.proto == kProtoIcmp) {
    l4 = csum_delta16(from.sport, to.sport);  // identifier; ICMP has no pseudo-header
  }
  return {csum_fold(ip), csum_fold(l4)};
}

// Rewrites IPv4 src/dst and the transport ports at `l3`/`l4` from `from` to
// `to`. `l4_avail` bounds what may be touched (embedded datagrams are cut).
void rewrite_at(uint8_t* frame, uint16_t l3, uint16_t l4, size_t l4_avail, const Tuple& from,
                const Tuple& to, Deltas d) {
  auto* ip = reinterpret_cast<Ipv4Hdr*>(frame + l3);
  ip->saddr.raw = to.src;
  ip->daddr.raw = to.dst;
  ip->check = csum_apply(ip->check, d.ip);
  uint8_t* th = frame + l4;
  switch (from.proto) {
    case kProtoTcp:
      if (l4_avail >= 4) {
        store16(th, to.sport);
        store16(th + 2, to.dport);
      }
      if (l4_avail >= 18) store16(th + 16, csum_apply(load16(th + 16), d.l4));
      break;
    case kProtoUdp:
      if (l4_avail >= 4) {
        store16(th, to.sport);
        store16(th + 2, to.dport);
      }
      if (l4_avail >= 8) store16(th + 6, csum_apply_udp(load16(th + 6), d.l4));
      break;
    case kProtoIcmp:
      if (l4_avail >= 6) store16(th + 4, to.sport);
      if (l4_avail >= 4) store16(th + 2, csum_apply(load16(th + 2), d.l4));
      break;
    default:
      break;
  }
}

void recompute_icmp_checksum(uint8_t* frame, const ParsedPacket& p) {
  uint8_t* icmp = frame + p.l4;
  store16(icmp + 2, 0);
  store16(icmp + 2, csum_finish(csum_partial(icmp, p.l4_len)));
}

uint32_t map_prefix(uint32_t raw, const Prefix& to) {
  const uint32_t h = __builtin_bswap32(raw);
  return __builtin_bswap32((h & ~to.mask()) | to.addr);
}

}  // namespace

void flow_compute_deltas(Flow& f) {
  for (int d = 0; d < 2; ++d) {
    Deltas x = deltas_for(f.tuple[d], flow_output_tuple(f, d));
    f.ip_delta[d] = x.ip;
    f.l4_delta[d] = x.l4;
  }
}

void rewrite_flow_packet_other(uint8_t* frame, const ParsedPacket& p, const Flow& f, int d) {
  rewrite_at(frame, p.l3, p.l4, p.l4_len, f.tuple[d], flow_output_tuple(f, d),
             Deltas{f.ip_delta[d], f.l4_delta[d]});
}

void rewrite_icmp_error(uint8_t* frame, ParsedPacket& p, const Flow& f, int d) {
  // The embedded datagram travelled in direction 1-d and was translated on its
  // way; put back what its sender wrote: the original tuple of that direction.
  const Tuple& restored = f.tuple[1 - d];
  rewrite_at(frame, p.inner_l3, p.inner_l4, p.inner_l4_avail, p.inner, restored,
             deltas_for(p.inner, restored));
  p.inner = restored;

  // Outer header: rewritten as direction d rewrites its packets' addresses.
  const Tuple out = flow_output_tuple(f, d);
  auto* ip = reinterpret_cast<Ipv4Hdr*>(frame + p.l3);
  uint32_t new_src = ip->saddr.raw, new_dst = ip->daddr.raw;
  if (f.tuple[d].dst != out.dst) new_dst = out.dst;
  if (f.tuple[d].src != out.src) new_src = out.src;
  const uint32_t delta = csum_delta32(ip->saddr.raw, new_src) + csum_delta32(ip->daddr.raw, new_dst);
  ip->saddr.raw = new_src;
  ip->daddr.raw = new_dst;
  ip->check = csum_apply(ip->check, csum_fold(delta));
  p.tuple.src = new_src;
  p.tuple.dst = new_dst;
  recompute_icmp_checksum(frame, p);
}

void rewrite_stateless(uint8_t* frame, ParsedPacket& p, bool src, const Prefix& to) {
  Tuple from = p.tuple, dest = p.tuple;
  (src ? dest.src : dest.dst) = map_prefix(src ? from.src : from.dst, to);
  Deltas d = deltas_for(from, dest);
  if (from.proto == kProtoIcmp) d.l4 = 0;  // identifiers are not stateless-mapped
  rewrite_at(frame, p.l3, p.l4, p.l4_len, from, dest, d);
  p.tuple = dest;
  if (p.icmp_error) {
    // The embedded datagram went the other way: its opposite address is ours.
    Tuple in_to = p.inner;
    (src ? in_to.dst : in_to.src) = map_prefix(src ? p.inner.dst : p.inner.src, to);
    Deltas di = deltas_for(p.inner, in_to);
    if (p.inner.proto == kProtoIcmp) di.l4 = 0;
    rewrite_at(frame, p.inner_l3, p.inner_l4, p.inner_l4_avail, p.inner, in_to, di);
    p.inner = in_to;
    recompute_icmp_checksum(frame, p);
  }
}

}  // namespace xnat
