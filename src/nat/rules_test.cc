// Rule evaluation's dispatch runs (rules.h, DispatchRun): looking a
// packet's key up must decide exactly as scanning the run does.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <random>

#include "nat/rules.h"
#include "nat/rules_parser.h"

namespace xnat {
namespace {

// A chain of exact rules (some keys twice, different targets), a RETURN into
// the middle of the run from a jump, and non-exact rules around it.
std::string dispatch_rules(std::mt19937& rng) {
  std::string body;
  body += "-A PREROUTING -p udp -m udp --dport 9 -j ACCEPT\n";
  for (int k = 0; k < 40; ++k) {
    const int host = static_cast<int>(rng() % 12), port = 80 + static_cast<int>(rng() % 3);
    const char* proto = rng() % 2 ? "tcp" : "udp";
    switch (rng() % 5) {
      case 0:
        body += fmt::format("-A PREROUTING -d 10.0.0.{}/32 -p {} -m {} --dport {} -j SUB\n", host, proto, proto, port);
        break;
      case 1:
        body += fmt::format("-A PREROUTING -d 10.0.0.{}/32 -p {} -m {} --dport {} -j MARK --set-xmark 0x{:x}/0xff\n",
                            host, proto, proto, port, k);
        break;
      default:
        body += fmt::format("-A PREROUTING -d 10.0.0.{}/32 -p {} -m {} --dport {} -j DNAT --to-destination 10.1.0.{}\n",
                            host, proto, proto, port, k);
    }
    if (k == 20) body += "-A PREROUTING -s 10.9.0.0/16 -j DNAT --to-destination 10.2.0.1\n";  // splits the run
  }
  body += "-A SUB -p tcp -j RETURN\n-A SUB -j DNAT --to-destination 10.3.0.1\n";
  return "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
         ":SUB - [0:0]\n" + body + "COMMIT\n";
}

TEST(Dispatch, DecidesAsTheScanDoes) {
  std::mt19937 rng(3);
  size_t runs = 0, dnat = 0;
  for (int round = 0; round < 50; ++round) {
    auto rs = parse_rules(dispatch_rules(rng), "d.rules");
    ASSERT_TRUE(rs.ok()) << rs.error().message;
    Table scan = rs->nat;
    for (Chain& c : scan.chains) c.runs.clear(), c.run_of.clear();
    for (const Chain& c : rs->nat.chains) runs += c.runs.size();
    for (int k = 0; k < 200; ++k) {
      RulePacket p;
      p.src = rng() % 4 ? 0x0A080001 : 0x0A090001;
      p.dst = 0x0A000000 + rng() % 14;
      p.proto = rng() % 2 ? 6 : 17;
      p.dport = static_cast<uint16_t>(79 + rng() % 5);
      RulePacket q = p;
      const Rule* a = evaluate(rs->nat, Hook::kPrerouting, p);
      const Rule* b = evaluate(scan, Hook::kPrerouting, q);
      ASSERT_EQ(a ? a->line : 0, b ? b->line : 0) << "round " << round << " packet " << k;
      ASSERT_EQ(p.mark, q.mark);
      dnat += a != nullptr;
    }
  }
  EXPECT_GE(runs, 50u);   // each ruleset has runs to dispatch
  EXPECT_GT(dnat, 1000u);  // and most packets find a rule
}

TEST(Dispatch, OnlyExactRunsOfEightOrMore) {
  std::string body;
  for (int k = 0; k < 7; ++k) body += fmt::format("-A PREROUTING -d 10.0.0.{}/32 -p tcp --dport 80 -j ACCEPT\n", k);
  body += "-A PREROUTING -d 10.0.1.0/24 -p tcp --dport 80 -j ACCEPT\n";  // a prefix: not exact
  for (int k = 0; k < 8; ++k) body += fmt::format("-A PREROUTING -d 10.0.2.{}/32 -p tcp --dport 80 -j ACCEPT\n", k);
  body += "-A PREROUTING -d 10.0.3.1/32 -p tcp ! --dport 80 -j ACCEPT\n";  // inverted: not exact
  auto rs = parse_rules("*nat\n:PREROUTING ACCEPT [0:0]\n" + body + "COMMIT\n", "d.rules");
  ASSERT_TRUE(rs.ok()) << rs.error().message;
  const Chain& c = rs->nat.chains[0];
  ASSERT_EQ(c.runs.size(), 1u);
  EXPECT_EQ(c.runs[0].begin, 8u);
  EXPECT_EQ(c.runs[0].end, 16u);
}

}  // namespace
}  // namespace xnat
