// Lines the data plane logs (-j LOG) on their way to whoever prints them: a
// fixed ring of fixed-size lines with one writer (the worker) and one reader
// (the control thread, or replay), allocated once. A line that finds the
// ring full is lost, and counted (log_lines_lost); the writer never waits.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>

namespace xnat {

struct LogLine {
  uint8_t level = 4;  // syslog priority, as --log-level
  uint16_t len = 0;
  char text[250];
};

class LogRing {
 public:
  static constexpr uint32_t kLines = 256;  // a power of two
  LogRing() : lines_(new LogLine[kLines]) {}

  // The next free line, or nullptr when the ring is full; publish() hands it over.
  LogLine* slot() {
    const uint32_t h = head_.load(std::memory_order_relaxed);
    if (h - tail_.load(std::memory_order_acquire) == kLines) return nullptr;
    return &lines_[h & (kLines - 1)];
  }
  void publish() { head_.store(head_.load(std::memory_order_relaxed) + 1, std::memory_order_release); }

  // Calls fn(level, text) for each line written so far; returns how many.
  template <typename Fn>
  uint32_t drain(Fn&& fn) {
    const uint32_t h = head_.load(std::memory_order_acquire);
    uint32_t t = tail_.load(std::memory_order_relaxed);
    const uint32_t n = h - t;
    for (; t != h; ++t) {
      const LogLine& l = lines_[t & (kLines - 1)];
      fn(l.level, std::string_view(l.text, l.len));
      tail_.store(t + 1, std::memory_order_release);
    }
    return n;
  }

 private:
  std::unique_ptr<LogLine[]> lines_;
  alignas(64) std::atomic<uint32_t> head_{0};
  alignas(64) std::atomic<uint32_t> tail_{0};
};

}  // namespace xnat
