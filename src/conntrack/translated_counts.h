// Source-translated flows per translated address and protocol: how much of
// each address's port pool is taken, for the metrics that warn before a pool
// runs out. A fixed open-addressing table, kept as flows are translated and
// leave; a pair that finds no room in it is counted in an overflow slot
// (address 0).
#pragma once

#include <array>
#include <cstdint>

namespace xnat {

class TranslatedCounts {
 public:
  static constexpr uint32_t kSlots = 4096;  // address and protocol pairs
  struct Slot {
    uint32_t addr = 0;  // network order; 0: unused (or the overflow, proto 0)
    uint8_t proto = 0;
    uint32_t flows = 0;
  };

  void add(uint32_t addr, uint8_t proto) { ++slot(addr, proto).flows; }
  void sub(uint32_t addr, uint8_t proto) { --slot(addr, proto).flows; }
  // fn(const Slot&) for each pair that has had flows, then the overflow's.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (const Slot& s : slots_)
      if (s.addr) fn(s);
    if (overflow_.flows) fn(overflow_);
  }

 private:
  Slot& slot(uint32_t addr, uint8_t proto) {
    const uint32_t key = addr * 0x9E3779B1u ^ proto;
    for (uint32_t i = 0, at = (key >> 20) & (kSlots - 1); i < 64; ++i, at = (at + 1) & (kSlots - 1)) {
      Slot& s = slots_[at];
      if (s.addr == addr && s.proto == proto) return s;
      if (!s.addr) {
        s.addr = addr;
        s.proto = proto;
        return s;
      }
    }
    return overflow_;
  }
  std::array<Slot, kSlots> slots_{};
  Slot overflow_;
};

}  // namespace xnat
