// The fast path's gateway side (conntrack/flow_offload.h): a worker's
// offloaded connections entered in the tc program's fastpath map, two
// entries each (struct xnat_fast_entry, live/steer.h), and the times the
// program last forwarded a packet of them, read from the memory-mapped
// fast_seen map without a system call. Each worker owns a range of
// fast_seen's slots; a connection keeps its slot while offloaded.
//
// A direction of a new connection opens only once the worker has sent
// what it had of it: segments still in the worker's ring, overtaken, would
// reach the other end out of order (TCP then retransmits). The program
// passes each segment on to the worker until then, noting its tag; the
// worker writes the tags of the offloaded connections' segments it sent into
// the memory-mapped fast_sent map after each round of sends, and the first
// segment to find the two equal opens the direction (live/steer.h). A
// worker that has not caught up after XNAT_FAST_HANDOVER_NS hands over
// anyway, overtaken by what it still holds of the connection: under load,
// with a deep queue, that can be more than at once. Sent is not delivered
// either: on a veth, what the worker sent waits in its CPU's backlog for
// that CPU's softirq while the fast path forwards from another CPU, and
// the hand-over can overtake a few dozen segments (about one 20 MB
// transfer in eight, af_xdp, one worker): not solved.
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
  // map_fd, seen, sent: the steering program's fastpath, fast_seen and
  // fast_sent maps (Steering::fast_path_fd, fast_seen, fast_sent); slots
  // [first, first + count) of fast_seen are this worker's. ifindexes: the
  // kernel's index of each of the engine's interfaces; flow_capacity: the
  // worker's table's.
  FastPath(int map_fd, uint64_t* seen, uint64_t* sent, uint32_t first, uint32_t count, std::vector<int> ifindexes,
           uint32_t flow_capacity);

  bool add(uint32_t idx, const OffloadPath (&dirs)[2], uint64_t now_ms) override;
  void remove(uint32_t idx, const Flow& f) override;
  uint64_t last_seen_ms(uint32_t idx) const override;
  // Noted until publish(): the segment is not sent yet.
  void segment(uint32_t idx, int dir, const uint8_t* ip) override;
  // After the worker's round of sends: the noted segments have left, and
  // the program may open their directions behind them.
  void publish();

  // The kernel's indexes of the interfaces, one of them new (Gateway::rebind);
  // the connections offloaded before were taken back.
  void set_ifindexes(std::vector<int> ifindexes) { ifindexes_ = std::move(ifindexes); }
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
  struct Sent {
    uint32_t key;  // slot * 2 + direction
    uint32_t tag;
  };
  int fd_;
  uint64_t* seen_;
  uint64_t* sent_;
  // A round's segments; those beyond its room are not noted, and their
  // directions open at the next one or when the wait runs out.
  Sent noted_[256];
  size_t nnoted_ = 0;
  std::vector<uint32_t> free_;     // this worker's unused slots
  std::vector<uint32_t> slot_of_;  // per flow of capacity, while offloaded
  std::vector<int> ifindexes_;
  std::vector<Draining> draining_;  // oldest first, from draining_head_
  size_t draining_head_ = 0;
  uint64_t now_ms_ = 0;  // of the last add or flush
  uint64_t failed_ = 0;
};

}  // namespace xnat
