// filter FORWARD through the engine: the gateway's firewall, as netfilter
// applies it to forwarded packets -- after DNAT, before SNAT, with
// connection states, policies, REJECT's answers -- and the iptables-save
// shapes of a router and a Docker host.
#include <gtest/gtest.h>

#include "dataplane/report.h"
#include "golden_cases.h"
#include "nat/rules_parser.h"
#include "packet/parse.h"
#include "test_util.h"

namespace xnat::test {
namespace {

std::string filter_table(const std::string& policy, const std::string& body) {
  return "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD " + policy + " [0:0]\n:OUTPUT ACCEPT [0:0]\n" + body + "COMMIT\n";
}

uint64_t count(const Engine& e, Counter c) { return e.counters().get(c); }

ParsedPacket parsed(const Output& o) {
  ParsedPacket p;
  EXPECT_EQ(parse_frame(o.frame.data(), o.frame.size(), {}, &p), ParseStatus::kOk);
  return p;
}

std::vector<uint8_t> from_outside(const char* src, const char* dst, uint16_t sport, uint16_t dport,
                                  uint8_t flags = kTcpSyn) {
  return FrameBuilder().eth(kRouterMac, kOutMac).ip(src, dst).tcp(sport, dport, flags).build();
}

// A home router's firewall: the inside may open connections, the outside
// only answer them; a forwarded port to 198.18.0.3:22.
const std::string kRouter =
    nat_table("-A PREROUTING -i eth0 -p tcp -m tcp --dport 2222 -j DNAT --to-destination 198.18.0.3:22\n"
              "-A POSTROUTING -o eth0 -j MASQUERADE\n") +
    filter_table("DROP",
                 "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
                 "-A FORWARD -m conntrack --ctstate INVALID -j DROP\n"
                 "-A FORWARD -i eth1 -o eth0 -j ACCEPT\n"
                 "-A FORWARD -i eth0 -o eth1 -m conntrack --ctstate DNAT -d 198.18.0.3/32 -p tcp -m tcp --dport 22 -j ACCEPT\n");

TEST(Filter, RouterLetsTheInsideOutAndOnlyAnswersIn) {
  auto e = make_engine(kRouter);
  // Out: allowed, masqueraded.
  const Output out = run(*e, from_client().tcp(40000, 80, kTcpSyn).build(), kIn, 1000);
  ASSERT_EQ(out.verdict, Verdict::kForward) << counter_name(out.reason);
  const ParsedPacket po = parsed(out);
  EXPECT_EQ(po.tuple.src, ip_raw("198.19.0.1"));
  // Its answer: ESTABLISHED, allowed.
  const Output back = run(*e, from_outside("198.51.100.7", "198.19.0.1", 80, __builtin_bswap16(po.tuple.sport),
                                           kTcpSyn | kTcpAck), kOut, 1001);
  ASSERT_EQ(back.verdict, Verdict::kForward) << counter_name(back.reason);
  EXPECT_EQ(parsed(back).tuple.dst, ip_raw("198.18.0.2"));
  // Unsolicited from outside to an inside host: the policy drops it, and no
  // connection is left behind.
  const Output in = run(*e, from_outside("203.0.113.9", "198.18.0.2", 5555, 80), kOut, 1002);
  EXPECT_EQ(in.verdict, Verdict::kDrop);
  EXPECT_EQ(in.reason, Counter::drop_filtered);
  EXPECT_EQ(e->conntrack().count(), 1u);
  EXPECT_EQ(count(*e, Counter::flows_created), 1u);
  // The forwarded port: DNATed, then FORWARD sees the new destination.
  const Output fwd = run(*e, from_outside("203.0.113.9", "198.19.0.1", 5556, 2222), kOut, 1003);
  ASSERT_EQ(fwd.verdict, Verdict::kForward) << counter_name(fwd.reason);
  EXPECT_EQ(parsed(fwd).tuple.dst, ip_raw("198.18.0.3"));
  EXPECT_EQ(e->conntrack().count(), 2u);
  // Another port of the gateway's address is the host's (INPUT), not FORWARD's.
  const Output host = run(*e, from_outside("203.0.113.9", "198.19.0.1", 5557, 22), kOut, 1004);
  EXPECT_EQ(host.verdict, Verdict::kToHost);
  EXPECT_EQ(count(*e, Counter::drop_filtered), 1u);
}

TEST(Filter, NewStateIsPerDirectionUntilAReply) {
  // UDP: every datagram out is NEW until one comes back; replies are ESTABLISHED.
  auto e = make_engine(nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n") +
                       filter_table("ACCEPT", "-A FORWARD -i eth1 -m conntrack --ctstate NEW -m statistic --mode nth --every 2 --packet 1 -j DROP\n"
                                              "-A FORWARD -i eth0 -m conntrack ! --ctstate ESTABLISHED -j DROP\n"));
  auto dgram = [] { return from_client().udp(40000, 53).build(); };
  EXPECT_EQ(run(*e, dgram(), kIn, 1000).verdict, Verdict::kForward);  // NEW, counter 0
  const Output second = run(*e, dgram(), kIn, 1001);                 // NEW again: no reply yet; nth drops it
  EXPECT_EQ(second.reason, Counter::drop_filtered);
  const Output reply = run(*e, FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").udp(53, 40000).build(),
                           kOut, 1002);
  ASSERT_EQ(reply.verdict, Verdict::kForward) << counter_name(reply.reason);
  EXPECT_EQ(run(*e, dgram(), kIn, 1003).verdict, Verdict::kForward);  // ESTABLISHED now: the NEW rule passes it
  EXPECT_EQ(run(*e, dgram(), kIn, 1004).verdict, Verdict::kForward);
}

TEST(Filter, SeesTheSourceBeforeSnatAndConntrackTuples) {
  auto e = make_engine(nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n") +
                       filter_table("ACCEPT",
                                    "-A FORWARD -s 198.18.0.3/32 -j DROP\n"
                                    "-A FORWARD -m conntrack --ctorigsrc 198.18.0.2 --ctdir REPLY -p udp --sport 53 -j DROP\n"));
  EXPECT_EQ(run(*e, from_client("198.18.0.3", kClient2Mac).udp(1, 53).build(), kIn, 1000).reason, Counter::drop_filtered);
  const Output out = run(*e, from_client().udp(40001, 53).build(), kIn, 1001);
  ASSERT_EQ(out.verdict, Verdict::kForward);
  const Output reply = run(*e, FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").udp(53, __builtin_bswap16(parsed(out).tuple.sport)).build(),
                           kOut, 1002);
  EXPECT_EQ(reply.reason, Counter::drop_filtered);  // the reply direction of 198.18.0.2's connection
  EXPECT_EQ(count(*e, Counter::drop_filtered), 2u);
}

TEST(Filter, RejectAnswersWithAnIcmpErrorOrATcpReset) {
  auto e = make_engine(filter_table("ACCEPT",
                                    "-A FORWARD -p udp -m udp --dport 137 -j REJECT --reject-with icmp-port-unreachable\n"
                                    "-A FORWARD -p tcp -m tcp --dport 445 -j REJECT --reject-with tcp-reset\n"
                                    "-A FORWARD -p icmp -j REJECT --reject-with icmp-admin-prohibited\n"));
  const Output u = run(*e, from_client().udp(40000, 137).build(), kIn, 1000);
  ASSERT_EQ(u.verdict, Verdict::kForward);
  EXPECT_EQ(u.out_if, kIn);
  ParsedPacket pu = parsed(u);
  EXPECT_TRUE(pu.icmp_error);
  EXPECT_EQ(pu.tuple.dst, ip_raw("198.18.0.2"));
  EXPECT_EQ(u.frame[pu.l4], 3);      // destination unreachable
  EXPECT_EQ(u.frame[pu.l4 + 1], 3);  // port
  EXPECT_EQ(pu.inner.dst, ip_raw("198.51.100.7"));  // quotes the datagram as sent

  // A SYN: the reset acknowledges it, from the address the client called.
  auto syn = FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.51.100.7").tcp(40001, 445, kTcpSyn, 1000).build();
  const Output r = run(*e, syn, kIn, 1001);
  ASSERT_EQ(r.verdict, Verdict::kForward);
  EXPECT_EQ(r.out_if, kIn);
  ASSERT_EQ(r.frame.size(), 14u + 40u);
  ParsedPacket pr = parsed(r);
  EXPECT_EQ(pr.tuple.src, ip_raw("198.51.100.7"));
  EXPECT_EQ(pr.tuple.dst, ip_raw("198.18.0.2"));
  EXPECT_EQ(__builtin_bswap16(pr.tuple.sport), 445);
  EXPECT_EQ(__builtin_bswap16(pr.tuple.dport), 40001);
  EXPECT_EQ(pr.tcp_flags, kTcpRst | kTcpAck);
  EXPECT_EQ(pr.tcp.seq, 0u);
  EXPECT_EQ(pr.tcp.ack, 1001u);
  EXPECT_TRUE(std::equal(kClientMac.b, kClientMac.b + 6, r.frame.begin()));  // back to the previous hop
  // A segment with ACK: the reset takes its acknowledgement number as sequence.
  auto ack = FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.51.100.7").tcp(40002, 445, kTcpAck, 5, 777).build();
  ParsedPacket pa = parsed(run(*e, ack, kIn, 1002));
  EXPECT_EQ(pa.tcp_flags, kTcpRst);
  EXPECT_EQ(pa.tcp.seq, 777u);
  // A lone reset is INVALID to conntrack, dropped before FORWARD (and never
  // answered with a reset).
  const Output rr = run(*e, FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.51.100.7").tcp(40003, 445, kTcpRst).build(), kIn, 1003);
  EXPECT_EQ(rr.verdict, Verdict::kDrop);
  EXPECT_EQ(rr.reason, Counter::drop_invalid);

  const Output i = run(*e, from_client().icmp(8, 0, 7, 1).build(), kIn, 1004);
  EXPECT_EQ(i.frame[parsed(i).l4 + 1], 13);  // administratively prohibited
  EXPECT_EQ(count(*e, Counter::drop_rejected), 4u);
  EXPECT_EQ(count(*e, Counter::tcp_resets_sent), 2u);
  EXPECT_EQ(count(*e, Counter::icmp_errors_sent), 2u);
  EXPECT_EQ(e->conntrack().count(), 0u);  // refused connections leave no entry
}

// Docker's shape (docker0 here is eth1, the host's uplink eth0): published
// port 8080 -> 198.18.0.3:80, containers may go out, isolation chains and
// DOCKER-USER in the path, FORWARD policy DROP.
const std::string kDocker = R"(# Generated by iptables-save v1.8.9 (nf_tables) on Sun Dec  6 10:00:00 2026
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o eth1 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o eth1 -j DOCKER
-A FORWARD -i eth1 ! -o eth1 -j ACCEPT
-A FORWARD -i eth1 -o eth1 -j ACCEPT
-A DOCKER -d 198.18.0.3/32 ! -i eth1 -o eth1 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i eth1 ! -o eth1 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o br-0f2d4b6c9a11 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -s 203.0.113.66/32 -j DROP
-A DOCKER-USER -j RETURN
COMMIT
# Completed on Sun Dec  6 10:00:00 2026
# Generated by iptables-save v1.8.9 (nf_tables) on Sun Dec  6 10:00:00 2026
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 198.18.0.0/16 ! -o eth1 -j MASQUERADE
-A DOCKER -i eth1 -j RETURN
-A DOCKER ! -i eth1 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.18.0.3:80
COMMIT
# Completed on Sun Dec  6 10:00:00 2026
)";

TEST(Filter, LimitLengthTtlMacAndPacketTypeMatches) {
  auto e = make_engine(filter_table(
      "ACCEPT",
      "-A FORWARD -p udp -m udp --dport 1 -m limit --limit 1/sec --limit-burst 2 -j ACCEPT\n"
      "-A FORWARD -p udp -m udp --dport 1 -j DROP\n"
      "-A FORWARD -p udp -m udp --dport 2 -m length --length 0:60 -j DROP\n"
      "-A FORWARD -p udp -m udp --dport 3 -m ttl --ttl-lt 10 -j DROP\n"
      "-A FORWARD -p udp -m udp --dport 4 -m mac --mac-source 02:00:00:00:00:11 -j DROP\n"
      "-A FORWARD -p udp -m udp --dport 5 -m pkttype ! --pkt-type unicast -j DROP\n"));
  auto to = [](uint16_t dport) { return from_client().udp(40000 + dport, dport); };
  // limit: the burst of 2 passes, the third waits for a token (1 a second).
  EXPECT_EQ(run(*e, to(1).build(), kIn, 1000).verdict, Verdict::kForward);
  EXPECT_EQ(run(*e, to(1).build(), kIn, 1000).verdict, Verdict::kForward);
  EXPECT_EQ(run(*e, to(1).build(), kIn, 1500).reason, Counter::drop_filtered);
  EXPECT_EQ(run(*e, to(1).build(), kIn, 2001).verdict, Verdict::kForward);
  // length: 28 bytes of IPv4 + UDP, or 128 with a payload.
  EXPECT_EQ(run(*e, to(2).build(), kIn, 3000).reason, Counter::drop_filtered);
  EXPECT_EQ(run(*e, to(2).payload(std::vector<uint8_t>(100, 1)).build(), kIn, 3000).verdict, Verdict::kForward);
  // ttl: as FORWARD sees it, already decremented (10 arrives, 9 is seen).
  EXPECT_EQ(run(*e, to(3).ttl(10).build(), kIn, 3000).reason, Counter::drop_filtered);
  EXPECT_EQ(run(*e, to(3).ttl(11).build(), kIn, 3000).verdict, Verdict::kForward);
  // mac: the sender's.
  EXPECT_EQ(run(*e, from_client("198.18.0.3", kClient2Mac).udp(1, 4).build(), kIn, 3000).reason, Counter::drop_filtered);
  EXPECT_EQ(run(*e, to(4).build(), kIn, 3000).verdict, Verdict::kForward);
  // pkttype: unicast to the gateway's MAC passes.
  EXPECT_EQ(run(*e, to(5).build(), kIn, 3000).verdict, Verdict::kForward);
  EXPECT_EQ(count(*e, Counter::drop_filtered), 4u);
}

TEST(Filter, LogWritesTheKernelsLineAndGoesOn) {
  auto e = make_engine(filter_table("ACCEPT",
                                    "-A FORWARD -p udp -m limit --limit 1/min --limit-burst 1 -j LOG --log-prefix \"FWD udp: \" --log-level 6\n"
                                    "-A FORWARD -p tcp -j LOG --log-tcp-sequence --log-macdecode\n"
                                    "-A FORWARD -p udp -m udp --dport 54 -j DROP\n"));
  std::vector<std::pair<int, std::string>> lines;
  auto drain = [&] {
    e->log_ring().drain([&](uint8_t level, std::string_view text) { lines.emplace_back(level, std::string(text)); });
  };
  EXPECT_EQ(run(*e, from_client().udp(40000, 53).build(), kIn, 1000).verdict, Verdict::kForward);
  EXPECT_EQ(run(*e, from_client().udp(40000, 54).build(), kIn, 1001).reason, Counter::drop_filtered);  // limited: no line
  EXPECT_EQ(run(*e, from_client().tcp(40001, 80, kTcpSyn, 7).build(), kIn, 1002).verdict, Verdict::kForward);
  drain();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].first, 6);
  EXPECT_EQ(lines[0].second,
            "FWD udp: IN=eth1 OUT=eth0 MAC=02:00:00:00:00:01:02:00:00:00:00:10:08:00 SRC=198.18.0.2 DST=198.51.100.7 "
            "LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=UDP SPT=40000 DPT=53 LEN=8 ");
  EXPECT_EQ(lines[1].first, 4);
  EXPECT_EQ(lines[1].second,
            "IN=eth1 OUT=eth0 MACSRC=02:00:00:00:00:10 MACDST=02:00:00:00:00:01 MACPROTO=0800 SRC=198.18.0.2 "
            "DST=198.51.100.7 LEN=40 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=40001 DPT=80 SEQ=7 ACK=0 "
            "WINDOW=64240 RES=0x00 SYN URGP=0 ");
  EXPECT_EQ(e->counters().get(Counter::logged), 2u);
}

