// kube-proxy's iptables mode through the engine: a Service's cluster IP
// load-balanced over two endpoints by -m statistic, traffic from outside the
// pod network marked by KUBE-MARK-MASQ and masqueraded in KUBE-POSTROUTING by
// its mark, traffic from inside DNATed but not masqueraded.
#include <gtest/gtest.h>

#include <set>

#include "golden_cases.h"
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

}  // namespace
}  // namespace xnat::test
