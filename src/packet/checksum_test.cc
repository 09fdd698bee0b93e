#include "packet/checksum.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

namespace xnat {
namespace {

uint16_t full(const std::vector<uint8_t>& d) { return csum_finish(csum_partial(d.data(), d.size())); }

TEST(Checksum, Rfc1071Example) {
  // RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2 (before inversion).
  const uint8_t d[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  uint16_t folded = csum_fold(csum_partial(d, sizeof d));
  EXPECT_EQ(__builtin_bswap16(folded), 0xddf2);
}

TEST(Checksum, OddLengthPadsWithZero) {
  const uint8_t odd[] = {0x12, 0x34, 0x56};
  const uint8_t even[] = {0x12, 0x34, 0x56, 0x00};
  EXPECT_EQ(csum_fold(csum_partial(odd, 3)), csum_fold(csum_partial(even, 4)));
}

TEST(Checksum, IncrementalUpdateEqualsRecomputation) {
  std::mt19937 rng(42);
  for (int iter = 0; iter < 2000; ++iter) {
    std::vector<uint8_t> d(20 + rng() % 40);
    for (auto& b : d) b = static_cast<uint8_t>(rng());
    std::memset(&d[10], 0, 2);
    uint16_t c = full(d);
    std::memcpy(&d[10], &c, 2);
    // Rewrite a 32-bit field and a 16-bit field, as NAT does for address and port.
    uint32_t old32, new32 = rng();
    std::memcpy(&old32, &d[12], 4);
    std::memcpy(&d[12], &new32, 4);
    uint16_t old16, new16 = static_cast<uint16_t>(rng());
    std::memcpy(&old16, &d[16], 2);
    std::memcpy(&d[16], &new16, 2);
    uint16_t inc = csum_apply(c, csum_fold(csum_delta32(old32, new32) + csum_delta16(old16, new16)));
    std::memset(&d[10], 0, 2);
    uint16_t want = full(d);
    // 0x0000 and 0xFFFF are the same one's complement value; RFC 1624 eqn. 3 never yields -0 here.
    EXPECT_EQ(inc, want) << "iteration " << iter;
  }
}

TEST(Checksum, UdpZeroMeansNone) {
  EXPECT_EQ(csum_apply_udp(0, 0x1234), 0);
  // A result of zero is sent as all ones (RFC 768).
  uint16_t c = 0x1234;
  uint16_t delta = static_cast<uint16_t>(~csum_fold(static_cast<uint16_t>(~c)));  // makes the sum 0xFFFF
  uint16_t r = csum_apply(c, delta);
  ASSERT_EQ(r, 0);  // the delta was chosen to make the checksum field zero
  EXPECT_EQ(csum_apply_udp(c, delta), 0xFFFF);
}

TEST(Checksum, PseudoHeaderVerification) {
  uint8_t udp[10] = {0x13, 0x88, 0x00, 0x35, 0x00, 0x0a, 0, 0, 'h', 'i'};
  uint32_t s = 0x020012C6, d = 0x076433C6;  // 198.18.0.2, 198.51.100.7 in memory order
  uint16_t c = l4_checksum(s, d, 17, udp, sizeof udp);
  std::memcpy(&udp[6], &c, 2);
  EXPECT_TRUE(l4_checksum_ok(s, d, 17, udp, sizeof udp));
  udp[9] ^= 1;
  EXPECT_FALSE(l4_checksum_ok(s, d, 17, udp, sizeof udp));
}

}  // namespace
}  // namespace xnat
