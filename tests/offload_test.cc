// Hosts' offloads through the engine and the software fallbacks
// (packet/offload.h): partial checksums, flagged or not, and super-frames cut
// into frames.
#include <gtest/gtest.h>

#include <numeric>

#include "golden_cases.h"
#include "packet/checksum.h"
#include "packet/offload.h"
#include "packet/parse.h"
#include "test_util.h"

namespace xnat::test {
namespace {

const std::string kMasq = nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n");

std::vector<uint8_t> bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 8));
  return v;
}

// What a host with tx checksumming leaves in the frame.
std::vector<uint8_t> partial(std::vector<uint8_t> f) {
  EXPECT_TRUE(set_partial_l4_checksum(f.data(), static_cast<uint32_t>(f.size())));
  return f;
}

Output run_as(Engine& e, const std::vector<uint8_t>& frame, int in_if, uint64_t now, L4Csum csum, Packet* out = nullptr) {
  std::vector<uint8_t> buf;
  Packet p = received(&buf, frame, in_if);
  p.l4_csum = csum;
  e.process(p, now);
  if (out) *out = p;
  return result(p);
}

uint64_t counter(const Engine& e, Counter c) { return e.counters().v[static_cast<size_t>(c)]; }

TEST(Offload, PartialThenFinishedIsTheFullChecksum) {
  for (auto full : {from_client().tcp(40000, 80, kTcpAck | kTcpPsh, 5, 9).payload(bytes(999, 1)).build(),
                    from_client().udp(40000, 53).payload(bytes(301, 2)).build()}) {
    std::vector<uint8_t> f = partial(full);
    EXPECT_NE(f, full);
    ASSERT_TRUE(finish_l4_checksum(f.data(), static_cast<uint32_t>(f.size())));
    EXPECT_EQ(f, full);
  }
  auto icmp = from_client().icmp(8, 0, 1, 1).build();
  EXPECT_FALSE(set_partial_l4_checksum(icmp.data(), static_cast<uint32_t>(icmp.size())));
}

TEST(Offload, MaybePartialChecksumIsCompletedAndCounted) {
  for (auto full : {from_client().tcp(40000, 80, kTcpSyn).build(),
                    from_client().udp(40000, 53).payload(bytes(100, 3)).build()}) {
    auto ref = make_engine(kMasq);
    auto e = make_engine(kMasq);
    Output want = run(*ref, full, kIn, 1000);
    ASSERT_EQ(want.verdict, Verdict::kForward);
    Output got = run_as(*e, partial(full), kIn, 1000, L4Csum::kMaybePartial);
    ASSERT_EQ(got.verdict, Verdict::kForward) << counter_name(got.reason);
    EXPECT_EQ(got.frame, want.frame) << "got:  " << describe(got.frame) << "\nwant: " << describe(want.frame);
    EXPECT_EQ(counter(*e, Counter::l4_csum_completed), 1u);
    // A full checksum on such a device is left alone.
    Output again = run_as(*e, full, kIn, 1001, L4Csum::kMaybePartial);
    EXPECT_EQ(again.verdict, Verdict::kForward);
    EXPECT_EQ(counter(*e, Counter::l4_csum_completed), 1u);
  }
}

TEST(Offload, MaybePartialIsCompletedWithVerificationOff) {
  auto full = from_client().udp(40000, 53).payload(bytes(64, 4)).build();
  auto ref = make_engine(kMasq, "nf_conntrack_checksum = false");
  auto e = make_engine(kMasq, "nf_conntrack_checksum = false");
  Output want = run(*ref, full, kIn, 1000);
  Output got = run_as(*e, partial(full), kIn, 1000, L4Csum::kMaybePartial);
  ASSERT_EQ(got.verdict, Verdict::kForward);
  EXPECT_EQ(got.frame, want.frame);
}

TEST(Offload, WrongChecksumIsStillDropped) {
  for (auto f : {from_client().tcp(40000, 80, kTcpSyn).build(), from_client().udp(40000, 53).build()}) {
    for (L4Csum mode : {L4Csum::kFull, L4Csum::kMaybePartial}) {
      auto e = make_engine(kMasq);
      std::vector<uint8_t> bad = partial(f);
      ParsedPacket pp;
      ASSERT_EQ(parse_frame(f.data(), f.size(), {}, &pp), ParseStatus::kOk);
      bad[pp.l4 + (pp.tuple.proto == kProtoTcp ? 16 : 6)] ^= 0x21;  // neither full nor the pseudo-header's sum
      Output o = run_as(*e, bad, kIn, 1000, mode);
      EXPECT_EQ(o.verdict, Verdict::kDrop);
      EXPECT_EQ(o.reason, Counter::drop_bad_l4_checksum);
      EXPECT_EQ(counter(*e, Counter::l4_csum_completed), 0u);
      EXPECT_EQ(e->conntrack().count(), 0u);
    }
  }
}

