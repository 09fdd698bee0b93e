#include "live/neighbor_queue.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <vector>

namespace xnat {
namespace {

uint32_t addr(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return a.s_addr;
}

struct Sent {
  int port;
  std::vector<uint8_t> frame;
};

Packet pending(std::vector<uint8_t>& f, int out_if, const char* next_hop) {
  Packet p;
  p.data = f.data();
  p.len = static_cast<uint32_t>(f.size());
  p.out_if = static_cast<int16_t>(out_if);
  p.next_hop = addr(next_hop);
  p.verdict = Verdict::kNeighborPending;
  return p;
}

TEST(NeighborQueue, SendsWhenResolvedWithTheNeighboursMac) {
  NeighborQueue q;
  Fib fib;
  std::vector<uint8_t> f(100, 0xab);
  ASSERT_TRUE(q.hold(pending(f, 1, "198.19.0.2"), 1000));
  f[20] = 0;  // held as a copy
  std::vector<Sent> sent;
  auto send = [&](int port, const uint8_t* d, uint32_t len) {
    sent.push_back({port, std::vector<uint8_t>(d, d + len)});
    return true;
  };
  EXPECT_EQ(q.service(fib, 1500, send), 0u);  // not resolved yet, not timed out
  EXPECT_TRUE(sent.empty());
  EXPECT_EQ(q.size(), 1u);
  const MacAddr mac{{0x02, 0, 0, 0, 0, 0x20}};
  fib.add_neighbor(addr("198.19.0.2"), mac);
  EXPECT_EQ(q.service(fib, 1600, send), 0u);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].port, 1);
  ASSERT_EQ(sent[0].frame.size(), 100u);
  EXPECT_TRUE(std::equal(mac.b, mac.b + 6, sent[0].frame.begin()));  // destination MAC filled in
  EXPECT_EQ(sent[0].frame[20], 0xab);
  EXPECT_EQ(q.size(), 0u);
}

TEST(NeighborQueue, TimesOutAndIsBounded) {
  NeighborQueue q;
  Fib fib;
  std::vector<uint8_t> f(60);
  for (size_t i = 0; i < NeighborQueue::kSlots; ++i) ASSERT_TRUE(q.hold(pending(f, 0, "198.18.0.9"), 1000));
  EXPECT_FALSE(q.hold(pending(f, 0, "198.18.0.9"), 1000));  // full: counted by the caller
  NeighborQueue q2;
  std::vector<uint8_t> big(q2.frame_max() + 1);
  EXPECT_FALSE(q2.hold(pending(big, 0, "198.18.0.9"), 1000));
  auto send = [](int, const uint8_t*, uint32_t) { return true; };
  EXPECT_EQ(q.service(fib, 1000 + NeighborQueue::kWaitMs - 1, send), 0u);
  EXPECT_EQ(q.service(fib, 1000 + NeighborQueue::kWaitMs, send), NeighborQueue::kSlots);  // drop_neighbor_timeout
  EXPECT_EQ(q.size(), 0u);
}

TEST(NeighborQueue, HoldsJumboFrames) {
  NeighborQueue q;
  Fib fib;
  std::vector<uint8_t> a(9014, 0x11), b(1514, 0x22);  // MTU 9000 and 1500
  ASSERT_TRUE(q.hold(pending(a, 1, "198.19.0.2"), 1000));
  ASSERT_TRUE(q.hold(pending(b, 1, "198.19.0.2"), 1000));
  fib.add_neighbor(addr("198.19.0.2"), MacAddr{{2, 0, 0, 0, 0, 1}});
  std::vector<Sent> sent;
  EXPECT_EQ(q.service(fib, 1001,
                      [&](int port, const uint8_t* d, uint32_t len) {
                        sent.push_back({port, std::vector<uint8_t>(d, d + len)});
                        return true;
                      }),
            0u);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].frame.size(), 9014u);
  EXPECT_EQ(sent[0].frame.back(), 0x11);
  EXPECT_EQ(sent[1].frame.size(), 1514u);
  EXPECT_EQ(sent[1].frame.back(), 0x22);
}

TEST(NeighborQueue, SlotsTakeTheLargestMtu) {
  EXPECT_EQ(NeighborQueue().frame_max(), NeighborQueue::kFrameMin);
  EXPECT_EQ(NeighborQueue(1500).frame_max(), NeighborQueue::kFrameMin);
  NeighborQueue q(16000);
  EXPECT_EQ(q.frame_max(), 16018u);
  std::vector<uint8_t> f(16014, 0x33);
  ASSERT_TRUE(q.hold(pending(f, 1, "198.19.0.2"), 1000));
  Fib fib;
  fib.add_neighbor(addr("198.19.0.2"), MacAddr{{2, 0, 0, 0, 0, 1}});
  uint32_t sent = 0;
  EXPECT_EQ(q.service(fib, 1001, [&](int, const uint8_t* d, uint32_t len) { return sent = len, d[len - 1] == 0x33; }), 0u);
  EXPECT_EQ(sent, 16014u);
}

TEST(NeighborQueue, AFailedSendCountsAsLost) {
  NeighborQueue q;
  Fib fib;
  fib.add_neighbor(addr("198.19.0.2"), MacAddr{{2, 0, 0, 0, 0, 1}});
  std::vector<uint8_t> f(60);
  ASSERT_TRUE(q.hold(pending(f, 1, "198.19.0.2"), 1000));
  EXPECT_EQ(q.service(fib, 1001, [](int, const uint8_t*, uint32_t) { return false; }), 1u);
  EXPECT_EQ(q.size(), 0u);
}

}  // namespace
}  // namespace xnat
