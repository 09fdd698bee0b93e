// Every golden case again, end to end through the `xnat replay` binary: the
// steps become pcap files per interface (in step order), and the binary's
// per-interface captures, host.pcap and drop counters must hold exactly the
// expected frames and reasons.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "golden_cases.h"
#include "io/pcap.h"

namespace xnat::test {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::vector<uint8_t>> frames(const std::string& path) {
  std::vector<std::vector<uint8_t>> out;
  auto r = read_pcap(path);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  if (r.ok())
    for (auto& rec : *r) out.push_back(rec.data);
  return out;
}

class GoldenReplay : public ::testing::TestWithParam<Case> {};

TEST_P(GoldenReplay, BinaryOutputsMatch) {
  const Case& c = GetParam();
  char tmpl[] = "/tmp/xnat-golden-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  std::ofstream(dir + "/gw.toml") << "rules = \"nat.rules\"\n" << reference_config();
  std::ofstream(dir + "/nat.rules") << c.rules;

  // Inputs per interface; timestamps keep the steps' order (ties broken by a
  // microsecond per step, which no rule or timeout can see).
  const char* names[2] = {"eth1", "eth0"};
  std::vector<std::vector<uint8_t>> want_out[2], want_host;
  size_t host_steps = 0;
  std::map<std::string, uint64_t> want_drops;
  {
    auto w0 = PcapWriter::create(dir + "/in-eth1.pcap");
    auto w1 = PcapWriter::create(dir + "/in-eth0.pcap");
    ASSERT_TRUE(w0.ok() && w1.ok());
    for (size_t i = 0; i < c.steps.size(); ++i) {
      const Step& s = c.steps[i];
      const uint64_t ts = (1'700'000'000'000ull + s.t_ms) * 1'000'000 + i * 1000;
      (s.in_if == kIn ? *w0 : *w1).write(ts, s.in.data(), s.in.size());
      if (s.reason != Counter::kCount) ++want_drops[counter_name(s.reason)];
      if (s.verdict == Verdict::kForward) want_out[s.out_if].push_back(s.out);
      if (s.verdict == Verdict::kToHost) {
        ++host_steps;
        if (!s.out.empty()) want_host.push_back(s.out);
      }
    }
  }
  const std::string cmd = std::string(XNAT_BINARY) + " replay --config " + dir + "/gw.toml --in eth1=" + dir +
                          "/in-eth1.pcap --in eth0=" + dir + "/in-eth0.pcap --out " + dir + "/out > " + dir +
                          "/log 2>&1";
  const int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << slurp(dir + "/log");

  for (int itf = 0; itf < 2; ++itf) {
    auto got = frames(dir + "/out/" + names[itf] + ".pcap");
    ASSERT_EQ(got.size(), want_out[itf].size()) << "frames sent on " << names[itf];
    for (size_t k = 0; k < got.size(); ++k)
      EXPECT_EQ(got[k], want_out[itf][k]) << names[itf] << " frame " << k << "\ngot:  " << describe(got[k])
                                          << "\nwant: " << describe(want_out[itf][k]);
  }
  auto host = frames(dir + "/out/host.pcap");
  ASSERT_EQ(host.size(), host_steps);
  size_t checked = 0;
  for (const auto& f : host)
    for (const auto& w : want_host) checked += f == w;
  EXPECT_EQ(checked, want_host.size()) << "frames handed to the host differ";

  std::map<std::string, uint64_t> got_drops;
  std::istringstream cs(slurp(dir + "/out/counters.txt"));
  std::string name;
  uint64_t v;
  std::string line;
  while (std::getline(cs, line)) {
    std::istringstream ls(line);
    if (!(ls >> name >> v)) continue;
    if (name.rfind("drop_", 0) == 0 && v) got_drops[name] = v;
    if (name == "conntrack_count") {
      EXPECT_EQ(v, c.flows_after);
    }
  }
  EXPECT_EQ(got_drops, want_drops);
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Replay, GoldenReplay, ::testing::ValuesIn(golden_cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

}  // namespace
}  // namespace xnat::test
