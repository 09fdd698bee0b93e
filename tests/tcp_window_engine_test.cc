// TCP window tracking through the whole engine: an out-of-window segment is a
// counted drop, not forwarded (netfilter would mark it INVALID and let it
// leave untranslated); a held flow keeps its window state.
#include <gtest/gtest.h>

#include "conntrack/conntrack.h"
#include "golden_cases.h"
#include "test_util.h"

namespace xnat::test {
namespace {

const std::string kPublish = publish_rules();

constexpr uint32_t C = 7000;    // the outside client's initial sequence number
constexpr uint32_t S = 900000;  // the server's

void pass(Engine& e, const std::vector<uint8_t>& f, int in_if, uint64_t now) {
  const Output o = run(e, f, in_if, now);
  ASSERT_EQ(o.verdict, Verdict::kForward) << describe(f);
}

void establish(Engine& e, uint16_t port, uint64_t now) {
  pass(e, to_published(port, kTcpSyn, C, 0), kOut, now);
  pass(e, from_published(port, kTcpSyn | kTcpAck, S, C + 1), kIn, now);
  pass(e, to_published(port, kTcpAck, C + 1, S + 1), kOut, now);
}

TEST(TcpWindowEngine, OutOfWindowSegmentIsDroppedAndCounted) {
  auto e = make_engine(kPublish);
  establish(*e, 40000, 1000);
  // Both sides advertise 1000 bytes. The server sends 10 000 bytes further on.
  const Output o = run(*e, from_published(40000, kTcpAck | kTcpPsh, S + 1 + 10000, C + 1, 100), kIn, 1001);
  EXPECT_EQ(o.verdict, Verdict::kDrop);
  EXPECT_EQ(o.reason, Counter::drop_invalid);
  EXPECT_EQ(e->counters().get(Counter::drop_invalid), 1u);
  EXPECT_EQ(e->conntrack().stats().invalid, 1u);
  // In the window it leaves translated.
  pass(*e, from_published(40000, kTcpAck | kTcpPsh, S + 1, C + 1, 100), kIn, 1002);
  EXPECT_EQ(e->counters().get(Counter::drop_invalid), 1u);
}

TEST(TcpWindowEngine, BeLiberalForwardsItTranslated) {
  auto e = make_engine(kPublish, "nf_conntrack_tcp_be_liberal = 1");
  establish(*e, 40000, 1000);
  const Output o = run(*e, from_published(40000, kTcpAck | kTcpPsh, S + 1 + 10000, C + 1, 100), kIn, 1001);
  ASSERT_EQ(o.verdict, Verdict::kForward);
  ParsedPacket p;
  ASSERT_EQ(parse_frame(o.frame.data(), o.frame.size(), {}, &p), ParseStatus::kOk);
  EXPECT_EQ(p.tuple.src, ip_raw("198.19.0.1"));
  EXPECT_EQ(__builtin_bswap16(p.tuple.sport), 8080);
  EXPECT_EQ(e->counters().get(Counter::drop_invalid), 0u);
}

TEST(TcpWindowEngine, AHeldFlowKeepsItsWindow) {
  auto e = make_engine(kPublish, "nf_conntrack_max = 1");
  establish(*e, 40000, 1000);
  // The server closes its side (CLOSE_WAIT once ACKed): half-closed.
  pass(*e, from_published(40000, kTcpFin | kTcpAck, S + 1, C + 1), kIn, 1001);
  pass(*e, to_published(40000, kTcpAck, C + 1, S + 2), kOut, 1002);
  // A new connection takes its place; 40000 is held.
  pass(*e, to_published(40001, kTcpSyn, C, 0), kOut, 1003);
  ASSERT_EQ(e->conntrack().held_count(), 1u);
  ASSERT_EQ(e->conntrack().stats().evicted_half_closed, 1u);
  // The client's data, far past the server's window: still invalid while held.
  const Output o = run(*e, to_published(40000, kTcpAck | kTcpPsh, C + 1 + 10000, S + 2, 100), kOut, 1004);
  EXPECT_EQ(o.verdict, Verdict::kDrop);
  EXPECT_EQ(o.reason, Counter::drop_invalid);
  // In the window it reaches the server, translated by the held mapping.
  const Output in = run(*e, to_published(40000, kTcpAck | kTcpPsh, C + 1, S + 2, 100), kOut, 1005);
  ASSERT_EQ(in.verdict, Verdict::kForward);
  EXPECT_EQ(e->counters().get(Counter::held_frames), 1u);
  // The server's ACK of it proves the window state moved on: 100 bytes ACKed.
  pass(*e, from_published(40000, kTcpAck, S + 2, C + 101), kIn, 1006);
  EXPECT_EQ(e->counters().get(Counter::drop_invalid), 1u);
  // More than was sent is not.
  EXPECT_EQ(run(*e, from_published(40000, kTcpAck, S + 2, C + 102), kIn, 1007).reason, Counter::drop_invalid);
  // 40001 is reset (its entry goes): the next packet of 40000 brings it back
  // into the table, window state and all.
  pass(*e, to_published(40001, kTcpRst, C + 1, 0), kOut, 1008);
  pass(*e, to_published(40000, kTcpAck | kTcpPsh, C + 101, S + 2, 100), kOut, 1009);
  EXPECT_EQ(e->conntrack().stats().readmitted, 1u);
  EXPECT_EQ(run(*e, from_published(40000, kTcpAck, S + 2, C + 202), kIn, 1010).reason, Counter::drop_invalid);
  pass(*e, from_published(40000, kTcpAck, S + 2, C + 201), kIn, 1011);
  EXPECT_EQ(e->counters().get(Counter::drop_invalid), 3u);
}

}  // namespace
}  // namespace xnat::test
