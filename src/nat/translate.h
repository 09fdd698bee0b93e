// Rewriting packets: a tracked flow's translation with precomputed checksum
// deltas (RFC 1624), ICMP errors about a tracked flow (RFC 5508), and the
// stateless prefix mappings of RAWSNAT/RAWDNAT.
#pragma once

#include <cstdint>

#include "conntrack/flow.h"
#include "nat/rules.h"
#include "packet/checksum.h"
#include "packet/headers.h"
#include "packet/parse.h"

namespace xnat {

// A packet matching f.tuple[d] leaves as invert(f.tuple[1 - d]).
inline Tuple flow_output_tuple(const Flow& f, int d) { return invert(f.tuple[1 - d]); }

// Computes ip_delta/l4_delta for both directions from the tuples.
void flow_compute_deltas(Flow& f);
// Whether direction d rewrites anything at all.
inline bool flow_translates(const Flow& f) { return f.status & (kStatusSrcNat | kStatusDstNat); }

// Rewrites the addresses and ports (ICMP: identifier) of a packet travelling in
// direction d of the flow, adjusting checksums incrementally. TCP and UDP, the
// per-packet case, inline; other protocols through rewrite_flow_packet_other.
void rewrite_flow_packet_other(uint8_t* frame, const ParsedPacket& p, const Flow& f, int d);
[[gnu::always_inline]] inline void rewrite_flow_packet(uint8_t* frame, const ParsedPacket& p, const Flow& f, int d) {
  const uint8_t proto = f.tuple[d].proto;
  if (proto != kProtoTcp && proto != kProtoUdp) [[unlikely]]
    return rewrite_flow_packet_other(frame, p, f, d);
  const Tuple& r = f.tuple[1 - d];  // the packet leaves as invert(r)
  auto* ip = reinterpret_cast<Ipv4Hdr*>(frame + p.l3);
  ip->saddr.raw = r.dst;
  ip->daddr.raw = r.src;
  ip->check = csum_apply(ip->check, f.ip_delta[d]);
  uint8_t* th = frame + p.l4;
  if (p.l4_len >= 4) {
    store16(th, r.dport);
    store16(th + 2, r.sport);
  }
  if (proto == kProtoTcp) {
    if (p.l4_len >= 18) store16(th + 16, csum_apply(load16(th + 16), f.l4_delta[d]));
  } else if (p.l4_len >= 8) {
    store16(th + 6, csum_apply_udp(load16(th + 6), f.l4_delta[d]));
  }
}

// An ICMP error whose embedded datagram belongs to flow f, arriving in
// direction d (the direction opposite to the embedded datagram's). Restores the
// embedded datagram to what its sender sent, rewrites the outer addresses as
// the flow's direction d does, and recomputes the ICMP checksum (RFC 5508 s.3).
void rewrite_icmp_error(uint8_t* frame, ParsedPacket& p, const Flow& f, int d);

// RAWSNAT (src = true) / RAWDNAT: maps the address into the prefix, keeping the
// host bits, and fixes checksums. For an ICMP error the embedded datagram's
// opposite address is mapped too, so the error stays consistent.
void rewrite_stateless(uint8_t* frame, ParsedPacket& p, bool src, const Prefix& to);

// TTL - 1 with the header checksum adjusted; the caller checked TTL > 1.
inline void decrement_ttl(uint8_t* frame, const ParsedPacket& p) {
  auto* ip = reinterpret_cast<Ipv4Hdr*>(frame + p.l3);
  ip->ttl = static_cast<uint8_t>(ip->ttl - 1);
  ip->check = csum_ttl_decremented(ip->check);
}

}  // namespace xnat
