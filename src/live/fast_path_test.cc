// The gateway's side of the fast path's hand-over (live/fast_path.h): a new
// connection's directions stay pending until the segments the programs
// passed on before have left, so the fast path never overtakes them. The
// programs' part is played here on the slot words as they write them
// (bpf/xnat_steer.bpf.c, arm_pending).
#include "live/fast_path.h"

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <vector>

#include "live/steer.h"

namespace xnat {
namespace {

// A TCP segment's IPv4 and TCP headers, as far as the tag reads them.
std::array<uint8_t, 40> segment(uint16_t id, uint32_t seq, uint32_t ack) {
  std::array<uint8_t, 40> ip{};
  ip[0] = 0x45;
  ip[3] = 40;
  ip[4] = static_cast<uint8_t>(id >> 8);
  ip[5] = static_cast<uint8_t>(id);
  ip[9] = 6;
  for (int i = 0; i < 4; ++i) {
    ip[24 + i] = static_cast<uint8_t>(seq >> (24 - 8 * i));
    ip[28 + i] = static_cast<uint8_t>(ack >> (24 - 8 * i));
  }
  return ip;
}

// What the programs write when they pass a segment of a pending direction on.
unsigned long long tagged(const std::array<uint8_t, 40>& ip) {
  return XNAT_ARM_PENDING | XNAT_ARM_TAGGED | xnat_arm_tag(ip.data());
}

class FastPathArm : public ::testing::Test {
 protected:
  void SetUp() override {
    fd_ = bpf_map_create(BPF_MAP_TYPE_HASH, "xnat_fast_test", sizeof(Tuple), sizeof(xnat_fast_entry), 64, nullptr);
    if (fd_ < 0) GTEST_SKIP() << "no BPF map (needs root or CAP_BPF): " << std::strerror(errno);
    fast_ = std::make_unique<FastPath>(fd_, slots_.data(), 0, static_cast<uint32_t>(slots_.size()),
                                       std::vector<int>{1, 2}, std::vector<uint32_t>{1500, 1500}, 16);
    dirs_[0].match = Tuple{0x0a000002, 0xc6130002, 40000, 80, 6};
    dirs_[0].out = Tuple{0xc6130001, 0xc6130002, 1024, 80, 6};
    dirs_[0].out_if = 1;
    dirs_[1].match = Tuple{0xc6130002, 0xc6130001, 80, 1024, 6};
    dirs_[1].out = Tuple{0xc6130002, 0x0a000002, 80, 40000, 6};
    dirs_[1].out_if = 0;
    ASSERT_TRUE(fast_->add(kIdx, dirs_, 1000));
    for (const xnat_fast_slot& s : slots_)
      if (s.arm[0] | s.arm[1]) slot_ = &s - slots_.data();
  }
  void TearDown() override {
    if (fd_ >= 0) close(fd_);
  }
  unsigned long long& arm(int dir) { return slots_[slot_].arm[dir]; }

  static constexpr uint32_t kIdx = 3;
  int fd_ = -1;
  std::array<xnat_fast_slot, 4> slots_{};
  size_t slot_ = 0;
  OffloadPath dirs_[2];
  std::unique_ptr<FastPath> fast_;
};

TEST_F(FastPathArm, EntersPendingWithEachDirectionsWordNamedInItsEntry) {
  EXPECT_EQ(arm(0), XNAT_ARM_PENDING);
  EXPECT_EQ(arm(1), XNAT_ARM_PENDING);
  for (int d = 0; d < 2; ++d) {
    xnat_fast_entry e;
    ASSERT_EQ(bpf_map_lookup_elem(fd_, &dirs_[d].match, &e), 0);
    EXPECT_EQ(e.dir, d);
    EXPECT_EQ(e.slot, slot_);
  }
}

TEST_F(FastPathArm, ArmedOnceTheLastSegmentPassedOnHasLeft) {
  const auto a = segment(7, 1000, 5000), b = segment(8, 2448, 5000);
  arm(0) = tagged(a);
  arm(0) = tagged(b);  // b passed on behind a
  fast_->passed_on(kIdx, 0, a.data());
  fast_->arm();
  EXPECT_EQ(arm(0), tagged(b)) << "b still waits in the ring: not armed";
  fast_->passed_on(kIdx, 0, b.data());
  EXPECT_EQ(arm(0), tagged(b)) << "not before the worker's transmit";
  fast_->arm();
  EXPECT_EQ(arm(0), 0u);
  EXPECT_EQ(arm(1), XNAT_ARM_PENDING) << "each direction on its own";
  EXPECT_EQ(fast_->armed(), 1u);
  EXPECT_EQ(fast_->armed_late(), 0u);
}

TEST_F(FastPathArm, NotArmedWhenTheProgramsTaggedAnotherBeforeTheTransmit) {
  const auto a = segment(7, 1000, 5000), b = segment(8, 2448, 5000);
  arm(1) = tagged(a);
  fast_->passed_on(kIdx, 1, a.data());
  arm(1) = tagged(b);  // between the engine's forwarding of a and the flush
  fast_->arm();
  EXPECT_EQ(arm(1), tagged(b));
  EXPECT_EQ(fast_->armed(), 0u);
}

TEST_F(FastPathArm, ASegmentFromBeforeTheOffloadArmsNothing) {
  const auto old = segment(6, 0, 5000), a = segment(7, 1000, 5000);
  arm(0) = tagged(a);
  fast_->passed_on(kIdx, 0, old.data());  // waited in the ring since before the entries
  fast_->arm();
  EXPECT_EQ(arm(0), tagged(a));
  auto options = a;
  options[0] = 0x46;  // the programs pass a segment with IP options on untagged
  fast_->passed_on(kIdx, 0, options.data());
  fast_->arm();
  EXPECT_EQ(arm(0), tagged(a));
}

TEST_F(FastPathArm, ArmedLateWhenTheTaggedSegmentNeverCame) {
  const auto a = segment(7, 1000, 5000);
  arm(0) = tagged(a);  // lost on its way to the worker
  fast_->flush(1000 + FastPath::kArmLateMs - 1);
  EXPECT_EQ(arm(0), tagged(a));
  fast_->flush(1000 + FastPath::kArmLateMs);
  EXPECT_EQ(arm(0), 0u);
  EXPECT_EQ(arm(1), 0u) << "untagged: nothing passed on, nothing to overtake";
  EXPECT_EQ(fast_->armed_late(), 1u);
  EXPECT_EQ(fast_->armed(), 1u);
}

TEST_F(FastPathArm, TakenBackWhilePendingIsNotArmedLate) {
  arm(0) = tagged(segment(7, 1000, 5000));
  Flow f{};
  f.tuple[0] = dirs_[0].match;
  f.tuple[1] = dirs_[1].match;
  fast_->remove(kIdx, f);
  fast_->flush(1000 + FastPath::kArmLateMs);
  EXPECT_EQ(fast_->armed_late(), 0u);
  EXPECT_EQ(fast_->armed(), 0u);
  EXPECT_EQ(slots_[slot_].seen, XNAT_FAST_DRAINING);
}

}  // namespace
}  // namespace xnat
