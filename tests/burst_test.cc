// The burst path (process_burst with 32 frames: parse and hash all, load
// slots and flows, then handle) against one frame at a time, for every
// golden case: each of its steps is sent inside a burst of other traffic
// (new flows, replies, strays, malformed frames, and the step's frame again),
// through two engines. Every frame, verdict and counter, and the final
// connection table, must be the same.
#include <gtest/gtest.h>

#include <random>

#include "dataplane/report.h"
#include "golden_cases.h"
#include "test_util.h"

namespace xnat::test {
namespace {

// Traffic around a step: other clients, their servers' replies and strays,
// some of it malformed. Deterministic for a seed.
std::vector<std::vector<uint8_t>> fillers(std::mt19937& rng, size_t n) {
  std::vector<std::vector<uint8_t>> out;
  auto pick = [&](uint32_t k) { return static_cast<uint32_t>(rng() % k); };
  for (size_t i = 0; i < n; ++i) {
    const std::string client = "198.18.7." + std::to_string(1 + pick(20));
    const std::string server = "203.0.113." + std::to_string(1 + pick(5));
    const uint16_t sport = static_cast<uint16_t>(30000 + pick(8));
    switch (pick(7)) {
      case 0:
        out.push_back(from_client(client).ip(client, server).udp(sport, 53).payload(std::vector<uint8_t>{1, 2, 3}).build());
        break;
      case 1:
        out.push_back(from_client(client).ip(client, server).tcp(sport, 443, kTcpSyn, 1000 + pick(100)).build());
        break;
      case 2:
        out.push_back(from_client(client).ip(client, server).icmp(8, 0, sport, 1).build());
        break;
      case 3:  // a reply, to whichever mapping it finds (or none)
        out.push_back(FrameBuilder().eth(kRouterMac, kOutMac).ip(server, "198.19.0.1").udp(53, sport).build());
        break;
      case 4:
        out.push_back(
            FrameBuilder().eth(kRouterMac, kOutMac).ip(server, "198.19.0.1").tcp(443, sport, kTcpSyn | kTcpAck, 5, 1001).build());
        break;
      case 5: {  // truncated
        auto f = from_client(client).ip(client, server).udp(sport, 53).build();
        f.resize(14 + pick(30));
        out.push_back(f);
        break;
      }
      default: {  // a wrong checksum
        auto f = from_client(client).ip(client, server).udp(sport, 53).build();
        f.back() ^= 0x5a;
        out.push_back(f);
        break;
      }
    }
  }
  return out;
}

struct Frame {
  std::vector<uint8_t> bytes;
  int in_if;
};

class BurstGolden : public ::testing::TestWithParam<Case> {};

TEST_P(BurstGolden, BurstsMatchOneAtATime) {
  const Case& c = GetParam();
  auto one = make_engine(c.rules);
  auto burst = make_engine(c.rules);
  std::mt19937 rng(42);
  uint64_t last_t = 0;
  for (const Step& s : c.steps) {
    SCOPED_TRACE(s.what);
    // 32 frames: fillers, the step's frame at a random place, and again later.
    std::vector<Frame> frames;
    for (auto& f : fillers(rng, 30)) frames.push_back({f, f.size() > 14 && f[6 + 5] == kRouterMac.b[5] ? kOut : kIn});
    const size_t at = rng() % 16;
    frames.insert(frames.begin() + static_cast<long>(at), Frame{s.in, s.in_if});
    frames.insert(frames.begin() + static_cast<long>(at + 1 + rng() % 15), Frame{s.in, s.in_if});
    ASSERT_EQ(frames.size(), Engine::kBurst);

    std::vector<std::vector<uint8_t>> bufs(frames.size());
    std::vector<Packet> pkts(frames.size());
    for (size_t i = 0; i < frames.size(); ++i) pkts[i] = received(&bufs[i], frames[i].bytes, frames[i].in_if);
    burst->process_burst(pkts.data(), pkts.size(), s.t_ms);
    for (size_t i = 0; i < frames.size(); ++i) {
      Output a = run(*one, frames[i].bytes, frames[i].in_if, s.t_ms);
      Output b = result(pkts[i]);
      ASSERT_EQ(a.verdict, b.verdict) << "frame " << i << ": " << describe(frames[i].bytes);
      EXPECT_EQ(a.reason, b.reason) << "frame " << i;
      EXPECT_EQ(a.out_if, b.out_if) << "frame " << i;
      EXPECT_EQ(a.frame, b.frame) << "frame " << i << "\none:   " << describe(a.frame) << "\nburst: " << describe(b.frame);
    }
    last_t = s.t_ms;
  }
  for (size_t k = 0; k < kCounterCount; ++k)
    EXPECT_EQ(one->counters().v[k], burst->counters().v[k]) << counter_name(static_cast<Counter>(k));
  EXPECT_EQ(format_conntrack_table(one->conntrack(), last_t), format_conntrack_table(burst->conntrack(), last_t));
  EXPECT_GT(one->counters().v[static_cast<size_t>(Counter::flows_created)], 0u);
}

INSTANTIATE_TEST_SUITE_P(Engine, BurstGolden, ::testing::ValuesIn(golden_cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

}  // namespace
}  // namespace xnat::test
