// Address vocabulary shared by routing and the rules: prefixes and the
// address types of xt_addrtype.
#pragma once

#include <cstdint>

namespace xnat {

struct Prefix {
  uint32_t addr = 0;  // host order, already masked
  uint8_t len = 0;
  // Without a branch: a 64-bit shift by 32 leaves the low half 0 for /0.
  uint32_t mask() const { return static_cast<uint32_t>(~uint64_t{0} << (32 - len)); }
  bool contains(uint32_t host_addr) const { return (host_addr & mask()) == addr; }
  friend bool operator==(const Prefix&, const Prefix&) = default;
};

// addrtype types (xt_addrtype), as a bitmask.
enum AddrTypeBits : uint16_t {
  kAddrUnspec = 1 << 0,
  kAddrUnicast = 1 << 1,
  kAddrLocal = 1 << 2,
  kAddrBroadcast = 1 << 3,
  kAddrAnycast = 1 << 4,
  kAddrMulticast = 1 << 5,
  kAddrBlackhole = 1 << 6,
  kAddrUnreachable = 1 << 7,
  kAddrProhibit = 1 << 8,
};

}  // namespace xnat
