// IPv4 fragments through the engine (dataplane/fragments.h): the first
// fragment is tracked and translated like any packet, later ones follow it.
// Datagrams are cut here the way a host's stack cuts them, and what leaves is
// put back together to check the transport checksum over the whole datagram.
#include <gtest/gtest.h>

#include <cstring>

#include "golden_cases.h"
#include "packet/checksum.h"
#include "packet/offload.h"
#include "test_util.h"

namespace xnat::test {
namespace {

constexpr size_t kEth = 14;

// The transport bytes of fragments put back in order (offsets as sent).
std::vector<uint8_t> reassemble(const std::vector<Output>& frags) {
  std::vector<uint8_t> l4;
  for (const Output& o : frags) {
    const uint8_t* ip = o.frame.data() + kEth;
    const size_t ihl = (ip[0] & 0x0F) * 4u, tot = size_t{ip[2]} << 8 | ip[3];
    const size_t off = (static_cast<size_t>(ip[6] & 0x1F) << 8 | ip[7]) * 8;
    if (l4.size() < off + tot - ihl) l4.resize(off + tot - ihl);
    std::memcpy(l4.data() + off, ip + ihl, tot - ihl);
  }
  return l4;
}

ParsedPacket parsed(const Output& o) {
  ParsedPacket p;
  EXPECT_EQ(parse_frame(o.frame.data(), o.frame.size(), {.verify_l4_checksum = false}, &p), ParseStatus::kOk);
  return p;
}

const std::string kMasquerade = nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n");
const std::string kPayload(100, 'q');

TEST(Fragments, UdpDatagramOutAndBackThroughMasquerade) {
  auto e = make_engine(kMasquerade);
  // A client already uses 198.19.0.1:5000 towards the server, so this one's
  // port is remapped: the first fragment carries the only copy of it. (Client
  // 198.18.0.3, not .2: 198.18.0.2 -> 198.19.0.1 leaves the one's complement
  // sum unchanged, which would hide a missing header checksum update.)
  ASSERT_EQ(run(*e, from_client().udp(5000, 53).build(), kIn, 999).verdict, Verdict::kForward);
  const auto frags = fragment(from_client("198.18.0.3", kClient2Mac).ip_id(77).udp(5000, 53).payload(kPayload).build(), 48);
  ASSERT_EQ(frags.size(), 3u);
  std::vector<Output> out;
  for (const auto& f : frags) {
    out.push_back(run(*e, f, kIn, 1000));
    ASSERT_EQ(out.back().verdict, Verdict::kForward) << describe(f);
    EXPECT_EQ(out.back().out_if, kOut);
  }
  uint16_t mapped = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const ParsedPacket p = parsed(out[i]);
    EXPECT_EQ(p.tuple.src, ip_raw("198.19.0.1")) << i;
    EXPECT_EQ(p.tuple.dst, ip_raw("198.51.100.7")) << i;
    EXPECT_EQ(p.ip_id, __builtin_bswap16(77)) << i;
    EXPECT_EQ(csum_fold(csum_partial(out[i].frame.data() + kEth, 20)), 0xFFFF) << "IP checksum, fragment " << i;
    if (i == 0) mapped = __builtin_bswap16(p.tuple.sport);
  }
  EXPECT_NE(mapped, 5000);
  // Put together, the datagram's UDP checksum is right for its new addresses.
  const std::vector<uint8_t> l4 = reassemble(out);
  ASSERT_EQ(l4.size(), 8 + kPayload.size());
  EXPECT_TRUE(l4_checksum_ok(ip_raw("198.19.0.1"), ip_raw("198.51.100.7"), kProtoUdp, l4.data(), l4.size()));
  EXPECT_EQ(e->counters().get(Counter::fragments_translated), 2u);

