#include "nat/targets.h"

#include <gtest/gtest.h>

#include "packet/frame_builder.h"
#include "test_util.h"

namespace xnat {
namespace {

struct Fixture {
  ConntrackSettings s;
  Conntrack ct{s, 1};
  Rng rng{3};
  NatContext ctx{ct, 1000, rng, Shard{}};
};

Tuple udp(const char* src, uint16_t sport, const char* dst, uint16_t dport) {
  return test::tuple_of(src, sport, dst, dport, kProtoUdp);
}

Target target(TargetKind k) {
  Target t;
  t.kind = k;
  return t;
}

TEST(NatTargets, RedirectGoesToTheIngressAddress) {
  Fixture f;
  Target r = target(TargetKind::kRedirect);
  r.range.proto_specified = true;
  r.range.min_port = r.range.max_port = 5353;
  Tuple t = udp("198.18.0.2", 40000, "203.0.113.9", 53);
  ASSERT_TRUE(apply_dst_target(r, &t, ip_raw("198.18.0.1"), f.ctx));
  EXPECT_EQ(t.dst, ip_raw("198.18.0.1"));
  EXPECT_EQ(__builtin_bswap16(t.dport), 5353);
  EXPECT_EQ(t.src, ip_raw("198.18.0.2"));  // the source is not touched
}

TEST(NatTargets, DnatWithoutAddressKeepsTheDestination) {
  Fixture f;
  Target d = target(TargetKind::kDnat);
  d.range.proto_specified = true;
  d.range.min_port = d.range.max_port = 8080;
  Tuple t = udp("198.51.100.7", 1000, "198.19.0.1", 80);
  ASSERT_TRUE(apply_dst_target(d, &t, 0, f.ctx));
  EXPECT_EQ(t.dst, ip_raw("198.19.0.1"));
  EXPECT_EQ(__builtin_bswap16(t.dport), 8080);
}

TEST(NatTargets, NetmapKeepsTheHostBits) {
  Fixture f;
  Target n = target(TargetKind::kNetmap);
  n.prefix = Prefix{__builtin_bswap32(ip_raw("203.0.113.0")), 24};
  Tuple t = udp("198.18.5.77", 1000, "198.51.100.7", 53);
  ASSERT_TRUE(apply_src_target(n, &t, 0, f.ctx));
  EXPECT_EQ(t.src, ip_raw("203.0.113.77"));
  Tuple d = udp("198.51.100.7", 1000, "198.19.5.33", 53);
  ASSERT_TRUE(apply_dst_target(n, &d, 0, f.ctx));
  EXPECT_EQ(d.dst, ip_raw("203.0.113.33"));
}

TEST(NatTargets, MasqueradeUsesTheEgressAddress) {
  Fixture f;
  Tuple t = udp("198.18.0.2", 40000, "198.51.100.7", 53);
  ASSERT_TRUE(apply_src_target(target(TargetKind::kMasquerade), &t, ip_raw("198.19.0.1"), f.ctx));
  EXPECT_EQ(t.src, ip_raw("198.19.0.1"));
  EXPECT_EQ(__builtin_bswap16(t.sport), 40000);  // the port is kept when it is free
}

TEST(NatTargets, OtherTargetsAreNotManips) {
  Fixture f;
  Tuple t = udp("198.18.0.2", 1, "198.51.100.7", 2);
  const Tuple before = t;
  EXPECT_FALSE(apply_src_target(target(TargetKind::kDnat), &t, 0, f.ctx));
  EXPECT_FALSE(apply_dst_target(target(TargetKind::kMasquerade), &t, 0, f.ctx));
  EXPECT_FALSE(apply_dst_target(target(TargetKind::kAccept), &t, 0, f.ctx));
  EXPECT_EQ(t, before);
}

}  // namespace
}  // namespace xnat
