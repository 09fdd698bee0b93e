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

// CHECKSUM_UNNECESSARY (a NIC's receive checksum, or GRO's check; AF_PACKET's
// DATA_VALID): netfilter does not verify it again (nf_ip_checksum), nor does
// the engine. A right one is translated as a full one is, and a wrong one the
// device vouched for passes, as through the kernel.
TEST(Offload, ChecksumTheDeviceVerifiedIsNotVerifiedAgain) {
  for (auto f : {from_client().tcp(40000, 80, kTcpSyn).build(), from_client().udp(40000, 53).build(),
                 from_client().icmp(8, 0, 7, 1).build()}) {
    auto ref = make_engine(kMasq);
    auto e = make_engine(kMasq);
    Output want = run(*ref, f, kIn, 1000);
    ASSERT_EQ(want.verdict, Verdict::kForward);
    Packet p;
    Output got = run_as(*e, f, kIn, 1000, L4Csum::kVerified, &p);
    EXPECT_EQ(got.frame, want.frame) << "got:  " << describe(got.frame) << "\nwant: " << describe(want.frame);
    EXPECT_EQ(p.l4_csum, L4Csum::kVerified);

    ParsedPacket pp;
    ASSERT_EQ(parse_frame(f.data(), f.size(), {}, &pp), ParseStatus::kOk);
    std::vector<uint8_t> bad = f;
    bad[pp.l4 + (pp.tuple.proto == kProtoTcp ? 16 : pp.tuple.proto == kProtoUdp ? 6 : 2)] ^= 0x21;
    auto trusting = make_engine(kMasq);
    Output passed = run_as(*trusting, bad, kIn, 1000, L4Csum::kVerified);
    EXPECT_EQ(passed.verdict, Verdict::kForward) << counter_name(passed.reason);
    EXPECT_EQ(counter(*trusting, Counter::drop_bad_l4_checksum), 0u);
    auto checking = make_engine(kMasq);
    Output dropped = run_as(*checking, bad, kIn, 1000, L4Csum::kFull);
    EXPECT_EQ(dropped.reason, Counter::drop_bad_l4_checksum);
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
  // The reference: the same super-frame with its checksum complete (larger
  // than the MTU, it passes as a super-frame whose segments fit).
  std::vector<uint8_t> rbuf;
  Packet r = received(&rbuf, full, kIn);
  r.gso = Gso::kTcp;
  r.gso_size = 1448;
  ref->process(r, 1000);
  Output want = result(r);
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


// Coalescing (TcpRun): a run's super-frame, cut again by segment_gso as the
// kernel's GSO cuts it, gives back exactly the frames that went in.
std::vector<uint8_t> segment(uint32_t seq, uint16_t id, size_t len, uint8_t flags = kTcpAck) {
  return from_client()
      .ip_id(id)
      .tcp(40000, 80, flags, seq, 77)
      .tcp_options({1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2})
      .payload(bytes(len, static_cast<uint8_t>(seq)))
      .build();
}

struct Coalesced {
  std::vector<std::vector<uint8_t>> out;  // what leaves: a super-frame (gso_size) or a frame as it came
  std::vector<uint16_t> gso_size;
};

// What AfPacketBackend::complete does with one port's frames: a run is its
// first frame's headers (rewritten by finish) and every segment's payload.
Coalesced coalesce_and_finish(std::vector<std::vector<uint8_t>> frames) {
  Coalesced c;
  TcpRun run;
  size_t first = 0;
  std::vector<uint8_t> payload;
  auto end_run = [&] {
    if (!run.segments) return;
    std::vector<uint8_t> f;
    if (run.segments > 1) {
      run.finish();
      const TcpSegmentView& h = run.head;
      f.assign(frames[first].begin(), frames[first].begin() + h.payload_at);
      f.insert(f.end(), payload.begin(), payload.end());
    } else {
      f = frames[first];
    }
    c.out.push_back(f);
    c.gso_size.push_back(run.segments > 1 ? run.head.payload : 0);
    run.segments = 0;
  };
  for (size_t i = 0; i < frames.size(); ++i) {
    auto& f = frames[i];
    TcpSegmentView s;
    const bool seg = tcp_segment_view(f.data(), static_cast<uint32_t>(f.size()), &s);
    if (seg && run.segments && run.accepts(f.data(), s)) {
      run.add(s);
      payload.insert(payload.end(), f.begin() + s.payload_at, f.begin() + s.ip_end);
      continue;
    }
    end_run();
    if (!seg) {
      c.out.push_back(f);
      c.gso_size.push_back(0);
      continue;
    }
    first = i;
    run.open(f.data(), s);
    payload.assign(f.begin() + s.payload_at, f.begin() + s.ip_end);
  }
  end_run();
  return c;
}

// Cuts what coalescing made, as the output would: the frames on the wire.
std::vector<std::vector<uint8_t>> cut(const Coalesced& c) {
  std::vector<std::vector<uint8_t>> wire;
  std::vector<uint8_t> scratch(2048);
  auto sink = [&](const uint8_t* f, uint32_t len) {
    wire.emplace_back(f, f + len);
    return true;
  };
  for (size_t i = 0; i < c.out.size(); ++i) {
    if (!c.gso_size[i]) {
      wire.push_back(c.out[i]);
      continue;
    }
    std::vector<uint8_t> f = c.out[i];
    ParsedPacket sp;
    // Partial: the field is the pseudo-header sum of the whole super-frame.
    EXPECT_EQ(parse_frame(f.data(), f.size(), {.verify_l4_checksum = true, .l4_csum = L4Csum::kPartial}, &sp),
              ParseStatus::kOk);
    std::vector<uint8_t> check = f;
    EXPECT_TRUE(set_partial_l4_checksum(check.data(), static_cast<uint32_t>(check.size())));
    EXPECT_EQ(check, f);
    EXPECT_GT(segment_gso(f.data(), static_cast<uint32_t>(f.size()), c.gso_size[i], scratch.data(), 2048, sink), 1u);
  }
  return wire;
}

// After an edit: the IPv4 header's and the full TCP checksum.
std::vector<uint8_t> with_checksums(std::vector<uint8_t> f) {
  auto* ip = reinterpret_cast<Ipv4Hdr*>(f.data() + 14);
  ip->check = 0;
  ip->check = csum_finish(csum_partial(ip, 20));
  EXPECT_TRUE(finish_l4_checksum(f.data(), static_cast<uint32_t>(f.size())));
  return f;
}

TEST(Coalesce, ARunIsCutBackIntoTheSameFrames) {
  std::vector<std::vector<uint8_t>> in;
  for (int i = 0; i < 9; ++i) in.push_back(segment(5000 + 1448 * i, static_cast<uint16_t>(65530 + i), i == 8 ? 700 : 1448, i == 8 ? kTcpAck | kTcpPsh : kTcpAck));
  Coalesced c = coalesce_and_finish(in);
  ASSERT_EQ(c.out.size(), 1u);  // identifications wrap: still one run
  EXPECT_EQ(c.gso_size[0], 1448);
  EXPECT_EQ(cut(c), in);
}

TEST(Coalesce, WhatWouldNotComeBackTheSameEndsARun) {
  const std::vector<uint8_t> a = segment(5000, 10, 1000);
  auto changed = [&](auto edit) {
    std::vector<uint8_t> b = segment(6000, 11, 1000);
    edit(b);
    b = with_checksums(b);
    Coalesced c = coalesce_and_finish({a, b});
    EXPECT_EQ(cut(c), (std::vector<std::vector<uint8_t>>{a, b}));
    return c.out.size();
  };
  EXPECT_EQ(changed([](std::vector<uint8_t>&) {}), 1u);  // the baseline joins
  const size_t ip = 14, tcp = 34;
  EXPECT_EQ(changed([&](std::vector<uint8_t>& b) { b[ip + 1] = 0x03; }), 2u);        // TOS (ECN CE)
  EXPECT_EQ(changed([&](std::vector<uint8_t>& b) { b[ip + 8] = 63; }), 2u);          // TTL
  EXPECT_EQ(changed([&](std::vector<uint8_t>& b) { b[ip + 6] = 0; }), 2u);           // DF
  EXPECT_EQ(changed([&](std::vector<uint8_t>& b) { b[ip + 5] = 12; }), 2u);          // identification jumps
  EXPECT_EQ(changed([&](std::vector<uint8_t>& b) { b[ip + 15] ^= 1; }), 2u);         // source address
  EXPECT_EQ(changed([&](std::vector<uint8_t>& b) { b[tcp + 1] ^= 1; }), 2u);         // source port
  EXPECT_EQ(changed([&](std::vector<uint8_t>& b) { b[tcp + 7] ^= 1; }), 2u);         // sequence not next
  EXPECT_EQ(changed([&](std::vector<uint8_t>& b) { b[tcp + 11] ^= 1; }), 2u);        // ack
  EXPECT_EQ(changed([&](std::vector<uint8_t>& b) { b[tcp + 15] ^= 1; }), 2u);        // window
  EXPECT_EQ(changed([&](std::vector<uint8_t>& b) { b[tcp + 31] ^= 1; }), 2u);        // timestamp option
  EXPECT_EQ(changed([&](std::vector<uint8_t>& b) { b[tcp + 13] |= kTcpCwr; }), 2u);  // flags
  EXPECT_EQ(changed([&](std::vector<uint8_t>& b) { b[tcp + 13] |= kTcpFin; }), 2u);
  EXPECT_EQ(changed([&](std::vector<uint8_t>& b) { b[tcp + 13] |= kTcpUrg; }), 2u);
  EXPECT_EQ(changed([&](std::vector<uint8_t>& b) { b[5] ^= 1; }), 2u);               // link header
}

TEST(Coalesce, PshOrAShortSegmentEndsARunAndALongerOneStartsAnother) {
  std::vector<std::vector<uint8_t>> in = {
      segment(1000, 1, 1000), segment(2000, 2, 1000, kTcpAck | kTcpPsh),  // PSH: the last of a run
      segment(3000, 3, 1000), segment(4000, 4, 500),                     // short: the last
      segment(4500, 5, 1000),                                            // longer than the run's size: a new run
      segment(5500, 6, 1000),
  };
  Coalesced c = coalesce_and_finish(in);
  EXPECT_EQ(c.out.size(), 3u);
  EXPECT_EQ(cut(c), in);
  // Only ACK or ACK|PSH with payload may join; a pure ACK, SYN, RST, FIN never.
  TcpSegmentView s;
  for (uint8_t flags : {uint8_t(kTcpSyn), uint8_t(kTcpRst | kTcpAck), uint8_t(kTcpFin | kTcpAck), uint8_t(kTcpAck | kTcpEce)}) {
    auto f = segment(1000, 1, 100, flags);
    EXPECT_FALSE(tcp_segment_view(f.data(), static_cast<uint32_t>(f.size()), &s)) << int(flags);
  }
  auto ack = segment(1000, 1, 0);
  EXPECT_FALSE(tcp_segment_view(ack.data(), static_cast<uint32_t>(ack.size()), &s));
  auto udp = from_client().udp(40000, 53).payload(bytes(100, 1)).build();
  EXPECT_FALSE(tcp_segment_view(udp.data(), static_cast<uint32_t>(udp.size()), &s));
}

TEST(Coalesce, ARunStaysWithinOneDatagram) {
  std::vector<std::vector<uint8_t>> in;
  for (int i = 0; i < 50; ++i) in.push_back(segment(1000 + 1448u * i, static_cast<uint16_t>(i), 1448));
  Coalesced c = coalesce_and_finish(in);
  ASSERT_EQ(c.out.size(), 2u);
  EXPECT_LE(c.out[0].size(), 0xFFFFu);
  EXPECT_EQ(cut(c), in);
}

// The engine marks what it verified (nf_conntrack_checksum = 1), and only that:
// a frame nobody verified could join a run and leave with a fresh checksum.
TEST(Coalesce, OnlyVerifiedTcpIsMarked) {
  for (bool verify : {true, false}) {
    auto e = make_engine(kMasq, verify ? "" : "nf_conntrack_checksum = false");
    std::vector<std::vector<uint8_t>> bufs(5);
    std::vector<Packet> p(5);
    p[0] = received(&bufs[0], from_client().tcp(40000, 80, kTcpSyn, 4999).build(), kIn);
    p[1] = received(&bufs[1], from_client().udp(40000, 53).payload(bytes(10, 1)).build(), kIn);
    p[2] = received(&bufs[2], partial(from_client().tcp(40001, 80, kTcpSyn, 4999).build()), kIn);
    p[2].l4_csum = L4Csum::kPartial;
    // AF_XDP on a veth: maybe partial. A partial one is completed here, so
    // it is known right; a full one is known right only if verified.
    p[3] = received(&bufs[3], partial(from_client().tcp(40002, 80, kTcpSyn, 4999).build()), kIn);
    p[3].l4_csum = L4Csum::kMaybePartial;
    p[4] = received(&bufs[4], from_client().tcp(40003, 80, kTcpSyn, 4999).build(), kIn);
    p[4].l4_csum = L4Csum::kMaybePartial;
    e->process_burst(p.data(), p.size(), 1000);
    EXPECT_EQ(p[0].l4_csum, verify ? L4Csum::kVerified : L4Csum::kFull);
    EXPECT_EQ(p[1].l4_csum, L4Csum::kFull);
    EXPECT_EQ(p[2].l4_csum, L4Csum::kPartial);
    EXPECT_EQ(p[3].l4_csum, L4Csum::kVerified);
    EXPECT_EQ(p[4].l4_csum, verify ? L4Csum::kVerified : L4Csum::kMaybePartial);
    for (const Packet& q : p) EXPECT_EQ(q.verdict, Verdict::kForward);
  }
}

}  // namespace
}  // namespace xnat::test
