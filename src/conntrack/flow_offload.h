// A fast path beside the engine that forwards an established TCP flow's
// packets itself, as netfilter's flowtable does for the flows it offloads
// (IPS_OFFLOAD): the live gateway's tc program, which rewrites and redirects
// them in the kernel without handing them to user space.
//
// The table offers a flow once it is ESTABLISHED and both directions have a
// route and a resolved next hop; it keeps the flow while it is offloaded
// (the fast path says when it last carried a packet, and the table ends the
// offload when that is longer ago than the flow's timeout) and takes it back
// when the flow leaves the table, when a FIN or RST comes through the
// engine (the fast path passes those on), and when routes, neighbours or
// the output's MTU change. As in netfilter, an offloaded flow's window tracking turns
// liberal: the packets that bypassed the engine moved its windows on.
#pragma once

#include <cstdint>

#include "conntrack/flow.h"
#include "packet/headers.h"
#include "packet/tuple.h"

namespace xnat {

// One direction of an offloaded flow: packets arriving as `match` leave as
// `out` on interface `out_if`, from `src` to `dst`, their TTL decremented.
struct OffloadPath {
  Tuple match;
  Tuple out;
  int out_if = -1;  // the engine's interface index
  uint32_t mtu = 0;  // out_if's: larger segments go to the engine
  MacAddr src{}, dst{};
};

class FlowOffload {
 public:
  // Enters both directions of flow `idx`. false: the fast path has no room
  // (the flow stays with the engine).
  virtual bool add(uint32_t idx, const OffloadPath (&dirs)[2], uint64_t now_ms) = 0;
  // Takes flow `idx` (its tuples in f) out of the fast path.
  virtual void remove(uint32_t idx, const Flow& f) = 0;
  // When the fast path last forwarded a packet of flow idx (engine clock, ms;
  // at least the time it was added).
  virtual uint64_t last_seen_ms(uint32_t idx) const = 0;
  // A segment of offloaded flow idx in direction dir went through the engine
  // after all (`ip`: its IPv4 header as it arrived): it was on its way
  // before the fast path took the direction, or the fast path passed it on.
  // A fast path that must not overtake it waits until it has left.
  virtual void segment(uint32_t /*idx*/, int /*dir*/, const uint8_t* /*ip*/) {}

 protected:
  ~FlowOffload() = default;
};

}  // namespace xnat
