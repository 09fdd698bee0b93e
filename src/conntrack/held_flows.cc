#include "conntrack/held_flows.h"

namespace xnat {

HeldFlows::HeldFlows(uint32_t capacity, uint64_t seed, bool windows, const ReplyClaims* claims)
    : table_(capacity, 0, seed, windows), claims_(claims) {
  order_.assign(size_t{table_.capacity()} + 2, {});
  for (uint32_t c = 0; c < 2; ++c) order_[sentinel(c)] = {sentinel(c), sentinel(c)};
}

bool HeldFlows::hold(const Flow& f, const TcpWindow* w) {
  const bool over = connection_over(f);
  if (table_.size() == table_.capacity()) {
    const uint32_t closed = order_[sentinel(1)].second;
    if (closed != sentinel(1)) drop(closed);
    else if (over) return false;
    else drop(order_[sentinel(0)].second);
  }
  const uint32_t h = table_.alloc(f.tuple[0].proto == kProtoTcp);
  table_.assign(h, f);
  if (TcpWindow* hw = table_.window(h); hw && w) *hw = *w;
  table_.flow(h).evict_list = EvictList::kNone;  // on none of the main table's lists
  table_.link(h);
  push(h);
  return true;
}

void HeldFlows::push(uint32_t hidx) {
  const uint32_t s = sentinel(connection_over(table_.flow(hidx)) ? 1 : 0);
  const uint32_t last = order_[s].first;
  order_[hidx] = {last, s};
  order_[last].second = hidx;
  order_[s].first = hidx;
}

void HeldFlows::unlink(uint32_t hidx) {
  const auto [prev, next] = order_[hidx];
  order_[prev].second = next;
  order_[next].first = prev;
}

}  // namespace xnat
