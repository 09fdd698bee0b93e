// Frames handed between workers: the worker that received a frame of a flow
// another worker owns passes a copy to that worker through a lock-free
// single-producer single-consumer ring.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>

#include "dataplane/packet.h"

namespace xnat {

// A single-producer single-consumer ring of copies (the frames' buffers
// belong to the sender's backend). A frame takes whole units of kUnit bytes,
// contiguous, so an MTU frame takes one and a TSO/GSO super-frame passes
// whole, with what its offloads left in it, in order with the flow's other
// frames; a record that would run past the end is preceded by a pad to it.
// The consumer processes frames in place and transmits copies.
class HandoffRing {
 public:
  static constexpr uint32_t kUnit = 2048;
  static constexpr uint32_t kFrameMax = 65536 + 2048 - 32;  // an IPv4 datagram of 64 KiB behind its link header

  // At least `units` units (rounded up to a power of two, and to room for a
  // super-frame).
  explicit HandoffRing(uint32_t units)
      : nunits_(std::bit_ceil(std::max(units, units_for(kFrameMax)))), buf_(std::make_unique<Record[]>(nunits_)) {}
  uint32_t units() const { return nunits_; }

  bool push(const Packet& p) {  // producer
    if (p.len > kFrameMax) return false;
    const uint32_t need = units_for(p.len);
    const uint32_t t = tail_.load(std::memory_order_relaxed);
    const uint32_t at = t % nunits_;
    const uint32_t pad = at + need > nunits_ ? nunits_ - at : 0;
    if (t + pad + need - head_.load(std::memory_order_acquire) > nunits_) return false;
    if (pad) buf_[at].h = Header{kPad, pad};
    Record& r = buf_[(t + pad) % nunits_];
    r.h = Header{p.len, need, p.in_if, p.hops, p.l4_csum, p.gso, p.adopt, p.gso_size};
    std::memcpy(r.data, p.data, p.len);
    tail_.store(t + pad + need, std::memory_order_release);
    return true;
  }
  // Consumer: up to `max` frames from the head, as Packets pointing into the
  // ring, valid until release().
  size_t peek(Packet* out, size_t max) {
    max = std::min(max, kBurst);
    uint32_t cur = head_.load(std::memory_order_relaxed);
    const uint32_t t = tail_.load(std::memory_order_acquire);
    size_t n = 0;
    while (cur != t && n < max) {
      Record& r = buf_[cur % nunits_];
      cur += r.h.units;
      if (r.h.len == kPad) continue;
      out[n] = Packet{};
      out[n].data = r.data;
      out[n].len = r.h.len;
      out[n].capacity = r.h.units * kUnit - sizeof(Header);
      out[n].in_if = r.h.in_if;
      out[n].hops = r.h.hops;
      out[n].l4_csum = r.h.l4_csum;
      out[n].gso = r.h.gso;
      out[n].gso_size = r.h.gso_size;
      out[n].adopt = r.h.adopt;
      ends_[n++] = cur;
    }
    return n;
  }
  // Gives back the first `n` frames peek() returned.
  void release(size_t n) {
    if (n) head_.store(ends_[n - 1], std::memory_order_release);
  }
  bool empty() const { return head_.load(std::memory_order_relaxed) == tail_.load(std::memory_order_acquire); }

 private:
  static constexpr uint32_t kPad = UINT32_MAX;  // Header::len of the filler before a wrap
  struct Header {
    uint32_t len;
    uint32_t units;
    int16_t in_if = 0;
    uint8_t hops = 0;
    L4Csum l4_csum = L4Csum::kFull;
    Gso gso = Gso::kNone;
    bool adopt = false;
    uint16_t gso_size = 0;
  };
  // One unit; a frame's data runs on into the units after its first.
  struct Record {
    Header h;
    uint8_t data[kUnit - sizeof(Header)];
  };
  static_assert(sizeof(Record) == kUnit);
  static constexpr uint32_t units_for(uint32_t len) { return (len + sizeof(Header) + kUnit - 1) / kUnit; }

  alignas(64) std::atomic<uint32_t> head_{0};
  alignas(64) std::atomic<uint32_t> tail_{0};
  uint32_t nunits_;
  std::unique_ptr<Record[]> buf_;
  uint32_t ends_[kBurst] = {};  // consumer: where each peeked frame ends
};

}  // namespace xnat