TEST(Offload, KnownPartialStaysPartialThroughTranslation) {
  auto full = from_client().tcp(40000, 80, kTcpSyn).build();
  auto ref = make_engine(kMasq);
  auto e = make_engine(kMasq);
  Output want = run(*ref, full, kIn, 1000);
  Packet p;
  Output got = run_as(*e, partial(full), kIn, 1000, L4Csum::kPartial, &p);
  ASSERT_EQ(got.verdict, Verdict::kForward);
  EXPECT_EQ(p.l4_csum, L4Csum::kPartial);
  // The field is the translated header's pseudo-header sum: finishing it
  // gives exactly what a full checksum's translation gives.
  EXPECT_EQ(got.frame, partial(want.frame));
  std::vector<uint8_t> finished = got.frame;
  ASSERT_TRUE(finish_l4_checksum(finished.data(), static_cast<uint32_t>(finished.size())));
  EXPECT_EQ(finished, want.frame);
  // The reply direction (de-NAT) too.
  ParsedPacket pw;
  ASSERT_EQ(parse_frame(want.frame.data(), want.frame.size(), {}, &pw), ParseStatus::kOk);
  auto reply = FrameBuilder()
                   .eth(kRouterMac, kOutMac)
                   .ip("198.51.100.7", "198.19.0.1")
                   .tcp(80, __builtin_bswap16(pw.tuple.sport), kTcpSyn | kTcpAck, 7000, 1001)
                   .build();
  Output rwant = run(*ref, reply, kOut, 1001);
  Output rgot = run_as(*e, partial(reply), kOut, 1001, L4Csum::kPartial);
  ASSERT_EQ(rwant.verdict, Verdict::kForward);
  ASSERT_EQ(rgot.verdict, Verdict::kForward);
  EXPECT_EQ(rgot.frame, partial(rwant.frame));
}

TEST(Offload, PartialFrameReplacedByIcmpErrorIsComplete) {
  auto e = make_engine(kMasq);
  Packet p;
  Output o = run_as(*e, partial(from_client().ttl(1).udp(40000, 53).build()), kIn, 1000, L4Csum::kPartial, &p);
  ASSERT_EQ(o.verdict, Verdict::kForward);  // the time-exceeded error, back to the client
  EXPECT_EQ(p.l4_csum, L4Csum::kFull);
  ParsedPacket pp;
  EXPECT_EQ(parse_frame(o.frame.data(), o.frame.size(), {}, &pp), ParseStatus::kOk);
  EXPECT_EQ(pp.tuple.proto, kProtoIcmp);
}

// A super-frame through the engine stays one frame; cut afterwards, its
// pieces are what the receiver's stack would have got from the sender's GSO.
TEST(Offload, TcpSuperFrameIsTranslatedWholeAndCutExactly) {
  const std::vector<uint8_t> data = bytes(10000, 5);
  auto full = from_client()
                  .ip_id(100)
                  .tcp(40000, 80, kTcpAck | kTcpPsh | kTcpFin | kTcpCwr, 5000, 77)
                  .tcp_options({1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2})
                  .payload(data)
                  .build();
  auto e = make_engine(kMasq);
  auto ref = make_engine(kMasq);
  for (Engine* en : {e.get(), ref.get()}) {  // the handshake, as window tracking wants it
    ASSERT_EQ(run(*en, from_client().tcp(40000, 80, kTcpSyn, 4999).build(), kIn, 997).verdict, Verdict::kForward);
    auto synack = FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").tcp(80, 40000, kTcpSyn | kTcpAck, 76, 5000);
    ASSERT_EQ(run(*en, synack.build(), kOut, 998).verdict, Verdict::kForward);
    ASSERT_EQ(run(*en, from_client().tcp(40000, 80, kTcpAck, 5000, 77).build(), kIn, 999).verdict, Verdict::kForward);
  }
  Packet p;
  std::vector<uint8_t> buf;
  p = received(&buf, partial(full), kIn);
  p.l4_csum = L4Csum::kPartial;
  p.gso = Gso::kTcp;
  p.gso_size = 1448;
  e->process(p, 1000);
  Output want = run(*ref, full, kIn, 1000);
  ASSERT_EQ(want.verdict, Verdict::kForward);
  ASSERT_EQ(p.verdict, Verdict::kForward) << counter_name(p.reason);
  EXPECT_EQ(p.gso, Gso::kTcp);
  std::vector<uint8_t> out(p.data, p.data + p.len);
  EXPECT_EQ(out, partial(want.frame));

  std::vector<std::vector<uint8_t>> segs;
  std::vector<uint8_t> scratch(2048);
  auto sink = [&](const uint8_t* f, uint32_t len) {
    segs.emplace_back(f, f + len);
    return true;
  };
  ASSERT_EQ(segment_gso(out.data(), static_cast<uint32_t>(out.size()), 1448, scratch.data(), 2048, sink), 7u);
  std::vector<uint8_t> joined;
  for (size_t i = 0; i < segs.size(); ++i) {
    ParsedPacket sp;
    ASSERT_EQ(parse_frame(segs[i].data(), segs[i].size(), {}, &sp), ParseStatus::kOk) << i;  // checksums verified
    const auto* ip = reinterpret_cast<const Ipv4Hdr*>(segs[i].data() + sp.l3);
    const auto* th = reinterpret_cast<const TcpHdr*>(segs[i].data() + sp.l4);
    EXPECT_EQ(ip->id.host(), 100 + i);
    EXPECT_EQ(th->seq.host(), 5000 + 1448 * i);
    EXPECT_EQ(th->header_len(), 32u);
    const bool last = i + 1 == segs.size();
    EXPECT_EQ(th->flags, last ? (kTcpAck | kTcpPsh | kTcpFin) : (i == 0 ? kTcpAck | kTcpCwr : kTcpAck)) << i;
    EXPECT_EQ(sp.l4_len - 32u, last ? 10000u - 6 * 1448 : 1448u);
    joined.insert(joined.end(), segs[i].begin() + sp.l4 + 32, segs[i].begin() + sp.ip_end);
    EXPECT_EQ(sp.tuple.src, ip_raw("198.19.0.1"));  // translated
  }
  EXPECT_EQ(joined, data);
}

