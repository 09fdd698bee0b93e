// Evicted flows are held for their late packets (conntrack.h): a connection
// evicted while still alive gets its mapping back instead of being picked up
// untranslated. The scenarios are the ones a full table produces under ab
// through DNAT: a half-closed connection's retransmitted data, an unreplied
// SYN's late SYN-ACK.
#include <gtest/gtest.h>

#include "conntrack/conntrack.h"
#include "golden_cases.h"
#include "test_util.h"

namespace xnat::test {
namespace {

// The gateway publishes 198.19.0.1:8080 as 198.18.0.2:80 and masquerades
// what leaves on eth0, as the live test's ruleset does.
const std::string kPublish = nat_table(
    "-A PREROUTING -i eth0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.18.0.2:80\n"
    "-A POSTROUTING -o eth0 -j MASQUERADE\n");

// From the outside client 198.19.0.20 to the published port, and back from the server.
std::vector<uint8_t> to_published(uint16_t port, uint8_t flags) {
  return FrameBuilder().eth(kServerMac, kOutMac).ip("198.19.0.20", "198.19.0.1").tcp(port, 8080, flags).build();
}
std::vector<uint8_t> from_server(uint16_t port, uint8_t flags) {
  return FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.19.0.20").tcp(80, port, flags).build();
}

Tuple out_tuple(const Output& o) {
  ParsedPacket p;
  EXPECT_EQ(parse_frame(o.frame.data(), o.frame.size(), {}, &p), ParseStatus::kOk);
  return p.tuple;
}

// Forwards and checks one frame.
void pass(Engine& e, const std::vector<uint8_t>& f, int in_if, uint64_t now) {
  const Output o = run(e, f, in_if, now);
  ASSERT_EQ(o.verdict, Verdict::kForward) << describe(f);
}

// The server's late data on connection `port` leaves as the published port.
void expect_published_reply(Engine& e, uint16_t port, uint64_t now) {
  const Output o = run(e, from_server(port, kTcpAck | kTcpPsh), kIn, now);
  ASSERT_EQ(o.verdict, Verdict::kForward);
  EXPECT_EQ(out_tuple(o).src, ip_raw("198.19.0.1"));
  EXPECT_EQ(__builtin_bswap16(out_tuple(o).sport), 8080);
}

// The client's packet on connection `port` reaches the server at 198.18.0.2:80.
void expect_reaches_server(Engine& e, uint16_t port, uint8_t flags, uint64_t now) {
  const Output o = run(e, to_published(port, flags), kOut, now);
  ASSERT_EQ(o.verdict, Verdict::kForward);
  EXPECT_EQ(out_tuple(o).dst, ip_raw("198.18.0.2"));
  EXPECT_EQ(__builtin_bswap16(out_tuple(o).dport), 80);
}

// Connection `port` to the published port, established.
void establish(Engine& e, uint16_t port, uint64_t now) {
  pass(e, to_published(port, kTcpSyn), kOut, now);
  pass(e, from_server(port, kTcpSyn | kTcpAck), kIn, now);
  pass(e, to_published(port, kTcpAck), kOut, now);
}

// nf_conntrack_max = 2: connection 40000 half-closed (the server sent its
// FIN, the client acknowledged it: CLOSE_WAIT), 40001 established, and a SYN
// from 40002 that evicts 40000, the only candidate.
void half_closed_then_evicted(Engine& e) {
  establish(e, 40000, 1000);
  pass(e, from_server(40000, kTcpFin | kTcpAck), kIn, 1001);
  pass(e, to_published(40000, kTcpAck), kOut, 1002);
  establish(e, 40001, 1003);
  pass(e, to_published(40002, kTcpSyn), kOut, 1004);
  ASSERT_EQ(e.conntrack().stats().evicted_half_closed, 1u);
  ASSERT_EQ(e.conntrack().held_count(), 1u);
}

TEST(EvictedHold, HalfClosedConnectionsLateDataLeavesTranslated) {
  auto e = make_engine(kPublish, "nf_conntrack_max = 2");
  half_closed_then_evicted(*e);
  // The server retransmits data (the client's ACK of it was lost): it must
  // leave as the published port, not as 198.19.0.1:80.
  const Output o = run(*e, from_server(40000, kTcpAck | kTcpPsh), kIn, 1200);
  ASSERT_EQ(o.verdict, Verdict::kForward);
  const Tuple t = out_tuple(o);
  EXPECT_EQ(t.src, ip_raw("198.19.0.1"));
  EXPECT_EQ(__builtin_bswap16(t.sport), 8080);
  EXPECT_EQ(__builtin_bswap16(t.dport), 40000);
  // The table holds only live flows (40001 established, 40002 unreplied):
  // none is evicted for it; it is translated by the held mapping.
  const ConntrackStats& s = e->conntrack().stats();
  EXPECT_EQ(e->counters().get(Counter::held_frames), 1u);
  EXPECT_EQ(s.readmitted, 0u);
  EXPECT_EQ(s.evicted_unreplied, 0u);
  EXPECT_EQ(e->conntrack().held_count(), 1u);
  // The client's FIN reaches the server through it too.
  expect_reaches_server(*e, 40000, kTcpFin | kTcpAck, 1201);
  // A RST ends 40001: now there is room, and the next packet brings the
  // connection back into the table with its state.
  pass(*e, to_published(40001, kTcpRst), kOut, 1202);
  pass(*e, from_server(40000, kTcpAck), kIn, 1203);
  EXPECT_EQ(s.readmitted, 1u);
  // The room was 40001's, closed by its RST; that closed flow is held now.
  EXPECT_EQ(s.evicted_closing, 1u);
  EXPECT_EQ(e->conntrack().held_count(), 1u);
  bool found = false;
  e->conntrack().for_each_live(1203, [&](const Flow& f) {
    if (__builtin_bswap16(f.tuple[0].sport) == 40000) {
      found = true;
      EXPECT_TRUE(f.status & kStatusDstNat);
      EXPECT_TRUE(f.status & kStatusAssured);
      EXPECT_NE(f.tcp_state, TcpState::kEstablished);  // still closing, not a pick-up
    }
  });
  EXPECT_TRUE(found);
  EXPECT_EQ(e->counters().get(Counter::drop_invalid), 0u);
}

TEST(EvictedHold, TimeWaitAfterOneSidesFinIsNotOver) {
  // Captured under ab -c 1000 through DNAT at nf_conntrack_max=1000: the
  // server's response is lost after the gateway (rx ring), its FIN is not.
  // The client acknowledges the byte before the gap, the server retransmits
  // its FIN, the client acknowledges again: netfilter's table is now at
  // TIME_WAIT, though only the server has sent a FIN and its response is
  // still due. Such an entry is half-closed for eviction: taken after the
  // unreplied ones, and held.
  auto e = make_engine(kPublish, "nf_conntrack_max = 3");
  establish(*e, 40000, 1000);
  pass(*e, to_published(40000, kTcpAck | kTcpPsh), kOut, 1001);  // the request
  pass(*e, from_server(40000, kTcpAck), kIn, 1002);
  pass(*e, from_server(40000, kTcpFin | kTcpAck), kIn, 1003);    // the response before it is lost
  pass(*e, to_published(40000, kTcpAck), kOut, 1004);            // duplicate ACK
  pass(*e, from_server(40000, kTcpFin | kTcpAck), kIn, 1005);    // FIN retransmitted
  pass(*e, to_published(40000, kTcpAck), kOut, 1006);
  TcpState state = TcpState::kNone;
  e->conntrack().for_each_live(1006, [&](const Flow& f) {
    if (__builtin_bswap16(f.tuple[0].sport) == 40000) state = f.tcp_state;
  });
  ASSERT_EQ(state, TcpState::kTimeWait);  // netfilter's state, kept
  establish(*e, 40001, 1007);
  pass(*e, to_published(40002, kTcpSyn), kOut, 1008);
  // A new SYN takes the unreplied entry first.
  pass(*e, to_published(40003, kTcpSyn), kOut, 1009);
  const ConntrackStats& s = e->conntrack().stats();
  EXPECT_EQ(s.evicted_unreplied, 1u);
  EXPECT_EQ(s.evicted_closing, 0u);
  pass(*e, from_server(40003, kTcpSyn | kTcpAck), kIn, 1010);
  pass(*e, to_published(40003, kTcpAck), kOut, 1010);
  // Only then the TIME_WAIT entry, which is held.
  pass(*e, to_published(40004, kTcpSyn), kOut, 1011);
  EXPECT_EQ(s.evicted_half_closed, 1u);
  EXPECT_EQ(s.evicted_closing, 0u);
  // The server's retransmitted response leaves as the published port.
  expect_published_reply(*e, 40000, 1250);
  EXPECT_EQ(e->counters().get(Counter::held_frames), 1u);
}

TEST(EvictedHold, TimeWaitAfterBothFinsIsEvictedFirstAndHeldAsClosed) {
  auto e = make_engine(kPublish, "nf_conntrack_max = 2");
  establish(*e, 40000, 1000);
  pass(*e, from_server(40000, kTcpFin | kTcpAck), kIn, 1001);
  pass(*e, to_published(40000, kTcpFin | kTcpAck), kOut, 1002);
  pass(*e, from_server(40000, kTcpAck), kIn, 1003);  // TIME_WAIT
  pass(*e, to_published(40001, kTcpSyn), kOut, 1004);
  // A SYN with an unreplied entry in the table still takes the closed one.
  pass(*e, to_published(40002, kTcpSyn), kOut, 1005);
  const ConntrackStats& s = e->conntrack().stats();
  EXPECT_EQ(s.evicted_closing, 1u);
  EXPECT_EQ(s.evicted_unreplied, 0u);
  EXPECT_EQ(e->conntrack().held_count(), 1u);
  // The server's final ACK was lost: the client retransmits its FIN, which
  // reaches the server as the connection went, not as a new one.
  expect_reaches_server(*e, 40000, kTcpFin | kTcpAck, 1300);
  // And the server's final ACK leaves as the published port, not port 80.
  const Output ack = run(*e, from_server(40000, kTcpAck), kIn, 1301);
  ASSERT_EQ(ack.verdict, Verdict::kForward);
  EXPECT_EQ(__builtin_bswap16(out_tuple(ack).sport), 8080);
  // Translated while held: a closed flow does not come back into a full table.
  EXPECT_EQ(e->counters().get(Counter::held_frames), 2u);
  EXPECT_EQ(s.readmitted, 0u);
  EXPECT_EQ(s.evicted_unreplied, 0u);
  EXPECT_EQ(e->counters().get(Counter::drop_invalid), 0u);
}

TEST(EvictedHold, AClosedFlowNeverPushesOutALiveOne) {
  // A hold of one: a live (half-closed) flow is held; a closed one evicted
  // after it is not; a live one evicted later replaces the older live one.
  auto e = make_engine(kPublish, "nf_conntrack_max = 2\nxnat_evicted_hold = 1");
  const ConntrackStats& s = e->conntrack().stats();
  establish(*e, 40000, 1000);
  pass(*e, from_server(40000, kTcpFin | kTcpAck), kIn, 1001);
  pass(*e, to_published(40000, kTcpAck), kOut, 1002);  // CLOSE_WAIT: live
  establish(*e, 40001, 1003);
  pass(*e, to_published(40002, kTcpSyn), kOut, 1004);  // evicts 40000
  ASSERT_EQ(s.evicted_half_closed, 1u);
  ASSERT_EQ(e->conntrack().held_count(), 1u);
  // 40001 ends with a RST (CLOSE); the next SYN takes it, and it is not held.
  pass(*e, to_published(40001, kTcpRst), kOut, 1005);
  pass(*e, to_published(40003, kTcpSyn), kOut, 1006);
  EXPECT_EQ(s.evicted_closing, 1u);
  EXPECT_EQ(s.held, 1u);
  // 40000 is still held: its late data leaves translated.
  expect_published_reply(*e, 40000, 1007);
}

TEST(EvictedHold, ALiveFlowPushesOutAClosedOne) {
  auto e = make_engine(kPublish, "nf_conntrack_max = 2\nxnat_evicted_hold = 1");
  const ConntrackStats& s = e->conntrack().stats();
  establish(*e, 40000, 1000);
  pass(*e, to_published(40000, kTcpRst), kOut, 1001);  // CLOSE
  establish(*e, 40001, 1002);
  pass(*e, from_server(40001, kTcpFin | kTcpAck), kIn, 1003);
  pass(*e, to_published(40001, kTcpAck), kOut, 1004);  // CLOSE_WAIT
  pass(*e, to_published(40002, kTcpSyn), kOut, 1005);  // evicts 40000, closed: held
  ASSERT_EQ(s.evicted_closing, 1u);
  ASSERT_EQ(e->conntrack().held_count(), 1u);
  establish(*e, 40003, 1006);  // unreplied 40002 goes first, held in 40000's place
  EXPECT_EQ(s.evicted_unreplied, 1u);
  EXPECT_EQ(s.held, 2u);
  EXPECT_EQ(e->conntrack().held_count(), 1u);
  // 40002's late SYN-ACK is translated by its held mapping; 40000 is gone.
  const Output o = run(*e, from_server(40002, kTcpSyn | kTcpAck), kIn, 1007);
  ASSERT_EQ(o.verdict, Verdict::kForward);
  EXPECT_EQ(__builtin_bswap16(out_tuple(o).sport), 8080);
}

TEST(EvictedHold, WithoutHoldingTheLateDataIsPickedUpUntranslated) {
  // What holding prevents (and what netfilter does with a packet whose entry
  // is gone): a new mid-stream connection, masqueraded from port 80, that the
  // client does not know and resets.
  auto e = make_engine(kPublish, "nf_conntrack_max = 2\nxnat_evicted_hold = 0");
  establish(*e, 40000, 1000);
  pass(*e, from_server(40000, kTcpFin | kTcpAck), kIn, 1001);
  pass(*e, to_published(40000, kTcpAck), kOut, 1002);
  establish(*e, 40001, 1003);
  pass(*e, to_published(40002, kTcpSyn), kOut, 1004);
  EXPECT_EQ(e->conntrack().held_count(), 0u);
  const Output o = run(*e, from_server(40000, kTcpAck | kTcpPsh), kIn, 1200);
  ASSERT_EQ(o.verdict, Verdict::kForward);
  EXPECT_EQ(__builtin_bswap16(out_tuple(o).sport), 80);
  EXPECT_EQ(e->conntrack().stats().readmitted, 0u);
}

TEST(EvictedHold, UnrepliedSynsLateSynAckCompletesTheHandshake) {
  auto e = make_engine(kPublish, "nf_conntrack_max = 2");
  establish(*e, 40000, 1000);
  pass(*e, to_published(40001, kTcpSyn), kOut, 1001);
  pass(*e, to_published(40002, kTcpSyn), kOut, 1002);  // evicts 40001's SYN
  ASSERT_EQ(e->conntrack().stats().evicted_unreplied, 1u);
  // 40000 closes: its TIME_WAIT entry is dead, and may make room.
  pass(*e, to_published(40000, kTcpFin | kTcpAck), kOut, 1003);
  pass(*e, from_server(40000, kTcpFin | kTcpAck), kIn, 1003);
  pass(*e, to_published(40000, kTcpAck), kOut, 1003);
  // The SYN-ACK to 40001 arrives: without its entry it would be INVALID and
  // the client would wait a second to retransmit its SYN.
  const Output o = run(*e, from_server(40001, kTcpSyn | kTcpAck), kIn, 1004);
  ASSERT_EQ(o.verdict, Verdict::kForward);
  EXPECT_EQ(__builtin_bswap16(out_tuple(o).sport), 8080);
  EXPECT_EQ(e->conntrack().stats().readmitted, 1u);
  EXPECT_EQ(e->conntrack().stats().evicted_closing, 1u);
  pass(*e, to_published(40001, kTcpAck), kOut, 1005);
  bool found = false;
  e->conntrack().for_each_live(1005, [&](const Flow& f) {
    if (__builtin_bswap16(f.tuple[0].sport) == 40001) {
      found = true;
      EXPECT_EQ(f.tcp_state, TcpState::kEstablished);
    }
  });
  EXPECT_TRUE(found);
}

TEST(EvictedHold, AHandshakeFinishedWhileHeldIsReadmittedEstablished) {
  auto e = make_engine(kPublish, "nf_conntrack_max = 2");
  establish(*e, 40000, 1000);
  pass(*e, to_published(40001, kTcpSyn), kOut, 1001);
  pass(*e, to_published(40002, kTcpSyn), kOut, 1002);  // evicts 40001's SYN
  // No dead entry to give: the handshake runs on the held flow, tracked there.
  pass(*e, from_server(40001, kTcpSyn | kTcpAck), kIn, 1003);
  pass(*e, to_published(40001, kTcpAck), kOut, 1004);
  EXPECT_EQ(e->counters().get(Counter::held_frames), 2u);
  // 40000 closes; the request on 40001 takes its place, ESTABLISHED: the held
  // state followed the handshake (a readmitted SYN_SENT would make it INVALID).
  pass(*e, to_published(40000, kTcpFin | kTcpAck), kOut, 1005);
  pass(*e, from_server(40000, kTcpFin | kTcpAck), kIn, 1005);
  pass(*e, to_published(40000, kTcpAck), kOut, 1005);
  const Output o = run(*e, to_published(40001, kTcpAck | kTcpPsh), kOut, 1006);
  ASSERT_EQ(o.verdict, Verdict::kForward);
  EXPECT_EQ(out_tuple(o).dst, ip_raw("198.18.0.2"));
  EXPECT_EQ(e->conntrack().stats().readmitted, 1u);
  EXPECT_EQ(e->counters().get(Counter::drop_invalid), 0u);
  e->conntrack().for_each_live(1006, [&](const Flow& f) {
    if (__builtin_bswap16(f.tuple[0].sport) == 40001) {
      EXPECT_EQ(f.tcp_state, TcpState::kEstablished);
      EXPECT_TRUE(f.status & kStatusAssured);
    }
  });
}

TEST(EvictedHold, InvalidPacketsOfAHeldFlowAreDropped) {
  auto e = make_engine(kPublish, "nf_conntrack_max = 2");
  establish(*e, 40000, 1000);
  pass(*e, to_published(40001, kTcpSyn), kOut, 1001);
  pass(*e, to_published(40002, kTcpSyn), kOut, 1002);  // evicts 40001's SYN
  // A bare ACK from the client before any SYN-ACK is INVALID in SYN_SENT.
  const Output o = run(*e, to_published(40001, kTcpAck), kOut, 1003);
  EXPECT_EQ(o.verdict, Verdict::kDrop);
  EXPECT_EQ(o.reason, Counter::drop_invalid);
  EXPECT_EQ(e->conntrack().held_count(), 1u);
}

TEST(EvictedHold, ANewSynOnTheHeldTupleIsANewConnection) {
  auto e = make_engine(kPublish, "nf_conntrack_max = 2");
  half_closed_then_evicted(*e);
  // The client reuses port 40000: a new connection, not the held one.
  const Output o = run(*e, to_published(40000, kTcpSyn), kOut, 1100);
  ASSERT_EQ(o.verdict, Verdict::kForward);
  EXPECT_EQ(e->conntrack().stats().readmitted, 0u);
  e->conntrack().for_each_live(1100, [&](const Flow& f) {
    if (__builtin_bswap16(f.tuple[0].sport) == 40000) {
      EXPECT_EQ(f.tcp_state, TcpState::kSynSent);
    }
  });
}

TEST(EvictedHold, TableFullOfLiveFlowsStillTranslatesTheLatePacket) {
  auto e = make_engine(kPublish, "nf_conntrack_max = 2");
  half_closed_then_evicted(*e);
  pass(*e, from_server(40002, kTcpSyn | kTcpAck), kIn, 1005);
  pass(*e, to_published(40002, kTcpAck), kOut, 1006);  // 40001 and 40002 established: nothing to evict
  const Output o = run(*e, from_server(40000, kTcpAck | kTcpPsh), kIn, 1200);
  ASSERT_EQ(o.verdict, Verdict::kForward);
  EXPECT_EQ(__builtin_bswap16(out_tuple(o).sport), 8080);
  EXPECT_EQ(e->counters().get(Counter::held_frames), 1u);
  EXPECT_EQ(e->conntrack().stats().readmitted, 0u);
  EXPECT_EQ(e->conntrack().held_count(), 1u);  // still held for the next one
  EXPECT_EQ(e->counters().get(Counter::drop_table_full), 0u);
}

TEST(EvictedHold, HeldReplyTupleIsNotGivenToAnotherFlow) {
  // Two clients, one source port, one server, one external address: while
  // client 1's evicted flow is held, client 2 may not take port 5000.
  auto e = make_engine(nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"), "nf_conntrack_max = 1");
  auto udp_from = [](const std::string& src, MacAddr m) {
    return FrameBuilder().eth(m, kInMac).ip(src, "198.19.0.20").udp(5000, 53).build();
  };
  const Output a = run(*e, udp_from("198.18.0.2", kClientMac), kIn, 1000);
  ASSERT_EQ(a.verdict, Verdict::kForward);
  EXPECT_EQ(__builtin_bswap16(out_tuple(a).sport), 5000);
  const Output b = run(*e, udp_from("198.18.0.3", kClient2Mac), kIn, 1001);  // evicts a (unreplied)
  ASSERT_EQ(b.verdict, Verdict::kForward);
  EXPECT_NE(__builtin_bswap16(out_tuple(b).sport), 5000);
  // The server's late answer to 5000 reaches client 1.
  const Output r =
      run(*e, FrameBuilder().eth(kServerMac, kOutMac).ip("198.19.0.20", "198.19.0.1").udp(53, 5000).build(), kOut, 1002);
  ASSERT_EQ(r.verdict, Verdict::kForward);
  EXPECT_EQ(out_tuple(r).dst, ip_raw("198.18.0.2"));
  EXPECT_EQ(e->counters().get(Counter::held_frames), 1u);  // b is live: a stays held
}

TEST(EvictedHold, IcmpErrorAboutAHeldFlowIsTranslated) {
  auto e = make_engine(nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"), "nf_conntrack_max = 1");
  pass(*e, from_client().udp(5000, 53).build(), kIn, 1000);
  pass(*e, from_client().udp(5001, 53).build(), kIn, 1001);  // evicts 5000's flow
  ASSERT_EQ(e->conntrack().held_count(), 1u);
  // The router reports 198.51.100.7 unreachable for the datagram from 5000.
  const auto inner = FrameBuilder().ip("198.19.0.1", "198.51.100.7").udp(5000, 53).ip_part();
  const Output o = run(*e,
                       FrameBuilder().eth(kRouterMac, kOutMac).ip("198.19.0.254", "198.19.0.1")
                           .icmp_error(kIcmpDestUnreach, 1, inner).build(),
                       kOut, 1002);
  ASSERT_EQ(o.verdict, Verdict::kForward);
  EXPECT_EQ(out_tuple(o).dst, ip_raw("198.18.0.2"));
  EXPECT_EQ(e->counters().get(Counter::icmp_errors_translated), 1u);
  EXPECT_EQ(e->conntrack().held_count(), 1u);  // an error does not readmit
}

TEST(EvictedHold, AHeldFlowEndsWithItsOwnTimeout) {
  auto e = make_engine(nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"), "nf_conntrack_max = 1");
  pass(*e, from_client().udp(5000, 53).build(), kIn, 1000);
  pass(*e, from_client().udp(5001, 53).build(), kIn, 1001);  // evicts 5000's flow, 30 s unreplied timeout
  // 31 s later the answer has nothing to return to.
  const Output r = run(*e, FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").udp(53, 5000).build(),
                       kOut, 32'000);
  EXPECT_EQ(e->conntrack().stats().readmitted, 0u);
  EXPECT_EQ(e->conntrack().held_count(), 0u);
  EXPECT_NE(r.verdict, Verdict::kForward);  // for the host: nothing maps 198.19.0.1:5000 any more
}

TEST(EvictedHold, OldestHeldFlowIsDroppedWhenTheHoldIsFull) {
  auto e = make_engine(nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"), "nf_conntrack_max = 4\nxnat_evicted_hold = 2");
  for (uint16_t p = 5000; p < 5008; ++p) pass(*e, from_client().udp(p, 53).build(), kIn, 1000 + p);
  EXPECT_EQ(e->conntrack().stats().evicted_unreplied, 4u);
  EXPECT_EQ(e->conntrack().stats().held, 4u);
  EXPECT_EQ(e->conntrack().held_count(), 2u);
  // 5002 and 5003 are held; 5000 and 5001 are forgotten.
  auto answer = [&](uint16_t p) {
    return run(*e, FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").udp(53, p).build(), kOut,
               9000);
  };
  EXPECT_EQ(answer(5003).verdict, Verdict::kForward);
  EXPECT_EQ(answer(5000).verdict, Verdict::kToHost);
  EXPECT_EQ(e->counters().get(Counter::held_frames), 1u);
}

}  // namespace
}  // namespace xnat::test

namespace xnat::test {
namespace {

TEST(EvictedHold, AFullHoldDropsTheLeastRecentlyUsed) {
  auto e = make_engine(nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"), "nf_conntrack_max = 1\nxnat_evicted_hold = 2");
  auto answer = [&](uint16_t p, uint64_t now) {
    return run(*e, FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").udp(53, p).build(), kOut,
               now);
  };
  pass(*e, from_client().udp(5000, 53).build(), kIn, 1000);
  pass(*e, from_client().udp(5001, 53).build(), kIn, 1001);  // holds 5000
  pass(*e, from_client().udp(5002, 53).build(), kIn, 1002);  // holds 5001
  // 5000's answer comes (the table holds 5002, live): 5000 is now the most recently used.
  EXPECT_EQ(answer(5000, 1003).verdict, Verdict::kForward);
  pass(*e, from_client().udp(5003, 53).build(), kIn, 1004);  // holds 5002; the hold drops 5001, not 5000
  EXPECT_EQ(e->conntrack().held_count(), 2u);
  EXPECT_EQ(answer(5000, 1005).verdict, Verdict::kForward);
  EXPECT_EQ(answer(5001, 1006).verdict, Verdict::kToHost);
  EXPECT_EQ(e->counters().get(Counter::held_frames), 2u);
}

}  // namespace
}  // namespace xnat::test
