// The live gateway's start-up and control loop (live/gateway.h) on a fake
// Platform: a kernel view, steering and frame I/O without root, sockets or
// BPF. Start-up attaches steering only once every worker's sockets exist,
// frames are translated through the workers, a next hop the kernel has not
// resolved is asked of it and the frame leaves once the answer is read, a
// failure at start names its cause and leaves nothing attached, and stop()
// detaches.
#include "live/gateway.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "fake_backend.h"
#include "golden_cases.h"
#include "live/steer.h"
#include "packet/parse.h"
#include "test_util.h"

namespace xnat::test {
namespace {

struct FakeKernel final : KernelView {
  std::mutex mu;
  KernelState state;
  bool change = false;
  std::vector<std::pair<int, uint32_t>> resolved;  // what was asked

  Result<KernelState> dump() override {
    std::lock_guard<std::mutex> lock(mu);
    return state;
  }
  bool changed() override {
    std::lock_guard<std::mutex> lock(mu);
    return std::exchange(change, false);
  }
  Status resolve(int ifindex, uint32_t addr) override {
    std::lock_guard<std::mutex> lock(mu);
    resolved.emplace_back(ifindex, addr);
    return {};
  }
};

struct FakeSteering final : Steering {
  std::vector<std::string> calls;  // in order
  std::vector<uint64_t> counts = std::vector<uint64_t>(XNAT_CLAIM_ENTRIES, 7);  // not zeroed until start
  std::vector<uint32_t> local;
  std::string fail_attach;  // interface whose attach fails
  size_t backends_open = 0;

  Status attach(SteerHook, int ifindex, const std::string& name) override {
    calls.push_back(fmt::format("attach {} {} after {} backends", name, ifindex, backends_open));
    if (name == fail_attach) return Error{fmt::format("attach {}: Operation not permitted", name)};
    return {};
  }
  void detach_all() override { calls.push_back("detach_all"); }
  Status set_local_addrs(const std::vector<uint32_t>& a) override {
    local = a;
    return {};
  }
  uint64_t* claims() override { return counts.data(); }
  int frags_fd() const override { return -1; }
  Status set_xsk(int, uint32_t, int) override { return {}; }
  Status set_host_port(int) override { return {}; }
  Status attach_egress(int, const std::string&) override { return {}; }
  bool set_host_reply(const Tuple&, bool) override { return true; }
  uint64_t host_port_steered() const override { return 0; }
};

struct Fixture {
  Platform platform;
  FakeKernel* kernel;
  FakeSteering* steering;
  std::vector<FakeBackend*> backends;
  EngineConfig cfg;

