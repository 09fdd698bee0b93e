// Connection events (events.h): what `conntrack -E` shows for the packets of
// a connection, checked against lines the kernel's ctnetlink gave for the
// same exchanges (conntrack v1.4.7, kernel 6.18, MASQUERADE).
#include "conntrack/events.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "conntrack/conntrack.h"
#include "conntrack/listing.h"
#include "packet/frame_builder.h"

namespace xnat {
namespace {

const uint64_t T0 = 1'000'000'000;

ParsedPacket parse(const std::vector<uint8_t>& f) {
  ParsedPacket p;
  EXPECT_EQ(parse_frame(f.data(), f.size(), {}, &p), ParseStatus::kOk);
  return p;
}

// The client 198.18.0.2 behind MASQUERADE to 198.19.0.1, the server 198.19.0.2.
ParsedPacket tcp(int dir, uint8_t flags, uint32_t seq, uint32_t ack) {
  return dir == 0 ? parse(FrameBuilder().ip("198.18.0.2", "198.19.0.2").tcp(41632, 8080, flags, seq, ack).build())
                  : parse(FrameBuilder().ip("198.19.0.2", "198.19.0.1").tcp(8080, 41632, flags, seq, ack).build());
}

struct Events {
  EventRing ring{64};
  std::vector<std::string> lines(uint64_t now, EntryFormat fmt = EntryFormat::kExtended, bool id = false) {
    std::vector<std::string> out;
    ring.drain([&](const FlowEvent& e) {
      std::string s;
      append_conntrack_entry(&s, e.flow, event_view(e, now, id), fmt);
      out.push_back(s);
    });
    return out;
  }
};

uint32_t open_masqueraded(Conntrack& ct, const ParsedPacket& p, uint64_t now) {
  Tuple reply = invert(p.tuple);
  reply.dst = ip_raw("198.19.0.1");
  const uint32_t idx = ct.insert(p.tuple, reply, now).idx;
  EXPECT_NE(idx, kNoRef);
  ct.set_src_nat(idx);
  ct.track_opening(idx, p, now);
  return idx;
}

const std::string kOrig = "src=198.18.0.2 dst=198.19.0.2 sport=41632 dport=8080 ";
const std::string kReply = "src=198.19.0.2 dst=198.19.0.1 sport=8080 dport=41632";

TEST(Events, TcpConnectionAsTheKernelReportsIt) {
  ConntrackSettings s;
  ASSERT_TRUE(s.set("nf_conntrack_tcp_timeout_time_wait", 2).ok());
  Conntrack ct(s, 1);
  Events ev;
  ct.set_events(&ev.ring, kEventAll);
  const uint32_t idx = open_masqueraded(ct, tcp(0, kTcpSyn, 100, 0), T0);
  ct.track(idx, 1, tcp(1, kTcpSyn | kTcpAck, 500, 101), T0 + 1);
  ct.track(idx, 0, tcp(0, kTcpAck, 101, 501), T0 + 2);
  ct.track(idx, 0, tcp(0, kTcpAck | kTcpPsh, 101, 501), T0 + 3);  // no change: no event
  ct.track(idx, 0, tcp(0, kTcpFin | kTcpAck, 101, 501), T0 + 4);
  ct.track(idx, 1, tcp(1, kTcpFin | kTcpAck, 501, 102), T0 + 5);
  ct.track(idx, 0, tcp(0, kTcpAck, 102, 502), T0 + 6);
  ct.expire(T0 + 6 + 3000);
  const std::vector<std::string> want = {
      "    [NEW] ipv4     2 tcp      6 120 SYN_SENT " + kOrig + "[UNREPLIED] " + kReply,
      " [UPDATE] ipv4     2 tcp      6 60 SYN_RECV " + kOrig + kReply,
      " [UPDATE] ipv4     2 tcp      6 432000 ESTABLISHED " + kOrig + kReply + " [ASSURED]",
      " [UPDATE] ipv4     2 tcp      6 120 FIN_WAIT " + kOrig + kReply + " [ASSURED]",
      " [UPDATE] ipv4     2 tcp      6 30 LAST_ACK " + kOrig + kReply + " [ASSURED]",
      " [UPDATE] ipv4     2 tcp      6 2 TIME_WAIT " + kOrig + kReply + " [ASSURED]",
      // Expired: no timeout left to show.
      "[DESTROY] ipv4     2 tcp      6 TIME_WAIT " + kOrig + kReply + " [ASSURED]",
  };
  EXPECT_EQ(ev.lines(T0 + 6 + 3000), want);
  EXPECT_EQ(ev.ring.lost(), 0u);
}

TEST(Events, UdpReplyThenAssuredThenDeleted) {
  Conntrack ct(ConntrackSettings{}, 1);
  Events ev;
  ct.set_events(&ev.ring, kEventAll);
  auto out = parse(FrameBuilder().ip("198.18.0.2", "198.19.0.2").udp(4444, 5353).build());
  auto back = parse(FrameBuilder().ip("198.19.0.2", "198.19.0.1").udp(5353, 4444).build());
  const uint32_t idx = open_masqueraded(ct, out, T0);
  ct.track(idx, 1, back, T0 + 10);
  ct.track(idx, 0, out, T0 + 20);   // nothing changes
  ct.track(idx, 0, out, T0 + 2500);  // both ways, after 2 s: a stream, ASSURED
  ct.remove(idx);                    // conntrack -D: the timeout left shows
  const std::string o = "src=198.18.0.2 dst=198.19.0.2 sport=4444 dport=5353 ";
  const std::string r = "src=198.19.0.2 dst=198.19.0.1 sport=5353 dport=4444";
  const std::vector<std::string> want = {
      "    [NEW] udp      17 30 " + o + "[UNREPLIED] " + r,
      " [UPDATE] udp      17 30 " + o + r,
      " [UPDATE] udp      17 120 " + o + r + " [ASSURED]",
      "[DESTROY] udp      17 119 " + o + r + " [ASSURED]",
  };
  EXPECT_EQ(ev.lines(T0 + 3000, EntryFormat::kDefault), want);
}

TEST(Events, MaskSelectsAndNoReaderCostsNothing) {
  Conntrack ct(ConntrackSettings{}, 1);
  Events ev;
  auto out = parse(FrameBuilder().ip("198.18.0.2", "198.19.0.2").udp(4444, 5353).build());
  auto back = parse(FrameBuilder().ip("198.19.0.2", "198.19.0.1").udp(5353, 4444).build());
  uint32_t idx = open_masqueraded(ct, out, T0);  // no ring: nothing recorded
  ct.remove(idx);
  EXPECT_TRUE(ev.lines(T0).empty());
  ct.set_events(&ev.ring, kEventNew | kEventDestroy);
  idx = open_masqueraded(ct, out, T0);
  ct.track(idx, 1, back, T0 + 1);  // an update, not asked for
  ct.remove(idx);
  const auto lines = ev.lines(T0 + 2, EntryFormat::kDefault);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_TRUE(lines[0].starts_with("    [NEW] "));
  EXPECT_TRUE(lines[1].starts_with("[DESTROY] "));
  ct.set_events(nullptr, kEventAll);  // no ring: off whatever the mask
  EXPECT_EQ(ct.event_mask(), 0);
}

TEST(Events, AFullRingCountsWhatItLoses) {
  ConntrackSettings s;
  ASSERT_TRUE(s.set("nf_conntrack_max", 1000).ok());
  Conntrack ct(s, 1);
  EventRing ring(16);
  ct.set_events(&ring, kEventAll);
  for (uint16_t i = 0; i < 40; ++i)
    open_masqueraded(ct, parse(FrameBuilder().ip("198.18.0.2", "198.19.0.2").udp(uint16_t(1000 + i), 53).build()), T0);
  EXPECT_EQ(ring.lost(), 24u);
  uint32_t n = ring.drain([](const FlowEvent&) {});
  EXPECT_EQ(n, 16u);
}

TEST(Events, MarkShownWhenSetOrChanged) {
  Conntrack ct(ConntrackSettings{}, 1);
  ct.keep_marks();
  Events ev;
  ct.set_events(&ev.ring, kEventAll);
  auto out = parse(FrameBuilder().ip("198.18.0.2", "198.19.0.2").udp(4444, 5353).build());
  Tuple reply = invert(out.tuple);
  const uint32_t idx = ct.insert(out.tuple, reply, T0).idx;
  *ct.mark_ref(idx) = 7;  // CONNMARK on the first packet
  ct.track_opening(idx, out, T0);
  *ct.mark_ref(idx) = 0;  // a later rule clears it: shown, though 0
  ct.mark_changed(ct.mark_ref(idx), T0 + 1);
  const auto lines = ev.lines(T0 + 1, EntryFormat::kDefault, /*id=*/true);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "    [NEW] udp      17 30 src=198.18.0.2 dst=198.19.0.2 sport=4444 dport=5353 [UNREPLIED] "
                      "src=198.19.0.2 dst=198.18.0.2 sport=5353 dport=4444 mark=7 id=" + std::to_string(idx));
  EXPECT_TRUE(lines[1].starts_with(" [UPDATE] udp      17 29 ")) << lines[1];
  EXPECT_TRUE(lines[1].ends_with(" mark=0 id=" + std::to_string(idx))) << lines[1];
}

// With filter rules after conntrack, a packet's UPDATE waits for its
// verdict: a dropped packet's changes go out merged with the next passing
// packet's, as netfilter's event cache delivers them at confirm.
TEST(Events, UpdatesWaitForThePacketToPass) {
  Conntrack ct(ConntrackSettings{}, 1);
  ct.keep_marks();
  ct.hold_updates(true);
  Events ev;
  ct.set_events(&ev.ring, kEventAll);
  const uint32_t idx = open_masqueraded(ct, tcp(0, kTcpSyn, 100, 0), T0);
  ct.track(idx, 1, tcp(1, kTcpSyn | kTcpAck, 500, 101), T0 + 1);  // SYN_RECV, then dropped by a rule
  EXPECT_EQ(ev.lines(T0 + 1).size(), 1u);                          // the NEW alone
  ct.track(idx, 0, tcp(0, kTcpAck, 101, 501), T0 + 2);              // ESTABLISHED
  *ct.mark_ref(idx) = 5;                                            // and CONNMARK on the way
  ct.mark_changed(ct.mark_ref(idx), T0 + 2);
  EXPECT_TRUE(ev.lines(T0 + 2).empty());
  ct.accepted(idx, T0 + 2);  // it passed: one UPDATE for both packets
  EXPECT_EQ(ev.lines(T0 + 2), std::vector<std::string>{" [UPDATE] ipv4     2 tcp      6 432000 ESTABLISHED " + kOrig +
                                                       kReply + " [ASSURED] mark=5"});
  ct.accepted(idx, T0 + 3);  // nothing more to say
  EXPECT_TRUE(ev.lines(T0 + 3).empty());
}

TEST(Events, XmlAsLibnetfilterConntrackPrintsIt) {
  Conntrack ct(ConntrackSettings{}, 1);
  Events ev;
  ct.set_events(&ev.ring, kEventAll);
  open_masqueraded(ct, tcp(0, kTcpSyn, 100, 0), T0);
  const auto lines = ev.lines(T0, EntryFormat::kXml);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "<flow type=\"new\"><meta direction=\"original\"><layer3 protonum=\"2\" protoname=\"ipv4\"><src>198.18.0.2"
            "</src><dst>198.19.0.2</dst></layer3><layer4 protonum=\"6\" protoname=\"tcp\"><sport>41632</sport><dport>"
            "8080</dport></layer4></meta><meta direction=\"reply\"><layer3 protonum=\"2\" protoname=\"ipv4\"><src>"
            "198.19.0.2</src><dst>198.19.0.1</dst></layer3><layer4 protonum=\"6\" protoname=\"tcp\"><sport>8080"
            "</sport><dport>41632</dport></layer4></meta><meta direction=\"independent\"><state>SYN_SENT</state>"
            "<timeout>120</timeout><id>0</id><unreplied/></meta></flow>");
}

