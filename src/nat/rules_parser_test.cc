#include "nat/rules_parser.h"

#include <gtest/gtest.h>

#include <bit>

#include "test_util.h"

namespace xnat {
namespace {

TEST(RulesParser, DockerHostLoadsUnchanged) {
  auto r = parse_rules(test::kDockerHostRules, "docker.rules");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->rule_count(), 6u);
  const Table& nat = r->nat;
  const Chain& docker = nat.chains[nat.find_chain("DOCKER")];
  ASSERT_EQ(docker.rules.size(), 2u);
  EXPECT_EQ(docker.rules[1].target.kind, TargetKind::kDnat);
  EXPECT_EQ(docker.rules[1].target.range.min_ip, 0xC6120002u);
  EXPECT_EQ(docker.rules[1].target.range.min_port, 80);
  EXPECT_TRUE(docker.rules[1].match.in.invert);
  EXPECT_EQ(docker.rules[1].line, 13);
}

TEST(RulesParser, EvaluationFollowsJumpsReturnsAndInterfaces) {
  auto r = parse_rules(test::kDockerHostRules, "docker.rules");
  ASSERT_TRUE(r.ok());
  r->bind_interfaces({"docker0", "eth0"});
  RulePacket p;
  p.src = 0xC6336409;  // 198.51.100.9
  p.dst = 0xC6130001;
  p.proto = 6;
  p.dport = 8080;
  p.dst_type = kAddrLocal;
  p.in_if = 1;  // eth0
  const Rule* hit = evaluate(r->nat, Hook::kPrerouting, p);
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->target.kind, TargetKind::kDnat);
  p.in_if = 0;  // from the bridge: RETURN, no DNAT
  EXPECT_EQ(evaluate(r->nat, Hook::kPrerouting, p), nullptr);
  p.dst_type = kAddrUnicast;  // not a local address: never enters DOCKER
  p.in_if = 1;
  EXPECT_EQ(evaluate(r->nat, Hook::kPrerouting, p), nullptr);
}

std::string nat(const std::string& body) {
  return "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n" +
         body + "COMMIT\n";
}

struct BadCase {
  std::string text;
  std::string want;  // substring of the message
};

TEST(RulesParser, ErrorsNameFileLineAndToken) {
  const BadCase cases[] = {
      {nat("-A POSTROUTING -o eth0 --bogus -j MASQUERADE\n"), "r:6: '--bogus': unknown option"},
      {nat("-A POSTROUTING -j TRACE\n"), "r:6: 'TRACE': target TRACE is not supported"},
      {nat("-A POSTROUTING -j NOSUCH\n"), "r:6: 'NOSUCH': no such chain"},
      {nat("-A PREROUTING -j SNAT --to-source 198.19.0.1\n"), "SNAT is only valid in POSTROUTING"},
      {nat("-A POSTROUTING -j DNAT --to-destination 198.18.0.2\n"), "DNAT is only valid in PREROUTING"},
      {nat("-A PREROUTING -o eth0 -j ACCEPT\n"), "'-o': an output interface is not known yet"},
      {nat("-A POSTROUTING -p tcp --dport 99999 -j ACCEPT\n"), "'99999': expected a port"},
      {nat("-A POSTROUTING --dport 80 -j ACCEPT\n"), "port matches need '-p tcp'"},
      {nat("-A POSTROUTING -m recent --update --seconds 30 -j ACCEPT\n"), "'recent': unsupported match module"},
      {nat("-A POSTROUTING -j SNAT\n"), "SNAT needs --to-source"},
      {nat("-A POSTROUTING -j SNAT --to-source 198.19.0.300\n"), "expected IP[-IP][:PORT[-PORT]]"},
      {nat("-A POSTROUTING -j MASQUERADE --to-ports 1000-2000\n"), "a port range needs '-p tcp'"},
      {nat("-A POSTROUTING -s 198.18.0.0/33 -j ACCEPT\n"), "'198.18.0.0/33'"},
      {nat("-A NOCHAIN -j ACCEPT\n"), "'NOCHAIN': chain not declared"},
      {nat(":A - [0:0]\n:B - [0:0]\n-A POSTROUTING -j A\n-A A -j B\n-A B -j A\n"), "a loop"},
      {nat("-A POSTROUTING -m comment --comment \"unterminated -j ACCEPT\n"), "unterminated double quote"},
      {"*security\n:INPUT ACCEPT [0:0]\nCOMMIT\n", "r:1: '*security': xnat reads the tables nat, filter, mangle, raw and rawpost"},
      {"*nat\n:PREROUTING ACCEPT [0:0]\n", "has no COMMIT"},
      {"-A PREROUTING -j ACCEPT\n", "expected a table line"},
      {nat("-A POSTROUTING -j RAWSNAT --to-source 198.19.0.0/24\n"), "target RAWSNAT belongs in table rawpost"},
      {nat("-A POSTROUTING -j MASQUERADE --to-destination 198.19.0.1\n"), "not an option of target MASQUERADE"},
      {nat("-A POSTROUTING ! ! -s 198.18.0.1 -j ACCEPT\n"), "double '!'"},
  };
  for (const BadCase& c : cases) {
    auto r = parse_rules(c.text, "r");
    ASSERT_FALSE(r.ok()) << "accepted:\n" << c.text;
    EXPECT_NE(r.error().message.find(c.want), std::string::npos)
        << "message: " << r.error().message << "\nwanted: " << c.want;
  }
}

