// The live gateway's wait for a next hop's MAC address: a frame routed to a
// neighbour the kernel has not resolved yet is held here (a copy, so the
// receive buffers are not held) while the kernel resolves it, as the kernel's
// own neighbour queue holds it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "dataplane/packet.h"
#include "live/backend.h"
#include "route/fib.h"

namespace xnat {

// Frames whose next hop is being resolved. Copies, so the receive buffers are
// not held; bounded, and each frame waits at most kWaitMs. A slot takes a
// frame of the interfaces' largest MTU, at least a jumbo one (super-frames
// are cut to the output's MTU before they get here); its bytes are not
// touched until a frame needs them, so a gateway without jumbo frames
// commits only what its frames use.
class NeighborQueue {
 public:
  static constexpr size_t kSlots = 256;
  static constexpr uint32_t kFrameMin = frame_for_mtu(0);
  static constexpr uint64_t kWaitMs = 3000;

  // Slots for the frames of an interface of MTU `mtu`.
  explicit NeighborQueue(uint32_t mtu = 0)
      : frame_max_(frame_for_mtu(mtu)),
        bytes_(std::make_unique_for_overwrite<uint8_t[]>(kSlots * frame_max_)) {}

  uint32_t frame_max() const { return frame_max_; }

  // False when full (the caller counts the drop).
  bool hold(const Packet& p, uint64_t now) {
    if (p.len > frame_max_) return false;
    for (Slot& s : slots_)
      if (!s.used) {
        s.used = true;
        s.out_if = p.out_if;
        s.next_hop = p.next_hop;
        s.len = p.len;
        s.since = now;
        std::memcpy(data(s), p.data, p.len);
        ++count_;
        return true;
      }
    return false;
  }
  // Sends what resolved; returns how many timed out.
  template <typename Send>
  uint64_t service(const Fib& fib, uint64_t now, Send&& send) {
    uint64_t expired = 0;
    if (!count_) return 0;
    for (Slot& s : slots_) {
      if (!s.used) continue;
      if (const MacAddr* mac = fib.neighbor(s.next_hop)) {
        std::memcpy(data(s), mac->b, 6);
        if (!send(s.out_if, data(s), s.len)) ++expired;
      } else if (now - s.since < kWaitMs) {
        continue;
      } else {
        ++expired;
      }
      s.used = false;
      --count_;
    }
    return expired;
  }
  size_t size() const { return count_; }

 private:
  struct Slot {
    bool used = false;
    int16_t out_if = -1;
    uint32_t next_hop = 0;
    uint32_t len = 0;
    uint64_t since = 0;
  };
  uint8_t* data(const Slot& s) { return bytes_.get() + static_cast<size_t>(&s - slots_.data()) * frame_max_; }

  uint32_t frame_max_;
  std::vector<Slot> slots_ = std::vector<Slot>(kSlots);
  std::unique_ptr<uint8_t[]> bytes_;
  size_t count_ = 0;
};

}  // namespace xnat
