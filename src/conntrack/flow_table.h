// FlowTable: fixed-capacity storage for flows and one hash index over both
// directions' tuples.
//
// Design
// ------
// Flows live in one array allocated at start (capacity = nf_conntrack_max);
// free slots are kept on a stack. The index is an open-addressing table of
// 8-byte slots {tag, ref}: `ref` is flow_index * 2 + direction, so a single
// probe sequence finds a flow from either direction's tuple and tells which
// direction the packet travels. `tag` is the high 32 bits of the tuple's
// 64-bit hash; the home slot is tag & mask, so a slot's home is known without
// touching the flow (needed for deletion by backward shift, which keeps linear
// probing free of tombstones). A lookup costs the slot's cache line plus the
// flow's; a tag mismatch skips the flow entirely.
//
// Sizing: 2 index entries per flow at a load factor of at most 3/4, rounded up
// to a power of two (so between 3/8 and 3/4 at a full table). At 10 M flows:
// 32 M slots * 8 B = 256 MiB, i.e. ~27 B per flow on top of the 64 B flow,
// 16 B of timer/eviction links and 4 B of free stack: 111 B per flow.
// nf_conntrack_buckets, when larger, sets the slot count instead. With TCP
// window tracking, each flow of capacity also has a TcpWindow (64 B) in a
// parallel array; only TCP flows use theirs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "conntrack/flow.h"
#include "conntrack/huge_array.h"
#include "conntrack/tcp_tracker.h"

namespace xnat {

inline constexpr uint32_t kNoRef = UINT32_MAX;
inline constexpr uint32_t kProbeOn = UINT32_MAX - 1;  // prefetch_flow: not settled (never a ref)

class FlowTable {
 public:
  // windows: keep a TcpWindow per flow (TCP window tracking).
  FlowTable(uint32_t capacity, uint64_t buckets_hint, uint64_t seed, bool windows = false);
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  uint64_t hash(const Tuple& t) const { return tuple_hash(t, seed_); }
  void prefetch(uint64_t h) const { __builtin_prefetch(&slots_[home(h)]); }
  void bring_in_slot(uint64_t h) const { bring_in(&slots_[home(h)], prefetch_lines_); }

  // Second stage for a burst: once the home slot is in cache, load the flow
  // its first tag-matching entry points at (no tuple compare). How depends on
  // the CPU (load_flow): on AMD EPYC under nested paging a __builtin_prefetch
  // here was mostly wasted -- 4.1 Mpps at 1 M flows against 6.9 Mpps with a
  // real load (BM_EstablishedUdp/flows:1048576/batch:32) -- while on an Intel
  // Xeon (Emerald Rapids, KVM) the load holds up retirement and the prefetch
  // is the faster: 9.0-9.2 against 8.0-8.6 Mpps, and so it is on a Zen 5
  // (AMD family 0x1A) VM (prefetch_wins in flow_table.cc).
  // A TCP packet's flow also has its window state loaded, when kept.
  // Returns the ref whose flow was loaded (that of the first slot with the
  // tag: almost always the packet's); kNoRef when no slot has the tag, so the
  // packet most likely opens a new flow; kProbeOn when four slots did not
  // settle it.
  uint32_t prefetch_flow(uint64_t h, bool tcp) const {
    const uint32_t tag = static_cast<uint32_t>(h >> 32);
    for (size_t pos = tag & mask_, n = 0; n < 4; pos = (pos + 1) & mask_, ++n) {
      const Slot s = slots_[pos];
      if (s.ref == kNoRef) return kNoRef;
      if (s.tag == tag) {
        load_flow(s.ref >> 1, tcp);
        return s.ref;
      }
    }
    return kProbeOn;
  }
  // The same for the flow slot alloc() will hand out n allocations from now
  // (a burst's n-th new flow); returns it, or kNoRef past the end.
  uint32_t prefetch_free(uint32_t n, bool tcp) const {
    if (n >= free_.size()) return kNoRef;
    const uint32_t idx = free_[free_.size() - 1 - n];
    load_flow(idx, tcp);
    return idx;
  }

  // Returns flow_index * 2 + direction for the flow holding `t`, or kNoRef.
  uint32_t find(const Tuple& t, uint64_t h) const {
    const uint32_t tag = static_cast<uint32_t>(h >> 32);
    for (size_t pos = tag & mask_;; pos = (pos + 1) & mask_) {
      const Slot s = slots_[pos];
      if (s.ref == kNoRef) return kNoRef;
      if (s.tag == tag && flows_[s.ref >> 1].tuple[s.ref & 1] == t) return s.ref;
    }
  }

  // Takes a free flow slot; kNoRef when all `capacity` are in use.
  uint32_t alloc();
  // Indexes both tuples of a flow whose tuples are set.
  void link(uint32_t idx);
  // Removes both tuples from the index and frees the slot.
  void unlink_and_free(uint32_t idx);

  Flow& flow(uint32_t idx) { return flows_[idx]; }
  const Flow& flow(uint32_t idx) const { return flows_[idx]; }
  bool in_use(uint32_t idx) const { return used_[idx]; }
  // The flow's TCP window state, or null without window tracking. Set up by
  // the tracker on the flow's first segment, not by alloc().
  TcpWindow* window(uint32_t idx) { return windows_.size() ? &windows_[idx] : nullptr; }
  const TcpWindow* window(uint32_t idx) const { return windows_.size() ? &windows_[idx] : nullptr; }

  uint32_t capacity() const { return capacity_; }
  // Whether lines are brought in by prefetch instructions (Intel, Zen 5) or loads.
  bool prefetches() const { return prefetch_lines_; }
  uint32_t size() const { return capacity_ - static_cast<uint32_t>(free_.size()); }
  // Bytes this table holds per flow of capacity (flows, index, free stack, used map).
  size_t memory_bytes() const;

 private:
  struct Slot {
    uint32_t tag = 0;
    uint32_t ref = kNoRef;
  };
  static_assert(sizeof(Slot) == 8);

  size_t home(uint64_t h) const { return static_cast<uint32_t>(h >> 32) & mask_; }
  // Brings a flow's line, and for TCP its window's, into the cache.
  void load_flow(uint32_t idx, bool tcp) const {
    bring_in(&flows_[idx], prefetch_lines_);
    if (tcp && windows_.size()) bring_in(&windows_[idx], prefetch_lines_);
  }
  void index_insert(uint64_t h, uint32_t ref);
  void index_erase(uint64_t h, uint32_t ref);

  uint32_t capacity_;
  bool prefetch_lines_;  // load_flow: prefetch instructions (Intel, Zen 5) or loads
  size_t mask_;
  uint64_t seed_;
  HugeArray<Flow> flows_;
  HugeArray<Slot> slots_;
  HugeArray<TcpWindow> windows_;  // empty without window tracking
  std::vector<uint32_t> free_;
  std::vector<bool> used_;
};

}  // namespace xnat
