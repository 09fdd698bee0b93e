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

// RFC 1071 word by word: the reference the word-at-a-time sums must equal.
uint16_t reference_fold(const uint8_t* d, size_t len, uint32_t initial) {
  uint64_t s = initial;
  for (size_t i = 0; i + 1 < len; i += 2) s += uint32_t{d[i]} << 8 | d[i + 1];
  if (len & 1) s += uint32_t{d[len - 1]} << 8;
  while (s >> 16) s = (s & 0xFFFF) + (s >> 16);
  return static_cast<uint16_t>(s);
}

TEST(Checksum, FoldEqualsTwoStepEndAroundCarry) {
  auto two_step = [](uint32_t s) {
    s = (s & 0xFFFF) + (s >> 16);
    s = (s & 0xFFFF) + (s >> 16);
    return static_cast<uint16_t>(s);
  };
  std::vector<uint32_t> v = {0, 1, 0xFFFF, 0x10000, 0xFFFF0000, 0xFFFF0001, 0xFFFFFFFF, 0xFFFEFFFF, 0x0001FFFE,
                             0x8000'8000, 0x7FFF'8000};
  std::mt19937 rng(3);
  for (int i = 0; i < 1'000'000; ++i) v.push_back(static_cast<uint32_t>(rng()));
  for (uint32_t hi = 0; hi < 0x10000; hi += 0x101)
    for (uint32_t lo = 0xFF00; lo < 0x10000; ++lo) v.push_back(hi << 16 | lo);
  for (uint32_t s : v) ASSERT_EQ(csum_fold(s), two_step(s)) << std::hex << s;
}

TEST(Checksum, TtlDecrementEqualsIncrementalUpdate) {
  // Every stored checksum, and TTLs whose word is {ttl, proto} in memory order.
  for (uint32_t check = 0; check <= 0xFFFF; ++check)
    for (uint16_t word : {uint16_t{0x1140}, uint16_t{0x0602}, uint16_t{0xFF01}, uint16_t{0x0102}}) {
      const uint16_t after = static_cast<uint16_t>(word - 1);
      const uint16_t want = csum_apply(static_cast<uint16_t>(check), csum_fold(csum_delta16(word, after)));
      ASSERT_EQ(csum_ttl_decremented(static_cast<uint16_t>(check)), want) << std::hex << check << " " << word;
    }
  // And against a recomputation over a real header.
  std::mt19937 rng(5);
  for (int i = 0; i < 10000; ++i) {
    uint8_t h[20];
    for (uint8_t& b : h) b = static_cast<uint8_t>(rng());
    h[0] = 0x45;
    h[8] = static_cast<uint8_t>(2 + rng() % 254);
    h[10] = h[11] = 0;
    uint16_t c = csum_finish(csum_partial(h, 20));
    --h[8];
    c = csum_ttl_decremented(c);
    std::memcpy(&h[10], &c, 2);
    ASSERT_EQ(csum_fold(csum_partial(h, 20)), 0xFFFF) << i;
  }
}

TEST(Checksum, EqualsWordByWordSumAtEveryLengthAndOffset) {
  std::mt19937_64 rng(7);
  std::vector<uint8_t> buf(300);
  for (int fill = 0; fill < 3; ++fill) {
    // Random bytes, all ones (every addition carries), and all zeros.
    for (uint8_t& b : buf) b = fill == 0 ? static_cast<uint8_t>(rng()) : fill == 1 ? 0xFF : 0;
    for (size_t off = 0; off < 8; ++off)
      for (size_t len = 0; len + off <= 280; ++len) {
        const uint32_t initial = fill == 0 ? static_cast<uint32_t>(rng()) : 0;
        // The initial sum enters as a 32-bit value: fold it like a network-order pair of words.
        const uint16_t init16 = csum_fold(initial);
        const uint16_t got = csum_fold(csum_partial(buf.data() + off, len, initial));
        const uint16_t want = reference_fold(buf.data() + off, len, __builtin_bswap16(init16));
        // Ones' complement has two zeros; only all-zero input may give 0.
        ASSERT_EQ(__builtin_bswap16(got) % 0xFFFF, want % 0xFFFF) << "fill " << fill << " off " << off << " len " << len;
        if (fill == 2 && initial == 0) {
          ASSERT_EQ(got, 0) << len;
        } else if (len >= 2 && len % 2 == 0 && fill == 1) {
          ASSERT_EQ(got, 0xFFFF) << len;
        }
      }
  }
}

TEST(Checksum, Ipv4HeaderSumEqualsPartialSum) {
  std::mt19937_64 rng(9);
  std::vector<uint8_t> h(60);
  for (int iter = 0; iter < 2000; ++iter) {
    for (uint8_t& b : h) b = iter % 3 == 0 ? 0xFF : static_cast<uint8_t>(rng());
    const size_t hlen = 20 + 4 * (iter % 11);
    EXPECT_EQ(csum_fold(ipv4_header_sum(h.data(), hlen)), csum_fold(csum_partial(h.data(), hlen))) << hlen;
    // A header whose checksum field is filled in verifies.
    h[10] = h[11] = 0;
    const uint16_t c = csum_finish(csum_partial(h.data(), hlen));
    std::memcpy(&h[10], &c, 2);
    EXPECT_EQ(csum_fold(ipv4_header_sum(h.data(), hlen)), 0xFFFF) << hlen;
  }
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
