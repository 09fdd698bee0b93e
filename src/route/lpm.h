// IPv4 longest-prefix match in at most three reads: a 65 536-entry table
// indexed by the address's top 16 bits, whose entries either hold a result
// or point at a 256-entry group for the next 8 bits, whose entries in turn
// may point at a group for the last 8 (DIR-16-8-8; the scheme of Gupta, Lin
// and McKeown's DIR-24-8 and of DPDK's rte_lpm, with a root small enough to
// copy per gateway worker).
//
// Each entry carries the rank of the prefix that set it. A prefix is written
// over the entries it covers whose rank is lower; of two equal ranks the first
// written stays. With rank = prefix length that is longest-prefix match, the
// first added of two equal prefixes winning; a higher band of ranks lets one
// set of prefixes (the local table) win over every other.
//
// Memory: 256 KiB for the root, 1 KiB per group. A full Internet table
// (about 1 M prefixes, most of them /24s under about 40 k /16s) takes about
// 40 MiB; a NAT gateway's connected prefixes and default route take the root
// alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/huge_array.h"

namespace xnat {

class Lpm {
 public:
  static constexpr uint32_t kMaxValue = (1u << 24) - 1;
  static constexpr uint8_t kMaxRank = 127;

  Lpm() : root_(kRootSize, 0) {}

  // Covers prefix/len (host order, already masked; len 0..32) with `value`
  // (1..kMaxValue) at `rank` (0..kMaxRank). False, and nothing changed, if
  // it needs a group beyond the 2^24 an entry can point at.
  bool insert(uint32_t prefix, uint8_t len, uint8_t rank, uint32_t value);

  // The value of the highest-ranked prefix holding `addr` (host order), 0 if none.
  uint32_t lookup(uint32_t addr) const {
    uint32_t e = root_[addr >> 16];
    if (e & kGroup) [[unlikely]] {
      e = groups_[(e & kValueMask) * kGroupSize + ((addr >> 8) & 0xFF)];
      if (e & kGroup) e = groups_[(e & kValueMask) * kGroupSize + (addr & 0xFF)];
    }
    return e & kValueMask;
  }

  size_t group_count() const { return groups_.size() / kGroupSize; }
  size_t memory_bytes() const { return (root_.size() + groups_.size()) * sizeof(uint32_t); }

 private:
  // Entry: bits 0-23 the value (0: no prefix) or, with kGroup, a group's
  // index; bits 24-30 the rank of the prefix that set the value.
  static constexpr uint32_t kGroup = 1u << 31;
  static constexpr uint32_t kValueMask = (1u << 24) - 1;
  static constexpr size_t kRootSize = 1 << 16;
  static constexpr size_t kGroupSize = 256;

  static uint8_t rank_of(uint32_t e) { return static_cast<uint8_t>((e >> 24) & 0x7F); }
  // Writes `leaf` over *entry if it outranks it, or, through a group entry,
  // over everything under it that it outranks.
  void place(uint32_t* entry, uint32_t leaf);
  // The group under *entry, made (filled with the entry's own result) if the
  // entry is a result. Returns the group's index; may reallocate groups_.
  uint32_t group_under(bool in_root, size_t at);

  std::vector<uint32_t> root_;
  std::vector<uint32_t, HugePageAllocator<uint32_t>> groups_;  // a full table's are tens of MiB
};

}  // namespace xnat
