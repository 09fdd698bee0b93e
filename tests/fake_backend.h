// A Backend (live/backend.h) without sockets, for tests of the live
// gateway's worker and start-up: frames injected per port, what is sent
// recorded.
#pragma once

#include <poll.h>

#include <algorithm>
#include <deque>
#include <mutex>
#include <utility>
#include <vector>

#include "live/backend.h"

namespace xnat::test {

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
      stats_[static_cast<size_t>(port)].rx_bytes += pkts[n].len;
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
    stats_[static_cast<size_t>(port)].tx_bytes += len;
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

}  // namespace xnat::test
