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
  HandoffRing r(64);
  ASSERT_EQ(r.units(), 64u);
  EXPECT_TRUE(r.empty());
  std::vector<std::vector<uint8_t>> frames;
  for (uint8_t i = 0; i < 65; ++i) frames.push_back(std::vector<uint8_t>(60 + i, i));
  for (uint8_t i = 0; i < 64; ++i) EXPECT_TRUE(r.push(frame_of(frames[i], i & 1, i)));  // an MTU frame: one unit
  EXPECT_FALSE(r.push(frame_of(frames[64], 0, 0)));  // full: the caller counts drop_handoff_full
  frames[0][0] = 99;                                 // the ring holds copies
  Packet out[kBurst];
  ASSERT_EQ(r.peek(out, 8), 8u);
  for (uint8_t i = 0; i < 8; ++i) {
    EXPECT_EQ(out[i].len, 60u + i);
    EXPECT_EQ(out[i].data[0], i);
    EXPECT_EQ(out[i].in_if, i & 1);
    EXPECT_EQ(out[i].hops, i);
    EXPECT_GE(out[i].capacity, 2000u);  // room to grow in place (ICMP errors)
  }
  r.release(3);
  EXPECT_TRUE(r.push(frame_of(frames[64], 0, 0)));  // room again, across the wrap
  size_t seen = 0;
  uint32_t last_len = 0;
  while (size_t n = r.peek(out, kBurst)) {
    for (size_t i = 0; i < n; ++i) last_len = out[i].len;
    seen += n;
    r.release(n);
  }
  EXPECT_EQ(seen, 62u);  // 64 - 3 + 1
  EXPECT_EQ(last_len, 124u);
  EXPECT_TRUE(r.empty());
}

// A super-frame passes whole with its offload state, in order with the
// frames around it, also when it has to wrap.
TEST(HandoffRing, SuperFramesPassWholeInOrder) {
  HandoffRing r(64);
  std::vector<uint8_t> small(100, 1), big(60000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 7);
  Packet out[kBurst];
  for (int round = 0; round < 10; ++round) {  // the ring wraps several times
    Packet b = frame_of(big, 1, 0);
    b.l4_csum = L4Csum::kPartial;
    b.gso = Gso::kTcp;
    b.gso_size = 1448;
    ASSERT_TRUE(r.push(frame_of(small, 0, 0)));
    ASSERT_TRUE(r.push(b));
    ASSERT_TRUE(r.push(frame_of(small, 0, 1)));
    ASSERT_EQ(r.peek(out, kBurst), 3u);
    EXPECT_EQ(out[0].len, 100u);
    ASSERT_EQ(out[1].len, 60000u);
    EXPECT_TRUE(std::equal(big.begin(), big.end(), out[1].data));
    EXPECT_EQ(out[1].l4_csum, L4Csum::kPartial);
    EXPECT_EQ(out[1].gso, Gso::kTcp);
    EXPECT_EQ(out[1].gso_size, 1448);
    EXPECT_GE(out[1].capacity, 60000u);
    EXPECT_EQ(out[2].hops, 1);
    r.release(3);
  }
  EXPECT_TRUE(r.empty());
}

TEST(HandoffRing, RefusesAFrameLargerThanTheLargest) {
  HandoffRing r(64);
  std::vector<uint8_t> huge(HandoffRing::kFrameMax + 1);
  EXPECT_FALSE(r.push(frame_of(huge, 0, 0)));
  EXPECT_TRUE(r.empty());
}

// One producer and one consumer thread, frames of every size up to a
// super-frame: every one arrives once, in order, intact.
TEST(HandoffRing, TwoThreadsLoseNothing) {
  HandoffRing r(128);
  constexpr uint32_t kFrames = 50000;
  std::thread producer([&] {
    std::vector<uint8_t> f(HandoffRing::kFrameMax);
    for (uint32_t i = 0; i < kFrames;) {
      const uint32_t len = i % 17 == 0 ? 60000 : 64 + i % 1400;
      std::memcpy(f.data(), &i, 4);
      f[len - 1] = static_cast<uint8_t>(i);
      Packet p;
      p.data = f.data();
      p.len = len;
      if (r.push(p)) ++i;
    }
  });
  uint32_t next = 0;
  bool ok = true;
  Packet out[kBurst];
  while (next < kFrames) {
    const size_t n = r.peek(out, kBurst);
    for (size_t k = 0; k < n; ++k, ++next) {
      uint32_t v;
      std::memcpy(&v, out[k].data, 4);
      const uint32_t len = next % 17 == 0 ? 60000 : 64 + next % 1400;
      ok &= v == next && out[k].len == len && out[k].data[len - 1] == static_cast<uint8_t>(next);
    }
    r.release(n);
  }
  producer.join();
  EXPECT_TRUE(ok);
  EXPECT_TRUE(r.empty());
}

}  // namespace
}  // namespace xnat
