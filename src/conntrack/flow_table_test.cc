#include "conntrack/flow_table.h"

#include <gtest/gtest.h>

#include <random>
#include <unordered_map>

namespace xnat {
namespace {

Tuple tuple_of(uint32_t i) {
  Tuple t;
  t.src = 0x0A000000u + i;
  t.dst = 0xC6336407u;
  t.sport = static_cast<uint16_t>(i * 7);
  t.dport = 53;
  t.proto = 17;
  return t;
}

TEST(FlowTable, FindsBothDirectionsAndSurvivesChurnAtFullLoad) {
  constexpr uint32_t kCap = 5000;
  FlowTable ft(kCap, 0, 99);
  std::unordered_map<uint32_t, uint32_t> live;  // key id -> flow index
  std::mt19937 rng(7);
  uint32_t next_id = 0;
  for (int step = 0; step < 200000; ++step) {
    const bool insert = live.size() < kCap && (live.empty() || rng() % 3 != 0);
    if (insert) {
      uint32_t id = next_id++;
      uint32_t idx = ft.alloc();
      ASSERT_NE(idx, kNoRef);
      ft.flow(idx).tuple[0] = tuple_of(id);
      ft.flow(idx).tuple[1] = invert(tuple_of(id));
      ft.link(idx);
      live[id] = idx;
    } else {
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      ft.unlink_and_free(it->second);
      ASSERT_EQ(ft.find(tuple_of(it->first), ft.hash(tuple_of(it->first))), kNoRef);
      live.erase(it);
    }
    if (step % 997 == 0) {
      for (auto [id, idx] : live) {
        ASSERT_EQ(ft.find(tuple_of(id), ft.hash(tuple_of(id))), idx * 2);
        Tuple r = invert(tuple_of(id));
        ASSERT_EQ(ft.find(r, ft.hash(r)), idx * 2 + 1);
      }
    }
  }
  EXPECT_EQ(ft.size(), live.size());
}

// The bulk lookup's answer equals find()'s whatever happened to the table
// between taking the candidates and resolving them: flows of the burst's keys
// created, removed, or removed and their slots reused by others.
TEST(FlowTable, BulkLookupEqualsFindAfterChanges) {
  constexpr uint32_t kCap = 512, kKeys = 32;
  FlowTable ft(kCap, 0, 5);
  std::mt19937 rng(11);
  std::unordered_map<uint32_t, uint32_t> live;  // key id -> flow index
  auto add = [&](uint32_t id) {
    const uint32_t idx = ft.alloc();
    ft.flow(idx).tuple[0] = tuple_of(id);
    ft.flow(idx).tuple[1] = invert(tuple_of(id));
    ft.link(idx);
    live[id] = idx;
  };
  size_t hits_kept = 0, stale = 0, probed = 0;
  for (int round = 0; round < 2000; ++round) {
    uint32_t keys[kKeys], cand[kKeys];
    bool reply[kKeys];
    for (uint32_t k = 0; k < kKeys; ++k) {
      keys[k] = rng() % 600;
      reply[k] = rng() % 2;
    }
    auto key = [&](uint32_t k) { return reply[k] ? invert(tuple_of(keys[k])) : tuple_of(keys[k]); };
    for (uint32_t k = 0; k < kKeys; ++k) ft.prefetch(ft.hash(key(k)));
    for (uint32_t k = 0; k < kKeys; ++k) cand[k] = ft.prefetch_flow(ft.hash(key(k)));
    // Changes between stage 2 and stage 3, as earlier packets of a burst make.
    const int changes = round % 4 == 0 ? 0 : static_cast<int>(rng() % 8);
    for (int c = 0; c < changes; ++c) {
      const uint32_t id = keys[rng() % kKeys];
      if (auto it = live.find(id); it != live.end()) {
        ft.unlink_and_free(it->second);
        live.erase(it);
        if (rng() % 2 && live.size() < kCap) add(600 + rng() % 600);  // reuses the freed slot
      } else if (live.size() < kCap) {
        add(id);
      }
    }
    for (uint32_t k = 0; k < kKeys; ++k) {
      const uint64_t h = ft.hash(key(k));
      const uint32_t want = ft.find(key(k), h);
      ASSERT_EQ(ft.resolve(cand[k], key(k), h), want) << "round " << round << " key " << k;
      if (cand[k] < kProbeOn && cand[k] == want) ++hits_kept;
      else if (cand[k] < kProbeOn) ++stale;
      else ++probed;
    }
    // Keep the table from filling: drop a few at random.
    while (live.size() > kCap / 2) {
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      ft.unlink_and_free(it->second);
      live.erase(it);
    }
  }
  // Every path was taken.
  EXPECT_GT(hits_kept, 0u);
  EXPECT_GT(stale, 0u);
  EXPECT_GT(probed, 0u);
}

TEST(FlowTable, FullTableRefusesAlloc) {
  FlowTable ft(3, 0, 1);
  EXPECT_NE(ft.alloc(), kNoRef);
  EXPECT_NE(ft.alloc(), kNoRef);
  EXPECT_NE(ft.alloc(), kNoRef);
  EXPECT_EQ(ft.alloc(), kNoRef);
}

TEST(FlowTable, BytesPerFlowWithinBudget) {
  // The budget: <= 128 bytes per flow, both directions included. The
  // flow table's share; Conntrack adds 16 bytes of links (see conntrack_test).
  for (uint32_t cap : {1000u, 65536u, 1000000u}) {
    FlowTable ft(cap, 0, 1);
    EXPECT_LE(ft.memory_bytes() / cap, 112u) << "capacity " << cap;
  }
}

}  // namespace
}  // namespace xnat
