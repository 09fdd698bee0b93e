#include "live/vnet_sender.h"

#include <gtest/gtest.h>

namespace xnat {
namespace {

// What AF_PACKET's virtio_net_hdr says of a received frame's checksum.
TEST(ReadVnet, FlagsSayWhatTheChecksumIs) {
  struct Case {
    uint8_t flags;
    L4Csum want;
  };
  for (const Case& c : {Case{0, L4Csum::kFull}, Case{kVnetNeedsCsum, L4Csum::kPartial},
                        Case{kVnetDataValid, L4Csum::kVerified}}) {
    Packet p;
    read_vnet(VnetHdr{.flags = c.flags}, &p);
    EXPECT_EQ(p.l4_csum, c.want) << int{c.flags};
    EXPECT_EQ(p.gso, Gso::kNone);
  }
}

TEST(ReadVnet, ASuperFrameKeepsItsSegmentation) {
  Packet p;
  read_vnet(VnetHdr{.flags = kVnetNeedsCsum, .gso_type = kVnetGsoTcpV4 | kVnetGsoEcn, .gso_size = 1448}, &p);
  EXPECT_EQ(p.l4_csum, L4Csum::kPartial);
  EXPECT_EQ(p.gso, Gso::kTcp);
  EXPECT_EQ(p.gso_size, 1448);
}

// A verified checksum leaves as it came: the output has nothing to finish.
TEST(ReadVnet, AVerifiedChecksumLeavesWithoutFlags) {
  Packet p;
  read_vnet(VnetHdr{.flags = kVnetDataValid}, &p);
  const VnetHdr v = vnet_of(p);
  EXPECT_EQ(v.flags, 0);
  EXPECT_EQ(v.gso_type, 0);
}

}  // namespace
}  // namespace xnat
