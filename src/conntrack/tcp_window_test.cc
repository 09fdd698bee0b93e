// TCP window tracking (tcp_tracker.h), checked through Conntrack with real
// frames: the expectations are netfilter's tcp_in_window and
// nf_conntrack_tcp_packet (Linux 6.x), worked out by hand for each sequence.
#include <gtest/gtest.h>

#include <vector>

#include "conntrack/conntrack.h"
#include "packet/frame_builder.h"

namespace xnat {
namespace {

const uint64_t T0 = 1'000'000'000;  // an arbitrary clock origin, in ms
const uint64_t kEstablishedMs = 432'000'000ull;
const uint64_t kUnackMs = 300'000;  // nf_conntrack_tcp_timeout_unacknowledged
const uint64_t kRetransMs = 300'000;  // nf_conntrack_tcp_timeout_max_retrans
constexpr uint8_t SYN = kTcpSyn, ACK = kTcpAck, FIN = kTcpFin | kTcpAck, RST = kTcpRst, PSH = kTcpPsh | kTcpAck;
constexpr uint32_t C = 1000;  // the client's initial sequence number
constexpr uint32_t S = 5000;  // the server's

// TCP options.
std::vector<uint8_t> wscale(uint8_t shift) { return {3, 3, shift}; }
std::vector<uint8_t> sack_perm() { return {4, 2}; }
std::vector<uint8_t> sack_block(uint32_t left, uint32_t right) {
  std::vector<uint8_t> o = {1, 1, 5, 10};
  for (uint32_t v : {left, right})
    for (int sh = 24; sh >= 0; sh -= 8) o.push_back(static_cast<uint8_t>(v >> sh));
  return o;
}

struct Seg {
  int dir = 0;
  uint8_t flags = ACK;
  uint32_t seq = 0, ack = 0;
  size_t len = 0;  // payload bytes
  uint16_t win = 64240;
  std::vector<uint8_t> opts;
  bool first_fragment = false;
};

// One connection 198.18.0.2:40000 -> 198.51.100.7:80 through a table.
class Conn {
 public:
  explicit Conn(const ConntrackSettings& s = {}) : ct_(s, 1) {}

  TrackVerdict send(const Seg& g) {
    FrameBuilder b;
    if (g.dir == 0) b.ip("198.18.0.2", "198.51.100.7").tcp(40000, 80, g.flags, g.seq, g.ack);
    else b.ip("198.51.100.7", "198.18.0.2").tcp(80, 40000, g.flags, g.seq, g.ack);
    b.window(g.win).tcp_options(g.opts).payload(std::vector<uint8_t>(g.len, 0x61));
    if (g.first_fragment) b.frag(0x2000);  // MF, offset 0
    const std::vector<uint8_t> frame = b.build();
    ParsedPacket p;
    EXPECT_EQ(parse_frame(frame.data(), frame.size(), {}, &p), ParseStatus::kOk);
    if (idx_ == kNoRef) {
      EXPECT_EQ(g.dir, 0);
      EXPECT_TRUE(ct_.can_open(p));
      idx_ = ct_.insert(p.tuple, invert(p.tuple), now).idx;
    }
    return ct_.track(idx_, g.dir, p, now);
  }
  // SYN, SYN-ACK, ACK; the server advertises `server_win`.
  void handshake(uint16_t server_win = 64240, std::vector<uint8_t> client_opts = {},
                 std::vector<uint8_t> server_opts = {}) {
    ASSERT_EQ(send({0, SYN, C, 0, 0, 64240, client_opts}), TrackVerdict::kAccept);
    ASSERT_EQ(send({1, SYN | ACK, S, C + 1, 0, server_win, server_opts}), TrackVerdict::kAccept);
    ASSERT_EQ(send({0, ACK, C + 1, S + 1}), TrackVerdict::kAccept);
    ASSERT_EQ(flow().tcp_state, TcpState::kEstablished);
  }

  const Flow& flow() const { return ct_.flow(idx_); }
  const TcpWindow& window() const { return *ct_.window(idx_); }
  Conntrack& ct() { return ct_; }
  uint64_t now = T0;

