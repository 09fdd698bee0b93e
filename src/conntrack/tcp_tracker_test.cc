// The TCP tracker against netfilter's published transitions: the rows below are
// taken from the comments of tcp_conntracks[] in nf_conntrack_proto_tcp.c
// (Linux 6.x), written out independently of the table in tcp_tracker.cc.
#include "conntrack/tcp_tracker.h"

#include <gtest/gtest.h>

#include "packet/headers.h"

namespace xnat {
namespace {

using S = TcpState;
constexpr uint8_t SYN = kTcpSyn, SYNACK = kTcpSyn | kTcpAck, FIN = kTcpFin | kTcpAck, ACK = kTcpAck,
                  RST = kTcpRst;

struct Row {
  int dir;
  uint8_t flags;
  S from;
  TcpVerdict verdict;
  S to;
};

TEST(TcpTracker, PublishedTransitions) {
  const Row rows[] = {
      // ORIGINAL, syn
      {0, SYN, S::kSynSent, TcpVerdict::kAccept, S::kSynSent},         // retransmitted SYN
      {0, SYN, S::kSynSent2, TcpVerdict::kAccept, S::kSynSent2},       // late retransmitted SYN
      {0, SYN, S::kEstablished, TcpVerdict::kIgnore, S::kEstablished}, // SYN in window: ignore
      {0, SYN, S::kSynRecv, TcpVerdict::kIgnore, S::kSynRecv},
      // ORIGINAL, synack
      {0, SYNACK, S::kSynSent, TcpVerdict::kInvalid, S::kSynSent},     // client can't send SYN then SYN/ACK
      {0, SYNACK, S::kSynSent2, TcpVerdict::kAccept, S::kSynRecv},     // simultaneous open
      {0, SYNACK, S::kSynRecv, TcpVerdict::kAccept, S::kSynRecv},
      {0, SYNACK, S::kEstablished, TcpVerdict::kInvalid, S::kEstablished},
      // ORIGINAL, fin
      {0, FIN, S::kSynSent, TcpVerdict::kInvalid, S::kSynSent},
      {0, FIN, S::kSynRecv, TcpVerdict::kAccept, S::kFinWait},
      {0, FIN, S::kEstablished, TcpVerdict::kAccept, S::kFinWait},
      {0, FIN, S::kFinWait, TcpVerdict::kAccept, S::kLastAck},
      {0, FIN, S::kCloseWait, TcpVerdict::kAccept, S::kLastAck},
      {0, FIN, S::kTimeWait, TcpVerdict::kAccept, S::kTimeWait},
      // ORIGINAL, ack
      {0, ACK, S::kSynSent, TcpVerdict::kInvalid, S::kSynSent},
      {0, ACK, S::kSynRecv, TcpVerdict::kAccept, S::kEstablished},
      {0, ACK, S::kFinWait, TcpVerdict::kAccept, S::kCloseWait},
      {0, ACK, S::kLastAck, TcpVerdict::kAccept, S::kTimeWait},
      {0, ACK, S::kClose, TcpVerdict::kAccept, S::kClose},
      // ORIGINAL, rst
      {0, RST, S::kSynSent, TcpVerdict::kAccept, S::kClose},
      {0, RST, S::kEstablished, TcpVerdict::kAccept, S::kClose},
      // REPLY, syn
      {1, SYN, S::kSynSent, TcpVerdict::kAccept, S::kSynSent2},        // simultaneous open
      {1, SYN, S::kSynRecv, TcpVerdict::kInvalid, S::kSynRecv},
      {1, SYN, S::kEstablished, TcpVerdict::kInvalid, S::kEstablished},
      // REPLY, synack
      {1, SYNACK, S::kSynSent, TcpVerdict::kAccept, S::kSynRecv},      // standard open
      {1, SYNACK, S::kSynRecv, TcpVerdict::kIgnore, S::kSynRecv},      // retransmitted SYN/ACK
      {1, SYNACK, S::kEstablished, TcpVerdict::kIgnore, S::kEstablished},
      // REPLY, fin / ack
      {1, FIN, S::kEstablished, TcpVerdict::kAccept, S::kFinWait},
      {1, FIN, S::kSynSent, TcpVerdict::kInvalid, S::kSynSent},
      {1, ACK, S::kSynSent, TcpVerdict::kIgnore, S::kSynSent},         // might be a half-open connection
      {1, ACK, S::kSynRecv, TcpVerdict::kAccept, S::kSynRecv},         // might answer a late resent SYN
      {1, ACK, S::kFinWait, TcpVerdict::kAccept, S::kCloseWait},
      {1, ACK, S::kLastAck, TcpVerdict::kAccept, S::kTimeWait},
      // flag combinations that are never valid
      {0, kTcpFin, S::kEstablished, TcpVerdict::kInvalid, S::kEstablished},
      {0, kTcpSyn | kTcpFin, S::kEstablished, TcpVerdict::kInvalid, S::kEstablished},
      {0, 0, S::kEstablished, TcpVerdict::kInvalid, S::kEstablished},
  };
  for (const Row& r : rows) {
    Flow f;
    f.tcp_state = r.from;
    f.status = kStatusSeenReply;
    TcpDecision d = tcp_track(f, r.dir, r.flags, true);
    EXPECT_EQ(static_cast<int>(d.verdict), static_cast<int>(r.verdict))
        << "dir " << r.dir << " flags " << int(r.flags) << " from " << tcp_state_name(r.from);
    EXPECT_EQ(f.tcp_state, r.to) << "dir " << r.dir << " flags " << int(r.flags) << " from "
                                 << tcp_state_name(r.from) << " went to " << tcp_state_name(f.tcp_state);
  }
}

// Runs a packet sequence; SEEN_REPLY is set after a reply packet, as netfilter does.
struct Conn {
  Flow f;
  TcpDecision step(int dir, uint8_t flags) {
    TcpDecision d = tcp_track(f, dir, flags, f.status & kStatusSeenReply);
    if (d.set_assured) f.status |= kStatusAssured;
    if (dir == 1 && d.verdict == TcpVerdict::kAccept) f.status |= kStatusSeenReply;
    return d;
  }
};

TEST(TcpTracker, HandshakeAndCloseWithTimeouts) {
  Conn c;
  EXPECT_EQ(c.step(0, SYN).timeout, TimeoutClass::kTcpSynSent);
  EXPECT_EQ(c.step(1, SYNACK).timeout, TimeoutClass::kTcpSynRecv);
  TcpDecision d = c.step(0, ACK);
  EXPECT_EQ(c.f.tcp_state, S::kEstablished);
  EXPECT_TRUE(c.f.status & kStatusAssured);
  EXPECT_EQ(d.timeout, TimeoutClass::kTcpEstablished);
  EXPECT_EQ(c.step(0, FIN).timeout, TimeoutClass::kTcpFinWait);
  EXPECT_EQ(c.step(1, ACK).timeout, TimeoutClass::kTcpCloseWait);
  EXPECT_EQ(c.step(1, FIN).timeout, TimeoutClass::kTcpLastAck);
  EXPECT_EQ(c.step(0, ACK).timeout, TimeoutClass::kTcpTimeWait);
  EXPECT_EQ(c.f.tcp_state, S::kTimeWait);
  // RFC 1122 reopen: the closing side's new SYN replaces the entry.
  EXPECT_EQ(c.step(0, SYN).verdict, TcpVerdict::kReopen);
}

TEST(TcpTracker, SimultaneousOpen) {
  Conn c;
  c.step(0, SYN);
  c.step(1, SYN);
  EXPECT_EQ(c.f.tcp_state, S::kSynSent2);
  c.step(0, SYNACK);
  EXPECT_EQ(c.f.tcp_state, S::kSynRecv);
  c.step(1, ACK);
  EXPECT_EQ(c.f.tcp_state, S::kEstablished);  // the simultaneous-open special case
}

// netfilter keeps the simultaneous-open mark in last_flags, which an ignored
// SYN from the original side resets: the reply's ACK then leaves SYN_RECV as is.
TEST(TcpTracker, IgnoredSynForgetsTheSimultaneousOpen) {
  Conn c;
  c.step(0, SYN);
  c.step(1, SYN);
  c.step(0, SYNACK);
  ASSERT_EQ(c.f.tcp_state, S::kSynRecv);
  EXPECT_EQ(c.step(0, SYN).verdict, TcpVerdict::kIgnore);
  c.step(1, ACK);
  EXPECT_EQ(c.f.tcp_state, S::kSynRecv);
}

TEST(TcpTracker, RstAsOnlyReplyKillsTheEntry) {
  Conn c;
  c.step(0, SYN);
  EXPECT_EQ(c.step(1, RST | kTcpAck).verdict, TcpVerdict::kKill);
}

TEST(TcpTracker, RstThenSynFromSameSideReopens) {
  Conn c;
  c.step(0, SYN);
  c.step(1, SYNACK);
  c.step(0, ACK);
  EXPECT_EQ(c.step(0, RST).timeout, TimeoutClass::kTcpClose);
  EXPECT_EQ(c.f.tcp_state, S::kClose);
  EXPECT_EQ(c.step(0, SYN).verdict, TcpVerdict::kReopen);
}

TEST(TcpTracker, RstFromPeerThenSynIsIgnoredNotReopened) {
  Conn c;
  c.step(0, SYN);
  c.step(1, SYNACK);
  c.step(0, ACK);
  c.step(1, RST);
  EXPECT_EQ(c.step(0, SYN).verdict, TcpVerdict::kIgnore);
}

TEST(TcpTracker, MidStreamPickup) {
  TcpState s;
  EXPECT_TRUE(tcp_can_open(ACK, /*loose=*/true, &s));
  EXPECT_EQ(s, S::kEstablished);
  EXPECT_FALSE(tcp_can_open(ACK, /*loose=*/false, &s));
  EXPECT_FALSE(tcp_can_open(SYNACK, true, &s));
  EXPECT_FALSE(tcp_can_open(FIN, true, &s));
  EXPECT_FALSE(tcp_can_open(RST, true, &s));
  EXPECT_TRUE(tcp_can_open(SYN, false, &s));
  Conn c;
  TcpDecision d = c.step(0, ACK);
  EXPECT_EQ(c.f.tcp_state, S::kEstablished);
  EXPECT_EQ(d.timeout, TimeoutClass::kTcpUnacknowledged);  // no reply yet: short timeout
  c.step(1, ACK);
  EXPECT_FALSE(c.f.status & kStatusAssured);  // SEEN_REPLY is set only after the reply
  c.step(0, ACK);
  EXPECT_TRUE(c.f.status & kStatusAssured);
}

}  // namespace
}  // namespace xnat