TEST(Filter, DockerHostShape) {
  auto rs = parse_rules(kDocker, "docker.rules");
  ASSERT_TRUE(rs.ok()) << rs.error().message;
  auto e = make_engine(kDocker);
  // Published port, from outside.
  const Output pub = run(*e, from_outside("203.0.113.9", "198.19.0.1", 6000, 8080), kOut, 1000);
  ASSERT_EQ(pub.verdict, Verdict::kForward) << counter_name(pub.reason);
  const ParsedPacket pp = parsed(pub);
  EXPECT_EQ(pp.tuple.dst, ip_raw("198.18.0.3"));
  EXPECT_EQ(__builtin_bswap16(pp.tuple.dport), 80);
  EXPECT_EQ(pp.tuple.src, ip_raw("203.0.113.9"));
  // The container's answer (ESTABLISHED; -i eth1 ! -o eth1 anyway).
  const Output ans = run(*e, FrameBuilder().eth(kClient2Mac, kInMac).ip("198.18.0.3", "203.0.113.9").tcp(80, 6000, kTcpSyn | kTcpAck).build(),
                         kIn, 1001);
  ASSERT_EQ(ans.verdict, Verdict::kForward) << counter_name(ans.reason);
  EXPECT_EQ(parsed(ans).tuple.src, ip_raw("198.19.0.1"));
  // DOCKER-USER blocks a source even on the published port.
  EXPECT_EQ(run(*e, from_outside("203.0.113.66", "198.19.0.1", 6001, 8080), kOut, 1002).reason, Counter::drop_filtered);
  // A container port that is not published: FORWARD's policy.
  EXPECT_EQ(run(*e, from_outside("203.0.113.9", "198.18.0.3", 6002, 22), kOut, 1003).reason, Counter::drop_filtered);
  // A container going out: masqueraded.
  const Output out = run(*e, from_client("198.18.0.3", kClient2Mac).tcp(41000, 443, kTcpSyn).build(), kIn, 1004);
  ASSERT_EQ(out.verdict, Verdict::kForward) << counter_name(out.reason);
  EXPECT_EQ(parsed(out).tuple.src, ip_raw("198.19.0.1"));
  EXPECT_EQ(count(*e, Counter::drop_filtered), 2u);
  EXPECT_EQ(e->conntrack().count(), 2u);
}

