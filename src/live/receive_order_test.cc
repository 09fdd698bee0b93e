// --rps-cpus: RPS on the gateway's interfaces for the run
// (live/receive_order.h), on a sysfs tree of plain files.
#include "live/receive_order.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace xnat {
namespace {

namespace fs = std::filesystem;

TEST(RpsMask, IsTheKernelsBitmapText) {
  EXPECT_EQ(rps_mask({0}), "1");
  EXPECT_EQ(rps_mask({1}), "2");
  EXPECT_EQ(rps_mask({0, 1, 3}), "b");
  EXPECT_EQ(rps_mask({31}), "80000000");
  EXPECT_EQ(rps_mask({33, 0}), "2,00000001");
  EXPECT_TRUE(rps_mask_empty("00"));
  EXPECT_TRUE(rps_mask_empty("00000000,00000000\n"));
  EXPECT_FALSE(rps_mask_empty("00000000,00000100"));
}

class ReceiveOrderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("xnat_rps_" + std::to_string(getpid()));
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  void queue(const std::string& ifname, const std::string& q, const std::string& mask) {
    fs::create_directories(root_ / ifname / "queues" / q);
    std::ofstream(root_ / ifname / "queues" / q / "rps_cpus") << mask << "\n";
  }
  std::string mask(const std::string& ifname, const std::string& q) {
    std::ifstream in(root_ / ifname / "queues" / q / "rps_cpus");
    std::string s;
    std::getline(in, s);
    return s;
  }
  std::unique_ptr<ReceiveOrder> apply(const std::vector<std::string>& ifnames, const std::vector<int>& cpus) {
    return ReceiveOrder::apply(ifnames, cpus, root_.string());
  }
  fs::path root_;
};

TEST_F(ReceiveOrderTest, SetOnEveryReceiveQueueForTheRunOnly) {
  queue("veth0", "rx-0", "0");
  queue("veth0", "rx-1", "00");
  queue("veth0", "tx-0", "");  // not a receive queue
  queue("veth1", "rx-0", "00000000,00000000");
  queue("other", "rx-0", "0");
  {
    auto r = apply({"veth0", "veth1"}, {0});
    EXPECT_EQ(mask("veth0", "rx-0"), "1");
    EXPECT_EQ(mask("veth0", "rx-1"), "1");
    EXPECT_EQ(mask("veth1", "rx-0"), "1");
    EXPECT_EQ(mask("other", "rx-0"), "0") << "not the gateway's";
    EXPECT_EQ(r->describe(), "RPS on veth0, veth1 to CPU 0");
    EXPECT_TRUE(r->warnings().empty());
  }
  EXPECT_EQ(mask("veth0", "rx-0"), "0");
  EXPECT_EQ(mask("veth0", "rx-1"), "00");
  EXPECT_EQ(mask("veth1", "rx-0"), "00000000,00000000");
}

TEST_F(ReceiveOrderTest, AnOperatorsMaskStaysBeforeAndAfter) {
  queue("veth0", "rx-0", "2");
  queue("veth1", "rx-0", "0");
  {
    auto r = apply({"veth0", "veth1"}, {0, 1});
    EXPECT_EQ(mask("veth0", "rx-0"), "2");
    EXPECT_EQ(mask("veth1", "rx-0"), "3");
    EXPECT_EQ(r->describe(), "RPS on veth1 to CPU 0-1");
    // Changed during the run: the operator's now.
    std::ofstream(root_ / "veth1" / "queues" / "rx-0" / "rps_cpus") << "00000002\n";
  }
  EXPECT_EQ(mask("veth1", "rx-0"), "00000002");
}

TEST_F(ReceiveOrderTest, SysfsPaddingIsTheSameMask) {
  queue("veth0", "rx-0", "0");
  {
    auto r = apply({"veth0"}, {1});
    std::ofstream(root_ / "veth0" / "queues" / "rx-0" / "rps_cpus") << "00000002\n";  // as sysfs shows it
  }
  EXPECT_EQ(mask("veth0", "rx-0"), "0");
}

TEST_F(ReceiveOrderTest, AMaskThatCannotBeWrittenIsAWarningNamingTheFile) {
  // A read-only sysfs file that reads as no CPUs stands for a read-only
  // /sys (a container's).
  const fs::path ro = "/sys/devices/system/cpu/offline";
  std::ifstream probe(ro);
  std::string line;
  if (!probe || !std::getline(probe, line) || !line.empty()) GTEST_SKIP() << ro << " is not an empty read-only file here";
  fs::create_directories(root_ / "veth0" / "queues" / "rx-0");
  fs::create_symlink(ro, root_ / "veth0" / "queues" / "rx-0" / "rps_cpus");
  queue("veth1", "rx-0", "0");
  auto r = apply({"veth0", "veth1"}, {0});
  ASSERT_EQ(r->warnings().size(), 1u);
  EXPECT_NE(r->warnings()[0].find("RPS on veth0 not set"), std::string::npos) << r->warnings()[0];
  EXPECT_NE(r->warnings()[0].find("rx-0/rps_cpus"), std::string::npos) << r->warnings()[0];
  EXPECT_EQ(r->describe(), "RPS on veth1 to CPU 0") << "the others still set";
}

}  // namespace
}  // namespace xnat
