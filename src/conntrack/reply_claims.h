// What a flow's reply tuple holds outside the table while the flow lives: a
// port claim (the FlowObserver's, on a host address) and, with several
// workers, its entry in the shared directory (and its original tuple's, when
// another worker owns that by hash). A flow's status bits say which
// it holds. An evicted flow that is held keeps both, so its reply tuple stays
// reserved; a held flow brought back passes them to its new entry.
#pragma once

#include <cstdint>

#include "conntrack/flow.h"
#include "conntrack/flow_observer.h"
#include "conntrack/shard.h"

namespace xnat {

struct ReplyClaims {
  FlowObserver* observer = nullptr;
  Shard shard;

  // Whether a flow with this tuple (either direction) must be entered in the
  // directory: another worker would take its packets for its own.
  bool needs_directory(const Tuple& t) const { return shard.active() && shard.owner_by_hash(t) != shard.index; }
  // false: no room in the directory's window for it.
  bool enter(const Tuple& t) const {
    return shard.directory->insert(FlowDirectory::fingerprint(t, shard.seed), shard.index);
  }
  void leave(const Tuple& t) const { shard.directory->erase(FlowDirectory::fingerprint(t, shard.seed), shard.index); }
  // The observer's claim on `reply`, as status bits (kStatusObserved*).
  uint16_t observe(const Tuple& reply) const {
    return observer ? observer->on_insert(reply) & kStatusObserved : 0;
  }
  // Gives up what f holds.
  void release(const Flow& f) const {
    if (f.status & kStatusObserved) observer->on_release(f.tuple[1], f.status & kStatusObserved);
    if (f.status & kStatusDirectory) leave(f.tuple[1]);
    if (f.status & kStatusDirectoryOrig) leave(f.tuple[0]);
  }
};

}  // namespace xnat
