#include "dataplane/icmp_error.h"

#include <gtest/gtest.h>

#include <vector>

#include "packet/frame_builder.h"
#include "packet/parse.h"

namespace xnat {
namespace {

TEST(IcmpRateLimit, BurstThenPerSecond) {
  IcmpRateLimit r(1000, 50);  // the kernel's defaults
  int sent = 0;
  for (int i = 0; i < 100; ++i) sent += r.allow(5);
  EXPECT_EQ(sent, 50);  // the burst
  EXPECT_FALSE(r.allow(5));
  EXPECT_TRUE(r.allow(6));  // one per millisecond at 1000/s
  EXPECT_FALSE(r.allow(6));
  sent = 0;
  for (int i = 0; i < 200; ++i) sent += r.allow(1006);
  EXPECT_EQ(sent, 50);  // refilled to the burst, not beyond
  IcmpRateLimit slow(1, 1);
  EXPECT_TRUE(slow.allow(0));
  EXPECT_FALSE(slow.allow(999));
  EXPECT_TRUE(slow.allow(1000));
}

TEST(IcmpPeerLimit, SixThenOneASecondPerDestination) {
  IcmpPeerLimit r(1000);  // the kernel's default net.ipv4.icmp_ratelimit
  int sent = 0;
  for (int i = 0; i < 20; ++i) sent += r.allow(0x0100000a, 5000);
  EXPECT_EQ(sent, 6);  // XRLIM_BURST_FACTOR
  EXPECT_FALSE(r.allow(0x0100000a, 5999));
  EXPECT_TRUE(r.allow(0x0100000a, 6000));
  EXPECT_FALSE(r.allow(0x0100000a, 6000));
  EXPECT_TRUE(r.allow(0x0200000a, 6000));  // another destination, its own bucket
  sent = 0;
  for (int i = 0; i < 20; ++i) sent += r.allow(0x0100000a, 60000);
  EXPECT_EQ(sent, 6);  // refilled to the burst, not beyond
  // Thousands of other destinations push it out; it comes back full.
  for (uint32_t d = 0; d < 100000; ++d) r.allow(0x0a000000 + d, 60001);
  sent = 0;
  for (int i = 0; i < 20; ++i) sent += r.allow(0x0100000a, 60002);
  EXPECT_EQ(sent, 6);
  IcmpPeerLimit off(0);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(off.allow(0x0100000a, 5000));
  EXPECT_TRUE(IcmpPeerLimit::limits(11, 0));
  EXPECT_TRUE(IcmpPeerLimit::limits(3, 3));
  EXPECT_FALSE(IcmpPeerLimit::limits(3, 4));  // fragmentation needed: path MTU discovery
}

TEST(IcmpError, QuotesUpTo576BytesAndChecksums) {
  std::vector<uint8_t> payload(1000, 0x42);
  auto f = FrameBuilder()
               .eth(mac(0x10), mac(0x01))
               .ip("198.18.0.2", "198.51.100.7")
               .ttl(1)
               .udp(40000, 53)
               .payload(payload)
               .build();
  const std::vector<uint8_t> original = f;
  f.resize(2048);
  const uint32_t quote = icmp_error_quote(f.data(), 2048, 14, static_cast<uint32_t>(original.size()));
  EXPECT_EQ(quote, 576u - 28);
  const uint32_t len = build_icmp_error(f.data(), 14, quote, ip_raw("198.18.0.1"), ip_raw("198.18.0.2"), mac(0x01),
                                        11, 0);
  ASSERT_EQ(len, 14u + 576);
  f.resize(len);
  ParsedPacket p;
  ASSERT_EQ(parse_frame(f.data(), f.size(), {}, &p), ParseStatus::kOk);  // IPv4 and ICMP checksums verified
  EXPECT_TRUE(p.icmp_error);
  EXPECT_EQ(p.tuple.src, ip_raw("198.18.0.1"));
  EXPECT_EQ(p.tuple.dst, ip_raw("198.18.0.2"));
  EXPECT_EQ(p.inner.src, ip_raw("198.18.0.2"));  // the quoted datagram, as it was
  EXPECT_EQ(f[14 + 20], 11);                      // time exceeded
  EXPECT_TRUE(std::equal(f.begin() + 14 + 28, f.end(), original.begin() + 14));
  const MacAddr client = mac(0x10), gateway = mac(0x01);  // back toward the previous hop
  EXPECT_TRUE(std::equal(client.b, client.b + 6, f.begin()));
  EXPECT_TRUE(std::equal(gateway.b, gateway.b + 6, f.begin() + 6));
}

TEST(IcmpError, NoErrorWhenTheQuoteCannotFit) {
  auto f = FrameBuilder().eth(mac(0x10), mac(0x01)).ip("198.18.0.2", "198.51.100.7").udp(1, 2).build();
  // Room for the headers but not the datagram's header and 8 bytes.
  EXPECT_EQ(icmp_error_quote(f.data(), 14 + 28 + 27, 14, static_cast<uint32_t>(f.size())), 0u);
  EXPECT_EQ(icmp_error_quote(f.data(), 14 + 28 + 28, 14, static_cast<uint32_t>(f.size())), 28u);
  EXPECT_EQ(icmp_error_quote(f.data(), 20, 14, static_cast<uint32_t>(f.size())), 0u);
}

}  // namespace
}  // namespace xnat
