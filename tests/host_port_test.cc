// Connections translated for the host's own stack (REDIRECT): the engine hands
// the translated frames to the host, enters the reply tuple where the live
// gateway's egress program finds it (LocalClaims::host_reply), and translates
// back what the host sends through the host port. The egress program's key
// (src/live/steer.h) must be the reply tuple's bytes.
#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <vector>

#include "conntrack/conntrack.h"
#include "live/local_claims.h"
#include "live/worker.h"
#include "live/steer.h"
#include "packet/parse.h"
#include "test_util.h"

namespace xnat::test {
namespace {

const std::string kRedirect =
    nat_table("-A PREROUTING -i eth1 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3128\n"
              "-A PREROUTING -i eth1 -p udp -m udp --dport 53 -j REDIRECT --to-ports 5300\n");

// The live gateway's side of LocalClaims, recorded.
struct Recorder {
  std::vector<uint64_t> counts = std::vector<uint64_t>(XNAT_CLAIM_ENTRIES, 0);
  LocalClaims claims;
  std::set<std::pair<uint64_t, uint64_t>> replies;  // reply tuples entered, as their two words
  int adds = 0, removes = 0;

  explicit Recorder(Engine& e) {
    claims.counts = counts.data();
    set_claim_addrs(&claims, e.fib());
    claims.host_reply = [](void* ctx, const Tuple& t, bool add) {
      auto* r = static_cast<Recorder*>(ctx);
      if (add) {
        ++r->adds;
        r->replies.insert({t.word0(), t.word1()});
      } else {
        ++r->removes;
        r->replies.erase({t.word0(), t.word1()});
      }
    };
    claims.host_reply_ctx = this;
    e.set_flow_observer(&claims);
  }
  bool has(const Tuple& t) const { return replies.count({t.word0(), t.word1()}) != 0; }
};


// What the host's proxy sends back to the client, as it leaves (TTL 64).
std::vector<uint8_t> from_host(uint8_t flags, uint32_t seq, uint32_t ack) {
  return FrameBuilder().eth(kInMac, kClientMac).ip("198.18.0.1", "198.18.0.2").ttl(64).tcp(3128, 41000, flags, seq, ack).build();
}

TEST(HostPort, RedirectedConnectionGoesToTheHostAndItsAnswersComeBack) {
  auto e = make_engine(kRedirect);
  Recorder rec(*e);

  // The client's SYN to a web server: for the host, rewritten to 198.18.0.1:3128.
  const Output syn = run(*e, FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.51.100.7").tcp(41000, 80, kTcpSyn, 100).build(), kIn, 1000);
  ASSERT_EQ(syn.verdict, Verdict::kToHost);
  EXPECT_EQ(syn.frame, FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.18.0.1").tcp(41000, 3128, kTcpSyn, 100).build())
      << describe(syn.frame);
  // Its reply tuple is entered for the egress program.
  const Tuple reply = tuple_of("198.18.0.1", 3128, "198.18.0.2", 41000, kProtoTcp);
  EXPECT_TRUE(rec.has(reply));
  EXPECT_EQ(rec.adds, 1);

  // The host's SYN/ACK, from the host port: translated back to the web
  // server's address and port, out to the client, TTL as the host set it.
  const Output synack = run(*e, from_host(kTcpSyn | kTcpAck, 5000, 101), kHostPort, 1001);
  ASSERT_EQ(synack.verdict, Verdict::kForward) << describe(synack.frame);
  EXPECT_EQ(synack.out_if, kIn);
  EXPECT_EQ(synack.frame,
            FrameBuilder().eth(kInMac, kClientMac).ip("198.51.100.7", "198.18.0.2").ttl(64).tcp(80, 41000, kTcpSyn | kTcpAck, 5000, 101).build())
      << describe(synack.frame);

  // The client's ACK: for the host, translated as the first packet was.
  const Output ack = run(*e, FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.51.100.7").tcp(41000, 80, kTcpAck, 101, 5001).build(), kIn, 1002);
  ASSERT_EQ(ack.verdict, Verdict::kToHost);
  EXPECT_EQ(ack.frame, FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.18.0.1").tcp(41000, 3128, kTcpAck, 101, 5001).build())
      << describe(ack.frame);
  EXPECT_EQ(e->conntrack().count(), 1u);
  EXPECT_EQ(e->counters().get(Counter::tracked_frames), 1u);  // the SYN/ACK

  // The flow expires: its reply tuple leaves the map with it.
  e->conntrack().expire(1002 + 3'600'000ull * 24 * 6);
  EXPECT_EQ(e->conntrack().count(), 0u);
  EXPECT_FALSE(rec.has(reply));
  EXPECT_EQ(rec.removes, 1);
}

TEST(HostPort, WhatTheHostSendsWithoutAFlowIsDroppedAndCountedNeverTracked) {
  auto e = make_engine(kRedirect);
  Recorder rec(*e);
  const Output o = run(*e, from_host(kTcpSyn | kTcpAck, 5000, 101), kHostPort, 1000);
  EXPECT_EQ(o.verdict, Verdict::kDrop);
  EXPECT_EQ(o.reason, Counter::drop_host_untracked);
  EXPECT_EQ(e->counters().get(Counter::drop_host_untracked), 1u);
  EXPECT_EQ(e->conntrack().count(), 0u);
  EXPECT_EQ(rec.adds, 0);
}

TEST(HostPort, AnIcmpErrorFromTheHostIsTranslatedBack) {
  // A REDIRECTed DNS query to a port nothing listens on: the host answers
  // port unreachable, quoting the query as it received it.
  auto e = make_engine(kRedirect);
  Recorder rec(*e);
  const auto query = FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.51.100.53").udp(6000, 53).payload("q").build();
  const Output q = run(*e, query, kIn, 1000);
  ASSERT_EQ(q.verdict, Verdict::kToHost);
  EXPECT_TRUE(rec.has(tuple_of("198.18.0.1", 5300, "198.18.0.2", 6000, kProtoUdp)));
  const auto as_received = FrameBuilder().ip("198.18.0.2", "198.18.0.1").udp(6000, 5300).payload("q").ip_part();
  const auto err = FrameBuilder().eth(kInMac, kClientMac).ip("198.18.0.1", "198.18.0.2").ttl(64).icmp_error(kIcmpDestUnreach, 3, as_received).build();
  const Output o = run(*e, err, kHostPort, 1001);
  ASSERT_EQ(o.verdict, Verdict::kForward) << describe(o.frame);
  const auto as_sent = FrameBuilder().ip("198.18.0.2", "198.51.100.53").udp(6000, 53).payload("q").ip_part();
  EXPECT_EQ(o.frame, FrameBuilder().eth(kInMac, kClientMac).ip("198.51.100.53", "198.18.0.2").ttl(64).icmp_error(kIcmpDestUnreach, 3, as_sent).build())
      << describe(o.frame);
}

// The egress program's key, against the parser's tuple of the same frame.
Tuple key_of(const std::vector<uint8_t>& frame, bool* ok) {
  xnat_tuple_key k;
  std::memset(&k, 0xee, sizeof k);
  const uint8_t* end = frame.data() + frame.size();
  const uint8_t* ip = xnat_ipv4_header(frame.data(), end);
  *ok = ip && xnat_host_reply_key(ip, end, &k) == 1;
  Tuple t;
  std::memcpy(static_cast<void*>(&t), &k, sizeof t);
  return t;
}

Tuple parsed_tuple(const std::vector<uint8_t>& frame, bool inverted_inner) {
  ParsedPacket p;
  EXPECT_EQ(parse_frame(frame.data(), frame.size(), ParseOptions{}, &p), ParseStatus::kOk);
  return inverted_inner ? invert(p.inner) : p.tuple;
}

TEST(HostPort, EgressKeyIsTheTupleOfTheConnection) {
  const std::vector<std::vector<uint8_t>> plain = {
      FrameBuilder().eth(kInMac, kClientMac).ip("198.18.0.1", "198.18.0.2").tcp(3128, 41000, kTcpAck, 5, 6).build(),
      FrameBuilder().eth(kInMac, kClientMac).vlan(7).ip("198.18.0.1", "198.18.0.2").udp(5300, 6000).payload("a").build(),
      FrameBuilder().eth(kInMac, kClientMac).ip("198.18.0.1", "198.18.0.2").icmp(kIcmpEchoReply, 0, 77, 1).build(),
      FrameBuilder().eth(kInMac, kClientMac).ip("198.18.0.1", "198.18.0.2").frag(0x2000).udp(5300, 6000).payload("first").build(),
  };
  for (const auto& f : plain) {
    bool ok = false;
    const Tuple k = key_of(f, &ok);
    ASSERT_TRUE(ok) << describe(f);
    EXPECT_EQ(k, parsed_tuple(f, false)) << describe(f);
  }
  // Errors: the inverse of the quoted datagram, i.e. the reply tuple of the
  // connection they are about (a UDP query; an echo request, whose reply
  // tuple has the echo reply type).
  const std::vector<std::vector<uint8_t>> errors = {
      FrameBuilder().eth(kInMac, kClientMac).ip("198.18.0.1", "198.18.0.2")
          .icmp_error(kIcmpDestUnreach, 3, FrameBuilder().ip("198.18.0.2", "198.18.0.1").udp(6000, 5300).payload("q").ip_part()).build(),
      FrameBuilder().eth(kInMac, kClientMac).ip("198.18.0.1", "198.18.0.2")
          .icmp_error(kIcmpTimeExceeded, 0, FrameBuilder().ip("198.18.0.2", "198.18.0.1").icmp(kIcmpEcho, 0, 9, 1).ip_part()).build(),
  };
  for (const auto& f : errors) {
    bool ok = false;
    const Tuple k = key_of(f, &ok);
    ASSERT_TRUE(ok) << describe(f);
    EXPECT_EQ(k, parsed_tuple(f, true)) << describe(f);
  }
  bool ok = false;
  EXPECT_EQ(key_of(errors[1], &ok).icmp_type(), kIcmpEchoReply);
}

TEST(HostPort, EgressKeyRefusesWhatNoConnectionCanHave) {
  bool ok = true;
  auto later = FrameBuilder().eth(kInMac, kClientMac).ip("198.18.0.1", "198.18.0.2").frag(185).udp(5300, 6000).payload("x").build();
  (void)key_of(later, &ok);
  EXPECT_FALSE(ok) << "a later fragment has no ports";
  auto arp = FrameBuilder().eth(kInMac, kClientMac).ip("198.18.0.1", "198.18.0.2").udp(1, 2).build();
  arp[12] = 0x08, arp[13] = 0x06;
  (void)key_of(arp, &ok);
  EXPECT_FALSE(ok) << "not IPv4";
  auto tcp = FrameBuilder().eth(kInMac, kClientMac).ip("198.18.0.1", "198.18.0.2").tcp(3128, 41000, kTcpAck).build();
  for (size_t len = 0; len < 14 + 20 + 8; ++len) {
    const std::vector<uint8_t> cut(tcp.begin(), tcp.begin() + static_cast<long>(len));
    (void)key_of(cut, &ok);
    EXPECT_FALSE(ok) << "truncated at " << len;
  }
  auto gre = tcp;
  gre[14 + 9] = 47;
  (void)key_of(gre, &ok);
  EXPECT_FALSE(ok) << "another protocol";
}

}  // namespace
}  // namespace xnat::test
