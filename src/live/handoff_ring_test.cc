#include "live/handoff_ring.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace xnat {
namespace {

Packet frame_of(std::vector<uint8_t>& bytes, int16_t in_if, uint8_t hops) {
  Packet p;
  p.data = bytes.data();
  p.len = static_cast<uint32_t>(bytes.size());
  p.in_if = in_if;
  p.hops = hops;
  return p;
}

TEST(HandoffRing, CopiesInOrderUntilFull) {
  HandoffRing r(4);
  EXPECT_TRUE(r.empty());
  std::vector<std::vector<uint8_t>> frames;
  for (uint8_t i = 0; i < 5; ++i) frames.push_back(std::vector<uint8_t>(60 + i, i));
  for (uint8_t i = 0; i < 4; ++i) EXPECT_TRUE(r.push(frame_of(frames[i], i & 1, i)));
  EXPECT_FALSE(r.push(frame_of(frames[4], 0, 0)));  // full: the caller counts drop_handoff_full
  frames[0][0] = 99;                                // the ring holds copies
  Packet out[8];
  ASSERT_EQ(r.peek(out, 8), 4u);
  for (uint8_t i = 0; i < 4; ++i) {
    EXPECT_EQ(out[i].len, 60u + i);
    EXPECT_EQ(out[i].data[0], i);
    EXPECT_EQ(out[i].in_if, i & 1);
    EXPECT_EQ(out[i].hops, i);
    EXPECT_EQ(out[i].capacity, HandoffRing::kFrameMax);
  }
  r.release(3);
  EXPECT_TRUE(r.push(frame_of(frames[4], 0, 0)));  // room again, across the wrap
  ASSERT_EQ(r.peek(out, 8), 2u);
  EXPECT_EQ(out[0].len, 63u);
  EXPECT_EQ(out[1].len, 64u);
  r.release(2);
  EXPECT_TRUE(r.empty());
}

TEST(HandoffRing, RefusesAFrameLargerThanASlot) {
  HandoffRing r(2);
  std::vector<uint8_t> big(HandoffRing::kFrameMax + 1);
  EXPECT_FALSE(r.push(frame_of(big, 0, 0)));
  EXPECT_TRUE(r.empty());
}

// One producer and one consumer thread: every frame arrives once, in order.
TEST(HandoffRing, TwoThreadsLoseNothing) {
  HandoffRing r(64);
  constexpr uint32_t kFrames = 200000;
  std::thread producer([&] {
    std::vector<uint8_t> f(64);
    for (uint32_t i = 0; i < kFrames;) {
      std::memcpy(f.data(), &i, 4);
      if (r.push(frame_of(f, 0, 0))) ++i;
    }
  });
  uint32_t next = 0;
  bool in_order = true;
  Packet out[kBurst];
  while (next < kFrames) {
    const size_t n = r.peek(out, kBurst);
    for (size_t k = 0; k < n; ++k) {
      uint32_t v;
      std::memcpy(&v, out[k].data, 4);
      in_order &= v == next++;
    }
    r.release(n);
  }
  producer.join();
  EXPECT_TRUE(in_order);
  EXPECT_TRUE(r.empty());
}

}  // namespace
}  // namespace xnat
