// What the hosts' offloads left in a frame, finished in software: a frame
// leaving other than through the backend (the neighbour wait queue, the host
// port) has no way to carry a partial checksum or a
// super-frame's segmentation, so the checksum is completed and the
// super-frame cut into frames (packet/offload.h), each passed on as a packet
// of its own.
#pragma once

#include <cstdint>
#include <vector>

#include "dataplane/packet.h"
#include "packet/offload.h"

namespace xnat {

class SoftwareOffload {
 public:
  // Gives `sink(Packet&)` the frame, finished, or the frames cut from it.
  // False if `sink` refused one (it counts its own drop).
  template <typename Sink>
  bool finish(Packet& p, Sink&& sink) {
    if (p.l4_csum != L4Csum::kPartial && p.gso == Gso::kNone) return sink(p);
    bool ok = true;
    if (p.gso != Gso::kNone) {
      auto piece = [&](const uint8_t* f, uint32_t len) {
        Packet s = p;
        s.data = const_cast<uint8_t*>(f);
        s.len = s.capacity = len;
        s.l4_csum = L4Csum::kFull;
        s.gso = Gso::kNone;
        s.gso_size = 0;
        return ok = sink(s);
      };
      if (segment_gso(p.data, p.len, p.gso_size, scratch_.data(), static_cast<uint32_t>(scratch_.size()), piece)) {
        ++segmented_;
        return ok;
      }
    }
    // Not cut (one segment's payload, or it cannot be): completed whole.
    finish_l4_checksum(p.data, p.len);
    p.l4_csum = L4Csum::kFull;
    p.gso = Gso::kNone;
    p.gso_size = 0;
    return sink(p);
  }

  uint64_t segmented() const { return segmented_; }  // super-frames cut (counter gso_segmented)

 private:
  std::vector<uint8_t> scratch_ = std::vector<uint8_t>(16384);  // one frame cut from a super-frame
  uint64_t segmented_ = 0;
};

}  // namespace xnat
