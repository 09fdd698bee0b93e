// What the hosts' offloads left in a frame, finished in software: a frame
// leaving other than through the backend (the neighbour wait queue, the host
// port) has no way to carry a partial checksum or a
// super-frame's segmentation, so the checksum is completed and the
// super-frame cut into frames (packet/offload.h), each passed on as a packet
// of its own. A datagram too large for its output's MTU is cut into
// fragments here too.
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

  // A datagram the engine found larger than its output's MTU, without DF
  // (Packet::frag_mtu): finished as above, then cut into fragments
  // (fragment_ipv4), each given to `sink(Packet&)` as a packet of its own.
  // False if `sink` refused one.
  template <typename Sink>
  bool fragment(Packet& p, Sink&& sink) {
    const uint16_t mtu = p.frag_mtu;
    return finish(p, [&](Packet& q) {
      bool ok = true;
      auto piece = [&](const uint8_t* f, uint32_t len) {
        Packet r = q;
        r.data = const_cast<uint8_t*>(f);
        r.len = r.capacity = len;
        r.frag_mtu = 0;
        return ok = sink(r);
      };
      (void)fragment_ipv4(q.data, q.len, mtu, frag_scratch_.data(), static_cast<uint32_t>(frag_scratch_.size()), piece);
      return ok;
    });
  }

  uint64_t segmented() const { return segmented_; }  // super-frames cut (counter gso_segmented)

 private:
  std::vector<uint8_t> scratch_ = std::vector<uint8_t>(16384);  // one frame cut from a super-frame
  std::vector<uint8_t> frag_scratch_ = std::vector<uint8_t>(65536 + 64);  // one fragment
  uint64_t segmented_ = 0;
};

}  // namespace xnat
