// Connection events (`conntrack -E`): what ctnetlink multicasts, recorded by
// the worker that owns the flow into a ring its reader drains.
//
// As in netfilter, an event is a copy of the entry as it is after the packet
// that changed it, at most one per packet: [NEW] once a new flow's first
// packet has been tracked and its translation is final (netfilter's confirm),
// [UPDATE] when a packet changed its TCP state, SEEN_REPLY, ASSURED or its
// mark, [DESTROY] when it leaves the table (expired, deleted, killed by a
// RST, evicted). Which attributes an event carries follows
// ctnetlink_conntrack_event: an update shows the TCP state only when the
// state changed, the mark only when it is set or changed, a destroy no
// timeout once it has run out.
//
// The ring never blocks the worker: an event that finds it full is counted
// as lost, and the reader reports the loss (conntrack's ENOBUFS).
#pragma once

#include <atomic>
#include <bit>
#include <cstdint>
#include <memory>

#include "conntrack/flow.h"

namespace xnat {

// The three multicast groups, and `conntrack -e`'s mask.
enum EventType : uint8_t {
  kEventNew = 1 << 0,
  kEventUpdate = 1 << 1,
  kEventDestroy = 1 << 2,
  kEventAll = kEventNew | kEventUpdate | kEventDestroy,
};

// Attributes beyond those every event carries.
enum EventShows : uint8_t {
  kShowState = 1 << 0,    // the TCP state (CTA_PROTOINFO)
  kShowMark = 1 << 1,     // the connection mark (CTA_MARK)
  kShowTimeout = 1 << 2,  // the remaining timeout (CTA_TIMEOUT)
};

struct FlowEvent {
  Flow flow;           // the entry as the event left it
  uint64_t id = 0;     // the entry's id while it lives (worker << 32 | slot), as -o id prints it
  uint64_t at_ms = 0;  // the table's clock at the event: the timeout shown is flow.expires_ms - at_ms
  uint32_t mark = 0;
  uint8_t type = 0;    // one EventType
  uint8_t shows = 0;   // EventShows
};

// One producer (the worker), one consumer (the control thread).
class EventRing {
 public:
  explicit EventRing(uint32_t capacity)
      : mask_(std::bit_ceil(capacity) - 1), slots_(std::make_unique<FlowEvent[]>(mask_ + 1)) {}

  // Producer: the next slot to fill, then commit() it; null when the ring
  // is full, and the event is counted as lost.
  FlowEvent* claim() {
    const uint32_t t = tail_.load(std::memory_order_relaxed);
    if (t - head_.load(std::memory_order_acquire) > mask_) {
      lost_.store(lost_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      return nullptr;
    }
    return &slots_[t & mask_];
  }
  void commit() { tail_.store(tail_.load(std::memory_order_relaxed) + 1, std::memory_order_release); }
  // Consumer: fn(const FlowEvent&) for each waiting event, oldest first, up
  // to `max`; returns how many.
  template <typename Fn>
  uint32_t drain(Fn&& fn, uint32_t max = UINT32_MAX) {
    uint32_t h = head_.load(std::memory_order_relaxed);
    const uint32_t t = tail_.load(std::memory_order_acquire);
    uint32_t n = 0;
    for (; h != t && n < max; ++h, ++n) fn(slots_[h & mask_]);
    head_.store(h, std::memory_order_release);
    return n;
  }
  // Events that found the ring full, ever.
  uint64_t lost() const { return lost_.load(std::memory_order_relaxed); }
  uint32_t capacity() const { return mask_ + 1; }

 private:
  alignas(64) std::atomic<uint32_t> head_{0};
  alignas(64) std::atomic<uint32_t> tail_{0};
  std::atomic<uint64_t> lost_{0};
  uint32_t mask_;
  std::unique_ptr<FlowEvent[]> slots_;
};

}  // namespace xnat
