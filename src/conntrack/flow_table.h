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
// nf_conntrack_buckets, when larger, sets the slot count instead.
//
// TCP window state: with window tracking, each TCP flow also takes a TcpWindow
// (64 B) from a pool of `capacity` windows, its index in the flow
// (Flow::window). The pool's pages and its stack of released windows are not
// touched at start (HugeArray::kZeroPages) and windows are handed out lowest
// first, so the memory they hold follows the most TCP flows the table has had
// at once (68 B each: window and stack entry), not its capacity; UDP and ICMP
// flows cost nothing there. A TCP packet's window line is one the flow's line
// points at, so burst stage 2b (after the flow lines arrive) loads it.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "conntrack/flow.h"
#include "base/huge_array.h"
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
  // the CPU (prefetch_wins in flow_table.cc): under nested paging an older
  // AMD EPYC dropped most prefetch instructions here, so a real load is
  // used; on Intel and Zen 5 the load holds up retirement and a prefetch is
  // the faster.
  // Returns the ref whose flow was loaded (that of the first slot with the
  // tag: almost always the packet's); kNoRef when no slot has the tag, so the
  // packet most likely opens a new flow; kProbeOn when four slots did not
  // settle it.
  uint32_t prefetch_flow(uint64_t h) const {
    const uint32_t tag = static_cast<uint32_t>(h >> 32);
    for (size_t pos = tag & mask_, n = 0; n < 4; pos = (pos + 1) & mask_, ++n) {
      const Slot s = slots_[pos];
      if (s.ref == kNoRef) return kNoRef;
      if (s.tag == tag) {
        bring_in(&flows_[s.ref >> 1], prefetch_lines_);
        return s.ref;
      }
    }
    return kProbeOn;
  }
  // After prefetch_flow, once the flow's line has had time to arrive: the
  // window state of the TCP flow at `ref`, when kept.
  void prefetch_window(uint32_t ref) const {
    if (ref >= kProbeOn || windows_.size() == 0) return;
    const Flow& f = flows_[ref >> 1];
    if (f.tuple[0].proto == kProtoTcp) bring_in(&windows_[f.window], prefetch_lines_);
  }
  // The same for the flow slot alloc() will hand out n allocations from now
  // (a burst's n-th new flow); returns it, or kNoRef past the end. For a TCP
  // flow, `n_tcp` (its place among the burst's new TCP flows) finds its window.
  uint32_t prefetch_free(uint32_t n, bool tcp, uint32_t n_tcp) const {
    if (n >= free_.size()) return kNoRef;
    const uint32_t idx = free_[free_.size() - 1 - n];
    bring_in(&flows_[idx], prefetch_lines_);
    if (tcp && windows_.size()) {
      const uint32_t w = window_to_hand_out(n_tcp);
      if (w != kNoWindow) bring_in(&windows_[w], prefetch_lines_);
    }
    return idx;
  }

  // Staged bulk lookup, the shape of DPDK's rte_hash_lookup_bulk: for a
  // burst of keys, prefetch(h) each, then prefetch_flow(h) each (its result
  // is the key's candidate), then resolve() each. A candidate flow that is
  // in use and holds the key is the answer; else the index is probed. Flows
  // may come and go between the stages (a burst handles its packets one
  // after another), so a key without a candidate is probed too: an earlier
  // packet may have created its flow. (Skipping that probe while nothing
  // was indexed since cost more per new flow than it saved.)
  uint32_t resolve(uint32_t cand, const Tuple& t, uint64_t h) const {
    if (cand < kProbeOn && used_[cand >> 1] && flows_[cand >> 1].tuple[cand & 1] == t) [[likely]]
      return cand;
    return find(t, h);
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

  // Takes a free flow slot, and for a TCP flow (tcp, with window tracking) a
  // window; kNoRef when all `capacity` are in use. The flow must get a tuple
  // of that protocol (which protocol it has tells whether it holds a window).
  uint32_t alloc(bool tcp = false);
  // Gives flow idx the state of f (a flow of another table), its own window
  // index kept.
  void assign(uint32_t idx, const Flow& f) {
    const bool had = has_window(idx);
    const uint32_t w = flows_[idx].window;
    flows_[idx] = f;
    assert(has_window(idx) == had && "alloc() was told another protocol");
    if (had) flows_[idx].window = w;
  }
  // Indexes both tuples of a flow whose tuples are set.
  void link(uint32_t idx);
  // Removes both tuples from the index and frees the slot.
  void unlink_and_free(uint32_t idx);

  Flow& flow(uint32_t idx) { return flows_[idx]; }
  const Flow& flow(uint32_t idx) const { return flows_[idx]; }
  bool in_use(uint32_t idx) const { return used_[idx]; }
  // A TCP flow's window state; null for other flows and without window
  // tracking. Set up by the tracker on the flow's first segment, not by alloc().
  TcpWindow* window(uint32_t idx) { return has_window(idx) ? &windows_[flows_[idx].window] : nullptr; }
  const TcpWindow* window(uint32_t idx) const { return has_window(idx) ? &windows_[flows_[idx].window] : nullptr; }

  uint32_t capacity() const { return capacity_; }
  // Whether lines are brought in by prefetch instructions (Intel, Zen 5) or loads.
  bool prefetches() const { return prefetch_lines_; }
  uint32_t size() const { return capacity_ - static_cast<uint32_t>(free_.size()); }
  // Bytes this table holds: per flow of capacity (flows, index, free stack,
  // used map), plus window_bytes().
  size_t memory_bytes() const;
  // The window pool's touched part: 68 B for each window handed out at least
  // once, i.e. for the most TCP flows held at once (plus, resident, the rest
  // of the last huge page of each of its two arrays).
  size_t window_bytes() const;
  uint32_t windows_in_use() const { return windows_fresh_ - windows_free_n_; }

 private:
  struct Slot {
    uint32_t tag = 0;
    uint32_t ref = kNoRef;
  };
  static_assert(sizeof(Slot) == 8);

  size_t home(uint64_t h) const { return static_cast<uint32_t>(h >> 32) & mask_; }
  bool has_window(uint32_t idx) const { return windows_.size() && flows_[idx].tuple[0].proto == kProtoTcp; }
  // The window alloc() will hand out n TCP flows from now; kNoWindow past the end.
  uint32_t window_to_hand_out(uint32_t n) const {
    if (n < windows_free_n_) return window_free_[windows_free_n_ - 1 - n];
    const uint64_t w = uint64_t{windows_fresh_} + (n - windows_free_n_);
    return w < capacity_ ? static_cast<uint32_t>(w) : kNoWindow;
  }
  void index_insert(uint64_t h, uint32_t ref);
  void index_erase(uint64_t h, uint32_t ref);

  uint32_t capacity_;
  bool prefetch_lines_;  // load_flow: prefetch instructions (Intel, Zen 5) or loads
  size_t mask_;
  uint64_t seed_;
  HugeArray<Flow> flows_;
  HugeArray<Slot> slots_;
  // The window pool (empty without window tracking), both kZeroPages: windows
  // [0, windows_fresh_) have been handed out, window_free_[0, windows_free_n_)
  // are those given back, taken again last in, first out.
  HugeArray<TcpWindow> windows_;
  HugeArray<uint32_t> window_free_;
  uint32_t windows_fresh_ = 0;
  uint32_t windows_free_n_ = 0;
  std::vector<uint32_t> free_;
  std::vector<bool> used_;
};

}  // namespace xnat