  explicit Fixture(const std::string& rules) : cfg(engine_config(rules)) {
    auto k = std::make_unique<FakeKernel>();
    kernel = k.get();
    int ifindex = 11;
    for (const Interface& i : cfg.fib.interfaces())
      kernel->state.links.push_back(KernelLink{ifindex++, i.name, i.mac, 1500, true});
    platform.kernel = std::move(k);
    auto s = std::make_unique<FakeSteering>();
    steering = s.get();
    platform.steering = std::move(s);
    platform.open_backend = [this](const BackendOptions& o, Steering&) -> Result<std::unique_ptr<Backend>> {
      auto b = std::make_unique<FakeBackend>(o.ifnames.size());
      backends.push_back(b.get());
      ++steering->backends_open;
      return std::unique_ptr<Backend>(std::move(b));
    };
  }
  // Waits (bounded) until the workers have sent n frames in all.
  std::vector<std::pair<int, std::vector<uint8_t>>> sent(size_t n) {
    std::vector<std::pair<int, std::vector<uint8_t>>> all;
    for (int i = 0; i < 2000; ++i) {
      all.clear();
      for (FakeBackend* b : backends)
        for (auto& f : b->sent()) all.push_back(f);
      if (all.size() >= n) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return all;
  }
};

const std::string kMasq = nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n");

RunOptions workers(int n) {
  RunOptions o;
  o.workers = n;
  return o;
}

TEST(GatewayPlatform, StartsWorkersThenSteersAndTranslates) {
  Fixture f(kMasq);
  auto g = Gateway::start(f.cfg, workers(2), f.platform);
  ASSERT_TRUE(g.ok()) << g.error().message;
  // Steering attached to both interfaces, each only after both workers' sockets.
  ASSERT_EQ(f.steering->calls.size(), 2u);
  EXPECT_EQ(f.steering->calls[0], "attach eth1 11 after 2 backends");
  EXPECT_EQ(f.steering->calls[1], "attach eth0 12 after 2 backends");
  EXPECT_EQ(f.steering->local, std::vector<uint32_t>({ip_raw("198.18.0.1"), ip_raw("198.19.0.1")}));
  EXPECT_EQ(f.steering->counts[0], 0u);  // claims start from the rules alone
  EXPECT_NE((*g)->banner().find("2 workers"), std::string::npos) << (*g)->banner();

  // A flow through whichever worker gets it; its reply through the other
  // worker is handed over to the owner.
  f.backends[0]->inject(kIn, from_client().udp(40000, 53).build());
  auto out = f.sent(1);
  ASSERT_EQ(out.size(), 1u);
  ParsedPacket p;
  ASSERT_EQ(parse_frame(out[0].second.data(), out[0].second.size(), {}, &p), ParseStatus::kOk);
  EXPECT_EQ(p.tuple.src, ip_raw("198.19.0.1"));
  f.backends[1]->inject(
      kOut, FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").udp(53, __builtin_bswap16(p.tuple.sport)).build());
  out = f.sent(2);
  ASSERT_EQ(out.size(), 2u);
  ASSERT_EQ(parse_frame(out[1].second.data(), out[1].second.size(), {}, &p), ParseStatus::kOk);
  EXPECT_EQ(p.tuple.dst, ip_raw("198.18.0.2"));

  (*g)->stop();
  EXPECT_EQ(f.steering->calls.back(), "detach_all");
  GatewayReport r = (*g)->report(true);
  uint64_t created = 0;
  for (const CounterSource& s : r.engines) created += s.counters.get(Counter::flows_created);
  EXPECT_EQ(created, 1u);
  EXPECT_NE(r.table.find("src=198.18.0.2 dst=198.51.100.7 sport=40000 dport=53"), std::string::npos) << r.table;
  const std::string c = (*g)->counters_text(r);
  EXPECT_NE(c.find("live_rx_eth1 1\n"), std::string::npos) << c;
  EXPECT_NE(c.find("live_tx_eth1 1\n"), std::string::npos) << c;
}

TEST(GatewayPlatform, AsksTheKernelForANextHopAndSendsOnItsAnswer) {
  Fixture f(kMasq);
  auto g = Gateway::start(f.cfg, workers(1), f.platform);
  ASSERT_TRUE(g.ok()) << g.error().message;
  // 198.19.0.77 is on eth0's subnet, and the kernel has not resolved it yet.
  f.backends[0]->inject(kIn, from_client().ip("198.18.0.2", "198.19.0.77").udp(40000, 53).build());
  auto asked = [&] {
    std::lock_guard<std::mutex> lock(f.kernel->mu);
    return !f.kernel->resolved.empty();
  };
  for (int i = 0; i < 2000 && !asked(); ++i) {
    (*g)->poll();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  {
    std::lock_guard<std::mutex> lock(f.kernel->mu);
    ASSERT_EQ(f.kernel->resolved.size(), 1u);
    EXPECT_EQ(f.kernel->resolved[0], std::make_pair(12, ip_raw("198.19.0.77")));
  }
  EXPECT_TRUE(f.backends[0]->sent().empty());
  // The kernel's answer arrives as a change; the next poll reads it.
  const MacAddr mac{{0x02, 0, 0, 0, 0, 0x77}};
  {
    std::lock_guard<std::mutex> lock(f.kernel->mu);
    f.kernel->state.neighbors.push_back(KernelNeighbor{12, ip_raw("198.19.0.77"), mac});
    f.kernel->change = true;
  }
  (*g)->poll();
  auto out = f.sent(1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].first, kOut);
  EXPECT_TRUE(std::equal(mac.b, mac.b + 6, out[0].second.begin()));
}

TEST(GatewayPlatform, AFailedAttachNamesItsCauseAndDetaches) {
  Fixture f(kMasq);
  f.steering->fail_attach = "eth0";
  auto g = Gateway::start(f.cfg, workers(2), f.platform);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().message, "attach eth0: Operation not permitted");
  EXPECT_EQ(f.steering->calls.back(), "detach_all");  // eth1's attachment undone
}

TEST(GatewayPlatform, RefusesAMissingInterfaceAndBadWorkerCounts) {
  Fixture f(kMasq);
  f.kernel->state.links.pop_back();
  auto g = Gateway::start(f.cfg, workers(1), f.platform);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().message, "interface 'eth0' does not exist (ip link show eth0)");
  EXPECT_TRUE(f.backends.empty());

  Fixture f2(kMasq);
  auto g2 = Gateway::start(f2.cfg, workers(0), f2.platform);
  ASSERT_FALSE(g2.ok());
  EXPECT_EQ(g2.error().message, "--workers 0: use 1 to 255");
}

TEST(GatewayPlatform, RulesForTheHostNeedAHostPort) {
  Fixture f(nat_table("-A PREROUTING -i eth0 -p tcp --dport 2222 -j REDIRECT --to-ports 22\n"));
  auto g = Gateway::start(f.cfg, workers(1), f.platform);  // the fake platform has none
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.error().message.find("needs a host port"), std::string::npos) << g.error().message;
}

}  // namespace
}  // namespace xnat::test
