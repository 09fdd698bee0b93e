// kube-proxy's iptables mode through the engine: a Service's cluster IP
// load-balanced over two endpoints by -m statistic, traffic from outside the
// pod network marked by KUBE-MARK-MASQ and masqueraded in KUBE-POSTROUTING by
// its mark, traffic from inside DNATed but not masqueraded.
#include <gtest/gtest.h>

#include <set>

#include "golden_cases.h"
#include "kube_proxy_rules.h"
#include "nat/rules_parser.h"
#include "packet/parse.h"
#include "test_util.h"

namespace xnat::test {
namespace {


TEST(KubeProxy, ServiceLoadBalancedAndMasqueradedByMark) {
  auto e = make_engine(kKubeProxyRules);
  std::set<uint32_t> endpoints;
  for (uint16_t port = 20000; port < 20100; ++port) {
    const Output o = run(*e, FrameBuilder().eth(kRouterMac, kOutMac).ip("203.0.113.9", "198.51.100.80").tcp(port, 80, kTcpSyn).build(),
                         kOut, 1000 + port);
    ASSERT_EQ(o.verdict, Verdict::kForward) << counter_name(o.reason);
    EXPECT_EQ(o.out_if, kIn);
    ParsedPacket p;
    ASSERT_EQ(parse_frame(o.frame.data(), o.frame.size(), {}, &p), ParseStatus::kOk);
    endpoints.insert(p.tuple.dst);
    EXPECT_EQ(__builtin_bswap16(p.tuple.dport), 8080);
    EXPECT_EQ(p.tuple.src, ip_raw("198.18.0.1"));  // marked outside the pod network: masqueraded
  }
  EXPECT_EQ(endpoints, (std::set<uint32_t>{ip_raw("198.18.0.2"), ip_raw("198.18.0.3")}));  // both endpoints used

  // From inside the pod network: DNAT only, the client's address kept.
  const Output in = run(*e, from_client("198.18.0.5", kClient2Mac).ip("198.18.0.5", "198.51.100.80").tcp(30000, 80, kTcpSyn).build(),
                        kIn, 5000);
  ASSERT_EQ(in.verdict, Verdict::kForward) << counter_name(in.reason);
  ParsedPacket q;
  ASSERT_EQ(parse_frame(in.frame.data(), in.frame.size(), {}, &q), ParseStatus::kOk);
  EXPECT_EQ(q.tuple.src, ip_raw("198.18.0.5"));
  EXPECT_EQ(__builtin_bswap16(q.tuple.dport), 8080);
  EXPECT_EQ(e->counters().v[static_cast<size_t>(Counter::snat_flows)], 100u);
}

// A node with 10 000 Services (about 30 000 chains and 80 000 rules) loads,
// and a connection to any Service reaches one of its own endpoints.
TEST(KubeProxy, TenThousandServices) {
  const uint32_t n = 10000;
  auto rs = parse_rules(kube_proxy_rules(n), "kube.rules");
  ASSERT_TRUE(rs.ok()) << rs.error().message;
  EXPECT_EQ(rs->nat.chains.size(), 4u + 3u + 3u * n + 1u);
  EXPECT_EQ(rs->rule_count(), 8u * n + 7u);
  const Chain& services = rs->nat.chains[static_cast<size_t>(rs->nat.find_chain("KUBE-SERVICES"))];
  ASSERT_EQ(services.runs.size(), 1u);  // looked up, not scanned
  EXPECT_EQ(services.runs[0].end - services.runs[0].begin, n);
  rs->bind_interfaces({"eth1", "eth0"});
  Rng rng(5);
  for (uint32_t i : {0u, 1u, 4999u, n - 1}) {
    for (int k = 0; k < 8; ++k) {
      RulePacket p;
      p.src = 0xC6120002;
      uint32_t dst;
      ASSERT_TRUE(parse_ipv4(service_ip(i), &dst));
      p.dst = __builtin_bswap32(dst);
      p.proto = 6;
      p.sport = static_cast<uint16_t>(5000 + k);
      p.dport = 80;
      p.rng = &rng;
      const Rule* r = evaluate(rs->nat, Hook::kPrerouting, p);
      ASSERT_NE(r, nullptr);
      ASSERT_EQ(r->target.kind, TargetKind::kDnat);
      uint32_t e0, e1;
      ASSERT_TRUE(parse_ipv4(endpoint_ip(i, 0), &e0));
      ASSERT_TRUE(parse_ipv4(endpoint_ip(i, 1), &e1));
      const uint32_t to = r->target.range.min_ip;
      EXPECT_TRUE(to == __builtin_bswap32(e0) || to == __builtin_bswap32(e1)) << i;
      EXPECT_EQ(p.mark & 0x4000, 0x4000u);  // from outside the pod network: marked for MASQUERADE
    }
  }
}

}  // namespace
}  // namespace xnat::test
