// Rewriting packets: a tracked flow's translation with precomputed checksum
// deltas (RFC 1624), ICMP errors about a tracked flow (RFC 5508), and the
// stateless prefix mappings of RAWSNAT/RAWDNAT.
#pragma once

#include <cstdint>

#include "conntrack/flow.h"
#include "nat/rules.h"
#include "packet/parse.h"

namespace xnat {

// A packet matching f.tuple[d] leaves as invert(f.tuple[1 - d]).
inline Tuple flow_output_tuple(const Flow& f, int d) { return invert(f.tuple[1 - d]); }

// Computes ip_delta/l4_delta for both directions from the tuples.
void flow_compute_deltas(Flow& f);
// Whether direction d rewrites anything at all.
inline bool flow_translates(const Flow& f) { return f.status & (kStatusSrcNat | kStatusDstNat); }

// Rewrites the addresses and ports (ICMP: identifier) of a packet travelling in
// direction d of the flow, adjusting checksums incrementally.
void rewrite_flow_packet(uint8_t* frame, const ParsedPacket& p, const Flow& f, int d);

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
void decrement_ttl(uint8_t* frame, const ParsedPacket& p);

}  // namespace xnat
