// Drops for want of room are logged as the kernel logs "nf_conntrack: table
// full, dropping packet": a line at most every five seconds per reason,
// naming the counter that counts every one.
#include <gtest/gtest.h>

#include "golden_cases.h"
#include "test_util.h"

namespace xnat::test {
namespace {

const std::string kMasqRules = nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n");

std::vector<std::string> drain(Engine& e) {
  std::vector<std::string> lines;
  e.log_ring().drain([&](uint8_t level, std::string_view text) {
    EXPECT_EQ(level, 4);
    lines.emplace_back(text);
  });
  return lines;
}

TEST(DropLog, PortPoolExhaustedIsLoggedRateLimited) {
  // One translated tuple for everyone.
  auto e = make_engine(nat_table("-A POSTROUTING -o eth0 -p udp -j SNAT --to-source 198.19.0.9:1000\n"));
  EXPECT_EQ(run(*e, from_client().udp(5000, 53).build(), kIn, 1000).verdict, Verdict::kForward);
  EXPECT_EQ(run(*e, from_client("198.18.0.3", kClient2Mac).udp(5001, 53).build(), kIn, 1001).reason,
            Counter::drop_no_port);
  EXPECT_EQ(run(*e, from_client("198.18.0.3", kClient2Mac).udp(5002, 53).build(), kIn, 2000).reason,
            Counter::drop_no_port);
  auto lines = drain(*e);
  ASSERT_EQ(lines.size(), 1u);  // the second within five seconds: counted, not logged
  EXPECT_EQ(lines[0], "xnat: port pool exhausted, dropping packet (no free translated tuple in the NAT range): "
                      "a new connection from 198.18.0.3; counted as drop_no_port, 1 so far");
  EXPECT_EQ(run(*e, from_client("198.18.0.3", kClient2Mac).udp(5003, 53).build(), kIn, 6001).reason,
            Counter::drop_no_port);
  lines = drain(*e);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("counted as drop_no_port, 3 so far"), std::string::npos) << lines[0];
}

TEST(DropLog, TableFullIsLogged) {
  // Two established connections fill the table; neither may be evicted.
  auto e = make_engine(nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"), "nf_conntrack_max = 2\n");
  for (uint16_t port : {40000, 40001}) {
    ASSERT_EQ(run(*e, from_client().tcp(port, 80, kTcpSyn, 1).build(), kIn, 1000).verdict, Verdict::kForward);
    ASSERT_EQ(run(*e, FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").tcp(80, port, kTcpSyn | kTcpAck, 9, 2).build(),
                  kOut, 1001).verdict, Verdict::kForward);
    ASSERT_EQ(run(*e, from_client().tcp(port, 80, kTcpAck, 2, 10).build(), kIn, 1002).verdict, Verdict::kForward);
  }
  EXPECT_EQ(run(*e, from_client().tcp(40002, 80, kTcpSyn, 1).build(), kIn, 1003).reason, Counter::drop_table_full);
  const auto lines = drain(*e);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "xnat: table full, dropping packet (nf_conntrack_max reached, nothing to evict): a new "
                      "connection from 198.18.0.2; counted as drop_table_full, 1 so far");
}

// The FIB with interface `idx` left without an address (it left at
// runtime), its routes kept.
Fib without_address(const Fib& fib, int idx) {
  Fib out;
  for (int i = 0; i < static_cast<int>(fib.interface_count()); ++i) {
    Interface itf = fib.interface(i);
    if (i == idx) itf.addr = 0;
    out.add_interface(itf);
  }
  for (const RouteEntry& r : fib.routes()) {
    if (!r.gateway && r.ifindex != idx && connected_prefix(fib.interface(r.ifindex)) == r.prefix) continue;
    EXPECT_TRUE(out.add_route(r.prefix, r.gateway, r.gateway ? -1 : r.ifindex).ok());
  }
  fib.for_each_neighbor([&](uint32_t a, const MacAddr& m) { out.add_neighbor(a, m); });
  return out;
}

// As the kernel's MASQUERADE ("ate my IP address") and REDIRECT: with no
// address on the interface there is nothing to translate to; the packet is
// dropped, counted and logged, never sent from an address that left.
TEST(DropLog, NoAddressToMasqueradeOrRedirectToIsLogged) {
  auto e = make_engine(nat_table("-A PREROUTING -i eth1 -p tcp -m tcp --dport 3128 -j REDIRECT\n"
                                 "-A POSTROUTING -o eth0 -j MASQUERADE\n"));
  e->replace_fib(without_address(e->fib(), kOut));
  const Output masq = run(*e, from_client().udp(5000, 53).build(), kIn, 1000);
  EXPECT_EQ(masq.verdict, Verdict::kDrop);
  EXPECT_EQ(masq.reason, Counter::drop_no_address);
  EXPECT_EQ(e->conntrack().count(), 0u);
  auto lines = drain(*e);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "xnat: an interface with no IPv4 address to MASQUERADE or REDIRECT to, dropping packet: a new "
                      "connection from 198.18.0.2; counted as drop_no_address, 1 so far");
  // An ICMP error from the interface without one speaks from another's.
  const Output ttl = run(*e, FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.18.0.2").ttl(1).udp(53, 5000).build(),
                         kOut, 1001);
  ASSERT_EQ(ttl.verdict, Verdict::kForward);
  EXPECT_EQ(ttl.out_if, kOut);
  ParsedPacket p;
  ASSERT_EQ(parse_frame(ttl.frame.data(), ttl.frame.size(), {}, &p), ParseStatus::kOk);
  EXPECT_EQ(p.tuple.src, ip_raw("198.18.0.1"));