TEST(Filter, HostChainsAreNamedNotEnforced) {
  auto rs = parse_rules(filter_table("ACCEPT", "") , "f.rules");
  ASSERT_TRUE(rs.ok());
  EXPECT_FALSE(rs->filters_forward());
  auto rs2 = parse_rules("*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                         "-A INPUT -i lo -j ACCEPT\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n",
                         "f.rules");
  ASSERT_TRUE(rs2.ok()) << rs2.error().message;
  EXPECT_FALSE(rs2->filters_forward());
  const auto notes = rs2->notices({"eth0", "eth1", "lo"});
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0], "filter INPUT: 2 rule(s), policy DROP: the host's own traffic, enforced by the host's kernel "
                      "(keep them loaded there), not by xnat");
}

struct BadRules {
  std::string text, message;
};

class FilterParseErrors : public ::testing::TestWithParam<BadRules> {};

TEST_P(FilterParseErrors, RefusedWithAClearMessage) {
  auto rs = parse_rules(GetParam().text, "bad.rules");
  ASSERT_FALSE(rs.ok());
  EXPECT_EQ(rs.error().message, GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    Rules, FilterParseErrors,
    ::testing::Values(
        BadRules{"*nat\n:PREROUTING DROP [0:0]\nCOMMIT\n",
                 "bad.rules:2: 'DROP': the policy of a NAT table's built-in chain must be ACCEPT"},
        BadRules{"*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j DROP\nCOMMIT\n",
                 "bad.rules:3: 'DROP': the nat table is not for filtering (the kernel refuses DROP there): drop in table filter"},
        BadRules{"*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j REJECT\nCOMMIT\n",
                 "bad.rules:3: 'REJECT': target REJECT belongs in table filter, not nat"},
        BadRules{"*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -p udp -j REJECT --reject-with tcp-reset\nCOMMIT\n",
                 "bad.rules:3: 'tcp-reset': tcp-reset needs '-p tcp' in the rule (as the kernel requires)"},
        BadRules{"*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j REJECT --reject-with icmp-bogus\nCOMMIT\n",
                 "bad.rules:3: 'icmp-bogus': expected icmp-net-unreachable, icmp-host-unreachable, icmp-port-unreachable, "
                 "icmp-proto-unreachable, icmp-net-prohibited, icmp-host-prohibited, icmp-admin-prohibited or tcp-reset"},
        BadRules{"*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -m conntrack --ctstate NEW,BOGUS -j DROP\nCOMMIT\n",
                 "bad.rules:3: 'NEW,BOGUS': expected states such as NEW,ESTABLISHED,RELATED,INVALID,UNTRACKED,SNAT,DNAT"},
        BadRules{"*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD --ctstate NEW -j DROP\nCOMMIT\n",
                 "bad.rules:3: '--ctstate': needs '-m conntrack' before it"},
        BadRules{"*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -m state --state SNAT -j DROP\nCOMMIT\n",
                 "bad.rules:3: 'SNAT': SNAT and DNAT are states of -m conntrack --ctstate, not of -m state"},
        BadRules{"*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -m conntrack --ctexpire 10 -j DROP\nCOMMIT\n",
                 "bad.rules:3: '--ctexpire': unsupported conntrack option; xnat supports --ctstate, --ctstatus, --ctdir, "
                 "--ctproto, --ctorigsrc/--ctorigdst/--ctreplsrc/--ctrepldst and their ports"},
        BadRules{"*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j LOG --log-level 9\nCOMMIT\n",
                 "bad.rules:3: '9': expected a level 0-7 or emerg, alert, crit, error, warning, notice, info, debug"},
        BadRules{"*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j LOG --log-prefix 123456789012345678901234567890\nCOMMIT\n",
                 "bad.rules:3: '123456789012345678901234567890': a log prefix is at most 29 characters"},
        BadRules{"*mangle\n:FORWARD ACCEPT [0:0]\n-A FORWARD -p tcp -j TCPMSS --set-mss 1400\nCOMMIT\n",
                 "bad.rules:3: 'TCPMSS': TCPMSS only works on TCP SYN packets: the rule needs -p tcp --tcp-flags "
                 "SYN,RST SYN (or --syn)"},
        BadRules{"*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp --syn -j TCPMSS --clamp-mss-to-pmtu\nCOMMIT\n",
                 "bad.rules:3: target TCPMSS --clamp-mss-to-pmtu is only valid in FORWARD, OUTPUT and POSTROUTING "
                 "(chain PREROUTING is reached from elsewhere)"},
        BadRules{"*mangle\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j CONNMARK\nCOMMIT\n",
                 "bad.rules:3: 'CONNMARK': CONNMARK needs --set-xmark, --set-mark, --save-mark or --restore-mark"},
        BadRules{"*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -m limit --limit 20000/sec -j ACCEPT\nCOMMIT\n",
                 "bad.rules:3: '20000/sec': expected RATE[/second|/minute|/hour|/day], at most 10000/second"},
        BadRules{"*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -m ttl ! --ttl-lt 5 -j ACCEPT\nCOMMIT\n",
                 "bad.rules:3: '--ttl-lt': '!' goes with --ttl-eq only"},
        BadRules{"*filter\n:FORWARD BOGUS [0:0]\nCOMMIT\n",
                 "bad.rules:2: 'BOGUS': a built-in chain's policy is ACCEPT or DROP"}));

TEST(Filter, MangleWithoutRulesAndStateMatchLoad) {
  // kube-proxy and iptables-save of a fresh host leave mangle's chains empty.
  auto rs = parse_rules("*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
                        ":OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n" +
                            filter_table("ACCEPT", "-A FORWARD -m state --state INVALID -j DROP\n"),
                        "m.rules");
  ASSERT_TRUE(rs.ok()) << rs.error().message;
  EXPECT_TRUE(rs->filters_forward());
}

}  // namespace
}  // namespace xnat::test