TEST(Offload, UdpSuperFrameIsCutIntoDatagrams) {
  const std::vector<uint8_t> data = bytes(3000, 6);
  auto f = partial(from_client().udp(40000, 4789).payload(data).build());
  std::vector<std::vector<uint8_t>> segs;
  std::vector<uint8_t> scratch(2048);
  auto sink = [&](const uint8_t* s, uint32_t len) {
    segs.emplace_back(s, s + len);
    return true;
  };
  ASSERT_EQ(segment_gso(f.data(), static_cast<uint32_t>(f.size()), 1200, scratch.data(), 2048, sink), 3u);
  std::vector<uint8_t> joined;
  for (auto& s : segs) {
    ParsedPacket sp;
    ASSERT_EQ(parse_frame(s.data(), s.size(), {}, &sp), ParseStatus::kOk);
    const auto* uh = reinterpret_cast<const UdpHdr*>(s.data() + sp.l4);
    EXPECT_EQ(uh->len.host(), sp.l4_len);
    joined.insert(joined.end(), s.begin() + sp.l4 + 8, s.begin() + sp.ip_end);
  }
  EXPECT_EQ(joined, data);
}

TEST(Offload, SegmentRefusesWhatItCannotCut) {
  std::vector<uint8_t> scratch(600);
  auto sink = [](const uint8_t*, uint32_t) { return true; };
  auto tcp = from_client().tcp(1, 2, kTcpAck).payload(bytes(3000, 7)).build();
  EXPECT_EQ(segment_gso(tcp.data(), static_cast<uint32_t>(tcp.size()), 1448, scratch.data(), 600, sink), 0u);  // scratch too small
  EXPECT_EQ(segment_gso(tcp.data(), static_cast<uint32_t>(tcp.size()), 0, scratch.data(), 600, sink), 0u);
  auto icmp = from_client().icmp(8, 0, 1, 1).payload(bytes(3000, 8)).build();
  EXPECT_EQ(segment_gso(icmp.data(), static_cast<uint32_t>(icmp.size()), 500, scratch.data(), 600, sink), 0u);
  // Truncated: the IPv4 total length runs past the frame.
  tcp.resize(tcp.size() - 10);
  EXPECT_EQ(segment_gso(tcp.data(), static_cast<uint32_t>(tcp.size()), 500, scratch.data(), 600, sink), 0u);
}

// The burst path (stages 1-3 over 32 frames) completes and keeps partial
// checksums exactly as one frame at a time does.
TEST(Offload, BurstMatchesOneAtATime) {
  std::vector<std::vector<uint8_t>> frames;
  std::vector<L4Csum> modes;
  for (int i = 0; i < 32; ++i) {
    auto f = from_client().udp(static_cast<uint16_t>(30000 + i % 11), 53).payload(bytes(50 + i, static_cast<uint8_t>(i))).build();
    modes.push_back(i % 3 == 0 ? L4Csum::kFull : i % 3 == 1 ? L4Csum::kMaybePartial : L4Csum::kPartial);
    frames.push_back(modes.back() == L4Csum::kFull ? f : partial(f));
  }
  auto one = make_engine(kMasq);
  auto burst = make_engine(kMasq);
  std::vector<std::vector<uint8_t>> bufs(32);
  std::vector<Packet> pkts(32);
  for (int i = 0; i < 32; ++i) {
    pkts[i] = received(&bufs[i], frames[i], kIn);
    pkts[i].l4_csum = modes[i];
  }
  burst->process_burst(pkts.data(), pkts.size(), 1000);
  for (int i = 0; i < 32; ++i) {
    Output a = run_as(*one, frames[i], kIn, 1000, modes[i]);
    Output b = result(pkts[i]);
    EXPECT_EQ(a.verdict, b.verdict) << i;
    EXPECT_EQ(a.frame, b.frame) << i;
  }
  EXPECT_EQ(one->counters().v, burst->counters().v);
  EXPECT_EQ(counter(*burst, Counter::l4_csum_completed), 11u);  // i % 3 == 1
}

}  // namespace
}  // namespace xnat::test
