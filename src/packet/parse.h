// Frame parser: Ethernet (one optional 802.1Q tag) → IPv4 (with options) →
// TCP / UDP / ICMP (with the datagram embedded in ICMP errors).
//
// Every header access is bounds-checked against the frame first; a frame that
// fails a check gets a ParseStatus naming why, which the engine counts as a
// drop reason. The parser never writes to the frame.
#pragma once

#include <cstddef>
#include <cstdint>

#include "conntrack/tuple.h"

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

struct ParsedPacket {
  uint16_t l3 = 0;      // offset of the IPv4 header in the frame
  uint16_t l4 = 0;      // offset of the transport header
  uint16_t l4_len = 0;  // transport bytes, per the IPv4 total length
  uint16_t ip_end = 0;  // l3 + total length; bytes after it are link padding
  uint8_t tcp_flags = 0;
  bool vlan = false;
  bool icmp_error = false;
  FragKind frag = FragKind::kNone;
  uint16_t ip_id = 0;  // fragments only: the IPv4 identification, raw
  Tuple tuple;  // the packet's own tuple (a later fragment: addresses and protocol only)

  // ICMP errors only: the embedded datagram.
  uint16_t inner_l3 = 0;
  uint16_t inner_l4 = 0;
  uint16_t inner_l4_avail = 0;  // transport bytes of the embedded datagram present
  Tuple inner;                   // tuple of the embedded datagram, as it was sent
};

struct ParseOptions {
  bool verify_l4_checksum = true;  // nf_conntrack_checksum
};

ParseStatus parse_frame(const uint8_t* frame, size_t len, const ParseOptions& opts,
                        ParsedPacket* out);

}  // namespace xnat
