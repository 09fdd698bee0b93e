#include "route/fib.h"

#include <gtest/gtest.h>

#include <map>

#include "packet/tuple.h"

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
  // The address spoken from: an interface's own, else another's (as
  // inet_select_addr falls back), none when no interface has one.
  EXPECT_EQ(fib.source_addr(1), ip("198.51.100.2"));
  EXPECT_EQ(fib.source_addr(3), ip("10.1.2.1"));
  EXPECT_EQ(fib.local_interface(0), -1);
  // The host's other addresses are local too, and martian as a source;
  // an interface's own is not added twice.
  Fib more = three_interfaces();
  more.add_local(ip("10.1.2.9"));     // a second address on lan
  more.add_local(ip("192.168.77.1"));  // on a device the gateway does not own
  more.add_local(ip("10.1.2.1"));     // lan's own
  more.add_local(ip("10.1.2.9"));
  EXPECT_EQ(more.other_locals(), std::vector<uint32_t>({ip("10.1.2.9"), ip("192.168.77.1")}));
  EXPECT_TRUE(more.is_local(ip("10.1.2.9")));
  EXPECT_TRUE(more.is_local(ip("192.168.77.1")));
  EXPECT_FALSE(more.is_local(ip("10.1.2.8")));
  EXPECT_EQ(more.addr_type(ip("192.168.77.1")), kAddrLocal);
  EXPECT_TRUE(more.is_martian_source(ip("10.1.2.9")));
  EXPECT_FALSE(fib.is_martian_source(ip("10.1.2.9")));
  Fib bare;
  bare.add_interface(Interface{"down", 0, 0, MacAddr{}});
  EXPECT_EQ(bare.source_addr(0), 0u);
  Fib f2;
  const MacAddr m{{0x02, 0, 0, 0, 0, 0x07}};
  f2.add_interface(Interface{"x", ip("10.9.0.1"), 16, m});
  EXPECT_EQ(f2.interface_mac(0), m);
}

