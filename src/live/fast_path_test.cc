#include "live/fast_path.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "live/steer.h"

namespace xnat {
namespace {

// An IPv4 header without options and the first 20 bytes of a TCP header.
std::vector<uint8_t> segment(uint32_t seq, uint32_t ack, uint16_t id, uint16_t len) {
  std::vector<uint8_t> h(40, 0);
  h[0] = 0x45;
  h[2] = static_cast<uint8_t>(len >> 8), h[3] = static_cast<uint8_t>(len);
  h[4] = static_cast<uint8_t>(id >> 8), h[5] = static_cast<uint8_t>(id);
  h[8] = 64, h[9] = 6;
  const uint32_t s = __builtin_bswap32(seq), a = __builtin_bswap32(ack);
  std::memcpy(&h[24], &s, 4);
  std::memcpy(&h[28], &a, 4);
  h[32] = 0x50, h[33] = 0x10;
  return h;
}

// Consecutive segments of one direction, bulk data or pure ACKs, each with
// a tag of its own: the hand-over waits for exactly the last one passed on.
TEST(FastHandOver, EverySegmentOfADirectionHasItsOwnTag) {
  std::vector<uint32_t> tags;
  for (uint32_t i = 0; i < 100; ++i) {
    tags.push_back(xnat_fast_tag(segment(1000 + i * 1448, 5000, static_cast<uint16_t>(7 + i), 1500).data()));
    tags.push_back(xnat_fast_tag(segment(5000, 1000 + i * 1448, static_cast<uint16_t>(300 + i), 52).data()));
  }
  for (size_t i = 0; i < tags.size(); ++i) {
    EXPECT_NE(tags[i], 0u) << "0 means none passed yet";
    for (size_t j = 0; j < i; ++j) EXPECT_NE(tags[i], tags[j]) << i << " " << j;
  }
  // Only the headers the program reads count: the checksum does not.
  std::vector<uint8_t> a = segment(1, 2, 3, 40), b = a;
  b[10] ^= 0xff;
  EXPECT_EQ(xnat_fast_tag(a.data()), xnat_fast_tag(b.data()));
}

TEST(FastHandOver, ADirectionOpensOnceTheLastSegmentPassedOnHasLeft) {
  const uint64_t until = 5'000'000;
  EXPECT_FALSE(xnat_fast_may_open(0, 0, 0, until)) << "none passed on yet: some may still wait";
  EXPECT_FALSE(xnat_fast_may_open(42, 41, 0, until)) << "an earlier one left, the last has not";
  EXPECT_TRUE(xnat_fast_may_open(42, 42, 0, until));
  EXPECT_TRUE(xnat_fast_may_open(0, 0, until, until)) << "the wait ran out";
  EXPECT_TRUE(xnat_fast_may_open(42, 41, until + 1, until));
}

// The worker's side: the tags of the segments it forwarded reach the
// program's fast_sent map only after its round of sends.
TEST(FastHandOver, SentTagsArePublishedAfterTheRoundOfSends) {
  std::vector<uint64_t> seen(4, 0), sent(8, 0);
  FastPath fp(-1, seen.data(), sent.data(), 0, 4, {}, 16);
  const std::vector<uint8_t> to_server = segment(100, 200, 1, 1500), to_client = segment(200, 100, 2, 52);
  const std::vector<uint8_t> later = segment(1548, 200, 3, 1500);
  fp.segment(0, 0, to_server.data());
  fp.segment(0, 1, to_client.data());
  fp.segment(0, 0, later.data());
  EXPECT_EQ(sent, std::vector<uint64_t>(8, 0)) << "published before they left";
  fp.publish();
  EXPECT_EQ(sent[0], xnat_fast_tag(later.data())) << "the last of the direction";
  EXPECT_EQ(sent[1], xnat_fast_tag(to_client.data()));
  // One with IPv4 options: the program never passes it on by a tag.
  std::vector<uint8_t> opts = segment(3096, 200, 4, 1500);
  opts[0] = 0x46;
  fp.segment(0, 0, opts.data());
  fp.publish();
  EXPECT_EQ(sent[0], xnat_fast_tag(later.data()));
}

}  // namespace
}  // namespace xnat