 private:
  Conntrack ct_;
  uint32_t idx_ = kNoRef;
};

ConntrackSettings with(const char* name, int64_t value) {
  ConntrackSettings s;
  EXPECT_TRUE(s.set(name, value).ok());
  return s;
}

TEST(TcpWindow, InWindowConnectionRunsItsCourse) {
  Conn c;
  c.handshake(64240, sack_perm(), sack_perm());
  EXPECT_TRUE(c.flow().status & kStatusAssured);
  EXPECT_EQ(c.send({0, PSH, C + 1, S + 1, 100}), TrackVerdict::kAccept);
  EXPECT_EQ(c.send({1, PSH, S + 1, C + 101, 500}), TrackVerdict::kAccept);
  EXPECT_EQ(c.send({0, FIN, C + 101, S + 501}), TrackVerdict::kAccept);
  EXPECT_EQ(c.send({1, FIN, S + 501, C + 102}), TrackVerdict::kAccept);
  EXPECT_EQ(c.send({0, ACK, C + 102, S + 502}), TrackVerdict::kAccept);
  EXPECT_EQ(c.flow().tcp_state, TcpState::kTimeWait);
  EXPECT_EQ(c.ct().stats().invalid, 0u);
  // What the table learnt, netfilter's way: td_end per side, SACK from both SYNs.
  EXPECT_EQ(c.window().seen[0].end, C + 102);
  EXPECT_EQ(c.window().seen[1].end, S + 502);
  EXPECT_TRUE(c.window().seen[0].flags & kPeerSackPerm);
  EXPECT_TRUE(c.window().seen[1].flags & kPeerSackPerm);
}

TEST(TcpWindow, DataBeyondTheReceiversWindowIsInvalid) {
  Conn c;
  c.handshake(/*server_win=*/1000);
  const uint64_t expires = c.flow().expires_ms;
  // The server allowed up to C + 1 + 1000; this starts 5000 bytes further.
  EXPECT_EQ(c.send({0, PSH, C + 1 + 5000, S + 1, 100}), TrackVerdict::kInvalid);
  EXPECT_EQ(c.ct().stats().invalid, 1u);
  EXPECT_EQ(c.flow().expires_ms, expires);
  EXPECT_EQ(c.window().seen[0].end, C + 1);  // not learnt
  // In the window it passes.
  EXPECT_EQ(c.send({0, PSH, C + 1, S + 1, 1000}), TrackVerdict::kAccept);
}

TEST(TcpWindow, BeLiberalLetsOutOfWindowSegmentsThrough) {
  Conn c(with("nf_conntrack_tcp_be_liberal", 1));
  c.handshake(1000);
  EXPECT_EQ(c.send({0, PSH, C + 1 + 5000, S + 1, 100}), TrackVerdict::kAccept);
  EXPECT_EQ(c.send({1, ACK, S + 1, C + 1 + 90000}), TrackVerdict::kAccept);
  EXPECT_EQ(c.ct().stats().invalid, 0u);
}

TEST(TcpWindow, DataJustPastTheWindowPassesUntrackedAndItsAckIsValid) {
  Conn c;
  c.handshake(1000);  // the client may send up to C + 1001
  const uint64_t expires = c.flow().expires_ms;
  c.now += 1000;
  // Starts 1 byte past the window, 10 bytes: overshoots by 12, less than the
  // window. netfilter lets it through (IGNORE) and remembers its end.
  EXPECT_EQ(c.send({0, PSH, C + 1002, S + 1, 10}), TrackVerdict::kAccept);
  EXPECT_EQ(c.flow().expires_ms, expires);  // not refreshed
  EXPECT_EQ(c.window().seen[0].end, C + 1012);
  EXPECT_TRUE(c.window().seen[0].flags & kPeerUnacked);
  // So the server's ACK of it is not "ACK over upper bound".
  EXPECT_EQ(c.send({1, ACK, S + 1, C + 1012}), TrackVerdict::kAccept);
  EXPECT_EQ(c.ct().stats().invalid, 0u);
}

TEST(TcpWindow, AckOfDataNeverSentIsInvalid) {
  Conn c;
  c.handshake();
  EXPECT_EQ(c.send({0, PSH, C + 1, S + 1, 100}), TrackVerdict::kAccept);
  EXPECT_EQ(c.send({1, ACK, S + 1, C + 101}), TrackVerdict::kAccept);
  EXPECT_EQ(c.send({1, ACK, S + 1, C + 102}), TrackVerdict::kInvalid);  // one byte too far
  EXPECT_EQ(c.ct().stats().invalid, 1u);
}

TEST(TcpWindow, OldRetransmissionIsLetThroughWithoutRefresh) {
  Conn c;
  c.handshake(1000);
  // Three segments of 900 bytes, each ACKed (the window stays 1000).
  for (uint32_t i = 0; i < 3; ++i) {
    ASSERT_EQ(c.send({0, PSH, C + 1 + 900 * i, S + 1, 900}), TrackVerdict::kAccept);
    ASSERT_EQ(c.send({1, ACK, S + 1, C + 1 + 900 * (i + 1), 0, 1000}), TrackVerdict::kAccept);
  }
  const uint64_t expires = c.flow().expires_ms;
  c.now += 5000;
  // The first segment again: it ends more than a window below what was sent.
  EXPECT_EQ(c.send({0, PSH, C + 1, S + 1, 900}), TrackVerdict::kAccept);
  EXPECT_EQ(c.flow().expires_ms, expires);
  EXPECT_EQ(c.window().seen[0].end, C + 2701);
  EXPECT_EQ(c.ct().stats().invalid, 0u);
}

TEST(TcpWindow, UnacknowledgedDataRunsOnTheUnacknowledgedTimeout) {
  Conn c;
  c.handshake();
  EXPECT_EQ(c.flow().expires_ms, c.now + kEstablishedMs);
  c.send({0, PSH, C + 1, S + 1, 100});
  EXPECT_EQ(c.flow().expires_ms, c.now + kUnackMs);
  EXPECT_EQ(c.flow().timeout_class, TimeoutClass::kTcpUnacknowledged);
  c.now += 10;
  c.send({1, ACK, S + 1, C + 101});
  EXPECT_EQ(c.flow().expires_ms, c.now + kEstablishedMs);
}

TEST(TcpWindow, RepeatedIdenticalAcksRunOnTheMaxRetransTimeout) {
  Conn c;
  c.handshake();
  // The handshake's ACK was the first; three more identical ones: retrans = 3.
  for (int i = 0; i < 2; ++i) {
    c.send({0, ACK, C + 1, S + 1});
    EXPECT_EQ(c.flow().expires_ms, c.now + kEstablishedMs) << i;
  }
  c.send({0, ACK, C + 1, S + 1});
  EXPECT_EQ(c.window().retrans, 3);
  EXPECT_EQ(c.flow().expires_ms, c.now + kRetransMs);
  EXPECT_EQ(c.flow().timeout_class, TimeoutClass::kTcpMaxRetrans);
  // Another segment starts the count again.
  c.send({1, ACK, S + 1, C + 1});
  EXPECT_EQ(c.window().retrans, 0);
  EXPECT_EQ(c.flow().expires_ms, c.now + kEstablishedMs);
}

TEST(TcpWindow, MaxRetransFollowsItsSysctl) {
  Conn c(with("nf_conntrack_tcp_max_retrans", 5));
  c.handshake();
  for (int i = 0; i < 4; ++i) c.send({0, ACK, C + 1, S + 1});
  EXPECT_EQ(c.flow().expires_ms, c.now + kEstablishedMs);
  c.send({0, ACK, C + 1, S + 1});
  EXPECT_EQ(c.flow().expires_ms, c.now + kRetransMs);
}

TEST(TcpWindow, ZeroWindowRunsOnTheMaxRetransTimeout) {
  Conn c;
  c.handshake();
  c.send({1, ACK, S + 1, C + 1, 0, /*win=*/0});
  EXPECT_EQ(c.flow().expires_ms, c.now + kRetransMs);
  c.send({1, ACK, S + 1, C + 1, 0, 1000});
  EXPECT_EQ(c.flow().expires_ms, c.now + kEstablishedMs);
}

TEST(TcpWindow, WindowScaleAppliesWhenBothSidesOfferIt) {
  Conn c;
  c.handshake(64240, wscale(7), wscale(7));
  EXPECT_EQ(c.window().seen[0].scale, 7);
  EXPECT_EQ(c.window().seen[1].scale, 7);
  // The server opens a window of 1000 << 7 = 128000 bytes.
  EXPECT_EQ(c.send({1, ACK, S + 1, C + 1, 0, 1000}), TrackVerdict::kAccept);
  c.now += 1000;
  EXPECT_EQ(c.send({0, PSH, C + 1 + 100000, S + 1, 100}), TrackVerdict::kAccept);
  EXPECT_EQ(c.window().seen[0].end, C + 100101);  // in the window: learnt, and
  EXPECT_EQ(c.flow().expires_ms, c.now + kUnackMs);  // the timer runs on
  EXPECT_EQ(c.ct().stats().invalid, 0u);
}

TEST(TcpWindow, WindowScaleOfferedByOneSideOnlyIsNotApplied) {
  Conn c;
  c.handshake(64240, wscale(7), {});
  EXPECT_EQ(c.window().seen[0].scale, 0);
  EXPECT_EQ(c.window().seen[1].scale, 0);
  EXPECT_EQ(c.send({1, ACK, S + 1, C + 1, 0, 1000}), TrackVerdict::kAccept);
  // The window is the SYN-ACK's 64240 bytes: this is more than a window past it
  // (netfilter lets up to one window of overshoot pass, untracked).
  EXPECT_EQ(c.send({0, PSH, C + 1 + 200000, S + 1, 100}), TrackVerdict::kInvalid);
}

TEST(TcpWindow, SackBlocksAreAcksToo) {
  Conn c;
  c.handshake(64240, sack_perm(), sack_perm());
  c.send({0, PSH, C + 1, S + 1, 1000});
  c.send({0, PSH, C + 1001, S + 1, 1000});  // sent up to C + 2001
  // The first segment lost, the second SACKed: valid.
  EXPECT_EQ(c.send({1, ACK, S + 1, C + 1, 0, 64240, sack_block(C + 1001, C + 2001)}), TrackVerdict::kAccept);
  // A SACK block past what was sent: invalid, though its ACK field is not.
  EXPECT_EQ(c.send({1, ACK, S + 1, C + 1, 0, 64240, sack_block(C + 1001, C + 2002)}), TrackVerdict::kInvalid);
}

TEST(TcpWindow, PickedUpConnectionIsCheckedLiberally) {
  Conn c;
  EXPECT_EQ(c.send({0, ACK, 777777, 123456}), TrackVerdict::kAccept);
  EXPECT_EQ(c.flow().tcp_state, TcpState::kEstablished);
  EXPECT_TRUE(c.window().seen[0].flags & kPeerLiberal);
  EXPECT_TRUE(c.window().seen[1].flags & kPeerLiberal);
  // Its window scale is unknown: anything goes.
  EXPECT_EQ(c.send({1, PSH, 123456 + 10'000'000, 777777, 100}), TrackVerdict::kAccept);
  EXPECT_EQ(c.send({0, PSH, 777777 + 5'000'000, 1, 100}), TrackVerdict::kAccept);
  EXPECT_EQ(c.ct().stats().invalid, 0u);
}

TEST(TcpWindow, RstBelowThePeersHighestAckIsInvalid) {
  Conn c;
  c.handshake();
  // The server ACKed up to C + 1; a RST from the client below that is not its own.
  EXPECT_EQ(c.send({0, RST, C - 500, 0}), TrackVerdict::kInvalid);
  EXPECT_EQ(c.flow().tcp_state, TcpState::kEstablished);
  // Not exactly at it (but in the window): the state stays, for a challenge ACK.
  EXPECT_EQ(c.send({0, RST, C + 50, 0}), TrackVerdict::kAccept);
  EXPECT_EQ(c.flow().tcp_state, TcpState::kEstablished);
  // Exactly at it: the connection is reset.
  EXPECT_EQ(c.send({0, RST, C + 1, 0}), TrackVerdict::kAccept);
  EXPECT_EQ(c.flow().tcp_state, TcpState::kClose);
}

// The kernel's own answers (Linux 6.18, probed through a namespace gateway
// with --ctstate INVALID -j DROP): a RST that ACKs the end of the segment the
// table let through last skips the window check when it answers the other
// side's SYN, or any side's ignored ACK; a RST from the SYN's own sender does not.
TEST(TcpWindow, RstAfterSynFromTheSameSide) {
  // Simultaneous SYNs; the server's is the last, its end was never recorded (0).
  auto simultaneous = [](Conn& c) {
    c.send({0, SYN, 1000});
    c.send({1, SYN, 5000});
    ASSERT_EQ(c.flow().tcp_state, TcpState::kSynSent2);
  };
  Conn a;
  simultaneous(a);
  EXPECT_EQ(a.send({0, RST, 200000, 0}), TrackVerdict::kAccept);  // from the other side
  EXPECT_EQ(a.flow().tcp_state, TcpState::kClose);
  Conn b;
  simultaneous(b);
  EXPECT_EQ(b.send({1, RST, 900000, 0}), TrackVerdict::kInvalid);  // from the SYN's sender
  EXPECT_EQ(b.flow().tcp_state, TcpState::kSynSent2);
  // An ignored ACK (the server's, in SYN_SENT2): a RST ACKing its end passes
  // from either side.
  for (int dir : {0, 1}) {
    Conn c;
    simultaneous(c);
    ASSERT_EQ(c.send({1, ACK, 5001, 1001, 10}), TrackVerdict::kAccept);  // ignored
    EXPECT_EQ(c.send({dir, RST, 900000, 5011}), TrackVerdict::kAccept) << dir;
    EXPECT_EQ(c.flow().tcp_state, TcpState::kClose) << dir;
  }
}

TEST(TcpWindow, IgnoreInvalidRstLetsItThrough) {
  Conn c(with("nf_conntrack_tcp_ignore_invalid_rst", 1));
  c.handshake();
  EXPECT_EQ(c.send({0, RST, C - 500, 0}), TrackVerdict::kAccept);
  EXPECT_EQ(c.flow().tcp_state, TcpState::kEstablished);  // not exact: kept
}

TEST(TcpWindow, RetransmittedSynDoesNotRenewTheTimer) {
  Conn c;
  c.send({0, SYN, C});
  const uint64_t expires = c.flow().expires_ms;
  EXPECT_EQ(expires, T0 + 120'000);
  c.now += 3000;
  EXPECT_EQ(c.send({0, SYN, C}), TrackVerdict::kAccept);
  EXPECT_EQ(c.flow().expires_ms, expires);
  EXPECT_EQ(c.flow().tcp_state, TcpState::kSynSent);
}

TEST(TcpWindow, ChallengeAckInLastAckIsNotTheFinalAck) {
  Conn c;
  c.handshake();
  c.send({0, FIN, C + 1, S + 1});
  c.send({1, ACK, S + 1, C + 2});
  c.send({1, FIN, S + 1, C + 2});
  ASSERT_EQ(c.flow().tcp_state, TcpState::kLastAck);
  // The client reuses the port before sending its final ACK (RFC 5961): the
  // server answers the SYN with a challenge ACK, which looks like the final ACK.
  EXPECT_EQ(c.send({0, SYN, 90000}), TrackVerdict::kAccept);  // ignored, passed
  EXPECT_EQ(c.send({1, ACK, S + 2, C + 2}), TrackVerdict::kAccept);
  EXPECT_EQ(c.flow().tcp_state, TcpState::kLastAck);
  // The real final ACK.
  EXPECT_EQ(c.send({0, ACK, C + 2, S + 2}), TrackVerdict::kAccept);
  EXPECT_EQ(c.flow().tcp_state, TcpState::kTimeWait);
}

TEST(TcpWindow, SynAckAnsweringAnIgnoredSynResynchronises) {
  Conn c;
  c.handshake();
  // The endpoints restarted the connection; the table only sees the new SYN
  // (ignored in ESTABLISHED) and the server's SYN-ACK to it.
  EXPECT_EQ(c.send({0, SYN, 70000, 0, 0, 29200, wscale(2)}), TrackVerdict::kAccept);
  EXPECT_EQ(c.flow().tcp_state, TcpState::kEstablished);
  EXPECT_EQ(c.send({1, SYN | ACK, 90000, 70001, 0, 29200, wscale(3)}), TrackVerdict::kAccept);
  EXPECT_EQ(c.flow().tcp_state, TcpState::kSynRecv);
  EXPECT_EQ(c.window().seen[0].end, 70001u);
  EXPECT_EQ(c.window().seen[1].end, 90001u);
  EXPECT_EQ(c.window().seen[0].scale, 2);
  EXPECT_EQ(c.window().seen[1].scale, 3);
  EXPECT_EQ(c.send({0, ACK, 70001, 90001}), TrackVerdict::kAccept);
  EXPECT_EQ(c.flow().tcp_state, TcpState::kEstablished);
  // A SYN-ACK acking something else is only ignored.
  Conn d;
  d.handshake();
  d.send({0, SYN, 70000});
  EXPECT_EQ(d.send({1, SYN | ACK, 90000, 12345}), TrackVerdict::kAccept);
  EXPECT_EQ(d.flow().tcp_state, TcpState::kEstablished);
}

TEST(TcpWindow, OutOfWindowFinAnsweringAFinShortensTheTimeout) {
  Conn c;
  c.handshake();
  const uint64_t expires = c.flow().expires_ms;  // ESTABLISHED: 5 days
  c.now += 1000;
  // The server's FIN is far out of the window: invalid, and only noted.
  EXPECT_EQ(c.send({1, FIN, S + 1 + 200000, C + 1}), TrackVerdict::kInvalid);
  EXPECT_EQ(c.flow().expires_ms, expires);
  // The client's answer is out of the window too: both sides think the
  // connection is closing and the table does not, so netfilter stops waiting
  // 5 days for it (nf_tcp_handle_invalid).
  EXPECT_EQ(c.send({0, FIN, C + 1 + 200000, S + 1}), TrackVerdict::kInvalid);
  EXPECT_EQ(c.flow().expires_ms, c.now + kUnackMs);
  EXPECT_EQ(c.flow().tcp_state, TcpState::kEstablished);
  EXPECT_EQ(c.ct().stats().invalid, 2u);
}

TEST(TcpWindow, FragmentedSegmentMakesTheConnectionLiberal) {
  Conn c;
  c.handshake(1000);
  Seg first{0, PSH, C + 1, S + 1, 600};
  first.first_fragment = true;  // its length is the fragment's, not the segment's
  EXPECT_EQ(c.send(first), TrackVerdict::kAccept);
  EXPECT_TRUE(c.window().seen[0].flags & kPeerLiberal);
  // The server ACKs the whole segment (1400 bytes, say): not "ACK over upper bound".
  EXPECT_EQ(c.send({1, ACK, S + 1, C + 1401}), TrackVerdict::kAccept);
  EXPECT_EQ(c.ct().stats().invalid, 0u);
}

TEST(TcpWindow, WithoutWindowTrackingNoWindowIsKept) {
  ConntrackSettings s = with("xnat_tcp_window_tracking", 0);
  EXPECT_FALSE(s.check().ok());  // needs be_liberal = 1 said too
  ASSERT_TRUE(s.set("nf_conntrack_tcp_be_liberal", 1).ok());
  EXPECT_TRUE(s.check().ok());
  Conn c(s);
  c.handshake(1000);
  EXPECT_EQ(c.ct().window(0), nullptr);
  EXPECT_EQ(c.send({0, PSH, C + 1 + 5000, S + 1, 100}), TrackVerdict::kAccept);
  c.send({0, PSH, C + 1, S + 1, 100});
  EXPECT_EQ(c.flow().expires_ms, c.now + kEstablishedMs);  // no unacknowledged-data timeout
}

TEST(TcpWindow, MalformedOptionsAreSkipped) {
  Conn c;
  // An option whose length runs past the header, a zero-length option, a
  // window scale above 14: none may read past the options or crash.
  c.handshake(64240, {3, 3, 200}, {2, 40});
  EXPECT_EQ(c.window().seen[0].scale, 0);  // the server did not offer scaling
  Conn d;
  d.handshake(64240, {3, 3, 200}, {3, 3, 9});
  EXPECT_EQ(d.window().seen[0].scale, 14);  // capped, as netfilter does
  EXPECT_EQ(d.window().seen[1].scale, 9);
  Conn e;
  e.handshake(64240, {8, 0, 3, 3, 5}, {});
  EXPECT_FALSE(e.window().seen[0].flags & kPeerWindowScale);  // parsing stopped at the silly option
}

}  // namespace
}  // namespace xnat
