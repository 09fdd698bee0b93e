// The data plane's pseudo-random numbers.
#pragma once

#include <cstdint>

namespace xnat {

// xorshift64*: fast, seedable (replay is deterministic), good enough for port
// offsets. Live mode seeds it from the kernel's random source.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed ? seed : 0x9E3779B97F4A7C15ull) {}
  uint32_t next() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return static_cast<uint32_t>((s_ * 0x2545F4914F6CDD1Dull) >> 32);
  }

 private:
  uint64_t s_;
};

}  // namespace xnat
