#include "live/backend_choice.h"

#include <gtest/gtest.h>
#include <net/if.h>
#include <unistd.h>

namespace xnat {
namespace {

InterfaceXdp iface(const std::string& name, Result<uint64_t> features, uint32_t queues = 4) {
  InterfaceXdp i;
  i.name = name;
  i.features = std::move(features);
  i.rx_queues = queues;
  return i;
}

constexpr uint64_t kBasicRedirect = 1 | 2 | 4;  // veth's: XDP, but copies for AF_XDP

TEST(BackendChoice, AfXdpOnlyWhereEveryInterfaceHasZeroCopy) {
  BackendChoice c = choose_backend({iface("eth0", kBasicRedirect | kXdpActXskZerocopy),
                                    iface("eth1", kBasicRedirect | kXdpActXskZerocopy)},
                                   2);
  EXPECT_EQ(c.backend, "af_xdp");
  EXPECT_EQ(c.reason, "every interface's driver has AF_XDP zero-copy");

  c = choose_backend({iface("eth0", kBasicRedirect | kXdpActXskZerocopy), iface("veth1", kBasicRedirect)}, 1);
  EXPECT_EQ(c.backend, "af_packet");
  EXPECT_EQ(c.reason, "veth1's driver has no AF_XDP zero-copy");
}

TEST(BackendChoice, AfPacketWhenQueuesAreFewerThanWorkers) {
  // AF_XDP gives each worker its own rx queues; AF_PACKET's fanout needs none.
  const BackendChoice c = choose_backend({iface("eth0", kXdpActXskZerocopy, 1)}, 2);
  EXPECT_EQ(c.backend, "af_packet");
  EXPECT_EQ(c.reason, "eth0 has 1 rx queue for 2 workers");
}

TEST(BackendChoice, AfPacketForJumboFrames) {
  InterfaceXdp jumbo = iface("eth1", kXdpActXskZerocopy);
  jumbo.mtu = 9000;
  const BackendChoice c = choose_backend({iface("eth0", kXdpActXskZerocopy), jumbo}, 1);
  EXPECT_EQ(c.backend, "af_packet");
  EXPECT_EQ(c.reason, "eth1's MTU 9000 is more than af_xdp's buffers take whole (jumbo frames; at most 3000)");
  jumbo.mtu = kAfXdpMtuMax;
  EXPECT_EQ(choose_backend({jumbo}, 1).backend, "af_xdp");
}

TEST(BackendChoice, AfPacketWhenTheKernelCannotSay) {
  const BackendChoice c = choose_backend({iface("eth0", Error{"no netdev netlink family (Linux 6.3 or later)"})}, 1);
  EXPECT_EQ(c.backend, "af_packet");
  EXPECT_EQ(c.reason, "the kernel does not say whether eth0 has AF_XDP zero-copy (no netdev netlink family (Linux "
                      "6.3 or later))");
}

// The kernel's answer for a real device: loopback has no XDP at all.
TEST(BackendChoice, AsksTheKernel) {
  const unsigned lo = if_nametoindex("lo");
  ASSERT_NE(lo, 0u);
  auto f = xdp_features(static_cast<int>(lo));
  if (!f && f.error().message.find("no netdev netlink family") != std::string::npos)
    GTEST_SKIP() << f.error().message;
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(*f & kXdpActXskZerocopy, 0u);
  auto none = xdp_features(0x7fffffff);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("netdev dev-get"), std::string::npos) << none.error().message;

  const std::vector<InterfaceXdp> d = describe_interfaces({"lo", "xnat-no-such-if"});
  ASSERT_EQ(d.size(), 2u);
  EXPECT_TRUE(d[0].features);
  EXPECT_GE(d[0].rx_queues, 1u);
  ASSERT_FALSE(d[1].features);
  EXPECT_EQ(d[1].features.error().message, "no such interface");
  EXPECT_EQ(choose_backend(d, 1).backend, "af_packet");
}

}  // namespace
}  // namespace xnat
