#include "conntrack/source_counter.h"

#include <algorithm>
#include <bit>
#include <cassert>

namespace xnat {

SourceCounter::SourceCounter(uint64_t capacity) {
  const uint64_t n = std::bit_ceil(std::max<uint64_t>(16, capacity * 2));
  slots_ = HugeArray<Entry>(n);
  mask_ = n - 1;
}

uint32_t SourceCounter::count(uint32_t addr) const {
  for (size_t i = home(addr);; i = (i + 1) & mask_) {
    if (slots_[i].count == 0) return 0;
    if (slots_[i].addr == addr) return slots_[i].count;
  }
}

void SourceCounter::add(uint32_t addr) {
  for (size_t i = home(addr);; i = (i + 1) & mask_) {
    if (slots_[i].count == 0) {
      slots_[i] = Entry{addr, 1};
      return;
    }
    if (slots_[i].addr == addr) {
      ++slots_[i].count;
      return;
    }
  }
}

void SourceCounter::sub(uint32_t addr) {
  size_t i = home(addr);
  while (slots_[i].addr != addr || slots_[i].count == 0) {
    assert(slots_[i].count != 0 && "releasing a source that holds no flow");
    if (slots_[i].count == 0) return;
    i = (i + 1) & mask_;
  }
  if (--slots_[i].count > 0) return;
  // Backward-shift deletion, as in FlowTable::index_erase.
  size_t j = i;
  for (;;) {
    j = (j + 1) & mask_;
    if (slots_[j].count == 0) break;
    const size_t k = home(slots_[j].addr);
    const bool between = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
    if (!between) {
      slots_[i] = slots_[j];
      i = j;
    }
  }
  slots_[i] = Entry{};
}

}  // namespace xnat
