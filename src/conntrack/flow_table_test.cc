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
