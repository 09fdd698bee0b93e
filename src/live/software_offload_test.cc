#include "live/software_offload.h"

#include <gtest/gtest.h>

#include <vector>

#include "packet/frame_builder.h"
#include "packet/parse.h"

namespace xnat {
namespace {

std::vector<uint8_t> tcp_frame(size_t payload) {
  std::vector<uint8_t> data(payload);
  for (size_t i = 0; i < payload; ++i) data[i] = static_cast<uint8_t>(i * 13);
  return FrameBuilder()
      .eth(mac(1), mac(2))
      .ip("198.19.0.1", "198.51.100.7")
      .tcp(40000, 80, kTcpAck | kTcpPsh, 1000, 1)
      .payload(data)
      .build();
}

// A TCP super-frame as AF_PACKET reports it: partial checksum, cut at 1448.
Packet super_frame(std::vector<uint8_t>& f) {
  Packet p;
  p.data = f.data();
  p.len = p.capacity = static_cast<uint32_t>(f.size());
  p.l4_csum = L4Csum::kPartial;
  p.gso = Gso::kTcp;
  p.gso_size = 1448;
  return p;
}

TEST(SoftwareOffload, FullFramesPassAsTheyAre) {
  SoftwareOffload o;
  auto f = tcp_frame(100);
  Packet p;
  p.data = f.data();
  p.len = static_cast<uint32_t>(f.size());
  int seen = 0;
  EXPECT_TRUE(o.finish(p, [&](Packet& q) {
    ++seen;
    return q.data == f.data();
  }));
  EXPECT_EQ(seen, 1);
  EXPECT_EQ(o.segmented(), 0u);
}

TEST(SoftwareOffload, PartialIsCompletedAndSuperFramesAreCut) {
  SoftwareOffload o;
  const auto full = tcp_frame(5000);
  auto f = full;
  ASSERT_TRUE(set_partial_l4_checksum(f.data(), static_cast<uint32_t>(f.size())));
  Packet p = super_frame(f);
  std::vector<std::vector<uint8_t>> out;
  EXPECT_TRUE(o.finish(p, [&](Packet& q) {
    EXPECT_EQ(q.l4_csum, L4Csum::kFull);
    EXPECT_EQ(q.gso, Gso::kNone);
    out.emplace_back(q.data, q.data + q.len);
    return true;
  }));
  ASSERT_EQ(out.size(), 4u);  // 3 x 1448 + 656
  for (auto& s : out) {
    ParsedPacket pp;
    EXPECT_EQ(parse_frame(s.data(), s.size(), {}, &pp), ParseStatus::kOk);  // checksums verified
  }
  EXPECT_EQ(o.segmented(), 1u);

  // A partial frame that is no super-frame is completed in place.
  auto g = tcp_frame(300);
  const auto want = g;
  ASSERT_TRUE(set_partial_l4_checksum(g.data(), static_cast<uint32_t>(g.size())));
  Packet q;
  q.data = g.data();
  q.len = static_cast<uint32_t>(g.size());
  q.l4_csum = L4Csum::kPartial;
  EXPECT_TRUE(o.finish(q, [](Packet&) { return true; }));
  EXPECT_EQ(g, want);
}

TEST(SoftwareOffload, ARefusingSinkIsReported) {
  SoftwareOffload o;
  auto f = tcp_frame(5000);
  Packet p = super_frame(f);
  int calls = 0;
  EXPECT_FALSE(o.finish(p, [&](Packet&) { return ++calls < 2; }));
  EXPECT_EQ(calls, 2);  // stops at the first refusal
}

}  // namespace
}  // namespace xnat
