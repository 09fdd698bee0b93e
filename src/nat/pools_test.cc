#include "nat/pools.h"

#include <gtest/gtest.h>

#include "nat/rules_parser.h"

namespace xnat {
namespace {

uint32_t ip(const char* s) {
  uint32_t a = 0;
  EXPECT_TRUE(parse_ipv4(s, &a));
  return a;
}

TEST(Pools, EachAddressASourceRuleCanGiveWithItsPorts) {
  const std::vector<uint32_t> fib = {ip("198.18.0.1"), ip("198.19.0.1"), ip("198.51.100.1")};  // eth1, eth0, wg0
  auto rs = parse_rules(
      "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
      "-A POSTROUTING -o eth0 -j MASQUERADE\n"
      "-A POSTROUTING -o wg0 -p udp -j MASQUERADE --to-ports 20000-20999\n"
      "-A POSTROUTING -s 198.18.1.0/24 -j SNAT --to-source 203.0.113.4-203.0.113.6\n"
      "-A POSTROUTING -s 198.18.2.0/24 -p udp -j SNAT --to-source 203.0.113.6:5000-5099\n"
      "-A POSTROUTING -s 198.18.3.0/24 -p tcp -j SNAT --to-source :6000-6099\n"
      "COMMIT\n",
      "rules");
  ASSERT_TRUE(rs.ok()) << rs.error().message;
  rs->bind_interfaces({"eth1", "eth0", "wg0"});
  const auto pools = source_pools(*rs, fib);
  ASSERT_EQ(pools.size(), 5u);
  auto ports = [&](const char* a) -> int64_t {
    for (const PortPool& p : pools)
      if (p.addr == ip(a)) return p.ports;
    return -1;
  };
  EXPECT_EQ(ports("198.19.0.1"), 64512);  // MASQUERADE on eth0: its address, 1024-65535
  EXPECT_EQ(ports("198.51.100.1"), 1000);
  EXPECT_EQ(ports("203.0.113.4"), 64512);
  EXPECT_EQ(ports("203.0.113.5"), 64512);
  EXPECT_EQ(ports("203.0.113.6"), 64512);  // the larger of its two pools
  EXPECT_EQ(ports("198.18.0.1"), -1);       // no rule sends from the inside's address
  EXPECT_EQ(source_pools(*rs, fib, 2).size(), 2u);
}

}  // namespace
}  // namespace xnat
