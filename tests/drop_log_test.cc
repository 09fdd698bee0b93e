// Drops for want of room are logged as the kernel logs "nf_conntrack: table
// full, dropping packet": a line at most every five seconds per reason,
// naming the counter that counts every one.
#include <gtest/gtest.h>

#include "golden_cases.h"
#include "test_util.h"

namespace xnat::test {
namespace {

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

}  // namespace
}  // namespace xnat::test
