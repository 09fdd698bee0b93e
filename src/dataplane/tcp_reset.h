// The TCP reset REJECT --reject-with tcp-reset sends, as the kernel's
// nf_send_reset builds it: to the segment's source, from its destination,
// acknowledging what the segment carried, or with its ACK number as sequence.
#pragma once

#include <cstdint>

#include "packet/headers.h"
#include "packet/parse.h"

namespace xnat {

// Whether a segment gets a reset: not a reset itself, not a later fragment.
inline bool tcp_reset_due(const ParsedPacket& p) {
  return p.tuple.proto == kProtoTcp && !(p.tcp_flags & kTcpRst) && p.frag != FragKind::kLater;
}

// Replaces the segment at frame + p.l3 (as received) with the reset, its
// Ethernet addresses turned back toward the previous hop from `src_mac`.
// Returns the new frame length; the frame needs l3 + 40 bytes.
uint32_t build_tcp_reset(uint8_t* frame, const ParsedPacket& p, const MacAddr& src_mac);

}  // namespace xnat
