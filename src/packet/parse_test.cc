#include "packet/parse.h"

#include <gtest/gtest.h>

#include "packet/frame_builder.h"

namespace xnat {
namespace {


struct ParseCase {
  const char* what;
  std::vector<uint8_t> frame;
  ParseStatus want;
};

std::vector<uint8_t> mutate(std::vector<uint8_t> f, size_t at, uint8_t v) {
  f.at(at) = v;
  return f;
}
std::vector<uint8_t> cut(std::vector<uint8_t> f, size_t n) {
  f.resize(n);
  return f;
}

TEST(Parse, Table) {
  auto udp = FrameBuilder().ip("198.18.0.2", "198.51.100.7").udp(1000, 53).payload("abcd").build();
  auto tcp = FrameBuilder().ip("198.18.0.2", "198.51.100.7").tcp(1000, 80, kTcpSyn).build();
  auto inner = FrameBuilder().ip("198.19.0.1", "198.51.100.7").udp(30000, 53).ip_part();
  auto icmp_err = FrameBuilder().ip("198.51.100.7", "198.19.0.1").icmp_error(3, 3, inner).build();
  auto short_inner = FrameBuilder().ip("198.51.100.7", "198.19.0.1")
                         .icmp_error(3, 3, std::vector<uint8_t>(inner.begin(), inner.begin() + 24)).build();
  std::vector<ParseCase> cases = {
      {"udp ok", udp, ParseStatus::kOk},
      {"tcp ok", tcp, ParseStatus::kOk},
      {"vlan ok", FrameBuilder().vlan(7).ip("198.18.0.2", "198.51.100.7").udp(1, 2).build(), ParseStatus::kOk},
      {"ip options ok", FrameBuilder().ip_options({1, 1, 1, 0}).ip("198.18.0.2", "198.51.100.7").udp(1, 2).build(), ParseStatus::kOk},
      {"icmp error ok", icmp_err, ParseStatus::kOk},
      {"runt ethernet", cut(udp, 10), ParseStatus::kTruncated},
      {"vlan tag cut", cut(FrameBuilder().vlan(7).ip("198.18.0.2", "198.51.100.7").udp(1, 2).build(), 16), ParseStatus::kTruncated},
      {"ipv4 header cut", cut(udp, 14 + 12), ParseStatus::kTruncated},
      {"ip version 6 in an ipv4 frame", mutate(udp, 14, 0x65), ParseStatus::kBadIpHeader},
      {"ihl below 5", mutate(udp, 14, 0x44), ParseStatus::kBadIpHeader},
      {"total length beyond frame", mutate(udp, 14 + 2, 0x7f), ParseStatus::kTruncated},
      {"header checksum wrong", mutate(udp, 14 + 11, udp[14 + 11] ^ 0x40), ParseStatus::kBadIpChecksum},
      {"first fragment", FrameBuilder().frag(0x2000).ip("198.18.0.2", "198.51.100.7").udp(1, 2).build(), ParseStatus::kOk},
      {"later fragment", FrameBuilder().frag(0x0003).ip("198.18.0.2", "198.51.100.7").proto(kProtoUdp).payload("12345678").build(), ParseStatus::kOk},
      {"tcp fragment at offset 8 (RFC 1858)", FrameBuilder().frag(0x2001).ip("198.18.0.2", "198.51.100.7").proto(kProtoTcp).payload("12345678").build(), ParseStatus::kFragment},
      {"tcp fragment at offset 16", FrameBuilder().frag(0x0002).ip("198.18.0.2", "198.51.100.7").proto(kProtoTcp).payload("12345678").build(), ParseStatus::kOk},
      {"fragmented icmp error", FrameBuilder().frag(0x2000).ip("198.51.100.7", "198.19.0.1").icmp_error(3, 3, inner).build(), ParseStatus::kFragment},
      {"tcp header cut", cut(tcp, 14 + 20 + 10), ParseStatus::kTruncated},
      {"udp length over payload", mutate(udp, 14 + 20 + 5, 0xff), ParseStatus::kBadL4Header},
      {"icmp error with 4 inner bytes", short_inner, ParseStatus::kBadIcmpError},
      {"arp", mutate(mutate(udp, 12, 0x08), 13, 0x06), ParseStatus::kNotIpv4},
  };
  for (const auto& c : cases) {
    ParsedPacket p;
    // Truncation cuts make the IP header lie about the length, so check the
    // cut cases' status before any checksum question arises.
    EXPECT_EQ(static_cast<int>(parse_frame(c.frame.data(), c.frame.size(), {}, &p)), static_cast<int>(c.want)) << c.what;
  }
}

TEST(Parse, FragmentsAreMarked) {
  ParsedPacket p;
  auto first = FrameBuilder().frag(0x2000).ip_id(0x1234).ip("198.18.0.2", "198.51.100.7").udp(5000, 53).payload("x").build();
  first[14 + 20 + 4] = 0x05;  // UDP length: the whole datagram's, past this fragment
  ASSERT_EQ(parse_frame(first.data(), first.size(), {}, &p), ParseStatus::kOk);
  EXPECT_EQ(p.frag, FragKind::kFirst);
  EXPECT_EQ(p.ip_id, __builtin_bswap16(0x1234));
  EXPECT_EQ(__builtin_bswap16(p.tuple.sport), 5000);  // ports from the first fragment
  auto later = FrameBuilder().frag(0x00b9).ip_id(0x1234).ip("198.18.0.2", "198.51.100.7").proto(kProtoUdp).build();
  ASSERT_EQ(parse_frame(later.data(), later.size(), {}, &p), ParseStatus::kOk);
  EXPECT_EQ(p.frag, FragKind::kLater);
  EXPECT_EQ(p.tuple.sport, 0);  // no transport header to read
  EXPECT_EQ(p.tuple.proto, kProtoUdp);
  auto whole = FrameBuilder().ip("198.18.0.2", "198.51.100.7").udp(5000, 53).build();
  ASSERT_EQ(parse_frame(whole.data(), whole.size(), {}, &p), ParseStatus::kOk);
  EXPECT_EQ(p.frag, FragKind::kNone);
}

TEST(Parse, TcpDataOffsetChecked) {
  auto tcp = FrameBuilder().ip("198.18.0.2", "198.51.100.7").tcp(1000, 80, kTcpSyn).build();
  tcp[14 + 20 + 12] = 0x40;  // 16 bytes: less than a TCP header
  ParsedPacket p;
  ParseOptions no_csum{.verify_l4_checksum = false};
  EXPECT_EQ(parse_frame(tcp.data(), tcp.size(), no_csum, &p), ParseStatus::kBadL4Header);
  tcp[14 + 20 + 12] = 0xF0;  // 60 bytes: more than the segment
  EXPECT_EQ(parse_frame(tcp.data(), tcp.size(), no_csum, &p), ParseStatus::kBadL4Header);
}

TEST(Parse, TuplesAndEmbeddedDatagram) {
  auto inner = FrameBuilder().ip("198.19.0.1", "198.51.100.7").udp(30000, 53).ip_part();
  auto f = FrameBuilder().ip("198.51.100.7", "198.19.0.1").icmp_error(3, 3, inner).build();
  ParsedPacket p;
  ASSERT_EQ(parse_frame(f.data(), f.size(), {}, &p), ParseStatus::kOk);
  EXPECT_TRUE(p.icmp_error);
  EXPECT_EQ(p.inner.src, ip_raw("198.19.0.1"));
  EXPECT_EQ(__builtin_bswap16(p.inner.sport), 30000);
  EXPECT_EQ(__builtin_bswap16(p.inner.dport), 53);
  auto echo = FrameBuilder().ip("198.18.0.2", "198.51.100.7").icmp(kIcmpEcho, 0, 0x1234, 1).build();
  ASSERT_EQ(parse_frame(echo.data(), echo.size(), {}, &p), ParseStatus::kOk);
  EXPECT_EQ(p.tuple.icmp_type(), kIcmpEcho);
  EXPECT_EQ(__builtin_bswap16(p.tuple.sport), 0x1234);
  // The reply's tuple is the inverse of the request's.
  auto reply = FrameBuilder().ip("198.51.100.7", "198.18.0.2").icmp(kIcmpEchoReply, 0, 0x1234, 1).build();
  ParsedPacket r;
  ASSERT_EQ(parse_frame(reply.data(), reply.size(), {}, &r), ParseStatus::kOk);
  EXPECT_EQ(invert(p.tuple), r.tuple);
}

TEST(Parse, LinkPaddingIgnored) {
  auto f = FrameBuilder().ip("198.18.0.2", "198.51.100.7").udp(1, 2).build();
  f.resize(60, 0);  // Ethernet minimum frame
  ParsedPacket p;
  ASSERT_EQ(parse_frame(f.data(), f.size(), {}, &p), ParseStatus::kOk);
  EXPECT_EQ(p.ip_end, 14 + 28);
}

}  // namespace
}  // namespace xnat
