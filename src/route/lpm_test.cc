#include "route/lpm.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace xnat {
namespace {

uint32_t mask(uint8_t len) { return static_cast<uint32_t>(~uint64_t{0} << (32 - len)); }

// The definition: of the prefixes holding the address, the highest rank, and
// of equal ranks the first inserted.
struct Reference {
  struct P {
    uint32_t addr;
    uint8_t len, rank;
    uint32_t value;
  };
  std::vector<P> ps;
  uint32_t lookup(uint32_t a) const {
    const P* best = nullptr;
    for (const P& p : ps)
      if ((a & mask(p.len)) == p.addr && (!best || p.rank > best->rank)) best = &p;
    return best ? best->value : 0;
  }
};

TEST(Lpm, EmptyFindsNothing) {
  Lpm t;
  EXPECT_EQ(t.lookup(0), 0u);
  EXPECT_EQ(t.lookup(0xFFFFFFFF), 0u);
  EXPECT_EQ(t.group_count(), 0u);
}

TEST(Lpm, LongestPrefixAtEveryLevel) {
  Lpm t;
  ASSERT_TRUE(t.insert(0, 0, 0, 1));                     // default
  ASSERT_TRUE(t.insert(0x0A000000, 8, 8, 2));            // 10/8
  ASSERT_TRUE(t.insert(0x0A010000, 16, 16, 3));          // 10.1/16
  ASSERT_TRUE(t.insert(0x0A010200, 24, 24, 4));          // 10.1.2/24
  ASSERT_TRUE(t.insert(0x0A010280, 25, 25, 5));          // 10.1.2.128/25
  ASSERT_TRUE(t.insert(0x0A0102FE, 32, 32, 6));          // 10.1.2.254/32
  ASSERT_TRUE(t.insert(0x0A010300, 23 + 1, 24, 7));      // 10.1.3/24
  EXPECT_EQ(t.lookup(0x08080808), 1u);
  EXPECT_EQ(t.lookup(0x0AFF0000), 2u);
  EXPECT_EQ(t.lookup(0x0A01FF01), 3u);
  EXPECT_EQ(t.lookup(0x0A010201), 4u);
  EXPECT_EQ(t.lookup(0x0A010281), 5u);
  EXPECT_EQ(t.lookup(0x0A0102FE), 6u);
  EXPECT_EQ(t.lookup(0x0A0102FF), 5u);
  EXPECT_EQ(t.lookup(0x0A010305), 7u);
  EXPECT_EQ(t.group_count(), 2u);  // one under 10.1/16, one under 10.1.2/24
}

TEST(Lpm, ShorterPrefixAddedLaterDoesNotOverwriteLonger) {
  Lpm t;
  ASSERT_TRUE(t.insert(0xC0A80180, 25, 25, 9));  // 192.168.1.128/25 first
  ASSERT_TRUE(t.insert(0xC0A80000, 16, 16, 3));  // then 192.168/16
  ASSERT_TRUE(t.insert(0, 0, 0, 1));             // then the default
  EXPECT_EQ(t.lookup(0xC0A80181), 9u);
  EXPECT_EQ(t.lookup(0xC0A80101), 3u);  // the group's other half takes the /16
  EXPECT_EQ(t.lookup(0xC0A90101), 1u);
}

TEST(Lpm, EqualRankFirstInsertedWins) {
  Lpm t;
  ASSERT_TRUE(t.insert(0x0A000000, 8, 8, 2));
  ASSERT_TRUE(t.insert(0x0A000000, 8, 8, 3));  // the same prefix again (a worse metric)
  EXPECT_EQ(t.lookup(0x0A010203), 2u);
  ASSERT_TRUE(t.insert(0x0A010200, 30, 30, 4));
  ASSERT_TRUE(t.insert(0x0A010200, 30, 30, 5));
  EXPECT_EQ(t.lookup(0x0A010203), 4u);
}

TEST(Lpm, HigherRankBandWinsOverLongerPrefixes) {
  Lpm t;
  ASSERT_TRUE(t.insert(0x7F000000, 8, 64 + 8, 1));  // 127/8, local
  ASSERT_TRUE(t.insert(0x7F000005, 32, 32, 2));     // a /32 route inside it
  EXPECT_EQ(t.lookup(0x7F000005), 1u);
  ASSERT_TRUE(t.insert(0x0A000001, 32, 32, 2));     // a route to an address...
  ASSERT_TRUE(t.insert(0x0A000001, 32, 64 + 32, 1));  // ...that is then made local
  EXPECT_EQ(t.lookup(0x0A000001), 1u);
}

TEST(Lpm, CopiesAreIndependent) {
  Lpm a;
  ASSERT_TRUE(a.insert(0x0A010200, 24, 24, 4));
  Lpm b = a;
  ASSERT_TRUE(b.insert(0x0A010280, 25, 25, 5));
  EXPECT_EQ(a.lookup(0x0A010281), 4u);
  EXPECT_EQ(b.lookup(0x0A010281), 5u);
}

// Over 1 MiB of groups: they come from 2 MiB pages (HugePageAllocator),
// through growth and through a copy.
TEST(Lpm, LargeTablesOnHugePagesGrowAndCopy) {
  Lpm t;
  for (uint32_t k = 0; k < 3000; ++k) ASSERT_TRUE(t.insert((k << 16) | 0x0100, 24, 24, 1 + k));
  EXPECT_EQ(t.group_count(), 3000u);
  EXPECT_GT(t.memory_bytes(), size_t{3} << 20);
  const Lpm copy = t;
  for (uint32_t k = 0; k < 3000; ++k) {
    ASSERT_EQ(t.lookup((k << 16) | 0x0107), 1 + k);
    ASSERT_EQ(copy.lookup((k << 16) | 0x0107), 1 + k);
    ASSERT_EQ(t.lookup((k << 16) | 0x0207), 0u);
  }
}

// Random tables against the definition, probing each prefix's edges and
// neighbourhood and random addresses. Prefixes cluster under a few /16s so
// that groups of both levels are made, filled and overwritten in every order.
TEST(Lpm, MatchesTheDefinitionOnRandomTables) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 40; ++round) {
    Lpm t;
    Reference ref;
    const int n = 1 + static_cast<int>(rng() % 300);
    const uint32_t bases[4] = {0x0A000000, 0x0A010000, 0xC0A80000, static_cast<uint32_t>(rng())};
    for (int i = 0; i < n; ++i) {
      const auto len = static_cast<uint8_t>(rng() % 33);
      const uint32_t a = (bases[rng() % 4] ^ (static_cast<uint32_t>(rng()) & (rng() % 2 ? 0xFFFF : 0xFFFFFFFF))) & mask(len);
      const auto rank = static_cast<uint8_t>(round % 2 ? len : rng() % 40);  // LPM, or arbitrary ranks
      const auto value = static_cast<uint32_t>(1 + rng() % 1000);
      ASSERT_TRUE(t.insert(a, len, rank, value));
      ref.ps.push_back({a, len, rank, value});
    }
    std::vector<uint32_t> probes;
    for (const auto& p : ref.ps) {
      const uint32_t last = p.addr | ~mask(p.len);
      for (uint32_t a : {p.addr, last, p.addr - 1, last + 1, p.addr + (last - p.addr) / 2}) probes.push_back(a);
    }
    for (int i = 0; i < 2000; ++i) probes.push_back((bases[rng() % 4] & 0xFFFF0000) | (static_cast<uint32_t>(rng()) & 0xFFFF));
    for (int i = 0; i < 500; ++i) probes.push_back(static_cast<uint32_t>(rng()));
    for (uint32_t a : probes) ASSERT_EQ(t.lookup(a), ref.lookup(a)) << "round " << round << " address " << std::hex << a;
  }
}

}  // namespace
}  // namespace xnat