  // The answer, fragmented too, reaches the client.
  const auto back = fragment(FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").ip_id(9)
                                 .udp(53, mapped).payload(kPayload).build(), 64);
  std::vector<Output> in;
  for (const auto& f : back) {
    in.push_back(run(*e, f, kOut, 1001));
    ASSERT_EQ(in.back().verdict, Verdict::kForward);
    EXPECT_EQ(parsed(in.back()).tuple.dst, ip_raw("198.18.0.3"));
    EXPECT_EQ(csum_fold(csum_partial(in.back().frame.data() + kEth, 20)), 0xFFFF) << "IP checksum";
  }
  const std::vector<uint8_t> l4b = reassemble(in);
  EXPECT_EQ(__builtin_bswap16(static_cast<uint16_t>(l4b[2] | l4b[3] << 8)), 5000);
  EXPECT_TRUE(l4_checksum_ok(ip_raw("198.51.100.7"), ip_raw("198.18.0.3"), kProtoUdp, l4b.data(), l4b.size()));
  EXPECT_EQ(e->counters().total_drops(), 0u);
}

// What the engine gives back of the fragments it held, handled (as the
// live worker and replay do).
std::vector<Output> released(Engine& e, uint64_t now) {
  std::vector<Output> out;
  Packet pkts[Engine::kBurst];
  for (size_t n; (n = e.take_released(pkts, Engine::kBurst, now)) > 0; e.released_done()) {
    e.process_burst(pkts, n, now);
    for (size_t i = 0; i < n; ++i) out.push_back(result(pkts[i]));
  }
  return out;
}

// RFC 4787 REQ-14: a NAT takes fragments out of order. A later fragment
// ahead of its first waits for it, then leaves as the first's later
// fragments do, and the datagram arrives whole.
TEST(Fragments, LaterFragmentsAheadOfTheirFirstWaitForIt) {
  auto e = make_engine(kMasquerade);
  const auto frags = fragment(from_client().ip_id(5).udp(5000, 53).payload(kPayload).build(), 48);
  ASSERT_EQ(frags.size(), 3u);
  EXPECT_EQ(run(*e, frags[2], kIn, 1000).verdict, Verdict::kHeld);
  EXPECT_EQ(run(*e, frags[1], kIn, 1000).verdict, Verdict::kHeld);
  EXPECT_TRUE(released(*e, 1000).empty());  // nothing to give back before the first
  EXPECT_EQ(e->counters().get(Counter::fragments_held), 2u);
  std::vector<Output> out{run(*e, frags[0], kIn, 1001)};
  ASSERT_EQ(out[0].verdict, Verdict::kForward);
  for (const Output& o : released(*e, 1001)) out.push_back(o);
  ASSERT_EQ(out.size(), 3u);
  for (const Output& o : out) {
    ASSERT_EQ(o.verdict, Verdict::kForward);
    EXPECT_EQ(o.out_if, kOut);
    EXPECT_EQ(parsed(o).tuple.src, ip_raw("198.19.0.1"));
    EXPECT_EQ(csum_fold(csum_partial(o.frame.data() + kEth, 20)), 0xFFFF) << "IP checksum";
  }
  const std::vector<uint8_t> l4 = reassemble(out);
  EXPECT_TRUE(l4_checksum_ok(ip_raw("198.19.0.1"), ip_raw("198.51.100.7"), kProtoUdp, l4.data(), l4.size()));
  EXPECT_EQ(e->counters().get(Counter::fragments_translated), 2u);
  EXPECT_EQ(e->counters().get(Counter::rx_frames), 3u);  // once each, held or not
  EXPECT_EQ(e->counters().total_drops(), 0u);
  // Given back once: nothing more.
  EXPECT_TRUE(released(*e, 1002).empty());
}

TEST(Fragments, AFragmentWhoseFirstNeverComesIsGivenUp) {
  auto e = make_engine(kMasquerade);
  const auto frags = fragment(from_client().ip_id(5).udp(5000, 53).payload(kPayload).build(), 48);
  const auto other = fragment(from_client().ip_id(6).udp(5000, 53).payload(kPayload).build(), 48);
  EXPECT_EQ(run(*e, other[1], kIn, 1000).verdict, Verdict::kHeld);
  // Another datagram's first fragment does not release it.
  EXPECT_EQ(run(*e, frags[0], kIn, 1001).verdict, Verdict::kForward);
  EXPECT_TRUE(released(*e, 1001).empty());
  // Held net.ipv4.ipfrag_time (30 s), then given up and counted.
  EXPECT_TRUE(released(*e, 1000 + 29'999).empty());
  EXPECT_EQ(e->counters().get(Counter::drop_fragment_unmatched), 0u);
  EXPECT_TRUE(released(*e, 1000 + 30'000).empty());
  EXPECT_EQ(e->counters().get(Counter::drop_fragment_unmatched), 1u);
  // 30 s after the first fragment its record is gone too: a later fragment
  // then waits for a first fragment again.
  EXPECT_EQ(run(*e, frags[2], kIn, 1001 + 29'000).verdict, Verdict::kForward);
  EXPECT_EQ(run(*e, frags[2], kIn, 1001 + 30'000).verdict, Verdict::kHeld);
}

TEST(Fragments, HeldFragmentsAreBoundedAndCounted) {
  auto e = make_engine(kMasquerade);
  // Every slot taken: the fragment held longest gives way, counted.
  for (uint32_t i = 0; i < 128; ++i) {
    const auto f = fragment(from_client().ip_id(static_cast<uint16_t>(100 + i)).udp(5000, 53).payload(kPayload).build(), 48);
    ASSERT_EQ(run(*e, f[1], kIn, 1000 + i).verdict, Verdict::kHeld) << i;
  }
  EXPECT_EQ(e->counters().get(Counter::drop_fragment_unmatched), 0u);
  const auto late = fragment(from_client().ip_id(99).udp(5000, 53).payload(kPayload).build(), 48);
  EXPECT_EQ(run(*e, late[1], kIn, 2000).verdict, Verdict::kHeld);
  EXPECT_EQ(e->counters().get(Counter::drop_fragment_unmatched), 1u);
  // The first one held (identification 100) was the one given up.
  const auto first = fragment(from_client().ip_id(100).udp(5000, 53).payload(kPayload).build(), 48);
  EXPECT_EQ(run(*e, first[0], kIn, 2001).verdict, Verdict::kForward);
  EXPECT_TRUE(released(*e, 2001).empty());
  const auto second = fragment(from_client().ip_id(101).udp(5000, 53).payload(kPayload).build(), 48);
  EXPECT_EQ(run(*e, second[0], kIn, 2002).verdict, Verdict::kForward);
  EXPECT_EQ(released(*e, 2002).size(), 1u);
  // Larger than a slot: not held, dropped and counted.
  std::vector<uint8_t> big_payload(FragmentHold::kSlotBytes, 7);
  const auto big = fragment(from_client().ip_id(7).udp(5000, 53).payload(big_payload).build(), 9600);
  ASSERT_EQ(big.size(), 1u);  // one piece: make it a later fragment
  std::vector<uint8_t> later = big[0];
  later[kEth + 6] = 0x00, later[kEth + 7] = 0x10;  // offset 128, last fragment
  later[kEth + 10] = later[kEth + 11] = 0;
  const uint16_t c = csum_finish(csum_partial(later.data() + kEth, 20));
  std::memcpy(later.data() + kEth + 10, &c, 2);
  EXPECT_EQ(run(*e, later, kIn, 2003).reason, Counter::drop_fragment_unmatched);
}

TEST(Fragments, LaterFragmentsShareTheFirstOnesDrop) {
  auto e = make_engine(kMasquerade, "nf_conntrack_max = 1");
  // An established TCP connection fills the table; nothing can be evicted.
  ASSERT_EQ(run(*e, from_client().tcp(40000, 80, kTcpSyn).build(), kIn, 1000).verdict, Verdict::kForward);
  ASSERT_EQ(run(*e, FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1")
                        .tcp(80, 40000, kTcpSyn | kTcpAck).build(), kOut, 1000).verdict,
            Verdict::kForward);
  const auto frags = fragment(from_client().ip_id(5).udp(5000, 53).payload(kPayload).build(), 48);
  EXPECT_EQ(run(*e, frags[0], kIn, 1001).reason, Counter::drop_table_full);
  EXPECT_EQ(run(*e, frags[1], kIn, 1001).reason, Counter::drop_table_full);
  EXPECT_EQ(e->counters().get(Counter::drop_fragment_unmatched), 0u);
}

TEST(Fragments, DnatToAPublishedPort) {
  auto e = make_engine(nat_table("-A PREROUTING -i eth0 -p udp -m udp --dport 5353 -j DNAT --to-destination 198.18.0.2:53\n"));
  const auto frags = fragment(FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").ip_id(300)
                                  .udp(7000, 5353).payload(kPayload).build(), 56);
  std::vector<Output> out;
  for (const auto& f : frags) {
    out.push_back(run(*e, f, kOut, 1000));
    ASSERT_EQ(out.back().verdict, Verdict::kForward);
    EXPECT_EQ(out.back().out_if, kIn);
    EXPECT_EQ(parsed(out.back()).tuple.dst, ip_raw("198.18.0.2"));
  }
  const std::vector<uint8_t> l4 = reassemble(out);
  EXPECT_TRUE(l4_checksum_ok(ip_raw("198.51.100.7"), ip_raw("198.18.0.2"), kProtoUdp, l4.data(), l4.size()));
}

TEST(Fragments, ForTheGatewayItselfGoToTheHost) {
  auto e = make_engine(kMasquerade);
  const auto frags = fragment(FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").ip_id(4)
                                  .udp(7000, 9999).payload(kPayload).build(), 48);
  for (const auto& f : frags) EXPECT_EQ(run(*e, f, kOut, 1000).verdict, Verdict::kToHost);
  // Even the ones arriving first: the host's stack reassembles its own.
  const auto more = fragment(FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").ip_id(5)
                                 .udp(7000, 9999).payload(kPayload).build(), 48);
  EXPECT_EQ(run(*e, more[2], kOut, 1001).verdict, Verdict::kToHost);
}

TEST(Fragments, ExpiredTtlOnALaterFragmentSendsNoIcmpError) {
  auto e = make_engine(kMasquerade);
  const auto frags = fragment(from_client().ip_id(8).udp(5000, 53).payload(kPayload).build(), 48);
  ASSERT_EQ(run(*e, frags[0], kIn, 1000).verdict, Verdict::kForward);
  auto last = frags[2];
  last[kEth + 8] = 1;  // TTL 1
  last[kEth + 10] = last[kEth + 11] = 0;
  const uint16_t c = csum_finish(csum_partial(last.data() + kEth, 20));
  std::memcpy(last.data() + kEth + 10, &c, 2);
  const Output o = run(*e, last, kIn, 1001);
  EXPECT_EQ(o.verdict, Verdict::kDrop);  // RFC 1812 4.3.2.7: no error about a non-initial fragment
  EXPECT_EQ(o.reason, Counter::drop_ttl_expired);
  EXPECT_EQ(e->counters().get(Counter::icmp_errors_sent), 0u);
}

// ip_forward's MTU check: a datagram with DF larger than the output's MTU
// (1 500 here) is answered with "fragmentation needed" carrying the MTU
// (RFC 1191), quoting it as the client sent it, and opens no connection.
TEST(Fragments, LargerThanTheOutputsMtuWithDfGetsFragmentationNeeded) {
  auto e = make_engine(kMasquerade);
  const auto big = from_client().udp(5000, 53).payload(std::vector<uint8_t>(3000, 7)).build();
  const Output o = run(*e, big, kIn, 1000);
  ASSERT_EQ(o.verdict, Verdict::kForward);
  EXPECT_EQ(o.out_if, kIn);
  const uint8_t* ip = o.frame.data() + kEth;
  const uint8_t* icmp = ip + (ip[0] & 0x0F) * 4;
  EXPECT_EQ(ip[9], kProtoIcmp);
  EXPECT_EQ(icmp[0], 3);  // destination unreachable
  EXPECT_EQ(icmp[1], 4);  // fragmentation needed and DF set
  EXPECT_EQ(icmp[6] << 8 | icmp[7], 1500);
  EXPECT_EQ(std::memcmp(icmp + 8, big.data() + kEth, 28), 0);  // the datagram as sent: header and 8 bytes
  EXPECT_EQ(csum_finish(csum_partial(icmp, o.frame.size() - kEth - 20)), 0);
  EXPECT_EQ(e->counters().get(Counter::drop_frag_needed), 1u);
  EXPECT_EQ(e->counters().get(Counter::flows_created), 0u);
  // One that fits passes.
  EXPECT_EQ(run(*e, from_client().udp(5000, 53).payload(std::vector<uint8_t>(1472, 7)).build(), kIn, 1001).out_if,
            kOut);
}

// Without DF it leaves translated, marked to be cut into fragments of the
// output's MTU; fragment_ipv4 cuts it as ip_fragment does.
TEST(Fragments, LargerThanTheOutputsMtuWithoutDfLeavesInFragments) {
  auto e = make_engine(kMasquerade);
  const auto big = from_client().frag(0).ip_id(300).udp(5000, 53).payload(std::vector<uint8_t>(4000, 9)).build();
  std::vector<uint8_t> buf;
  Packet p = received(&buf, big, kIn);
  e->process(p, 1000);
  ASSERT_EQ(p.verdict, Verdict::kForward);
  EXPECT_EQ(p.out_if, kOut);
  EXPECT_EQ(p.frag_mtu, 1500);
  EXPECT_EQ(e->counters().get(Counter::fragmented), 1u);
  EXPECT_EQ(e->counters().get(Counter::fragments_created), 3u);
  std::vector<Output> pieces;
  std::vector<uint8_t> scratch(kEth + 1500);
  auto sink = [&](const uint8_t* f, uint32_t len) {
    pieces.push_back(Output{Verdict::kForward, kOut, Counter::kCount, std::vector<uint8_t>(f, f + len)});
    return true;
  };
  ASSERT_EQ(fragment_ipv4(p.data, p.len, p.frag_mtu, scratch.data(), static_cast<uint32_t>(scratch.size()), sink),
            3u);
  for (size_t i = 0; i < pieces.size(); ++i) {
    const uint8_t* ip = pieces[i].frame.data() + kEth;
    EXPECT_LE(pieces[i].frame.size(), kEth + 1500) << i;
    EXPECT_EQ(csum_finish(csum_partial(ip, 20)), 0) << i;
    EXPECT_EQ(ip[4] << 8 | ip[5], 300) << i;                      // the datagram's identification
    EXPECT_EQ(bool(ip[6] & 0x20), i < 2) << i;                      // MF but on the last
    EXPECT_EQ((ip[6] & 0x1F) << 8 | ip[7], int(i) * 1480 / 8) << i;  // 1 480 payload bytes each
    EXPECT_EQ(parsed(pieces[i]).tuple.src, ip_raw("198.19.0.1")) << i;
  }
  // Put back together: the translated datagram, its UDP checksum right.
  const std::vector<uint8_t> l4 = reassemble(pieces);
  ASSERT_EQ(l4.size(), 8u + 4000);
  EXPECT_EQ(std::memcmp(l4.data(), p.data + kEth + 20, l4.size()), 0);
  EXPECT_TRUE(l4_checksum_ok(ip_raw("198.19.0.1"), ip_raw("198.51.100.7"), kProtoUdp, l4.data(), l4.size()));
}

// Path MTU discovery from beyond the gateway: a router's "fragmentation
// needed" about a translated datagram reaches the client translated back
// (RFC 5508), the MTU it carries untouched.
TEST(Fragments, FragmentationNeededFromBeyondReachesTheClientWithItsMtu) {
  auto e = make_engine(kMasquerade);
  ASSERT_EQ(run(*e, from_client().udp(5000, 53).payload("q").build(), kIn, 1000).verdict, Verdict::kForward);
  auto with_mtu = [](std::vector<uint8_t> f, uint16_t mtu) {  // the error's next-hop MTU, checksum kept right
    uint8_t* icmp = f.data() + kEth + 20;
    icmp[6] = static_cast<uint8_t>(mtu >> 8);
    icmp[7] = static_cast<uint8_t>(mtu);
    icmp[2] = icmp[3] = 0;
    const uint16_t c = csum_finish(csum_partial(icmp, f.size() - kEth - 20));
    std::memcpy(icmp + 2, &c, 2);
    return f;
  };
  auto quoted_out = FrameBuilder().ip("198.19.0.1", "198.51.100.7").ttl(63).udp(5000, 53).payload("q").ip_part();
  auto quoted_in = FrameBuilder().ip("198.18.0.2", "198.51.100.7").ttl(63).udp(5000, 53).payload("q").ip_part();
  const Output o = run(*e,
                       with_mtu(FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.1", "198.19.0.1").tos(0xC0)
                                    .icmp_error(kIcmpDestUnreach, 4, quoted_out).build(), 1400),
                       kOut, 1001);
  ASSERT_EQ(o.verdict, Verdict::kForward) << counter_name(o.reason);
  EXPECT_EQ(o.out_if, kIn);
  EXPECT_EQ(o.frame, with_mtu(FrameBuilder().eth(kInMac, kClientMac).ip("198.51.100.1", "198.18.0.2").tos(0xC0).ttl(63)
                                  .icmp_error(kIcmpDestUnreach, 4, quoted_in).build(), 1400))
      << describe(o.frame);
}

// A fragment cut further continues its offsets and keeps its MF; options
// without the copied flag are in the first piece only (no-ops after it).
TEST(Fragments, CuttingAFragmentKeepsItsPlaceAndOnlyCopiedOptions) {
  const std::vector<uint8_t> opts = {0x94, 4, 0, 0,           // router alert: copied
                                     0x07, 7, 4, 0, 0, 0, 0,  // record route: not copied
                                     0};                      // end
  const auto f = from_client().frag(0x2000 | 100).ip_options(opts).udp(5000, 53).payload(std::vector<uint8_t>(2000, 1)).build();
  std::vector<std::vector<uint8_t>> pieces;
  std::vector<uint8_t> scratch(kEth + 1000);
  auto sink = [&](const uint8_t* fr, uint32_t len) {
    pieces.emplace_back(fr, fr + len);
    return true;
  };
  ASSERT_EQ(fragment_ipv4(f.data(), static_cast<uint32_t>(f.size()), 1000, scratch.data(),
                          static_cast<uint32_t>(scratch.size()), sink),
            3u);  // 2 008 payload bytes, 968 per fragment
  for (size_t i = 0; i < pieces.size(); ++i) {
    const uint8_t* ip = pieces[i].data() + kEth;
    ASSERT_EQ(ip[0], 0x48) << i;  // the header keeps its length
    EXPECT_TRUE(ip[6] & 0x20) << i;  // MF: the datagram goes on after the last piece
    EXPECT_EQ((ip[6] & 0x1F) << 8 | ip[7], 100 + int(i) * 968 / 8) << i;
    EXPECT_EQ(std::memcmp(ip + 20, opts.data(), 4), 0) << i;
    const std::vector<uint8_t> rr(ip + 24, ip + 31);
    if (i == 0) EXPECT_EQ(rr, std::vector<uint8_t>(opts.begin() + 4, opts.begin() + 11));
    else EXPECT_EQ(rr, std::vector<uint8_t>(7, 1)) << i;
    EXPECT_EQ(csum_finish(csum_partial(ip, 32)), 0) << i;
  }
  EXPECT_EQ(fragment_ipv4(f.data(), static_cast<uint32_t>(f.size()), 32 + 7, scratch.data(),
                          static_cast<uint32_t>(scratch.size()), sink),
            0u);  // not even 8 payload bytes fit
}

}  // namespace
}  // namespace xnat::test
