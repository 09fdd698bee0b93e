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

const char* const kKubeNat = R"(*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-A - [0:0]
:KUBE-SEP-B - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-WEB - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SEP-A -s 198.18.0.2/32 -m comment --comment "default/web" -j KUBE-MARK-MASQ
-A KUBE-SEP-A -p tcp -m comment --comment "default/web" -m tcp -j DNAT --to-destination 198.18.0.2:8080
-A KUBE-SEP-B -s 198.18.0.3/32 -m comment --comment "default/web" -j KUBE-MARK-MASQ
-A KUBE-SEP-B -p tcp -m comment --comment "default/web" -m tcp -j DNAT --to-destination 198.18.0.3:8080
-A KUBE-SERVICES -d 198.51.100.80/32 -p tcp -m comment --comment "default/web cluster IP" -m tcp --dport 80 -j KUBE-SVC-WEB
-A KUBE-SVC-WEB ! -s 198.18.0.0/16 -d 198.51.100.80/32 -p tcp -m comment --comment "default/web cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-WEB -m comment --comment "default/web -> 198.18.0.2:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-A
-A KUBE-SVC-WEB -m comment --comment "default/web -> 198.18.0.3:8080" -j KUBE-SEP-B
COMMIT
)";

TEST(KubeProxy, ServiceLoadBalancedAndMasqueradedByMark) {
  auto e = make_engine(kKubeNat);
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
