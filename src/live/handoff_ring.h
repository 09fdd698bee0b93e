// Frames handed between workers: the worker that received a frame of a flow
// another worker owns passes a copy to that worker through a lock-free
// single-producer single-consumer ring.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>

#include "dataplane/packet.h"

namespace xnat {

// Frames passed from one worker to another: a single-producer single-consumer
// ring of copies (the frames' buffers belong to the sender's backend). The
// consumer processes a frame in its slot and transmits a copy.
class HandoffRing {
 public:
  static constexpr uint32_t kFrameMax = 2048 - 16;
  struct Slot {
    uint32_t len;
    int16_t in_if;
    uint8_t hops;
    uint8_t data[kFrameMax];
  };

  // slots: a power of two.
  explicit HandoffRing(uint32_t slots) : nslots_(slots), slots_(std::make_unique<Slot[]>(slots)) {}

  bool push(const Packet& p) {  // producer
    const uint32_t t = tail_.load(std::memory_order_relaxed);
    if (t - head_.load(std::memory_order_acquire) == nslots_ || p.len > kFrameMax) return false;
    Slot& s = slots_[t & (nslots_ - 1)];
    std::memcpy(s.data, p.data, p.len);
    s.len = p.len;
    s.in_if = p.in_if;
    s.hops = p.hops;
    tail_.store(t + 1, std::memory_order_release);
    return true;
  }
  // Consumer: up to `max` filled slots from the head, as Packets.
  size_t peek(Packet* out, size_t max) {
    const uint32_t h = head_.load(std::memory_order_relaxed);
    const uint32_t n = std::min<uint32_t>(tail_.load(std::memory_order_acquire) - h, static_cast<uint32_t>(max));
    for (uint32_t i = 0; i < n; ++i) {
      Slot& s = slots_[(h + i) & (nslots_ - 1)];
      out[i] = Packet{};
      out[i].data = s.data;
      out[i].len = s.len;
      out[i].capacity = kFrameMax;
      out[i].in_if = s.in_if;
      out[i].hops = s.hops;
    }
    return n;
  }
  void release(size_t n) { head_.store(head_.load(std::memory_order_relaxed) + static_cast<uint32_t>(n), std::memory_order_release); }
  bool empty() const { return head_.load(std::memory_order_relaxed) == tail_.load(std::memory_order_acquire); }

 private:
  alignas(64) std::atomic<uint32_t> head_{0};
  alignas(64) std::atomic<uint32_t> tail_{0};
  uint32_t nslots_;
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace xnat
