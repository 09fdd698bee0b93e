// The readers of connection events (`xnat conntrack -E`): each a stream on
// the control socket with its query (filters, -e mask, output). The control
// thread drains the workers' event rings (conntrack/events.h) into every
// reader whose query matches, formatted. A reader that does not keep up
// loses events past a bound, counted and told to it (conntrack's ENOBUFS
// warning, but the stream goes on); so does every reader when a ring was
// full.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "control/conntrack_query.h"
#include "live/control_server.h"

namespace xnat {

class EventReaders {
 public:
  // What waits for a reader, formatted, before its events are dropped.
  static constexpr size_t kPendingMax = 1 << 20;

  // A new reader of the events `q` (a kEvents query) selects.
  std::shared_ptr<ControlStream> add(ConntrackQuery q);
  // The event types someone reads now (readers whose client left are gone).
  uint8_t mask();
  // Drains the rings into the readers. `ring_lost`: the rings' lost events
  // ever (EventRing::lost, summed); now_ms: the workers' clock.
  void pump(const std::vector<EventRing*>& rings, uint64_t ring_lost, uint64_t now_ms);

  // Events lost, ever: rings found full (each once, however many read), and
  // events a reader fell behind on.
  uint64_t lost_in_rings() const { return ring_lost_; }
  uint64_t lost_by_readers() const { return reader_lost_; }
  size_t readers() const {
    return static_cast<size_t>(
        std::count_if(readers_.begin(), readers_.end(), [](const auto& r) { return !r.expired(); }));
  }

 private:
  struct Reader;
  std::vector<std::weak_ptr<Reader>> readers_;
  uint64_t ring_lost_ = 0;
  uint64_t reader_lost_ = 0;
};

}  // namespace xnat
