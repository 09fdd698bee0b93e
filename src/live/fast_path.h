// The fast path's gateway side (conntrack/flow_offload.h): a worker's
// offloaded connections entered in the tc program's fastpath map, two
// entries each (struct xnat_fast_entry, live/steer.h), and the times the
// program last forwarded a packet of them, read from the memory-mapped
// fast_seen map without a system call. Each worker owns a range of
// fast_seen's slots; a connection keeps its slot while offloaded.
//
// A connection enters with both directions pending (struct xnat_fast_slot,
// live/steer.h): segments that reached the programs before its entries
// wait in the worker's ring, and the fast path must not overtake them (TCP
// would see them reordered, retransmit and shrink its window). Each
// direction is armed when the worker has sent a segment that was the last
// one the programs passed on for it (passed_on, then arm after the worker's
// transmit), or 50 ms after the offload if that segment never came (lost on
// the way: a full ring).
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

struct xnat_fast_slot;  // live/steer.h, which worker.cc includes with its own lookups

namespace xnat {

class FastPath final : public FlowOffload {
 public:
  // map_fd, slots: the steering program's fastpath and fast_seen maps
  // (Steering::fast_path_fd, fast_seen); slots [first, first + count) of
  // fast_seen are this worker's. ifindexes, mtus: the kernel's index and MTU
  // of each of the engine's interfaces; flow_capacity: the worker's table's.
  FastPath(int map_fd, xnat_fast_slot* slots, uint32_t first, uint32_t count, std::vector<int> ifindexes,
           std::vector<uint32_t> mtus, uint32_t flow_capacity);

  bool add(uint32_t idx, const OffloadPath (&dirs)[2], uint64_t now_ms) override;
  void remove(uint32_t idx, const Flow& f) override;
  uint64_t last_seen_ms(uint32_t idx) const override;
  void passed_on(uint32_t idx, int dir, const uint8_t* ip) override;

  // Arms the directions whose last passed-on segment the worker has now
  // sent (after its transmit flush: before that, the segment has not left).
  void arm();

  // Entries the kernel refused (not room: the map's limit is twice the slots).
  uint64_t failed() const { return failed_; }
  // Directions armed in order, and late (kArmLateMs after the offload).
  uint64_t armed() const { return armed_; }
  uint64_t armed_late() const { return armed_late_; }
  // Arms what kArmLateMs left pending, and deletes the entries of
  // connections taken back at least kDrainMs ago (the worker's loop, every
  // 10 ms).
  void flush(uint64_t now_ms);
  static constexpr uint64_t kDrainMs = 100;
  // Not over kDrainMs: a slot's pending arm is settled before it is reused.
  static constexpr uint64_t kArmLateMs = 50;

 private:
  struct Draining {
    Tuple keys[2];
    uint32_t slot;
    uint64_t due_ms;
  };
  struct Pending {
    uint32_t slot;
    uint64_t due_ms;
  };
  struct Arming {
    unsigned long long* word;
    unsigned long long tagged;  // what it holds while the segment sent is the last passed on
  };
  int fd_;
  xnat_fast_slot* slots_;
  std::vector<uint32_t> free_;     // this worker's unused slots
  std::vector<uint32_t> slot_of_;  // per flow of capacity, while offloaded
  std::vector<int> ifindexes_;
  std::vector<uint32_t> mtus_;
  std::vector<Draining> draining_;  // oldest first, from draining_head_
  size_t draining_head_ = 0;
  std::vector<Pending> pending_;  // by due time, from pending_head_
  size_t pending_head_ = 0;
  std::vector<Arming> arming_;    // since the last arm(); never past its capacity
  uint64_t armed_ = 0, armed_late_ = 0;
  uint64_t now_ms_ = 0;  // of the last add or flush
  uint64_t failed_ = 0;
};

}  // namespace xnat