  e->replace_fib(without_address(make_engine(kMasqRules)->fib(), kIn));
  const Output redirect = run(*e, from_client().tcp(41000, 3128, kTcpSyn, 1).build(), kIn, 1002);
  EXPECT_EQ(redirect.verdict, Verdict::kDrop);
  EXPECT_EQ(redirect.reason, Counter::drop_no_address);
  EXPECT_EQ(e->counters().get(Counter::drop_no_address), 2u);
  EXPECT_TRUE(drain(*e).empty());  // within five seconds of the first: counted only
}

// The kernel's reject routes (ip_error): a blackhole drops without a word,
// unreachable and prohibit answer with their ICMP errors.
TEST(DropLog, RejectRoutesDropAsTheKernelsDo) {
  auto e = make_engine(kMasqRules);
  Fib fib = e->fib();
  ASSERT_TRUE(fib.add_reject_route(Prefix{0xC6336400, 24}, RouteKind::kBlackhole));    // 198.51.100/24
  ASSERT_TRUE(fib.add_reject_route(Prefix{0xCB007100, 24}, RouteKind::kUnreachable));  // 203.0.113/24
  ASSERT_TRUE(fib.add_reject_route(Prefix{0xC0000200, 24}, RouteKind::kProhibit));     // 192.0.2/24
  e->replace_fib(fib);
  const Output black = run(*e, from_client().udp(5000, 53).build(), kIn, 1000);
  EXPECT_EQ(black.verdict, Verdict::kDrop);
  EXPECT_EQ(black.reason, Counter::drop_blackhole_route);
  struct Case {
    const char* dst;
    DropReason reason;
    uint8_t code;
  };
  for (const Case& c : {Case{"203.0.113.9", Counter::drop_unreachable_route, 1},
                        Case{"192.0.2.9", Counter::drop_prohibit_route, 13}}) {
    const Output o = run(*e, FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", c.dst).udp(5001, 53).build(), kIn,
                         1001);
    ASSERT_EQ(o.verdict, Verdict::kForward) << c.dst;  // the ICMP error, back to the client
    EXPECT_EQ(o.out_if, kIn);
    ParsedPacket p;
    ASSERT_EQ(parse_frame(o.frame.data(), o.frame.size(), {}, &p), ParseStatus::kOk);
    EXPECT_EQ(p.tuple.proto, kProtoIcmp);
    EXPECT_EQ(p.tuple.icmp_type(), kIcmpDestUnreach);
    EXPECT_EQ(p.tuple.icmp_code(), c.code) << c.dst;
    EXPECT_EQ(e->counters().get(c.reason), 1u);
  }
  EXPECT_EQ(e->counters().get(Counter::drop_blackhole_route), 1u);
  EXPECT_EQ(e->counters().get(Counter::icmp_errors_sent), 2u);
  EXPECT_EQ(e->conntrack().count(), 0u);
}

// rp_filter on the inside: a new connection from a source whose route back
// leaves by another interface (spoofed) is dropped and counted; strict and
// loose as the kernel's.
TEST(DropLog, ReversePathFilterDropsSpoofedSources) {
  auto e = make_engine(kMasqRules);
  auto with_rp_filter = [&](uint8_t v) {
    Fib fib;
    for (int i = 0; i < static_cast<int>(e->fib().interface_count()); ++i) {
      Interface itf = e->fib().interface(i);
      itf.rp_filter = i == kIn ? v : 0;
      fib.add_interface(itf);
    }
    for (const RouteEntry& r : e->fib().routes()) {
      if (r.gateway || !(connected_prefix(fib.interface(r.ifindex)) == r.prefix)) {
        EXPECT_TRUE(fib.add_route(r.prefix, r.gateway, r.gateway ? -1 : r.ifindex).ok());
      }
    }
    e->fib().for_each_neighbor([&](uint32_t a, const MacAddr& m) { fib.add_neighbor(a, m); });
    e->replace_fib(fib);
  };
  with_rp_filter(1);
  // 203.0.113.9 routes back by the default route, out eth0: not from eth1.
  EXPECT_EQ(run(*e, from_client("203.0.113.9").udp(5000, 53).build(), kIn, 1000).reason, Counter::drop_rp_filter);
  EXPECT_EQ(run(*e, from_client().udp(5001, 53).build(), kIn, 1001).verdict, Verdict::kForward);
  with_rp_filter(2);  // loose: a way back exists
  EXPECT_EQ(run(*e, from_client("203.0.113.9").udp(5002, 53).build(), kIn, 1002).verdict, Verdict::kForward);
  EXPECT_EQ(e->counters().get(Counter::drop_rp_filter), 1u);
  EXPECT_EQ(e->conntrack().count(), 2u);
}

}  // namespace
}  // namespace xnat::test