namespace xnat::test {
namespace {

std::string mangle_table(const std::string& body) {
  return "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
         ":POSTROUTING ACCEPT [0:0]\n" + body + "COMMIT\n";
}

TEST(Mangle, MarksAndConnectionMarksReachFilterAndNat) {
  // Traffic from 198.18.0.3 marked in mangle PREROUTING, its connection
  // marked on its first packet; the mark restored on every later packet in
  // both directions, and the filter drops replies whose connection is marked 2.
  auto e = make_engine(
      mangle_table("-A PREROUTING -m conntrack --ctstate NEW -s 198.18.0.3/32 -j CONNMARK --set-xmark 0x2/0xff\n"
                   "-A PREROUTING -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff\n") +
      nat_table("-A POSTROUTING -o eth0 -m mark --mark 0x2/0xff -j SNAT --to-source 198.19.0.9\n"
                "-A POSTROUTING -o eth0 -j MASQUERADE\n") +
      filter_table("ACCEPT", "-A FORWARD -i eth0 -m connmark --mark 0x2/0xff -p udp -m udp --sport 5353 -j DROP\n"));
  const Output a = run(*e, from_client("198.18.0.3", kClient2Mac).udp(40000, 5353).build(), kIn, 1000);
  ASSERT_EQ(a.verdict, Verdict::kForward) << counter_name(a.reason);
  EXPECT_EQ(parsed(a).tuple.src, ip_raw("198.19.0.9"));  // the restored mark chose SNAT
  const Output b = run(*e, from_client().udp(40001, 5353).build(), kIn, 1001);
  EXPECT_EQ(parsed(b).tuple.src, ip_raw("198.19.0.1"));
  // Replies: the marked connection's is dropped, the other's passes.
  EXPECT_EQ(run(*e, FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.9").udp(5353, 40000).build(), kOut, 1002).reason,
            Counter::drop_filtered);
  EXPECT_EQ(run(*e, FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").udp(5353, 40001).build(), kOut, 1003).verdict,
            Verdict::kForward);
  // The listing shows each connection's mark.
  const std::string table = format_conntrack_table(e->conntrack(), 1004);
  EXPECT_NE(table.find("sport=40000 dport=5353 src=198.51.100.7 dst=198.19.0.9 sport=5353 dport=40000 mark=2 use=1"),
            std::string::npos) << table;
  EXPECT_NE(table.find("sport=40001 dport=5353 src=198.51.100.7 dst=198.19.0.1 sport=5353 dport=40001 mark=0"),
            std::string::npos) << table;
}

uint16_t mss_of(const std::vector<uint8_t>& f) {
  ParsedPacket p;
  EXPECT_EQ(parse_frame(f.data(), f.size(), ParseOptions{.verify_l4_checksum = true}, &p), ParseStatus::kOk);
  const uint8_t* o = f.data() + p.l4 + 20;
  const unsigned olen = (f[p.l4 + 12] >> 4) * 4u - 20;
  for (unsigned i = 0; i < olen;) {
    if (o[i] == 0) break;
    if (o[i] == 1) { ++i; continue; }
    if (o[i] == 2) return static_cast<uint16_t>(o[i + 2] << 8 | o[i + 3]);
    i += o[i + 1];
  }
  return 0;
}

TEST(Mangle, TcpmssClampsSynsToThePathMtu) {
  EngineConfig cfg = engine_config(
      mangle_table("-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu\n") +
      nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"));
  Fib fib;
  for (Interface itf : cfg.fib.interfaces()) {
    if (itf.name == "eth0") itf.mtu = 1492;  // PPPoE
    fib.add_interface(itf);
  }
  (void)fib.add_route(Prefix{0, 0}, ip_raw("198.19.0.254"), -1);
  cfg.fib.for_each_neighbor([&](uint32_t a, const MacAddr& m) { fib.add_neighbor(a, m); });
  cfg.fib = fib;
  Engine e(std::move(cfg));
  // MSS 1460 after a no-op (odd offset) and at an even offset: lowered to 1452, checksum kept valid.
  for (const std::vector<uint8_t>& opts : {std::vector<uint8_t>{1, 2, 4, 0x05, 0xB4, 1, 1, 1},
                                           std::vector<uint8_t>{2, 4, 0x05, 0xB4, 4, 2, 1, 1}}) {
    const Output o = run(e, from_client().tcp(static_cast<uint16_t>(40000 + opts[0]), 80, kTcpSyn).tcp_options(opts).build(), kIn, 1000);
    ASSERT_EQ(o.verdict, Verdict::kForward) << counter_name(o.reason);
    EXPECT_EQ(mss_of(o.frame), 1452);
  }
  // Lower already: kept.
  const Output low = run(e, from_client().tcp(40010, 80, kTcpSyn).tcp_options({2, 4, 0x04, 0x00}).build(), kIn, 1001);
  EXPECT_EQ(mss_of(low.frame), 1024);
  // No MSS option: one is added, at most RFC 1122's 536.
  const Output none = run(e, from_client().tcp(40011, 80, kTcpSyn).build(), kIn, 1002);
  ASSERT_EQ(none.verdict, Verdict::kForward);
  EXPECT_EQ(mss_of(none.frame), 536);
  EXPECT_EQ(none.frame.size(), 14u + 20u + 24u);
}

TEST(Mangle, TailscaleSubnetRouterShape) {
  // tailscaled's chains: forwarded traffic from the tailnet marked in filter
  // FORWARD and masqueraded by that mark (here tailscale0 is eth1).
  auto e = make_engine(R"(*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:ts-forward - [0:0]
:ts-input - [0:0]
-A INPUT -j ts-input
-A FORWARD -j ts-forward
-A ts-forward -i eth1 -j MARK --set-xmark 0x40000/0xff0000
-A ts-forward -m mark --mark 0x40000/0xff0000 -j ACCEPT
-A ts-forward -s 100.64.0.0/10 -o eth1 -j DROP
-A ts-forward -o eth1 -j ACCEPT
-A ts-input -i lo -s 100.101.102.103/32 -j ACCEPT
-A ts-input -s 100.115.92.0/23 ! -i eth1 -j RETURN
-A ts-input -s 100.64.0.0/10 ! -i eth1 -j DROP
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:ts-postrouting - [0:0]
-A POSTROUTING -j ts-postrouting
-A ts-postrouting -m mark --mark 0x40000/0xff0000 -j MASQUERADE
COMMIT
)");
  const Output out = run(*e, from_client().udp(41641, 443).build(), kIn, 1000);
  ASSERT_EQ(out.verdict, Verdict::kForward) << counter_name(out.reason);
  EXPECT_EQ(parsed(out).tuple.src, ip_raw("198.19.0.1"));  // marked in FORWARD, masqueraded by the mark
  // From the other side, not from the tailnet: not marked, not masqueraded.
  const Output in = run(*e, FrameBuilder().eth(kRouterMac, kOutMac).ip("203.0.113.5", "198.18.0.2").udp(1, 2).build(), kOut, 1001);
  ASSERT_EQ(in.verdict, Verdict::kForward) << counter_name(in.reason);
  EXPECT_EQ(parsed(in).tuple.src, ip_raw("203.0.113.5"));
}

}  // namespace
}  // namespace xnat::test

namespace xnat::test {
namespace {

// The CNI portmap plugin's chains for a pod 198.18.0.3 publishing host port
// 8443 -> 443 (containerd), hairpin traffic marked for masquerade.
TEST(Shapes, CniPortmap) {
  auto e = make_engine(R"(*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
:CNI-DN-6f3c9a5b1e2d4c7a8b901 - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"cbr0\" id: \"8d2c1a\"" -m multiport --dports 8443 -j CNI-DN-6f3c9a5b1e2d4c7a8b901
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
-A CNI-DN-6f3c9a5b1e2d4c7a8b901 -s 198.18.0.0/16 -p tcp -m tcp --dport 8443 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-6f3c9a5b1e2d4c7a8b901 -s 127.0.0.1/32 -p tcp -m tcp --dport 8443 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-6f3c9a5b1e2d4c7a8b901 -p tcp -m tcp --dport 8443 -j DNAT --to-destination 198.18.0.3:443
COMMIT
)");
  // From outside: DNATed to the pod, the client's address kept.
  const Output in = run(*e, from_outside("203.0.113.9", "198.19.0.1", 7000, 8443), kOut, 1000);
  ASSERT_EQ(in.verdict, Verdict::kForward) << counter_name(in.reason);
  const ParsedPacket p = parsed(in);
  EXPECT_EQ(p.tuple.dst, ip_raw("198.18.0.3"));
  EXPECT_EQ(__builtin_bswap16(p.tuple.dport), 443);
  EXPECT_EQ(p.tuple.src, ip_raw("203.0.113.9"));
  // From another pod to the host port (hairpin): marked, so masqueraded too.
  const Output hp = run(*e, from_client("198.18.0.4", kClient2Mac).ip("198.18.0.4", "198.19.0.1").tcp(7001, 8443, kTcpSyn).build(),
                        kIn, 1001);
  ASSERT_EQ(hp.verdict, Verdict::kForward) << counter_name(hp.reason);
  const ParsedPacket q = parsed(hp);
  EXPECT_EQ(q.tuple.dst, ip_raw("198.18.0.3"));
  EXPECT_EQ(q.tuple.src, ip_raw("198.18.0.1"));
}

// A WireGuard server's PostUp rules (wg0 here is eth1): forwarded from the
// tunnel, masqueraded out, and nothing new from outside into it.
TEST(Shapes, WireGuardServer) {
  auto e = make_engine(R"(*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 51820 -j ACCEPT
-A FORWARD -i eth1 -j ACCEPT
-A FORWARD -o eth1 -m state --state RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o eth0 -j MASQUERADE
COMMIT
)");
  const Output out = run(*e, from_client().tcp(40000, 443, kTcpSyn).build(), kIn, 1000);
  ASSERT_EQ(out.verdict, Verdict::kForward) << counter_name(out.reason);
  EXPECT_EQ(parsed(out).tuple.src, ip_raw("198.19.0.1"));
  const Output back = run(*e, from_outside("198.51.100.7", "198.19.0.1", 443, 40000, kTcpSyn | kTcpAck), kOut, 1001);
  ASSERT_EQ(back.verdict, Verdict::kForward) << counter_name(back.reason);
  EXPECT_EQ(run(*e, from_outside("203.0.113.9", "198.18.0.2", 5000, 22), kOut, 1002).reason, Counter::drop_filtered);
}

}  // namespace
}  // namespace xnat::test
