// The fast path's gateway side (conntrack/flow_offload.h): a worker's
// offloaded connections entered in the tc program's fastpath map, two
// entries each (struct xnat_fast_entry, live/steer.h), and the times the
// program last forwarded a packet of them, read from the memory-mapped
// fast_seen map without a system call. Each worker owns a range of
// fast_seen's slots; a connection keeps its slot while offloaded.
//
// A connection's entries take effect at once, although segments of it may
// still wait in the worker's ring and be overtaken (TCP then retransmits a
// few). Holding each direction back until those have left keeps the order
// only while the worker keeps up; under load the held connections go on
// filling the ring, and the hand-over, when it must come, overtakes more.
//
// A connection taken back is marked at once (XNAT_FAST_DRAINING in its
// slot: from then on its segments go to the gateway) and its entries are
// deleted 100 ms later: with AF_XDP, segments the XDP program passed on to
// tc ingress just before may still be on their way there (a CPU's backlog,
// ksoftirqd), while the FIN behind them reached the worker first. They are
// forwarded as they would have been, not dropped.
#pragma once

#include <cstdint>
#include <vector>

#include "conntrack/flow_offload.h"

namespace xnat {

class FastPath final : public FlowOffload {
 public:
  // map_fd, seen: the steering program's fastpath and fast_seen maps
  // (Steering::fast_path_fd, fast_seen); slots [first, first + count) of
  // fast_seen are this worker's. ifindexes, mtus: the kernel's index and MTU
  // of each of the engine's interfaces; flow_capacity: the worker's table's.
  FastPath(int map_fd, uint64_t* seen, uint32_t first, uint32_t count, std::vector<int> ifindexes,
           std::vector<uint32_t> mtus, uint32_t flow_capacity);

  bool add(uint32_t idx, const OffloadPath (&dirs)[2], uint64_t now_ms) override;
  void remove(uint32_t idx, const Flow& f) override;
  uint64_t last_seen_ms(uint32_t idx) const override;

  // Entries the kernel refused (not room: the map's limit is twice the slots).
  uint64_t failed() const { return failed_; }
  // Deletes the entries of connections taken back at least 100 ms ago
  // (the worker's loop, every 10 ms).
  void flush(uint64_t now_ms);
  static constexpr uint64_t kDrainMs = 100;

 private:
  struct Draining {
    Tuple keys[2];
    uint32_t slot;
    uint64_t due_ms;
  };
  int fd_;
  uint64_t* seen_;
  std::vector<uint32_t> free_;     // this worker's unused slots
  std::vector<uint32_t> slot_of_;  // per flow of capacity, while offloaded
  std::vector<int> ifindexes_;
  std::vector<uint32_t> mtus_;
  std::vector<Draining> draining_;  // oldest first, from draining_head_
  size_t draining_head_ = 0;
  uint64_t now_ms_ = 0;  // of the last add or flush
  uint64_t failed_ = 0;
};

}  // namespace xnat
