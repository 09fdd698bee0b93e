// A frame as the engine takes it from a backend and gives it back: where it
// came from, what the host's offloads left in it, and the verdict.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/counters.h"
#include "packet/offload.h"

namespace xnat {

// Frames a backend hands over and the engine takes at once.
inline constexpr size_t kBurst = 32;

// kHandoff (several workers): another worker owns the packet's flow; out_if
// is that worker's index and the frame is untouched.
// kHeld: a later fragment ahead of its first, copied by the engine to wait
// for it (dataplane/fragments.h); the frame's own buffer is free.
enum class Verdict : uint8_t { kForward, kDrop, kToHost, kNeighborPending, kHandoff, kHeld };

// Packet::in_if of a frame the host's stack sent on a connection translated
// for it (REDIRECT, DNAT to a host address), taken from its egress by the live
// gateway's host port. It is translated back and forwarded, and as the host's
// own output its TTL is left as it is; it never creates a flow.
inline constexpr int16_t kHostPort = INT16_MAX;

struct Packet {
  uint8_t* data = nullptr;
  uint32_t len = 0;
  uint32_t capacity = 0;  // room to grow in place (ICMP errors quote the packet)
  int16_t in_if = 0;
  uint8_t hops = 0;  // times handed between workers
  bool released = false;  // a held fragment given back (counted when it came in)
  // Handed over to take a new connection whose original tuple another worker
  // owns: its client's shared mapping is this worker's (Engine::adopt_elsewhere).
  bool adopt = false;
  // What the host's offloads left in the frame (packet/offload.h): a partial
  // TCP/UDP checksum, a super-frame to be cut at gso_size payload bytes.
  L4Csum l4_csum = L4Csum::kFull;
  Gso gso = Gso::kNone;
  uint16_t gso_size = 0;
  // Results:
  Verdict verdict = Verdict::kDrop;
  int16_t out_if = -1;
  DropReason reason = Counter::kCount;  // set when verdict == kDrop, or when replaced by an ICMP error
  uint32_t next_hop = 0;                // kNeighborPending: the address to resolve (network order)
  // kForward, kNeighborPending: larger than the output's MTU, without DF;
  // it leaves in fragments of at most this many IPv4 bytes (fragment_ipv4).
  uint16_t frag_mtu = 0;
};

}  // namespace xnat
