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
#include <cstring>
#include <deque>
#include <thread>

#include "fake_backend.h"
#include "golden_cases.h"
#include "live/steer.h"
#include "packet/parse.h"
#include "test_util.h"

namespace xnat::test {
namespace {

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
    thread = std::thread([this] { run_worker(w, sh, bo); });
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

// A later fragment that comes ahead of its first waits in the engine and
// leaves once the first has (RFC 4787 REQ-14), from the worker's loop.
TEST(Worker, AFragmentAheadOfItsFirstLeavesAfterIt) {
  Running r(engine_config(kMasq));
  const auto frags = fragment(from_client().ip_id(9).udp(40000, 53).payload(std::vector<uint8_t>(100, 3)).build(), 64);
  ASSERT_EQ(frags.size(), 2u);
  r.io->inject(kIn, frags[1]);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(r.io->sent().empty());
  r.io->inject(kIn, frags[0]);
  auto out = r.sent(2);
  ASSERT_EQ(out.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(out[i].first, kOut);
    const uint8_t* ip = out[i].second.data() + 14;
    EXPECT_EQ((ip[6] & 0x1F) << 8 | ip[7], i == 0 ? 0 : 8) << "the first fragment leaves first";
    uint32_t src;
    std::memcpy(&src, ip + 12, 4);
    EXPECT_EQ(src, ip_raw("198.19.0.1"));
  }
  r.stop();
  EXPECT_EQ(r.w.engine->counters().get(Counter::fragments_held), 1u);
  EXPECT_EQ(r.w.engine->counters().get(Counter::fragments_translated), 1u);
}

// A listing's walk publishes the figures as it ends (SIGUSR1 writes both):
// what the worker had done when the listing was taken, not what it had
// done at its last periodic publishing, up to 100 ms before.
TEST(Worker, AListingComesWithTheFiguresOfItsMoment) {
  Running r(engine_config(kMasq));
  // Its first figures, published as it starts: the next are 100 ms away.
  for (int i = 0; i < 2000; ++i) {
    {
      std::lock_guard<std::mutex> lock(r.w.mu);
      if (!r.w.snap.ports.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  constexpr size_t kFrames = 5;
  for (size_t i = 0; i < kFrames; ++i)
    r.io->inject(kIn, from_client().udp(static_cast<uint16_t>(40000 + i), 53).build());
  ASSERT_EQ(r.sent(kFrames).size(), kFrames);
  const uint64_t gen = r.sh.dump_gen.fetch_add(1) + 1;
  r.w.wake();
  bool done = false;
  for (int i = 0; i < 2000 && !done; ++i) {
    {
      std::lock_guard<std::mutex> lock(r.w.mu);
      done = r.w.snap.dump_done >= gen;
      if (done) {
        ASSERT_EQ(r.w.snap.ports.size(), 2u);
        EXPECT_EQ(r.w.snap.ports[kIn].rx, kFrames);
        EXPECT_EQ(r.w.snap.ports[kOut].tx, kFrames);
        EXPECT_EQ(r.w.snap.engine.counters.v[static_cast<size_t>(Counter::flows_created)], kFrames);
      }
    }
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(done);
}

}  // namespace
}  // namespace xnat::test
