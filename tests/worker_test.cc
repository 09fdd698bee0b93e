// The live gateway's worker loop (live/worker.h) driven by a fake backend,
// without root, sockets or BPF: frames in on one port come out translated on
// the other, a frame whose next hop is unresolved waits for the kernel's
// answer (a Fib update) and then leaves, and the worker stops when told.
#include "live/worker.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <thread>

#include "golden_cases.h"
#include "live/steer.h"
#include "packet/parse.h"
#include "test_util.h"

namespace xnat::test {
namespace {

// Frames injected per port; what the worker sends, recorded.
class FakeBackend final : public Backend {
 public:
  explicit FakeBackend(size_t ports) : inbox_(ports), bufs_(kBurst * 2048) { stats_.resize(ports); }

  void inject(int port, const std::vector<uint8_t>& f) {
    std::lock_guard<std::mutex> lock(mu_);
    inbox_[static_cast<size_t>(port)].push_back(f);
  }
  std::vector<std::pair<int, std::vector<uint8_t>>> sent() {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_;
  }

  size_t rx(int port, Packet* pkts, size_t max) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto& q = inbox_[static_cast<size_t>(port)];
    size_t n = 0;
    for (; n < max && n < kBurst && !q.empty(); ++n) {
      uint8_t* buf = bufs_.data() + n * 2048;
      std::copy(q.front().begin(), q.front().end(), buf);
      pkts[n] = Packet{};
      pkts[n].data = buf;
      pkts[n].len = static_cast<uint32_t>(q.front().size());
      pkts[n].capacity = 2048;
      pkts[n].in_if = static_cast<int16_t>(port);
      q.pop_front();
      ++stats_[static_cast<size_t>(port)].rx;
    }
    return n;
  }
  void complete(Packet* pkts, size_t n) override {
    for (size_t i = 0; i < n; ++i)
      if (pkts[i].verdict == Verdict::kForward) send_copy(pkts[i].out_if, pkts[i].data, pkts[i].len);
  }
  bool send_copy(int port, const uint8_t* frame, uint32_t len) override {
    std::lock_guard<std::mutex> lock(mu_);
    sent_.emplace_back(port, std::vector<uint8_t>(frame, frame + len));
    ++stats_[static_cast<size_t>(port)].tx;
    return true;
  }
  void flush() override {}
  void wait(int timeout_ms, int wake_fd, int) override {
    pollfd p{wake_fd, POLLIN, 0};
    (void)::poll(&p, 1, std::min(timeout_ms, 5));  // injections do not wake it: look again soon
  }
  void update_kernel_stats() override {}
  const char* name() const override { return "fake"; }
  std::string describe() const override { return "fake"; }

 private:
  std::mutex mu_;
  std::vector<std::deque<std::vector<uint8_t>>> inbox_;
  std::vector<std::pair<int, std::vector<uint8_t>>> sent_;
  std::vector<uint8_t> bufs_;
};

// One worker on the reference gateway (eth1 inside, eth0 outside), running.
struct Running {
  Shared sh;
  Worker w;
  FakeBackend* io;
  BackendOptions bo;
  std::vector<uint64_t> counts = std::vector<uint64_t>(XNAT_CLAIM_ENTRIES, 0);
  std::thread thread;

  explicit Running(EngineConfig cfg) {
    sh.fib = cfg.fib;
    w.engine = std::make_unique<Engine>(std::move(cfg));
    auto io_owned = std::make_unique<FakeBackend>(2);
    io = io_owned.get();
    w.io = std::move(io_owned);
    w.claims.counts = counts.data();
    set_claim_addrs(&w.claims, w.engine->fib());
    w.engine->set_flow_observer(&w.claims);
    w.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    bo.ifindexes = {11, 12};
    thread = std::thread([this] { run_worker(w, sh, bo, /*steer_filter=*/false); });
  }
  ~Running() { stop(); }
  void stop() {
    if (!thread.joinable()) return;
    sh.stop = true;
    const uint64_t one = 1;
    (void)!::write(w.wake_fd, &one, sizeof one);
    thread.join();
    ::close(w.wake_fd);
  }
  // Waits (bounded) until the worker has sent `n` frames.
  std::vector<std::pair<int, std::vector<uint8_t>>> sent(size_t n) {
    for (int i = 0; i < 2000 && io->sent().size() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return io->sent();
  }
};

const std::string kMasq = nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n");

TEST(Worker, TranslatesBothWaysThroughItsBackend) {
  Running r(engine_config(kMasq));
  r.io->inject(kIn, from_client().udp(40000, 53).payload(std::vector<uint8_t>(20, 7)).build());
  auto out = r.sent(1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].first, kOut);
  ParsedPacket p;
  ASSERT_EQ(parse_frame(out[0].second.data(), out[0].second.size(), {}, &p), ParseStatus::kOk);
  EXPECT_EQ(p.tuple.src, ip_raw("198.19.0.1"));
  EXPECT_EQ(p.tuple.dst, ip_raw("198.51.100.7"));

  r.io->inject(kOut, FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").udp(53, __builtin_bswap16(p.tuple.sport)).build());
  out = r.sent(2);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].first, kIn);
  ASSERT_EQ(parse_frame(out[1].second.data(), out[1].second.size(), {}, &p), ParseStatus::kOk);
  EXPECT_EQ(p.tuple.dst, ip_raw("198.18.0.2"));
  EXPECT_EQ(__builtin_bswap16(p.tuple.dport), 40000);
  // The flow's reply ends on the gateway's own address: its port is claimed
  // from the kernel while the flow lives.
  EXPECT_EQ(r.counts[xnat_claim_index(kProtoUdp, 40000)], 1u);
  r.stop();
  EXPECT_EQ(r.w.engine->counters().v[static_cast<size_t>(Counter::flows_created)], 1u);
}

TEST(Worker, HoldsAFrameUntilItsNextHopResolves) {
  EngineConfig cfg = engine_config(kMasq);
  cfg.hold_unresolved = true;
  Running r(std::move(cfg));
  // 198.19.0.77 is on eth0's subnet, and the kernel has not resolved it yet.
  r.io->inject(kIn, from_client().ip("198.18.0.2", "198.19.0.77").udp(40000, 53).build());
  auto asked = [&] {
    std::lock_guard<std::mutex> lock(r.sh.resolve_mu);
    return !r.sh.resolve.empty();
  };
  for (int i = 0; i < 2000 && !asked(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  {
    std::lock_guard<std::mutex> lock(r.sh.resolve_mu);
    ASSERT_EQ(r.sh.resolve.size(), 1u);  // asked the control thread to resolve it
    EXPECT_EQ(r.sh.resolve[0], std::make_pair(12, ip_raw("198.19.0.77")));
  }
  EXPECT_TRUE(r.io->sent().empty());
  // The kernel answers: the control thread publishes a Fib with the neighbour.
  const MacAddr mac{{0x02, 0, 0, 0, 0, 0x77}};
  {
    std::lock_guard<std::mutex> lock(r.sh.fib_mu);
    r.sh.fib.add_neighbor(ip_raw("198.19.0.77"), mac);
  }
  r.sh.fib_version.fetch_add(1);
  auto out = r.sent(1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].first, kOut);
  EXPECT_TRUE(std::equal(mac.b, mac.b + 6, out[0].second.begin()));
  r.stop();
  EXPECT_EQ(r.w.live.v[static_cast<size_t>(Counter::drop_neighbor_timeout)], 0u);
}

}  // namespace
}  // namespace xnat::test
