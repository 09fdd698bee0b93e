#include "live/event_readers.h"

#include <fmt/format.h>

#include <algorithm>

namespace xnat {

struct EventReaders::Reader final : ControlStream {
  ConntrackQuery query;
  std::string pending;
  uint64_t lost_full = 0;    // not yet told: the reader fell behind
  uint64_t lost_rings = 0;   // not yet told: a worker's ring was full

  explicit Reader(ConntrackQuery q) : query(std::move(q)) {}

  void take(std::string* out, std::string* err) override {
    out->swap(pending);
    pending.clear();
    if (lost_full)
      *err += fmt::format("WARNING: {} events lost: this reader fell behind (more than {} KiB waiting for it)\n",
                          lost_full, kPendingMax / 1024);
    if (lost_rings)
      *err += fmt::format("WARNING: {} events lost: the workers' event rings were full (the gateway's control "
                          "thread fell behind)\n",
                          lost_rings);
    lost_full = lost_rings = 0;
  }
};

std::shared_ptr<ControlStream> EventReaders::add(ConntrackQuery q) {
  auto r = std::make_shared<Reader>(std::move(q));
  readers_.push_back(r);
  return r;
}

uint8_t EventReaders::mask() {
  std::erase_if(readers_, [](const std::weak_ptr<Reader>& r) { return r.expired(); });
  uint8_t m = 0;
  for (const auto& w : readers_)
    if (auto r = w.lock()) m |= r->query.event_mask;
  return m;
}

void EventReaders::pump(const std::vector<EventRing*>& rings, uint64_t ring_lost, uint64_t now_ms) {
  std::vector<std::shared_ptr<Reader>> live;
  for (const auto& w : readers_)
    if (auto r = w.lock()) live.push_back(std::move(r));
  if (ring_lost > ring_lost_) {
    for (auto& r : live) r->lost_rings += ring_lost - ring_lost_;
    ring_lost_ = ring_lost;
  }
  for (EventRing* ring : rings)
    ring->drain([&](const FlowEvent& e) {
      for (auto& r : live) {
        const ConntrackQuery& q = r->query;
        if (!(e.type & q.event_mask) || !q.matches(e.flow, e.mark)) continue;
        if (r->pending.size() >= kPendingMax) {
          ++r->lost_full;
          ++reader_lost_;
          continue;
        }
        q.append_event(&r->pending, e, now_ms);
      }
    });
}

}  // namespace xnat