TEST(Listing, XmlEntryAsConntrackListsIt) {
  Conntrack ct(ConntrackSettings{}, 1);
  auto echo = parse(FrameBuilder().ip("198.18.0.2", "198.19.0.2").icmp(kIcmpEcho, 0, 6876, 1).build());
  Tuple reply = invert(echo.tuple);
  reply.dst = ip_raw("198.19.0.1");
  const uint32_t idx = ct.insert(echo.tuple, reply, T0).idx;
  ct.track_opening(idx, echo, T0);
  ct.track(idx, 1, parse(FrameBuilder().ip("198.19.0.2", "198.19.0.1").icmp(kIcmpEchoReply, 0, 6876, 1).build()), T0);
  std::string s;
  append_conntrack_entry(&s, ct.flow(idx), listing_view(ct.flow(idx), T0 + 1000, 0, 3973420664u), EntryFormat::kXml);
  // The kernel's line for the same ping (ICMP's layer4 element is empty).
  EXPECT_EQ(s,
            "<flow><meta direction=\"original\"><layer3 protonum=\"2\" protoname=\"ipv4\"><src>198.18.0.2</src><dst>"
            "198.19.0.2</dst></layer3><layer4 protonum=\"1\" protoname=\"icmp\"></layer4></meta><meta direction="
            "\"reply\"><layer3 protonum=\"2\" protoname=\"ipv4\"><src>198.19.0.2</src><dst>198.19.0.1</dst></layer3>"
            "<layer4 protonum=\"1\" protoname=\"icmp\"></layer4></meta><meta direction=\"independent\"><timeout>29"
            "</timeout><mark>0</mark><use>1</use><id>3973420664</id></meta></flow>");
}

}  // namespace
}  // namespace xnat
