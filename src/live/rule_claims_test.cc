#include "live/rule_claims.h"

#include <gtest/gtest.h>

#include <map>
#include <utility>

#include "nat/rules_parser.h"

namespace xnat {
namespace {

RuleSet rules(const std::string& body) {
  auto r = parse_rules("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                       ":POSTROUTING ACCEPT [0:0]\n" + body + "COMMIT\n", "test.rules");
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  return r ? std::move(*r) : RuleSet{};
}

std::map<std::pair<int, int>, int> claims_of(const RuleSet& rs) {
  std::map<std::pair<int, int>, int> c;
  claim_dnat_ports(rs, [&](uint8_t proto, uint16_t port) { ++c[{proto, port}]; });
  return c;
}

TEST(RuleClaims, DestinationRulesClaimTheirPorts) {
  auto c = claims_of(rules(
      "-A PREROUTING -d 198.19.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.18.0.2:80\n"
      "-A PREROUTING -p udp -m multiport --dports 53,5300:5301 -j REDIRECT --to-ports 5353\n"
      "-A PREROUTING -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.18.0.3\n"
      "-A POSTROUTING -o eth0 -j MASQUERADE\n"));
  EXPECT_EQ((c[{kProtoTcp, 8080}]), 1);  // two rules, one claim: the ruleset's
  EXPECT_EQ((c[{kProtoUdp, 53}]), 1);
  EXPECT_EQ((c[{kProtoUdp, 5300}]), 1);
  EXPECT_EQ((c[{kProtoUdp, 5301}]), 1);
  EXPECT_EQ(c.size(), 4u);  // MASQUERADE claims nothing ahead of traffic
}

TEST(RuleClaims, ARuleWithoutPortsClaimsEveryPortOfItsProtocols) {
  auto c = claims_of(rules("-A PREROUTING -d 198.19.0.1/32 -j DNAT --to-destination 198.18.0.2\n"));
  EXPECT_EQ(c.size(), 3u * 65536);  // TCP, UDP and ICMP identifiers
  auto t = claims_of(rules("-A PREROUTING -p tcp ! --dport 22 -j DNAT --to-destination 198.18.0.2\n"));
  EXPECT_EQ(t.size(), 65536u);  // an inverted port: every TCP port, to be safe
}

TEST(RuleClaims, TranslatesForHost) {
  EXPECT_FALSE(translates_for_host(rules("-A POSTROUTING -o eth0 -j MASQUERADE\n")));
  EXPECT_TRUE(translates_for_host(rules("-A PREROUTING -p tcp --dport 81 -j REDIRECT --to-ports 8081\n")));
  EXPECT_TRUE(translates_for_host(rules("-A OUTPUT -p tcp --dport 81 -j DNAT --to-destination 198.18.0.2\n")));
}

}  // namespace
}  // namespace xnat
