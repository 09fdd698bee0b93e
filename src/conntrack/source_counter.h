// SourceCounter: how many tracked flows each original source address holds,
// for xnat_max_flows_per_source (RFC 6888 REQ-4: a carrier-grade NAT limits
// what one subscriber can take).
//
// Open addressing over {address, count} with linear probing and backward-shift
// deletion, sized for every flow having its own source (2 slots per flow of
// capacity, 16 bytes per flow). Allocated only when the limit is set, so the
// default table stays at its ~117 bytes per flow.
#pragma once

#include <cstdint>

#include "base/huge_array.h"

namespace xnat {

class SourceCounter {
 public:
  SourceCounter() = default;
  explicit SourceCounter(uint64_t capacity);
  bool enabled() const { return mask_ != 0; }
  uint32_t count(uint32_t addr) const;
  void add(uint32_t addr);
  void sub(uint32_t addr);

 private:
  struct Entry {
    uint32_t addr = 0;
    uint32_t count = 0;  // 0: empty slot
  };
  size_t home(uint32_t addr) const {
    return static_cast<size_t>((uint64_t{addr} * 0x9E3779B97F4A7C15ull) >> 32) & mask_;
  }
  HugeArray<Entry> slots_;
  size_t mask_ = 0;
};

}  // namespace xnat
