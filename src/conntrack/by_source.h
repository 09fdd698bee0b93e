// The table's index by original source, for two things netfilter does per
// source: reusing a client's mapping for its next flow (nf_nat_bysource, for
// source-translated flows; find_appropriate_src) and limiting how many flows
// one source may hold (xnat_max_flows_per_source; RFC 6888 REQ-4).
//
// The chains are singly linked through Flow::src_next from one head per one
// to two flows of capacity: a chain is walked for every new
// source-translated flow, one flow line per step, so they stay short.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>

#include "base/huge_array.h"
#include "conntrack/flow_table.h"
#include "conntrack/source_counter.h"

namespace xnat {

class BySource {
 public:
  BySource(uint64_t capacity, uint32_t max_per_source) : max_per_source_(max_per_source) {
    const uint64_t nb = std::bit_ceil(std::max<uint64_t>(capacity / 2, 64));
    heads_ = HugeArray<uint32_t>(nb);
    mask_ = nb - 1;
    for (uint64_t b = 0; b < nb; ++b) heads_[b] = kNoRef;
    if (max_per_source) counts_ = SourceCounter(capacity);
  }

  uint32_t bucket(const Tuple& orig) const {
    uint64_t x = uint64_t{orig.src} << 32 | uint64_t{orig.sport} << 8 | orig.proto;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return static_cast<uint32_t>(x & mask_);
  }
  const uint32_t* head(uint32_t bucket) const { return &heads_[bucket]; }

  // Enters flow idx, whose original tuple is final, in its chain.
  void link(FlowTable& table, uint32_t idx) {
    Flow& f = table.flow(idx);
    uint32_t& h = heads_[bucket(f.tuple[0])];
    f.src_next = h;
    h = idx;
  }
  void unlink(FlowTable& table, uint32_t idx) {
    // Singly linked: the chain is walked to the link that points here.
    uint32_t* link = &heads_[bucket(table.flow(idx).tuple[0])];
    while (*link != idx) link = &table.flow(*link).src_next;
    *link = table.flow(idx).src_next;
  }
  // Calls fn(const Flow&) for the live linked flows whose original source
  // (address, port or ICMP identifier, protocol) is that of `orig`, until fn
  // returns true; returns whether one did.
  template <typename Fn>
  bool for_each(const FlowTable& table, const Tuple& orig, uint64_t now_ms, Fn&& fn) const {
    for (uint32_t i = heads_[bucket(orig)]; i != kNoRef; i = table.flow(i).src_next) {
      const Flow& f = table.flow(i);
      if (f.tuple[0].src == orig.src && f.tuple[0].sport == orig.sport && f.tuple[0].proto == orig.proto &&
          f.expires_ms > now_ms && fn(f))
        return true;
    }
    return false;
  }

  // Per-source counts, kept only when a limit is set.
  bool counting() const { return counts_.enabled(); }
  bool at_limit(uint32_t src) const { return counts_.enabled() && counts_.count(src) >= max_per_source_; }
  uint32_t count(uint32_t src) const { return counts_.count(src); }
  uint32_t max_per_source() const { return max_per_source_; }
  void add(uint32_t src) { counts_.add(src); }
  void sub(uint32_t src) { counts_.sub(src); }

  size_t memory_bytes() const { return (mask_ + 1) * sizeof(uint32_t); }

 private:
  HugeArray<uint32_t> heads_;
  uint64_t mask_ = 0;
  SourceCounter counts_;
  uint32_t max_per_source_;
};

}  // namespace xnat
