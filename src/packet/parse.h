// Frame parser: Ethernet (one optional 802.1Q tag) → IPv4 (with options) →
// TCP / UDP / ICMP (with the datagram embedded in ICMP errors).
//
// Every header access is bounds-checked against the frame first; a frame that
// fails a check gets a ParseStatus naming why, which the engine counts as a
// drop reason. The parser never writes to the frame.
#pragma once

#include <cstddef>
#include <cstdint>

#include "packet/tuple.h"
#include "packet/offload.h"

namespace xnat {

enum class ParseStatus : uint8_t {
  kOk,
  kNotIpv4,        // ARP, IPv6, LLDP...: belongs to the host stack, not a drop
  kTruncated,      // a header runs past the end of the frame
  kBadIpHeader,    // version, IHL or total length inconsistent
  kBadIpChecksum,  // IPv4 header checksum wrong
  kFragment,       // a fragment that cannot be translated on its own (see FragKind)
  kBadL4Header,    // TCP data offset / UDP length inconsistent
  kBadL4Checksum,  // TCP/UDP/ICMP checksum wrong (only when verification is on)
  kBadIcmpError,   // ICMP error whose embedded datagram cannot be parsed
};

// IPv4 fragments are translated one by one, without reassembly: the first
// (offset 0, more fragments) carries the transport header, parsed as usual but
// without checksum verification (the checksum covers the whole datagram); a
// later one carries none and is translated as its datagram's first fragment
// was (the engine's FragmentTable). Refused as kFragment: a first fragment
// whose transport header does not fit in it, a later one overlapping the
// first 16 bytes of a TCP header (RFC 1858's tiny and overlapping fragments),
// and fragmented ICMP errors.
enum class FragKind : uint8_t { kNone, kFirst, kLater };

// The TCP fields window tracking reads (conntrack/tcp_tracker.h), parsed
// once with the headers.
struct TcpSegment {
  uint32_t seq = 0, ack = 0;
  uint32_t end = 0;   // seq + payload length + SYN + FIN
  uint32_t sack = 0;  // kTcpSegSack: highest right edge of the first SACK option's blocks
  uint16_t win = 0;   // as sent, unscaled
  uint8_t wscale = 0;  // kTcpSegWscale: the window scale option's shift, capped at 14 (RFC 7323)
  uint8_t info = 0;    // kTcpSeg*
};
// TcpSegment::info. Options are read as netfilter reads them (tcp_options,
// tcp_sack): up to the end of the option list, or the first malformed option.
enum : uint8_t {
  kTcpSegOptions = 1 << 0,   // the header has options
  kTcpSegWscale = 1 << 1,    // a window scale option
  kTcpSegSackPerm = 1 << 2,  // a SACK-permitted option
  kTcpSegSack = 1 << 3,      // a SACK option with blocks
  kTcpSegPartial = 1 << 4,   // a first fragment: the segment's length is unknown
};

struct ParsedPacket {
  uint16_t l3 = 0;      // offset of the IPv4 header in the frame
  uint16_t l4 = 0;      // offset of the transport header
  uint16_t l4_len = 0;  // transport bytes, per the IPv4 total length
  uint16_t ip_end = 0;  // l3 + total length; bytes after it are link padding
  uint8_t tcp_flags = 0;
  TcpSegment tcp;  // TCP only
  bool vlan = false;
  bool icmp_error = false;
  FragKind frag = FragKind::kNone;
  // L4Csum::kMaybePartial: the checksum was partial, and this is its full
  // value, for the engine to write (the parser never writes to the frame).
  // Beside frag and ip_id, in what would be padding: the struct stays 80
  // bytes, which parse_frame clears in five stores.
  bool l4_csum_completed = false;
  uint16_t ip_id = 0;  // fragments only: the IPv4 identification, raw
  uint16_t l4_csum_full = 0;
  Tuple tuple;  // the packet's own tuple (a later fragment: addresses and protocol only)

  // ICMP errors only: the embedded datagram.
  uint16_t inner_l3 = 0;
  uint16_t inner_l4 = 0;
  uint16_t inner_l4_avail = 0;  // transport bytes of the embedded datagram present
  Tuple inner;                   // tuple of the embedded datagram, as it was sent
};

struct ParseOptions {
  bool verify_l4_checksum = true;  // nf_conntrack_checksum
  L4Csum l4_csum = L4Csum::kFull;   // what the backend knows of the frame's TCP/UDP checksum
};

static_assert(sizeof(ParsedPacket) == 80, "parse_frame clears a ParsedPacket per frame: new fields go in its padding");

ParseStatus parse_frame(const uint8_t* frame, size_t len, const ParseOptions& opts,
                        ParsedPacket* out);

}  // namespace xnat
