#include "conntrack/conntrack.h"
#include "conntrack/listing.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <algorithm>

#include "packet/frame_builder.h"

namespace xnat {
namespace {


ParsedPacket parse(const std::vector<uint8_t>& f) {
  ParsedPacket p;
  EXPECT_EQ(parse_frame(f.data(), f.size(), {}, &p), ParseStatus::kOk);
  return p;
}

// Opens a flow for the packet, as the engine does (no NAT).
uint32_t open(Conntrack& ct, const ParsedPacket& p, uint64_t now) {
  EXPECT_TRUE(ct.can_open(p));
  uint32_t idx = ct.insert(p.tuple, invert(p.tuple), now).idx;
  if (idx != kNoRef) {
    EXPECT_EQ(ct.track(idx, 0, p, now), TrackVerdict::kAccept);
  }
  return idx;
}

const uint64_t T0 = 1'000'000'000;  // an arbitrary clock origin, in ms

// A TCP segment of the client 198.18.0.2:port <-> 198.51.100.7:80 connection,
// from the client (dir 0) or the server (dir 1).
ParsedPacket seg(int dir, uint16_t port, uint8_t flags) {
  return dir == 0 ? parse(FrameBuilder().ip("198.18.0.2", "198.51.100.7").tcp(port, 80, flags).build())
                  : parse(FrameBuilder().ip("198.51.100.7", "198.18.0.2").tcp(80, port, flags).build());
}

TEST(Conntrack, UdpUnrepliedExpiresAfterExactlyThirtySeconds) {
  Conntrack ct(ConntrackSettings{}, 1);
  auto p = parse(FrameBuilder().ip("198.18.0.2", "198.51.100.7").udp(5000, 53).build());
  open(ct, p, T0);
  EXPECT_NE(ct.find(p.tuple, ct.hash(p.tuple), T0 + 29'999), kNoRef);
  EXPECT_EQ(ct.find(p.tuple, ct.hash(p.tuple), T0 + 30'000), kNoRef);
  EXPECT_EQ(ct.count(), 0u);
}

// A second in which many flows expire is worked off a bounded number at a
// time (expire_some): a burst never stalls on it, and lookups treat every
// expired flow as gone meanwhile.
TEST(Conntrack, ExpiryIsSpreadOverCallsAndLookupsDoNotWait) {
  ConntrackSettings s;
  ASSERT_TRUE(s.set("nf_conntrack_max", 1000).ok());
  Conntrack ct(s, 1);
  std::vector<ParsedPacket> pkts;
  for (uint16_t i = 0; i < 500; ++i) {
    pkts.push_back(parse(FrameBuilder().ip("198.18.0.2", "198.51.100.7").udp(static_cast<uint16_t>(10000 + i), 53).build()));
    ASSERT_NE(open(ct, pkts.back(), T0), kNoRef);
  }
  ct.expire_some(T0, 1000);  // the wheel starts
  const uint64_t later = T0 + 32'000;  // all 500 expired (30 s), their second is past
  EXPECT_EQ(ct.expire_some(later, 100), 100u);
  EXPECT_EQ(ct.count(), 400u);
  EXPECT_EQ(ct.stats().expired, 100u);
  // Not yet reclaimed, but gone: a lookup does not find one.
  EXPECT_EQ(ct.find(pkts[499].tuple, ct.hash(pkts[499].tuple), later), kNoRef);
  EXPECT_EQ(ct.expire_some(later, 1000), 399u);  // the rest (one went with the lookup)
  EXPECT_EQ(ct.count(), 0u);
  EXPECT_EQ(ct.expire_some(later, 1000), 0u);
}

// A full table takes expired entries off the sweep only until it has room.
TEST(Conntrack, FullTableTakesExpiredEntriesUntilItHasRoom) {
  ConntrackSettings s;
  ASSERT_TRUE(s.set("nf_conntrack_max", 100).ok());
  Conntrack ct(s, 1);
  for (uint16_t i = 0; i < 100; ++i)
    ASSERT_NE(open(ct, parse(FrameBuilder().ip("198.18.0.2", "198.51.100.7").udp(static_cast<uint16_t>(10000 + i), 53).build()), T0), kNoRef);
  ct.expire_some(T0, 0);
  const uint64_t later = T0 + 32'000;
  auto p = parse(FrameBuilder().ip("198.18.0.3", "198.51.100.7").udp(9999, 53).build());
  EXPECT_NE(open(ct, p, later), kNoRef);
  EXPECT_EQ(ct.stats().expired, 1u);  // one freed for it, not all hundred
  EXPECT_EQ(ct.stats().early_drop, 0u);
  EXPECT_EQ(ct.count(), 100u);
  ct.expire(later);  // the whole of it, as before
  EXPECT_EQ(ct.count(), 1u);
}

TEST(Conntrack, UdpBecomesAStreamAfterTwoSecondsBothWays) {
  Conntrack ct(ConntrackSettings{}, 1);
  auto q = parse(FrameBuilder().ip("198.18.0.2", "198.51.100.7").udp(5000, 53).build());
  auto a = parse(FrameBuilder().ip("198.51.100.7", "198.18.0.2").udp(53, 5000).build());
  uint32_t idx = open(ct, q, T0);
  ct.track(idx, 1, a, T0 + 100);
  EXPECT_TRUE(ct.flow(idx).status & kStatusSeenReply);
  EXPECT_FALSE(ct.flow(idx).status & kStatusAssured);
  ct.track(idx, 0, q, T0 + 1500);  // both ways, but not yet 2 s old
  EXPECT_FALSE(ct.flow(idx).status & kStatusAssured);
  EXPECT_EQ(ct.flow(idx).expires_ms, T0 + 1500 + 30'000);
  ct.track(idx, 0, q, T0 + 2500);
  EXPECT_TRUE(ct.flow(idx).status & kStatusAssured);
  EXPECT_EQ(ct.flow(idx).expires_ms, T0 + 2500 + 120'000);
}

// nf_conntrack_max lowered below the count drops no flow; a new one takes
// the room of an evictable one (netfilter's rule at a full table), and the
// new timeouts apply from a flow's next packet.
TEST(Conntrack, RetuneLowersTheLimitAndChangesTimeouts) {
  ConntrackSettings s;
  ASSERT_TRUE(s.set("nf_conntrack_max", 8).ok());
  Conntrack ct(s, 1);
  auto udp = [](uint16_t port) { return parse(FrameBuilder().ip("198.18.0.2", "198.51.100.7").udp(port, 53).build()); };
  for (uint16_t port = 1; port <= 4; ++port) ASSERT_NE(open(ct, udp(port), T0), kNoRef);
  ASSERT_TRUE(s.set("nf_conntrack_udp_timeout", 5).ok());
  ct.retune(s, 2);
  EXPECT_EQ(ct.count(), 4u);  // none dropped
  ASSERT_NE(open(ct, udp(5), T0 + 1), kNoRef);
  EXPECT_EQ(ct.count(), 4u);  // one unreplied flow evicted for it
  EXPECT_EQ(ct.stats().evicted_unreplied, 1u);
  const auto p5 = udp(5);
  EXPECT_EQ(ct.flow(ct.find(p5.tuple, ct.hash(p5.tuple), T0 + 1) >> 1).expires_ms, T0 + 1 + 5000);
  ct.retune(s, 1000);  // at most the table's capacity
  for (uint16_t port = 6; port <= 9; ++port) ASSERT_NE(open(ct, udp(port), T0 + 2), kNoRef);
  EXPECT_EQ(ct.count(), 8u);
}

TEST(Conntrack, TimeoutsFollowSysctlNames) {
  ConntrackSettings s;
  ASSERT_TRUE(s.set("nf_conntrack_tcp_timeout_time_wait", 7).ok());
  ASSERT_TRUE(s.set("nf_conntrack_udp_timeout", 5).ok());
  auto e = s.set("nf_conntrack_tcp_timeout_timewait", 7);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("unknown conntrack setting"), std::string::npos);
  EXPECT_NE(e.error().message.find("nf_conntrack_tcp_timeout_time_wait"), std::string::npos);  // lists the right name
  EXPECT_FALSE(s.set("nf_conntrack_max", 0).ok());
  EXPECT_TRUE(s.set("nf_conntrack_tcp_be_liberal", 1).ok());
  EXPECT_TRUE(s.nf_conntrack_tcp_be_liberal);
  EXPECT_TRUE(s.set("nf_conntrack_tcp_be_liberal", 0).ok());
  EXPECT_FALSE(s.nf_conntrack_tcp_be_liberal);
  EXPECT_FALSE(s.set("nf_conntrack_tcp_be_liberal", 2).ok());
  EXPECT_TRUE(s.set("nf_conntrack_tcp_max_retrans", 5).ok());
  EXPECT_EQ(s.nf_conntrack_tcp_max_retrans, 5u);
  EXPECT_FALSE(s.set("nf_conntrack_tcp_max_retrans", 256).ok());
  ASSERT_TRUE(s.set("nf_conntrack_tcp_timeout_max_retrans", 100).ok());
  EXPECT_EQ(s.timeout_ms(TimeoutClass::kTcpMaxRetrans), 100'000u);
  ASSERT_TRUE(s.set("nf_conntrack_tcp_timeout_max_retrans", 300).ok());

  Conntrack ct(s, 1);
  auto syn = parse(FrameBuilder().ip("198.18.0.2", "198.51.100.7").tcp(1000, 80, kTcpSyn).build());
  auto synack = parse(FrameBuilder().ip("198.51.100.7", "198.18.0.2").tcp(80, 1000, kTcpSyn | kTcpAck).build());
  auto ack = parse(FrameBuilder().ip("198.18.0.2", "198.51.100.7").tcp(1000, 80, kTcpAck).build());
  auto fin_o = parse(FrameBuilder().ip("198.18.0.2", "198.51.100.7").tcp(1000, 80, kTcpFin | kTcpAck).build());
  auto fin_r = parse(FrameBuilder().ip("198.51.100.7", "198.18.0.2").tcp(80, 1000, kTcpFin | kTcpAck).build());
  auto ack_r = parse(FrameBuilder().ip("198.51.100.7", "198.18.0.2").tcp(80, 1000, kTcpAck).build());
  uint32_t idx = open(ct, syn, T0);
  EXPECT_EQ(ct.flow(idx).expires_ms, T0 + 120'000);
  ct.track(idx, 1, synack, T0 + 1);
  ct.track(idx, 0, ack, T0 + 2);
  EXPECT_EQ(ct.flow(idx).expires_ms, T0 + 2 + 432'000'000ull);
  EXPECT_TRUE(ct.flow(idx).status & kStatusAssured);
  ct.track(idx, 0, fin_o, T0 + 3);
  ct.track(idx, 1, ack_r, T0 + 4);
  ct.track(idx, 1, fin_r, T0 + 5);
  ct.track(idx, 0, ack, T0 + 6);
  EXPECT_EQ(ct.flow(idx).tcp_state, TcpState::kTimeWait);
  EXPECT_EQ(ct.flow(idx).expires_ms, T0 + 6 + 7'000);
  // The wheel reclaims it once its second has passed.
  ct.expire(T0 + 6 + 7'000 + 1'000);
  EXPECT_EQ(ct.count(), 0u);
  EXPECT_EQ(ct.stats().expired, 1u);
}

TEST(Conntrack, FullTableEvictsExpiredThenClosingThenUnreplied) {
  ConntrackSettings s;
  ASSERT_TRUE(s.set("nf_conntrack_max", 3).ok());
  Conntrack ct(s, 1);
  auto udp = [](uint16_t port) {
    return parse(FrameBuilder().ip("198.18.0.2", "198.51.100.7").udp(port, 53).build());
  };
  auto udp_r = [](uint16_t port) {
    return parse(FrameBuilder().ip("198.51.100.7", "198.18.0.2").udp(53, port).build());
  };
  // A: replied UDP (not evictable), B: unreplied UDP, C: TCP in TIME_WAIT.
  uint32_t a = open(ct, udp(1), T0);
  ct.track(a, 1, udp_r(1), T0 + 10);
  uint32_t b = open(ct, udp(2), T0 + 20);
  auto syn = parse(FrameBuilder().ip("198.18.0.2", "198.51.100.7").tcp(1000, 80, kTcpSyn).build());
  uint32_t c = open(ct, syn, T0 + 30);
  for (auto [dir, flags] : std::vector<std::pair<int, uint8_t>>{{1, kTcpSyn | kTcpAck}, {0, kTcpAck}, {0, kTcpFin | kTcpAck},
                                                                 {1, kTcpFin | kTcpAck}, {0, kTcpAck}}) {
    auto pk = dir == 0 ? parse(FrameBuilder().ip("198.18.0.2", "198.51.100.7").tcp(1000, 80, flags).build())
                       : parse(FrameBuilder().ip("198.51.100.7", "198.18.0.2").tcp(80, 1000, flags).build());
    ct.track(c, dir, pk, T0 + 40);
  }
  ASSERT_EQ(ct.flow(c).tcp_state, TcpState::kTimeWait);
  ASSERT_TRUE(ct.flow(c).status & kStatusAssured);
  ASSERT_EQ(ct.count(), 3u);

  // 1) The closing (assured, TIME_WAIT) entry goes first.
  uint32_t d = open(ct, udp(4), T0 + 50);
  ASSERT_NE(d, kNoRef);
  EXPECT_EQ(ct.stats().evicted_closing, 1u);
  EXPECT_EQ(ct.find(syn.tuple, ct.hash(syn.tuple), T0 + 50), kNoRef);
  // 2) Then the oldest unreplied: B (D is newer).
  uint32_t e = open(ct, udp(5), T0 + 60);
  ASSERT_NE(e, kNoRef);
  EXPECT_EQ(ct.stats().evicted_unreplied, 1u);
  EXPECT_EQ(ct.find(udp(2).tuple, ct.hash(udp(2).tuple), T0 + 60), kNoRef);
  EXPECT_NE(ct.find(udp(4).tuple, ct.hash(udp(4).tuple), T0 + 60), kNoRef);
  // 3) An expired entry beats everything: after 30 s the unreplied ones are expired.
  uint32_t f = open(ct, udp(6), T0 + 60 + 30'000);
  ASSERT_NE(f, kNoRef);
  EXPECT_GE(ct.stats().expired, 1u);
  (void)b;
  (void)e;
}

// netfilter's tcp_can_early_drop also takes FIN_WAIT and CLOSE_WAIT; xnat
// takes them last, after closed and unreplied entries. The table holds an
// established connection, an unreplied SYN and two half-closed ones: new
// flows take the SYN, then the half-closed ones oldest first; the
// established one stays.
TEST(Conntrack, FullTableEvictsHalfClosedAfterUnreplied) {
  ConntrackSettings s;
  ASSERT_TRUE(s.set("nf_conntrack_max", 4).ok());
  Conntrack ct(s, 1);
  auto present = [&](uint16_t port, uint64_t t) {
    const Tuple tu = seg(0, port, kTcpAck).tuple;
    return ct.find(tu, ct.hash(tu), t) != kNoRef;
  };
  auto establish = [&](uint16_t port, uint64_t t) {
    uint32_t idx = open(ct, seg(0, port, kTcpSyn), t);
    ct.track(idx, 1, seg(1, port, kTcpSyn | kTcpAck), t + 1);
    ct.track(idx, 0, seg(0, port, kTcpAck), t + 2);
    return idx;
  };
  uint32_t a = establish(1000, T0);
  uint32_t b = establish(1002, T0 + 20);
  uint32_t c = establish(1003, T0 + 30);
  ct.track(b, 1, seg(1, 1002, kTcpFin | kTcpAck), T0 + 40);  // server closes first
  ASSERT_EQ(ct.flow(b).tcp_state, TcpState::kFinWait);
  ct.track(c, 0, seg(0, 1003, kTcpFin | kTcpAck), T0 + 41);  // client closes first, server ACKs
  ct.track(c, 1, seg(1, 1003, kTcpAck), T0 + 42);
  ASSERT_EQ(ct.flow(c).tcp_state, TcpState::kCloseWait);
  ASSERT_EQ(ct.flow(a).tcp_state, TcpState::kEstablished);
  ASSERT_NE(open(ct, seg(0, 1001, kTcpSyn), T0 + 45), kNoRef);  // unreplied, newer than B and C

  ASSERT_NE(open(ct, seg(0, 2000, kTcpSyn), T0 + 50), kNoRef);
  EXPECT_EQ(ct.stats().evicted_unreplied, 1u);
  EXPECT_FALSE(present(1001, T0 + 50));
  EXPECT_TRUE(present(1002, T0 + 50));
  // Answer the new SYN, so the half-closed entries are the only candidates.
  const Tuple t2000 = seg(0, 2000, kTcpSyn).tuple;
  const uint32_t ref = ct.find(t2000, ct.hash(t2000), T0 + 51);
  ASSERT_NE(ref, kNoRef);
  ct.track(ref >> 1, 1, seg(1, 2000, kTcpSyn | kTcpAck), T0 + 51);

  ASSERT_NE(open(ct, seg(0, 2001, kTcpSyn), T0 + 60), kNoRef);
  EXPECT_EQ(ct.stats().evicted_half_closed, 1u);
  EXPECT_FALSE(present(1002, T0 + 60));  // FIN_WAIT, the older half-closed one
  EXPECT_TRUE(present(1003, T0 + 60));
  ASSERT_NE(open(ct, seg(0, 2002, kTcpSyn), T0 + 70), kNoRef);  // takes the unreplied 2001
  EXPECT_EQ(ct.stats().evicted_unreplied, 2u);
  const Tuple t2002 = seg(0, 2002, kTcpSyn).tuple;
  ct.track(ct.find(t2002, ct.hash(t2002), T0 + 71) >> 1, 1, seg(1, 2002, kTcpSyn | kTcpAck), T0 + 71);
  ASSERT_NE(open(ct, seg(0, 2003, kTcpSyn), T0 + 80), kNoRef);
  EXPECT_EQ(ct.stats().evicted_half_closed, 2u);
  EXPECT_FALSE(present(1003, T0 + 80));  // CLOSE_WAIT
  EXPECT_TRUE(present(1000, T0 + 80));   // established: never evicted
  EXPECT_EQ(ct.stats().drop, 0u);
}

// LAST_ACK waits for the final ACK: evicted with the half-closed entries,
// after an unreplied one, not with TIME_WAIT (its ACK would otherwise arrive
// to no entry and be picked up as a new, untranslated connection).
TEST(Conntrack, LastAckIsEvictedAfterUnreplied) {
  ConntrackSettings s;
  ASSERT_TRUE(s.set("nf_conntrack_max", 2).ok());
  Conntrack ct(s, 1);
  uint32_t a = open(ct, seg(0, 1000, kTcpSyn), T0);
  ct.track(a, 1, seg(1, 1000, kTcpSyn | kTcpAck), T0 + 1);
  ct.track(a, 0, seg(0, 1000, kTcpAck), T0 + 2);
  ct.track(a, 1, seg(1, 1000, kTcpFin | kTcpAck), T0 + 3);  // server closes
  ct.track(a, 0, seg(0, 1000, kTcpFin | kTcpAck), T0 + 4);  // client closes: the server's ACK is due
  ASSERT_EQ(ct.flow(a).tcp_state, TcpState::kLastAck);
  ASSERT_NE(open(ct, seg(0, 1001, kTcpSyn), T0 + 5), kNoRef);  // unreplied, newer
  ASSERT_NE(open(ct, seg(0, 1002, kTcpSyn), T0 + 6), kNoRef);
  EXPECT_EQ(ct.stats().evicted_unreplied, 1u);
  EXPECT_EQ(ct.stats().evicted_closing, 0u);
  const Tuple t = seg(0, 1000, kTcpAck).tuple;
  EXPECT_NE(ct.find(t, ct.hash(t), T0 + 6), kNoRef);  // still there for its ACK
  ct.track(a, 1, seg(1, 1000, kTcpAck), T0 + 7);
  EXPECT_EQ(ct.flow(a).tcp_state, TcpState::kTimeWait);
  ASSERT_NE(open(ct, seg(0, 1003, kTcpSyn), T0 + 8), kNoRef);  // now TIME_WAIT goes first
  EXPECT_EQ(ct.stats().evicted_closing, 1u);
}

TEST(Conntrack, TableFullWhenNothingCanBeEvicted) {
  ConntrackSettings s;
  ASSERT_TRUE(s.set("nf_conntrack_max", 1).ok());
  Conntrack ct(s, 1);
  auto q = parse(FrameBuilder().ip("198.18.0.2", "198.51.100.7").udp(1, 53).build());
  auto a = parse(FrameBuilder().ip("198.51.100.7", "198.18.0.2").udp(53, 1).build());
  uint32_t idx = open(ct, q, T0);
  ct.track(idx, 1, a, T0 + 1);
  auto q2 = parse(FrameBuilder().ip("198.18.0.2", "198.51.100.7").udp(2, 53).build());
  EXPECT_EQ(ct.insert(q2.tuple, invert(q2.tuple), T0 + 2).failure, Conntrack::InsertFailure::kTableFull);
  EXPECT_EQ(ct.stats().drop, 1u);
}

TEST(Conntrack, WheelReclaimsEverythingEventually) {
  ConntrackSettings s;
  ASSERT_TRUE(s.set("nf_conntrack_max", 20000).ok());
  Conntrack ct(s, 3);
  for (uint16_t i = 0; i < 20000; ++i) {
    auto p = parse(FrameBuilder().ip("198.18.0.2", "198.51.100.7").udp(i, 53).build());
    open(ct, p, T0 + i);  // spread over 20 s
  }
  EXPECT_EQ(ct.count(), 20000u);
  for (uint64_t t = T0; t < T0 + 60'000; t += 250) ct.expire(t);
  EXPECT_EQ(ct.count(), 0u);
  EXPECT_EQ(ct.stats().expired, 20000u);
}

// What grows with nf_conntrack_max meets the 128-byte target, window tracking
// on or off: a TCP flow's window state (64 B and a 4 B stack entry) comes from
// a pool whose memory follows the TCP flows actually held.
TEST(Conntrack, BytesPerFlowAtMost128AndWindowsOnlyForTcpFlows) {
  for (uint64_t cap : {1000u, 65536u, 1000000u}) {
    ConntrackSettings s;
    ASSERT_TRUE(s.set("nf_conntrack_max", static_cast<int64_t>(cap)).ok());
    Conntrack with_windows(s, 1);
    ASSERT_TRUE(s.set("xnat_tcp_window_tracking", 0).ok());
    ASSERT_TRUE(s.set("nf_conntrack_tcp_be_liberal", 1).ok());
    Conntrack ct(s, 1);
    EXPECT_LE(ct.bytes_per_flow(), 128u) << "capacity " << cap;
    EXPECT_EQ(with_windows.bytes_per_flow(), ct.bytes_per_flow()) << "capacity " << cap;
    EXPECT_EQ(with_windows.memory_bytes(), ct.memory_bytes()) << "no window handed out yet";
    EXPECT_EQ(with_windows.held_memory_bytes(), ct.held_memory_bytes());
    // Fixed: the timer wheel (64 KiB), and the evicted flows held for late
    // packets (xnat_evicted_hold, 4096 by default).
    const uint64_t held = 4096;
    EXPECT_LE(ct.held_memory_bytes(), held * 112) << "capacity " << cap;
    EXPECT_LE(ct.memory_bytes(), cap * 128 + 70 * 1024 + held * 112) << "capacity " << cap;
  }
}

TEST(Conntrack, TcpFlowsTakeWindowsFromAPoolThatTheirRemovalRefills) {
  ConntrackSettings s;
  ASSERT_TRUE(s.set("nf_conntrack_max", 1000).ok());
  Conntrack ct(s, 1);
  const size_t base = ct.memory_bytes();
  for (uint16_t i = 0; i < 300; ++i)
    ASSERT_NE(open(ct, parse(FrameBuilder().ip("198.18.0.2", "198.51.100.7").udp(i, 53).build()), T0), kNoRef);
  EXPECT_EQ(ct.windows_in_use(), 0u) << "UDP flows hold no window";
  EXPECT_EQ(ct.memory_bytes(), base);
  std::vector<uint32_t> tcp;
  for (uint16_t i = 0; i < 200; ++i) {
    tcp.push_back(open(ct, seg(0, static_cast<uint16_t>(20000 + i), kTcpSyn), T0));
    ASSERT_NE(tcp.back(), kNoRef);
    ASSERT_NE(ct.window(tcp.back()), nullptr);
  }
  EXPECT_EQ(ct.windows_in_use(), 200u);
  EXPECT_EQ(ct.window_bytes(), 200 * (sizeof(TcpWindow) + sizeof(uint32_t)));
  EXPECT_EQ(ct.memory_bytes(), base + ct.window_bytes());
  // Each flow has its own window, set up from its own SYN.
  for (size_t a = 0; a < tcp.size(); ++a)
    for (size_t b = a + 1; b < tcp.size(); ++b) ASSERT_NE(ct.window(tcp[a]), ct.window(tcp[b]));
  EXPECT_EQ(ct.window(tcp[0])->seen[0].end, 1001u) << "SYN seq 1000 plus one";
  for (size_t k = 0; k < 100; ++k) {
    const auto port = static_cast<uint16_t>(20000 + k);
    const auto synack = parse(FrameBuilder().ip("198.51.100.7", "198.18.0.2").tcp(80, port, kTcpSyn | kTcpAck, 5000, 1001).build());
    ASSERT_EQ(ct.track(tcp[k], 1, synack, T0), TrackVerdict::kAccept);
    ASSERT_EQ(ct.window(tcp[k])->seen[1].end, 5001u);
    ct.remove(tcp[k]);
  }
  EXPECT_EQ(ct.windows_in_use(), 100u);
  // Released windows are handed out again: the pool's memory stays at the
  // most TCP flows held at once.
  for (uint16_t i = 0; i < 100; ++i) {
    const uint32_t idx = open(ct, seg(0, static_cast<uint16_t>(30000 + i), kTcpSyn), T0);
    ASSERT_NE(idx, kNoRef);
    EXPECT_EQ(ct.window(idx)->seen[1].end, 0u) << "a reused window starts afresh";
  }
  EXPECT_EQ(ct.windows_in_use(), 200u);
  EXPECT_EQ(ct.window_bytes(), 200 * (sizeof(TcpWindow) + sizeof(uint32_t)));
  for (uint16_t i = 0; i < 3; ++i) {
    const uint32_t idx = open(ct, parse(FrameBuilder().ip("198.18.0.2", "198.51.100.7").udp(i, 5353).build()), T0);
    EXPECT_EQ(ct.window(idx), nullptr);
  }
}

// The by-source chains (find_appropriate_src's index) stay exact through
// inserts and removals in any order: 256 flows of capacity (128 chain heads),
// 6 sources sharing them with 200 flows, most of them source-translated, then
// removals from the heads, middles and ends of chains and reuse of the freed
// slots. After every step each source's walk yields exactly its live
// translated flows.
TEST(Conntrack, BySourceChainsStayExactThroughRemovalInAnyOrder) {
  ConntrackSettings s;
  ASSERT_TRUE(s.set("nf_conntrack_max", 256).ok());
  Conntrack ct(s, 7);
  struct Live {
    Tuple orig;
    bool snat;
  };
  std::vector<std::pair<uint32_t, Live>> live;  // flow index -> what it holds
  uint32_t rng = 12345;
  auto next = [&] { return rng = rng * 1103515245u + 12345u, rng >> 8; };
  const uint16_t kSrcPorts[6] = {1000, 1001, 2000, 3000, 4000, 5000};
  uint32_t serial = 0;
  auto add = [&] {
    const uint16_t sport = kSrcPorts[next() % 6];
    Tuple o;
    o.src = htonl(0xC6120002u + (sport % 2));  // 198.18.0.2 or .3
    o.dst = htonl(0xC6336400u + (serial & 0xFF));
    o.sport = htons(sport);
    o.dport = htons(static_cast<uint16_t>(1 + (serial >> 8)));
    o.proto = kProtoUdp;
    ++serial;
    Tuple r = invert(o);
    r.dst = htonl(0xCB007101u);  // 203.0.113.1: the translated source
    const uint32_t idx = ct.insert(o, r, T0).idx;
    ASSERT_NE(idx, kNoRef);
    const bool snat = next() % 8 != 0;
    if (snat) ct.set_src_nat(idx);
    live.push_back({idx, Live{o, snat}});
  };
  auto check = [&](const char* when) {
    for (uint16_t sport : kSrcPorts) {
      for (uint32_t host = 2; host <= 3; ++host) {
        Tuple probe;
        probe.src = htonl(0xC6120000u + host);
        probe.sport = htons(sport);
        probe.proto = kProtoUdp;
        std::vector<Tuple> want, got;
        for (const auto& [idx, l] : live)
          if (l.snat && l.orig.src == probe.src && l.orig.sport == probe.sport) want.push_back(l.orig);
        ct.for_each_same_source(probe, T0, [&](const Flow& f) {
          got.push_back(f.tuple[0]);
          return false;  // keep walking: collect them all
        });
        auto less = [](const Tuple& a, const Tuple& b) {
          return std::make_pair(a.word0(), a.word1()) < std::make_pair(b.word0(), b.word1());
        };
        std::sort(want.begin(), want.end(), less);
        std::sort(got.begin(), got.end(), less);
        ASSERT_EQ(got, want) << when << ", source port " << sport << ", host ." << host;
      }
    }
  };
  for (int i = 0; i < 200; ++i) add();
  check("after 200 inserts");
  for (int round = 0; round < 300; ++round) {
    const size_t k = next() % live.size();
    ct.remove(live[k].first);
    live.erase(live.begin() + static_cast<long>(k));
    if (round % 3 == 0) add();
    if (round % 10 == 0) check("while removing and reusing");
  }
  check("after the removals");
  EXPECT_EQ(ct.count(), live.size());
  while (!live.empty()) {
    ct.remove(live.back().first);
    live.pop_back();
  }
  check("empty");
}

TEST(Conntrack, ExtendedListingFormat) {
  Conntrack ct(ConntrackSettings{}, 1);
  auto syn = parse(FrameBuilder().ip("198.18.0.2", "198.51.100.7").tcp(40000, 80, kTcpSyn).build());
  Tuple reply = invert(syn.tuple);
  reply.dst = ip_raw("198.19.0.1");  // SNAT to the outside address
  uint32_t idx = ct.insert(syn.tuple, reply, T0).idx;
  ct.flow(idx).status |= kStatusSrcNat;
  ct.track(idx, 0, syn, T0);
  EXPECT_EQ(format_conntrack_extended(ct.flow(idx), T0 + 1500),
            "ipv4     2 tcp      6 118 SYN_SENT src=198.18.0.2 dst=198.51.100.7 sport=40000 dport=80 "
            "[UNREPLIED] src=198.51.100.7 dst=198.19.0.1 sport=80 dport=40000 mark=0 use=1");
  auto echo = parse(FrameBuilder().ip("198.18.0.2", "198.51.100.7").icmp(kIcmpEcho, 0, 9, 1).build());
  uint32_t i2 = ct.insert(echo.tuple, invert(echo.tuple), T0).idx;
  ct.track(i2, 0, echo, T0);
  auto echo_r = parse(FrameBuilder().ip("198.51.100.7", "198.18.0.2").icmp(kIcmpEchoReply, 0, 9, 1).build());
  ct.track(i2, 1, echo_r, T0);
  EXPECT_EQ(format_conntrack_extended(ct.flow(i2), T0),
            "ipv4     2 icmp     1 30 src=198.18.0.2 dst=198.51.100.7 type=8 code=0 id=9 "
            "src=198.51.100.7 dst=198.18.0.2 type=0 code=0 id=9 mark=0 use=1");
}

}  // namespace
}  // namespace xnat

namespace xnat {
namespace {

// Flows per translated address follow source translation in and out of the
// table (the pools' metrics).
TEST(Conntrack, TranslatedFlowsPerAddressAndProtocol) {
  Conntrack ct(ConntrackSettings{}, 1);
  auto count = [&](const char* addr, uint8_t proto) {
    uint64_t n = 0;
    ct.translated().for_each([&](const TranslatedCounts::Slot& s) {
      if (s.addr == ip_raw(addr) && s.proto == proto) n = s.flows;
    });
    return n;
  };
  std::vector<uint32_t> idx;
  for (uint16_t port = 1000; port < 1010; ++port) {
    auto p = parse(FrameBuilder().ip("198.18.0.2", "198.51.100.7").udp(port, 53).build());
    Tuple reply = invert(p.tuple);
    reply.dst = ip_raw(port < 1006 ? "198.19.0.1" : "198.19.0.2");
    idx.push_back(ct.insert(p.tuple, reply, T0).idx);
    ASSERT_NE(idx.back(), kNoRef);
    ct.set_src_nat(idx.back());
    ct.track_opening(idx.back(), p, T0);
  }
  EXPECT_EQ(count("198.19.0.1", kProtoUdp), 6u);
  EXPECT_EQ(count("198.19.0.2", kProtoUdp), 4u);
  EXPECT_EQ(count("198.19.0.1", kProtoTcp), 0u);
  ct.remove(idx[0]);
  ct.expire(T0 + 31'000);  // the rest time out
  EXPECT_EQ(count("198.19.0.1", kProtoUdp), 0u);
  EXPECT_EQ(count("198.19.0.2", kProtoUdp), 0u);
}

}  // namespace
}  // namespace xnat
