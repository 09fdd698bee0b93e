// The table's one seam to what is kept beside it: an observer is told of
// each flow's reply tuple as the flow enters the table and as it leaves. The
// live gateway keeps its port claims (shared with the kernel's steering
// program) and the host port's reply map this way; replay has no observer.
#pragma once

#include <cstdint>

#include "conntrack/flow.h"
#include "packet/tuple.h"

namespace xnat {

class FlowObserver {
 public:
  // A flow with this reply tuple entered the table. Returns the bits among
  // kStatusObserved the flow keeps, which on_release gets back: what was
  // taken for it, so exactly that is given back.
  virtual uint16_t on_insert(const Tuple& reply) = 0;
  // The flow left the table (or moved to the hold, which keeps nothing).
  virtual void on_release(const Tuple& reply, uint16_t observed) = 0;

 protected:
  ~FlowObserver() = default;
};

}  // namespace xnat
