// Evicted flows kept for their late packets (conntrack.h tells why): a
// second, fixed-size table outside nf_conntrack_max, with two use orders,
// live and closed. When it is full the least recently used closed flow goes,
// else the least recently used live one; a closed flow never pushes out a
// live one. A held flow keeps its reply claims (reply_claims.h) until it is
// dropped, or passes them on when it is taken back into the table.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "conntrack/flow_table.h"
#include "conntrack/reply_claims.h"

namespace xnat {

// A TCP connection that is over: CLOSE, or TIME_WAIT after a FIN from each
// side (netfilter's table reaches TIME_WAIT after one side's FIN too, see
// conntrack.h).
inline bool connection_over(const Flow& f) {
  return f.tuple[0].proto == kProtoTcp &&
         (f.tcp_state == TcpState::kClose || (f.tcp_state == TcpState::kTimeWait && f.tcp_fin_seen == 3));
}

class HeldFlows {
 public:
  // claims: released for the flows dropped from here. The same hash seed as
  // the main table, so a miss there hands its hash on.
  HeldFlows(uint32_t capacity, uint64_t seed, bool windows, const ReplyClaims* claims);

  uint32_t size() const { return table_.size(); }
  uint32_t capacity() const { return table_.capacity(); }

  // Keeps a copy of f (and its window) with the claims it holds; makes room
  // by dropping another if full. false: full of live flows and f is closed.
  bool hold(const Flow& f, const TcpWindow* w);
  // held index * 2 + direction of the held flow with `t`, or kNoRef. One past
  // its expiry is dropped on the spot.
  uint32_t find(const Tuple& t, uint64_t h, uint64_t now_ms) {
    const uint32_t ref = table_.find(t, h);
    if (ref == kNoRef) return kNoRef;
    if (table_.flow(ref >> 1).expires_ms <= now_ms) {
      drop(ref >> 1);
      return kNoRef;
    }
    return ref;
  }
  // Whether a held flow reserves `t`.
  bool reserves(const Tuple& t, uint64_t h) const { return table_.size() && table_.find(t, h) != kNoRef; }
  // Forgets a flow and gives up its claims.
  void drop(uint32_t hidx) {
    claims_->release(table_.flow(hidx));
    forget(hidx);
  }
  // Forgets a flow whose claims someone else now holds.
  void forget(uint32_t hidx) {
    unlink(hidx);
    table_.unlink_and_free(hidx);
  }
  // A held flow in use: the last to be dropped.
  void touch(uint32_t hidx) {
    unlink(hidx);
    push(hidx);
  }

  Flow& flow(uint32_t hidx) { return table_.flow(hidx); }
  const Flow& flow(uint32_t hidx) const { return table_.flow(hidx); }
  TcpWindow* window(uint32_t hidx) { return table_.window(hidx); }
  const TcpWindow* window(uint32_t hidx) const { return table_.window(hidx); }
  size_t memory_bytes() const { return table_.memory_bytes() + order_.size() * sizeof(order_[0]); }

 private:
  uint32_t sentinel(uint32_t closed) const { return table_.capacity() + closed; }
  void push(uint32_t hidx);  // to the young end of the list its state calls for
  void unlink(uint32_t hidx);

  FlowTable table_;
  // prev/next per entry, then the sentinels of the live and the closed list.
  std::vector<std::pair<uint32_t, uint32_t>> order_;
  const ReplyClaims* claims_;
};

}  // namespace xnat
