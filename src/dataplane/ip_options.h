// IPv4 options as a Linux router treats them in a datagram it forwards.
//
// On receipt the kernel checks the options (ip_options_compile): a malformed
// list is answered with an ICMP parameter problem pointing at the offending
// octet, and the datagram dropped; a loose or strict source route is dropped
// silently, since net.ipv4.conf.all.accept_source_route is 0 by default
// (ip_rcv_options). A forwarded datagram then carries the router in it: a
// record-route option gets the output interface's address (ip_forward_options),
// a timestamp option the time, with the address facing the datagram's source
// when it asks for one. Anything after an end-of-list option becomes
// end-of-list. Security, stream ID, router alert, CIPSO and unknown options
// pass as they are (CIPSO's contents are not checked, the kernel's CIPSO
// module does that). Offsets count from the start of the IPv4 header.
#pragma once

#include <cstdint>

#include "route/fib.h"

namespace xnat {

enum class IpOptionsCheck : uint8_t { kOk, kMalformed, kSourceRoute };

struct IpOptionsVerdict {
  IpOptionsCheck check = IpOptionsCheck::kOk;
  uint8_t pointer = 0;  // kMalformed: the offending octet, for the parameter problem
};

// The options of the IPv4 header at ip, whose IHL (over 5) the parser checked.
IpOptionsVerdict check_ip_options(const uint8_t* ip);

// What the router records in a datagram it forwards.
struct IpOptionsStamp {
  uint32_t out_addr = 0;   // the output interface's address (record route), network order
  uint32_t back_addr = 0;  // the address facing the datagram's source (fib_compute_spec_dst), network order
  uint32_t now_ms = 0;     // milliseconds since midnight UT (RFC 791's timestamp)
};

// Updates the checked options of the header at ip as ip_options_compile and
// ip_forward_options do for a forwarded datagram; a prespecified timestamp
// is the router's unless fib routes its address elsewhere. Returns whether
// the header changed; its checksum is then recomputed.
bool forward_ip_options(uint8_t* ip, const IpOptionsStamp& stamp, const Fib& fib);

// The wall clock as a timestamp option takes it.
uint32_t ip_timestamp_now();

}  // namespace xnat