TEST(RulesParser, AcceptsEverySupportedForm) {
  auto r = parse_rules(
      "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
      ":USER - [0:0]\n"
      "[5:300] -A PREROUTING -p udp -m multiport --dports 53,5353:5355 -j DNAT --to-destination 198.18.0.2-198.18.0.5:53 --persistent\n"
      "-A PREROUTING -p tcp -m tcp ! --sport 1:1023 -j REDIRECT --to-ports 3128 --random\n"
      "-A PREROUTING -d 198.19.1.0/255.255.255.0 -j NETMAP --to 198.18.1.0/24\n"
      "-A PREROUTING -p icmp -m icmp --icmp-type echo-request -m comment --comment \"ping \\\"in\\\"\" -g USER\n"
      "-A POSTROUTING -s 198.18.0.0/16 -p tcp -o eth+ -j SNAT --to-source 198.19.0.10-198.19.0.20:1024-65535 --random-fully\n"
      "-A POSTROUTING -p tcp -o eth0 -j MASQUERADE --to-ports 20000-30000\n"
      "-A USER -j RETURN\n"
      "COMMIT\n"
      "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      "-A PREROUTING -d 198.19.2.0/24 -j RAWDNAT --to-destination 198.18.2.0/24\n"
      "-A PREROUTING -p udp --dport 123 -j CT --notrack\n"
      "-A OUTPUT -j NOTRACK\n"
      "COMMIT\n"
      "*rawpost\n:POSTROUTING ACCEPT [0:0]\n"
      "-A POSTROUTING -s 198.18.2.0/24 -j RAWSNAT --to-source 198.19.2.0/24\n"
      "COMMIT\n",
      "all.rules");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->rule_count(), 11u);
  const Rule& snat = r->nat.chains[3].rules[0];
  EXPECT_TRUE(snat.target.range.random_fully);
  EXPECT_EQ(snat.target.range.max_ip, 0xC6130014u);
  EXPECT_EQ(r->nat.chains[0].rules[0].match.multi_ports.size(), 2u);
}

TEST(RulesParser, ToAbbreviatesSnatAndDnatRanges) {
  // iptables accepts a unique prefix of an option: --to for --to-source / --to-destination.
  auto r = parse_rules(test::nat_table("-A PREROUTING -p tcp --dport 80 -j DNAT --to 198.18.0.2:8080\n"
                                       "-A POSTROUTING -o eth0 -j SNAT --to 198.19.0.10\n"),
                       "to.rules");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const Target& dnat = r->nat.chains[0].rules[0].target;
  EXPECT_EQ(dnat.range.min_ip, 0xC6120002u);
  EXPECT_EQ(dnat.range.min_port, 8080);
  EXPECT_EQ(r->nat.chains[3].rules[0].target.range.min_ip, 0xC613000Au);
}

TEST(Prefix, MaskAtEveryLength) {
  for (uint8_t len = 0; len <= 32; ++len) {
    Prefix p;
    p.len = len;
    const uint32_t want = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
    EXPECT_EQ(p.mask(), want) << int(len);
    EXPECT_EQ(std::popcount(p.mask()), len);
  }
}