TEST(Fib, LongestPrefixWins) {
  Fib fib = three_interfaces();
  ASSERT_TRUE(fib.add_route(Prefix{0, 0}, ip("198.51.100.1"), -1));
  Prefix p;
  p.addr = 0x0A000000;  // 10.0.0.0/8, host order
  p.len = 8;
  ASSERT_TRUE(fib.add_route(p, ip("10.1.2.9"), -1));
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

// ECMP: a route of several next hops spreads sources and destinations over
// them, each pair always to the same one (a flow keeps to its path).
TEST(Fib, AMultipathRouteKeepsEachPairToOneOfItsHops) {
  Fib fib = three_interfaces();
  ASSERT_TRUE(fib.add_multipath(Prefix{0, 0}, {{ip("198.51.100.1"), 1}, {ip("10.1.2.254"), 0}}));
  std::map<uint32_t, int> used;
  for (uint32_t host = 1; host <= 64; ++host) {
    const uint32_t src = ip("10.1.2.0") + (host << 24);  // 10.1.2.host, network order
    NextHop a, b;
    ASSERT_EQ(fib.resolve(ip("8.8.8.8"), &a, src), RouteKind::kForward);
    ASSERT_EQ(fib.resolve(ip("8.8.8.8"), &b, src), RouteKind::kForward);
    EXPECT_EQ(a.addr, b.addr);
    EXPECT_EQ(a.ifindex, a.addr == ip("198.51.100.1") ? 1 : 0);
    ++used[a.addr];
  }
  ASSERT_EQ(used.size(), 2u);
  for (auto [hop, n] : used) EXPECT_GE(n, 16) << "64 sources, two hops: " << n;
  // Longer prefixes and local addresses still win over it.
  NextHop nh;
  ASSERT_EQ(fib.resolve(ip("10.1.2.40"), &nh, ip("10.1.2.7")), RouteKind::kForward);
  EXPECT_EQ(nh.addr, ip("10.1.2.40"));
  EXPECT_EQ(fib.resolve(ip("10.1.2.1"), &nh, ip("10.1.2.7")), RouteKind::kLocal);
  // One next hop is a plain route.
  Fib one = three_interfaces();
  ASSERT_TRUE(one.add_multipath(Prefix{0, 0}, {{ip("198.51.100.1"), 1}}));
  ASSERT_TRUE(one.lookup(ip("8.8.8.8"), &nh));
  EXPECT_EQ(nh.addr, ip("198.51.100.1"));
}

// MASQUERADE's source on an interface with addresses in several prefixes:
// the one holding the next hop, else the first (inet_select_addr).
TEST(Fib, TheSourceForANextHopIsTheAddressInItsPrefix) {
  Fib fib = three_interfaces();
  EXPECT_EQ(fib.source_for(1, ip("198.51.100.1")), ip("198.51.100.2"));
  EXPECT_EQ(fib.source_for(3, ip("10.1.2.5")), 0u);  // none
  fib.add_interface_address(1, ip("203.0.113.5"), 24);
  fib.add_interface_address(1, ip("100.64.0.9"), 10);
  EXPECT_EQ(fib.source_for(1, ip("203.0.113.1")), ip("203.0.113.5"));
  EXPECT_EQ(fib.source_for(1, ip("100.100.0.1")), ip("100.64.0.9"));
  EXPECT_EQ(fib.source_for(1, ip("198.51.100.1")), ip("198.51.100.2"));
  EXPECT_EQ(fib.source_for(1, ip("192.0.2.77")), ip("198.51.100.2"));  // in none: the first
  EXPECT_EQ(fib.source_for(0, ip("203.0.113.1")), ip("10.1.2.1"));    // another interface's are not lan's
  EXPECT_EQ(fib.interface_addresses(1),
            std::vector<uint32_t>({ip("198.51.100.2"), ip("203.0.113.5"), ip("100.64.0.9")}));
  EXPECT_TRUE(fib.is_local(ip("203.0.113.5")));
}

// blackhole, unreachable and prohibit routes: longest prefix as any route,
// what they cover forwarded nowhere.
TEST(Fib, RejectRoutesCoverTheirPrefixes) {
  Fib fib = three_interfaces();
  ASSERT_TRUE(fib.add_route(Prefix{0, 0}, ip("198.51.100.1"), -1));
  ASSERT_TRUE(fib.add_reject_route(Prefix{0x0A000000, 8}, RouteKind::kBlackhole));     // 10/8
  ASSERT_TRUE(fib.add_reject_route(Prefix{0xC0A80000, 16}, RouteKind::kUnreachable));  // 192.168/16
  ASSERT_TRUE(fib.add_reject_route(Prefix{0xAC100000, 12}, RouteKind::kProhibit));     // 172.16/12
  NextHop nh;
  EXPECT_EQ(fib.resolve(ip("10.9.9.9"), &nh), RouteKind::kBlackhole);
  EXPECT_EQ(fib.resolve(ip("192.168.1.1"), &nh), RouteKind::kUnreachable);
  EXPECT_EQ(fib.resolve(ip("172.20.0.1"), &nh), RouteKind::kProhibit);
  EXPECT_EQ(fib.resolve(ip("10.1.2.7"), &nh), RouteKind::kForward);  // the connected /24 is longer
  EXPECT_EQ(fib.resolve(ip("8.8.8.8"), &nh), RouteKind::kForward);
  EXPECT_EQ(fib.addr_type(ip("10.9.9.9")), kAddrBlackhole);
  EXPECT_EQ(fib.addr_type(ip("192.168.1.1")), kAddrUnreachable);
  EXPECT_EQ(fib.addr_type(ip("172.20.0.1")), kAddrProhibit);
}

// Reverse path filtering (fib_validate_source): strict wants the route back
// to the source through the interface it came in on, loose any route back.
TEST(Fib, TheReversePathIsTheRouteBackToTheSource) {
  Fib fib = three_interfaces();
  ASSERT_TRUE(fib.add_route(Prefix{0, 0}, ip("198.51.100.1"), -1));  // default via wan
  EXPECT_TRUE(fib.reverse_path_ok(ip("10.1.2.7"), 0, true));        // lan's own prefix, on lan
  EXPECT_FALSE(fib.reverse_path_ok(ip("8.8.8.8"), 0, true));        // from lan, back by wan: spoofed
  EXPECT_TRUE(fib.reverse_path_ok(ip("8.8.8.8"), 0, false));        // loose: there is a way back
  EXPECT_TRUE(fib.reverse_path_ok(ip("8.8.8.8"), 1, true));
  Fib none = three_interfaces();                                    // no default route
  EXPECT_FALSE(none.reverse_path_ok(ip("8.8.8.8"), 1, false));
  ASSERT_TRUE(none.add_multipath(Prefix{0, 0}, {{ip("198.51.100.1"), 1}, {ip("10.1.2.254"), 0}}));
  EXPECT_TRUE(none.reverse_path_ok(ip("8.8.8.8"), 0, true));  // either hop's interface
  EXPECT_TRUE(none.reverse_path_ok(ip("8.8.8.8"), 1, true));
  EXPECT_FALSE(none.reverse_path_ok(ip("8.8.8.8"), 2, true));
}

TEST(Fib, LocalAddressesWinOverRoutesAndResolveToLocal) {
  Fib fib = three_interfaces();
  Prefix p;
  p.addr = 0x0A010201;  // 10.1.2.1/32: a route to the gateway's own address
  p.len = 32;
  ASSERT_TRUE(fib.add_route(p, ip("198.51.100.1"), -1));
  NextHop nh;
  EXPECT_EQ(fib.resolve(ip("10.1.2.1"), &nh), RouteKind::kLocal);
  EXPECT_FALSE(fib.lookup(ip("10.1.2.1"), &nh));
  EXPECT_EQ(fib.resolve(ip("127.3.4.5"), &nh), RouteKind::kLocal);
  EXPECT_EQ(fib.resolve(ip("8.8.8.8"), &nh), RouteKind::kNone);  // no default route
  ASSERT_EQ(fib.resolve(ip("198.51.100.1"), &nh), RouteKind::kForward);
  EXPECT_EQ(nh.ifindex, 1);
  EXPECT_EQ(nh.addr, ip("198.51.100.1"));
}

TEST(Fib, OfTwoEqualPrefixesTheFirstAddedIsUsed) {
  // The live gateway adds the kernel's routes lowest metric first.
  Fib fib = three_interfaces();
  ASSERT_TRUE(fib.add_route(Prefix{0, 0}, ip("198.51.100.1"), -1));
  ASSERT_TRUE(fib.add_route(Prefix{0, 0}, ip("10.1.2.9"), -1));
  NextHop nh;
  ASSERT_TRUE(fib.lookup(ip("8.8.8.8"), &nh));
  EXPECT_EQ(nh.addr, ip("198.51.100.1"));
  ASSERT_EQ(fib.routes().size(), 3u + 2u);  // three connected, two defaults
}

TEST(Fib, ACopyKeepsItsRoutesWhenTheOriginalChanges) {
  Fib a = three_interfaces();
  const Fib b = a;  // as a worker copies the gateway's
  Prefix p;
  p.addr = 0x0A000000;
  p.len = 8;
  ASSERT_TRUE(a.add_route(p, ip("10.1.2.9"), -1));
  a.add_interface(Interface{"new", ip("10.5.0.1"), 16, MacAddr{}});
  NextHop nh;
  EXPECT_TRUE(a.lookup(ip("10.200.0.1"), &nh));
  EXPECT_FALSE(b.lookup(ip("10.200.0.1"), &nh));
  EXPECT_TRUE(a.is_local(ip("10.5.0.1")));
  EXPECT_FALSE(b.is_local(ip("10.5.0.1")));
}

TEST(Fib, AThousandRoutesResolveByLongestPrefix) {
  Fib fib = three_interfaces();
  // 10.x.y.0/24 via 10.1.2.(2 + x % 200), for 1 000 x.y; 10.0.0.0/8 via 10.1.2.250.
  Prefix p8;
  p8.addr = 0x0A000000;
  p8.len = 8;
  ASSERT_TRUE(fib.add_route(p8, ip("10.1.2.250"), -1));
  for (uint32_t k = 0; k < 1000; ++k) {
    Prefix p;
    p.addr = 0x0A000000 | ((k + 512) << 8);  // from 10.2.0.0 up: clear of the connected 10.1.2/24
    p.len = 24;
    ASSERT_TRUE(fib.add_route(p, __builtin_bswap32(0x0A010202 + k % 200), -1));
  }
  for (uint32_t k = 0; k < 1000; ++k) {
    NextHop nh;
    ASSERT_TRUE(fib.lookup(__builtin_bswap32(0x0A000000 | ((k + 512) << 8) | 77), &nh));
    EXPECT_EQ(nh.addr, __builtin_bswap32(0x0A010202 + k % 200));
    EXPECT_EQ(nh.ifindex, 0);
  }
  NextHop nh;
  ASSERT_TRUE(fib.lookup(ip("10.9.0.1"), &nh));  // beyond the /24s: the /8
  EXPECT_EQ(nh.addr, ip("10.1.2.250"));
}

TEST(Fib, NeighboursFromEmptyThroughGrowth) {
  Fib fib;
  EXPECT_EQ(fib.neighbor(ip("10.0.0.1")), nullptr);  // a fresh table
  EXPECT_EQ(fib.neighbor(0), nullptr);
  for (uint32_t k = 1; k <= 1000; ++k) fib.add_neighbor(__builtin_bswap32(0x0A000000 + k), MacAddr{{2, 0, 0, 0, uint8_t(k >> 8), uint8_t(k)}});
  for (uint32_t k = 1; k <= 1000; ++k) {
    const MacAddr* m = fib.neighbor(__builtin_bswap32(0x0A000000 + k));
    ASSERT_NE(m, nullptr) << k;
    EXPECT_EQ(*m, (MacAddr{{2, 0, 0, 0, uint8_t(k >> 8), uint8_t(k)}}));
    fib.bring_in_neighbor(__builtin_bswap32(0x0A000000 + k));  // reads inside the table
  }
  EXPECT_EQ(fib.neighbor(__builtin_bswap32(0x0A000000 + 1001)), nullptr);
  fib.add_neighbor(ip("10.0.0.5"), MacAddr{{2, 0, 0, 0, 0, 0x55}});  // a new MAC for a known neighbour
  EXPECT_EQ(*fib.neighbor(ip("10.0.0.5")), (MacAddr{{2, 0, 0, 0, 0, 0x55}}));
  size_t n = 0;
  fib.for_each_neighbor([&](uint32_t, const MacAddr&) { ++n; });
  EXPECT_EQ(n, 1000u);
}

}  // namespace
}  // namespace xnat
