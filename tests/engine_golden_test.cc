// Golden packet tests: {description, input frame, expected verdict, expected
// output frame} run in order through one engine per case. Expected frames are
// built independently with FrameBuilder (full checksums), so a byte-for-byte
// match also proves the incremental checksum updates.
#include <gtest/gtest.h>

#include "conntrack/conntrack.h"
#include "golden_cases.h"
#include "test_util.h"

namespace xnat::test {
namespace {

class Golden : public ::testing::TestWithParam<Case> {};

TEST_P(Golden, FramesMatch) {
  const Case& c = GetParam();
  auto engine = make_engine(c.rules);
  for (const Step& s : c.steps) {
    SCOPED_TRACE(s.what);
    Output o = run(*engine, s.in, s.in_if, s.t_ms);
    ASSERT_EQ(static_cast<int>(o.verdict), static_cast<int>(s.verdict))
        << "reason " << (o.reason == Counter::kCount ? "-" : counter_name(o.reason));
    if (s.verdict == Verdict::kForward) {
      EXPECT_EQ(o.out_if, s.out_if);
    }
    if (s.reason != Counter::kCount) {
      EXPECT_EQ(counter_name(o.reason), std::string(counter_name(s.reason)));
    }
    if (!s.out.empty()) {
      EXPECT_EQ(o.frame, s.out) << "got:  " << describe(o.frame) << "\nwant: " << describe(s.out);
    }
  }
  EXPECT_EQ(engine->conntrack().count(), c.flows_after);
}

INSTANTIATE_TEST_SUITE_P(Engine, Golden, ::testing::ValuesIn(golden_cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

TEST(Engine, SecondClientOnSamePortGetsAnotherPort) {
  auto e = make_engine(nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"));
  Output a = run(*e, from_client().udp(5000, 53).build(), kIn, 1000);
  Output b = run(*e, from_client("198.18.0.3", kClient2Mac).udp(5000, 53).build(), kIn, 1001);
  ASSERT_EQ(a.verdict, Verdict::kForward);
  ASSERT_EQ(b.verdict, Verdict::kForward);
  ParsedPacket pa, pb;
  ASSERT_EQ(parse_frame(a.frame.data(), a.frame.size(), {}, &pa), ParseStatus::kOk);
  ASSERT_EQ(parse_frame(b.frame.data(), b.frame.size(), {}, &pb), ParseStatus::kOk);
  EXPECT_EQ(pa.tuple.src, pb.tuple.src);
  EXPECT_EQ(__builtin_bswap16(pa.tuple.sport), 5000);
  const uint16_t port_b = __builtin_bswap16(pb.tuple.sport);
  EXPECT_NE(port_b, 5000);
  EXPECT_GE(port_b, 1024);  // a port above 1023 stays above 1023
  // The reply to the second client's port goes to the second client.
  Output r = run(*e, FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").udp(53, port_b).build(), kOut, 1002);
  ASSERT_EQ(r.verdict, Verdict::kForward);
  ParsedPacket pr;
  ASSERT_EQ(parse_frame(r.frame.data(), r.frame.size(), {}, &pr), ParseStatus::kOk);
  EXPECT_EQ(pr.tuple.dst, ip_raw("198.18.0.3"));
  EXPECT_EQ(__builtin_bswap16(pr.tuple.dport), 5000);
}

// RFC 4787 REQ-1 as netfilter gives it (find_appropriate_src): a client whose
// port was taken by another client gets another port, and keeps that mapping
// for its next destination instead of getting its own port back there.
TEST(Engine, SecondDestinationReusesTheClientsMapping) {
  auto e = make_engine(nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"));
  auto out_port = [](const Output& o) {
    ParsedPacket p;
    EXPECT_EQ(parse_frame(o.frame.data(), o.frame.size(), {}, &p), ParseStatus::kOk);
    return __builtin_bswap16(p.tuple.sport);
  };
  Output a = run(*e, from_client().udp(5000, 53).build(), kIn, 1000);
  Output b = run(*e, from_client("198.18.0.3", kClient2Mac).udp(5000, 53).build(), kIn, 1001);
  ASSERT_EQ(b.verdict, Verdict::kForward);
  EXPECT_EQ(out_port(a), 5000);
  const uint16_t mapped = out_port(b);
  ASSERT_NE(mapped, 5000);
  // Client 2, same source port, another server: the same external port,
  // although 5000 would be free towards this server.
  Output c = run(*e, FrameBuilder().eth(kClient2Mac, kInMac).ip("198.18.0.3", "203.0.113.9").udp(5000, 123).build(),
                 kIn, 1002);
  ASSERT_EQ(c.verdict, Verdict::kForward);
  EXPECT_EQ(out_port(c), mapped);
  // And client 1 keeps 5000 everywhere.
  Output d = run(*e, FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "203.0.113.9").udp(5000, 123).build(),
                 kIn, 1003);
  EXPECT_EQ(out_port(d), 5000);
  // The reply from the second server reaches client 2.
  Output r = run(*e, FrameBuilder().eth(kRouterMac, kOutMac).ip("203.0.113.9", "198.19.0.1").udp(123, mapped).build(),
                 kOut, 1004);
  ASSERT_EQ(r.verdict, Verdict::kForward);
  ParsedPacket pr;
  ASSERT_EQ(parse_frame(r.frame.data(), r.frame.size(), {}, &pr), ParseStatus::kOk);
  EXPECT_EQ(pr.tuple.dst, ip_raw("198.18.0.3"));
  // Once client 2's flows are gone, its mapping is forgotten (netfilter
  // keeps none either): a new flow keeps its own port when free.
  e->conntrack().expire(1004 + 400'000);
  Output f = run(*e, from_client("198.18.0.3", kClient2Mac).udp(5000, 53).build(), kIn, 1004 + 400'000);
  EXPECT_EQ(out_port(f), 5000);
}

TEST(Engine, MalformedFramesAreCountedDrops) {
  auto e = make_engine(nat_table(""));
  auto good = from_client().udp(1, 2).build();
  auto bad_csum = good;
  bad_csum[14 + 10] ^= 0xFF;
  auto truncated = std::vector<uint8_t>(good.begin(), good.begin() + 30);
  auto bad_ihl = good;
  bad_ihl[14] = 0x44;
  auto tiny_frag = from_client().frag(0x2001).proto(kProtoTcp).payload("12345678").build();  // RFC 1858
  auto bad_udp_len = good;
  bad_udp_len[14 + 20 + 4] = 0xFF;
  EXPECT_EQ(run(*e, bad_csum, kIn, 1).reason, Counter::drop_bad_checksum);
  EXPECT_EQ(run(*e, truncated, kIn, 1).reason, Counter::drop_truncated);
  EXPECT_EQ(run(*e, bad_ihl, kIn, 1).reason, Counter::drop_bad_ip_header);
  EXPECT_EQ(run(*e, tiny_frag, kIn, 1).reason, Counter::drop_fragment);
  EXPECT_EQ(run(*e, bad_udp_len, kIn, 1).reason, Counter::drop_bad_l4_header);
  auto bad_l4 = from_client().udp(1, 2).payload("x").build();
  bad_l4.back() ^= 0x01;
  EXPECT_EQ(run(*e, bad_l4, kIn, 1).reason, Counter::drop_bad_l4_checksum);
  auto martian = FrameBuilder().eth(kClientMac, kInMac).ip("127.0.0.1", "198.51.100.7").udp(1, 2).build();
  EXPECT_EQ(run(*e, martian, kIn, 1).reason, Counter::drop_martian_source);
  const Counters& c = e->counters();
  EXPECT_EQ(c.total_drops(), 7u);
  EXPECT_EQ(c.get(Counter::rx_frames), 7u);
}

TEST(Engine, PerSourceLimitRefusesOnlyThatSourceAndFreesOnExpiry) {
  auto e = make_engine(nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"), "xnat_max_flows_per_source = 3");
  for (uint16_t port = 1; port <= 3; ++port)
    ASSERT_EQ(run(*e, from_client().udp(port, 53).build(), kIn, 1000).verdict, Verdict::kForward);
  Output refused = run(*e, from_client().udp(4, 53).build(), kIn, 1000);
  EXPECT_EQ(refused.verdict, Verdict::kDrop);
  EXPECT_EQ(refused.reason, Counter::drop_source_limit);
  // Another subscriber is not affected, and the first one's existing flows still pass.
  EXPECT_EQ(run(*e, from_client("198.18.0.3", kClient2Mac).udp(4, 53).build(), kIn, 1000).verdict, Verdict::kForward);
  EXPECT_EQ(run(*e, from_client().udp(2, 53).build(), kIn, 1001).verdict, Verdict::kForward);
  // After the UDP timeout (30 s) the wheel frees the entries and the quota with them.
  EXPECT_EQ(run(*e, from_client().udp(5, 53).build(), kIn, 1000 + 32'000).verdict, Verdict::kForward);
  EXPECT_EQ(e->counters().get(Counter::drop_source_limit), 1u);
  EXPECT_EQ(e->conntrack().stats().source_limited, 1u);
}

TEST(Engine, ArpAndIpv6GoToTheHost) {
  auto e = make_engine(nat_table(""));
  std::vector<uint8_t> arp(42, 0);
  arp[12] = 0x08;
  arp[13] = 0x06;
  std::vector<uint8_t> v6(54, 0);
  v6[12] = 0x86;
  v6[13] = 0xDD;
  EXPECT_EQ(run(*e, arp, kIn, 1).verdict, Verdict::kToHost);
  EXPECT_EQ(run(*e, v6, kIn, 1).verdict, Verdict::kToHost);
  EXPECT_EQ(e->counters().get(Counter::to_host), 2u);
}

TEST(Engine, UnknownNeighborIsACountedDrop) {
  auto e = make_engine(nat_table(""));
  // 198.18.0.9 is inside but has no neighbour entry.
  auto f = FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.18.0.9").udp(1, 2).build();
  Output o = run(*e, f, kOut, 1);
  EXPECT_EQ(o.verdict, Verdict::kDrop);
  EXPECT_EQ(o.reason, Counter::drop_no_neighbor);
}

}  // namespace
}  // namespace xnat::test
