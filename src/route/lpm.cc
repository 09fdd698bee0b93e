#include "route/lpm.h"

#include <cassert>

namespace xnat {

void Lpm::place(uint32_t* entry, uint32_t leaf) {
  if (*entry & kGroup) {
    uint32_t* g = &groups_[(*entry & kValueMask) * kGroupSize];
    for (size_t i = 0; i < kGroupSize; ++i) place(&g[i], leaf);
    return;
  }
  if ((*entry & kValueMask) == 0 || rank_of(*entry) < rank_of(leaf)) *entry = leaf;
}

uint32_t Lpm::group_under(bool in_root, size_t at) {
  uint32_t e = in_root ? root_[at] : groups_[at];
  if (e & kGroup) return e & kValueMask;
  const auto g = static_cast<uint32_t>(group_count());
  groups_.resize(groups_.size() + kGroupSize, e);  // the entry's result, for every address under it
  (in_root ? root_[at] : groups_[at]) = kGroup | g;
  return g;
}

bool Lpm::insert(uint32_t prefix, uint8_t len, uint8_t rank, uint32_t value) {
  assert(len <= 32 && rank <= kMaxRank && value >= 1 && value <= kMaxValue);
  const uint32_t leaf = (uint32_t{rank} << 24) | value;
  if (len <= 16) {
    const size_t first = prefix >> 16, n = size_t{1} << (16 - len);
    for (size_t i = 0; i < n; ++i) place(&root_[first + i], leaf);
    return true;
  }
  // Up to two new groups; their index must fit an entry.
  if (group_count() + 2 > kValueMask) return false;
  const uint32_t g2 = group_under(true, prefix >> 16);
  const size_t at2 = g2 * kGroupSize + ((prefix >> 8) & 0xFF);
  if (len <= 24) {
    const size_t n = size_t{1} << (24 - len);
    for (size_t i = 0; i < n; ++i) place(&groups_[at2 + i], leaf);
    return true;
  }
  const uint32_t g3 = group_under(false, at2);
  const size_t at3 = g3 * kGroupSize + (prefix & 0xFF), n = size_t{1} << (32 - len);
  for (size_t i = 0; i < n; ++i) place(&groups_[at3 + i], leaf);
  return true;
}

}  // namespace xnat