// iptables-save output as editors and scripts leave it.
TEST(RulesParser, CommentsAndByteOrderMarkAreNotRules) {
  const std::string text =
      "\xEF\xBB\xBF# Generated by iptables-save v1.8.9 on \"Sun Dec  6 08:00:00 2026\n"
      "*nat\n"
      ":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
      "   # an operator's note with an odd \" quote\n"
      "-A POSTROUTING -o eth0 -j MASQUERADE\n"
      "COMMIT\n"
      "# Completed on Sun Dec  6 08:00:00 2026\n";
  auto r = parse_rules(text, "saved.rules");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->rule_count(), 1u);
  // A quote still matters in a rule.
  auto bad = parse_rules("*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -m comment --comment \"open -j ACCEPT\nCOMMIT\n",
                         "bad.rules");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("bad.rules:3"), std::string::npos) << bad.error().message;
}

TEST(RulesParser, NoticesNameUnknownInterfacesAndHostChains) {
  auto r = parse_rules(test::nat_table("-A PREROUTING -i eht0 -p tcp --dport 80 -j DNAT --to-destination 198.18.0.2\n"
                                       "-A PREROUTING -i eth+ -p tcp --dport 81 -j DNAT --to-destination 198.18.0.2\n"
                                       "-A POSTROUTING ! -o wan9 -j MASQUERADE\n"
                                       "-A OUTPUT -p tcp --dport 82 -j DNAT --to-destination 198.18.0.3\n"),
                       "gw.rules");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto notes = r->notices({"eth0", "eth1"});
  ASSERT_EQ(notes.size(), 3u);
  EXPECT_EQ(notes[0], "gw.rules:6: -i eht0: no interface of this gateway has that name, so the rule never matches");
  EXPECT_EQ(notes[1], "gw.rules:8: -o wan9: no interface of this gateway has that name, so the rule matches every packet");
  EXPECT_EQ(notes[2], "nat OUTPUT: 1 rule(s) for the host's own connections: the host's kernel applies them "
                      "(iptables), xnat does not");
  EXPECT_TRUE(parse_rules(test::nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"), "ok.rules")->notices({"eth0"}).empty());
}


TEST(RulesParser, KubeProxyMarksAndStatistic) {
  auto r = parse_rules(test::kKubeProxyRules, "kube.rules");
  ASSERT_TRUE(r.ok()) << r.error().message;
  r->bind_interfaces({"eth1", "eth0"});
  Rng rng(7);
  int to_aaa = 0, masq_outside = 0;
  for (int i = 0; i < 2000; ++i) {
    // From outside the pod network to the service: DNAT to an endpoint, marked, masqueraded.
    RulePacket p;
    p.src = 0xCB007109;  // 203.0.113.9
    p.dst = 0xC6336450;  // 198.51.100.80
    p.proto = 6;
    p.dport = 80;
    p.in_if = 1;
    p.rng = &rng;
    const Rule* pre = evaluate(r->nat, Hook::kPrerouting, p);
    ASSERT_NE(pre, nullptr);
    ASSERT_EQ(pre->target.kind, TargetKind::kDnat);
    EXPECT_EQ(p.mark, 0x4000u);
    to_aaa += pre->target.range.min_ip == 0xC6120002u;  // 198.18.0.2
    p.in_if = -1;
    p.out_if = 0;
    const Rule* post = evaluate(r->nat, Hook::kPostrouting, p);
    ASSERT_NE(post, nullptr);
    masq_outside += post->target.kind == TargetKind::kMasquerade;
    EXPECT_EQ(p.mark, 0u);  // KUBE-POSTROUTING's --xor-mark took the bit back
  }
  EXPECT_EQ(masq_outside, 2000);
  // --probability 0.5: about half to each endpoint (seeded, so exact for
  // this seed; the bound is what a fair coin keeps to with certainty here).
  EXPECT_GT(to_aaa, 900);
  EXPECT_LT(to_aaa, 1100);

  // From inside the pod network: DNAT, no mark, no masquerade (RETURN).
  RulePacket q;
  q.src = 0xC6120205;  // 198.18.2.5
  q.dst = 0xC6336450;
  q.proto = 6;
  q.dport = 80;
  q.in_if = 0;
  q.rng = &rng;
  const Rule* pre = evaluate(r->nat, Hook::kPrerouting, q);
  ASSERT_NE(pre, nullptr);
  EXPECT_EQ(q.mark, 0u);
  q.in_if = -1;
  q.out_if = 0;
  EXPECT_EQ(evaluate(r->nat, Hook::kPostrouting, q), nullptr);
}

TEST(RulesParser, MarkFormsAndNth) {
  auto r = parse_rules(test::nat_table("-A PREROUTING -j MARK --set-mark 0x10/0xf0\n"
                                       "-A PREROUTING -j MARK --or-mark 0x1\n"
                                       "-A PREROUTING -j MARK --and-mark 0xff\n"
                                       "-A PREROUTING -m mark --mark 0x11/0xff -m statistic --mode nth --every 3 --packet 1 "
                                       "-j DNAT --to-destination 198.18.0.9\n"),
                       "marks.rules");
  ASSERT_TRUE(r.ok()) << r.error().message;
  std::string hits;
  for (int i = 0; i < 7; ++i) {
    RulePacket p;
    p.mark = 0xABCD0F00;
    const Rule* hit = evaluate(r->nat, Hook::kPrerouting, p);
    EXPECT_EQ(p.mark, 0x11u);  // (0xABCD0F00 & ~0xf0) | 0x10, | 0x1, & 0xff
    hits += hit ? 'x' : '.';
  }
  // Counter from --packet 1, matching when it reaches every - 1 = 2: the 2nd, 5th, 8th...
  EXPECT_EQ(hits, ".x..x..");
  for (const char* bad : {"-A PREROUTING -j MARK\n", "-A PREROUTING -j MARK --or-mark 1/2\n",
                          "-A PREROUTING -m mark --mark 0xZZ -j ACCEPT\n",
                          "-A PREROUTING -m statistic --mode random --probability 1.5 -j ACCEPT\n",
                          "-A PREROUTING -m statistic --probability 0.5 -j ACCEPT\n",
                          "-A PREROUTING -m statistic --mode nth --every 0 -j ACCEPT\n"}) {
    auto e = parse_rules(test::nat_table(bad), "bad.rules");
    EXPECT_FALSE(e.ok()) << bad;
  }
}

TEST(RulesParser, IprangeAndTcpFlags) {
  auto r = parse_rules(test::nat_table(
                           "-A PREROUTING -m iprange --src-range 198.18.0.10-198.18.0.20 ! --dst-range 198.19.0.1-198.19.0.9 "
                           "-p tcp -m tcp --syn -j DNAT --to-destination 198.18.0.2\n"
                           "-A PREROUTING -p tcp -m tcp ! --tcp-flags SYN,ACK SYN,ACK -j DNAT --to-destination 198.18.0.3\n"),
                       "ranges.rules");
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto eval = [&](uint32_t src, uint32_t dst, uint8_t flags) -> int {
    RulePacket p;
    p.src = src;
    p.dst = dst;
    p.proto = 6;
    p.tcp_flags = flags;
    const Rule* hit = evaluate(r->nat, Hook::kPrerouting, p);
    return hit ? hit->line : 0;
  };
  const uint32_t in = 0xC612000F, out_of_range = 0xC6120015, dst = 0xC6130020, excluded_dst = 0xC6130005;
  EXPECT_EQ(eval(in, dst, kTcpSyn), 6);
  EXPECT_EQ(eval(0xC612000A, dst, kTcpSyn | kTcpEce | kTcpCwr), 6);  // range ends; --syn ignores ECE/CWR
  EXPECT_EQ(eval(out_of_range, dst, kTcpSyn), 7);                      // second rule: not SYN+ACK
  EXPECT_EQ(eval(in, excluded_dst, kTcpSyn), 7);
  EXPECT_EQ(eval(in, dst, kTcpSyn | kTcpAck), 0);                     // --syn fails, and ! SYN,ACK too
  EXPECT_EQ(eval(in, dst, kTcpAck), 7);
  for (const char* bad : {"-A PREROUTING -m iprange --src-range 198.18.0.9-198.18.0.1 -j ACCEPT\n",
                          "-A PREROUTING -m iprange --src-range 198.18.0.9 -j ACCEPT\n",
                          "-A PREROUTING -p udp --syn -j ACCEPT\n",
                          "-A PREROUTING -p tcp -m tcp --tcp-flags SYN,BOGUS SYN -j ACCEPT\n",
                          "-A PREROUTING -p tcp -m tcp --tcp-flags SYN -j ACCEPT\n"})
    EXPECT_FALSE(parse_rules(test::nat_table(bad), "bad.rules").ok()) << bad;
}

}  // namespace
}  // namespace xnat
