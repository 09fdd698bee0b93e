#include "conntrack/flow_table.h"

#include <bit>
#include <cassert>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace xnat {

namespace {
// Whether burst stage 2 brings lines in with prefetch instructions rather than
// loads (see FlowTable::prefetch_flow): Intel, and AMD from Zen 5 (family
// 0x1A) on, where the prefetches were the faster at 1 M flows; on older AMD
// families under nested paging most prefetches were dropped and real loads
// won (the measurements are in git: the commits that set this).
bool prefetch_wins() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();  // FlowTable may be built before main (a static)
  if (__builtin_cpu_is("intel")) return true;
  if (!__builtin_cpu_is("amd")) return false;
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  unsigned family = (eax >> 8) & 0xF;
  if (family == 0xF) family += (eax >> 20) & 0xFF;
  return family >= 0x1A;
#else
  return false;
#endif
}
}  // namespace

FlowTable::FlowTable(uint32_t capacity, uint64_t buckets_hint, uint64_t seed, bool windows)
    : capacity_(capacity), prefetch_lines_(prefetch_wins()), seed_(seed) {
  uint64_t want = (uint64_t{capacity} * 2 * 4 + 2) / 3;  // 2 entries per flow, load <= 3/4
  if (buckets_hint > want) want = buckets_hint;
  if (want < 16) want = 16;
  const uint64_t slots = std::bit_ceil(want);
  mask_ = slots - 1;
  flows_ = HugeArray<Flow>(capacity);
  slots_ = HugeArray<Slot>(slots);
  if (windows) {
    windows_ = HugeArray<TcpWindow>(capacity, HugeArray<TcpWindow>::kZeroPages);
    window_free_ = HugeArray<uint32_t>(capacity, HugeArray<uint32_t>::kZeroPages);
  }
  free_.resize(capacity);
  // Pop order: lowest index first, so replay output is stable and early flows
  // share pages.
  for (uint32_t i = 0; i < capacity; ++i) free_[i] = capacity - 1 - i;
  used_.assign(capacity, false);
}

uint32_t FlowTable::alloc(bool tcp) {
  if (free_.empty()) return kNoRef;
  uint32_t idx = free_.back();
  free_.pop_back();
  used_[idx] = true;
  Flow& f = flows_[idx];
  f = Flow{};
  if (tcp && windows_.size()) {
    // Never empty: each TCP flow holds one window of `capacity`.
    f.window = windows_free_n_ ? window_free_[--windows_free_n_] : windows_fresh_++;
    f.tuple[0].proto = kProtoTcp;  // has_window() until the caller sets the tuples
  }
  return idx;
}

void FlowTable::link(uint32_t idx) {
  const Flow& f = flows_[idx];
  index_insert(hash(f.tuple[0]), idx * 2);
  index_insert(hash(f.tuple[1]), idx * 2 + 1);
}

void FlowTable::unlink_and_free(uint32_t idx) {
  assert(used_[idx]);
  const Flow& f = flows_[idx];
  index_erase(hash(f.tuple[0]), idx * 2);
  index_erase(hash(f.tuple[1]), idx * 2 + 1);
  if (has_window(idx)) window_free_[windows_free_n_++] = f.window;
  used_[idx] = false;
  free_.push_back(idx);
}

void FlowTable::index_insert(uint64_t h, uint32_t ref) {
  const uint32_t tag = static_cast<uint32_t>(h >> 32);
  size_t pos = tag & mask_;
  while (slots_[pos].ref != kNoRef) pos = (pos + 1) & mask_;
  slots_[pos] = Slot{tag, ref};
}

void FlowTable::index_erase(uint64_t h, uint32_t ref) {
  size_t i = home(h);
  while (slots_[i].ref != ref) {
    assert(slots_[i].ref != kNoRef && "erasing a tuple that is not indexed");
    i = (i + 1) & mask_;
  }
  // Backward-shift deletion: move later entries of the cluster into the hole
  // when their home lies cyclically at or before the hole.
  size_t j = i;
  for (;;) {
    j = (j + 1) & mask_;
    if (slots_[j].ref == kNoRef) break;
    const size_t k = slots_[j].tag & mask_;
    const bool between = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
    if (!between) {
      slots_[i] = slots_[j];
      i = j;
    }
  }
  slots_[i] = Slot{0, kNoRef};
}

size_t FlowTable::memory_bytes() const {
  return size_t{capacity_} * sizeof(Flow) + (mask_ + 1) * sizeof(Slot) + size_t{capacity_} * sizeof(uint32_t) +
         capacity_ / 8 + window_bytes();
}

size_t FlowTable::window_bytes() const {
  return size_t{windows_fresh_} * (sizeof(TcpWindow) + sizeof(uint32_t));
}

}  // namespace xnat
