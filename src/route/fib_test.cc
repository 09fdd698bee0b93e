#include "route/fib.h"

#include <gtest/gtest.h>

#include "conntrack/tuple.h"

namespace xnat {
namespace {

uint32_t ip(const char* s) {
  uint32_t a = 0;
  EXPECT_TRUE(parse_ipv4(s, &a)) << s;
  return a;
}

Fib three_interfaces() {
  Fib fib;
  fib.add_interface(Interface{"lan", ip("10.1.2.1"), 24, MacAddr{}});
  fib.add_interface(Interface{"wan", ip("198.51.100.2"), 30, MacAddr{}});
  fib.add_interface(Interface{"p2p", ip("192.0.2.0"), 31, MacAddr{}});
  fib.add_interface(Interface{"down", 0, 0, MacAddr{}});  // live: no address yet
  return fib;
}

TEST(Fib, DirectedBroadcastIsTheAllOnesHostOfAConnectedPrefix) {
  const Fib fib = three_interfaces();
  EXPECT_TRUE(fib.is_directed_broadcast(ip("10.1.2.255")));
  EXPECT_TRUE(fib.is_directed_broadcast(ip("198.51.100.3")));
  EXPECT_FALSE(fib.is_directed_broadcast(ip("10.1.2.254")));
  EXPECT_FALSE(fib.is_directed_broadcast(ip("10.1.3.255")));  // not connected
  EXPECT_FALSE(fib.is_directed_broadcast(ip("192.0.2.1")));   // /31: both addresses are hosts
  EXPECT_FALSE(fib.is_directed_broadcast(ip("255.255.255.255")));  // limited, not directed
  EXPECT_FALSE(fib.is_directed_broadcast(0));  // the address-less interface adds none
  EXPECT_EQ(fib.addr_type(ip("10.1.2.255")), kAddrBroadcast);
  EXPECT_EQ(fib.addr_type(ip("10.1.2.1")), kAddrLocal);
  EXPECT_EQ(fib.addr_type(ip("10.1.2.7")), kAddrUnicast);
}

TEST(Fib, LocalAddressesAndInterfaceFacts) {
  const Fib fib = three_interfaces();
  EXPECT_EQ(fib.interface_count(), 4u);
  EXPECT_EQ(fib.local_interface(ip("198.51.100.2")), 1);
  EXPECT_EQ(fib.local_interface(ip("198.51.100.1")), -1);
  EXPECT_TRUE(fib.is_local(ip("127.0.0.5")));
  EXPECT_TRUE(fib.is_local(ip("10.1.2.1")));
  EXPECT_FALSE(fib.is_local(ip("10.1.2.2")));
  Fib f2;
  const MacAddr m{{0x02, 0, 0, 0, 0, 0x07}};
  f2.add_interface(Interface{"x", ip("10.9.0.1"), 16, m});
  EXPECT_EQ(f2.interface_mac(0), m);
}

TEST(Fib, LongestPrefixWins) {
  Fib fib = three_interfaces();
  ASSERT_FALSE(fib.add_route(Prefix{0, 0}, ip("198.51.100.1"), -1));
  Prefix p;
  p.addr = 0x0A000000;  // 10.0.0.0/8, host order
  p.len = 8;
  ASSERT_FALSE(fib.add_route(p, ip("10.1.2.9"), -1));
  NextHop nh;
  ASSERT_TRUE(fib.lookup(ip("10.1.2.40"), &nh));  // the connected /24
  EXPECT_EQ(nh.ifindex, 0);
  EXPECT_EQ(nh.addr, ip("10.1.2.40"));
  ASSERT_TRUE(fib.lookup(ip("10.200.0.1"), &nh));  // the /8 via 10.1.2.9
  EXPECT_EQ(nh.addr, ip("10.1.2.9"));
  ASSERT_TRUE(fib.lookup(ip("8.8.8.8"), &nh));  // the default route
  EXPECT_EQ(nh.ifindex, 1);
  EXPECT_EQ(nh.addr, ip("198.51.100.1"));
}

}  // namespace
}  // namespace xnat
