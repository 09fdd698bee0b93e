// FragmentTable: what became of each fragmented datagram's first fragment, so
// that its later fragments (which carry no transport header, so no ports to
// find a connection by) go the same way.
//
// netfilter reassembles a datagram before conntrack sees it (nf_defrag_ipv4)
// and fragments it again on output. xnat translates fragments one by one, as
// VPP's shallow virtual reassembly does: the first fragment is tracked and
// translated as any packet (its transport checksum, which covers the whole
// datagram, is updated incrementally, which stays correct); the engine then
// records here, under the datagram's key as received (source, destination,
// protocol, IP identification), what it did: forwarded with these addresses,
// handed to that worker, given to the host, or dropped for that reason. Each
// later fragment with the same key gets the same, its addresses rewritten
// and its header checksum fixed. A later fragment that arrives before its
// first fragment is dropped and counted (drop_fragment_unmatched): holding
// it would need buffers, and links that reorder fragments are rare.
//
// Fixed capacity, no allocation after construction: 4-way buckets, an entry
// lives net.ipv4.ipfrag_time (30 s) from its first fragment, and a full bucket
// gives up its entry that expires first.
#pragma once

#include <cstdint>
#include <vector>

#include "dataplane/counters.h"

namespace xnat {

struct FragmentKey {
  uint32_t src = 0, dst = 0;  // network order, as received
  uint16_t id = 0;            // IPv4 identification, raw
  uint8_t proto = 0;
};

struct FragmentFate {
  enum Kind : uint8_t { kForward, kHandoff, kToHost, kDrop };
  Kind kind = kDrop;
  uint32_t out_src = 0, out_dst = 0;  // kForward: the addresses it left with
  uint16_t worker = 0;                // kHandoff
  DropReason reason = Counter::kCount;  // kDrop
};

class FragmentTable {
 public:
  static constexpr uint64_t kLifetimeMs = 30'000;  // net.ipv4.ipfrag_time

  explicit FragmentTable(uint32_t entries = 4096);

  void record(const FragmentKey& k, const FragmentFate& f, uint64_t now_ms);
  // The fate recorded for k, or nullptr (none, or expired).
  const FragmentFate* find(const FragmentKey& k, uint64_t now_ms) const;

 private:
  static constexpr uint32_t kWays = 4;
  struct Entry {
    FragmentKey key;
    FragmentFate fate;
    uint64_t expires_ms = 0;  // 0: empty
  };
  uint32_t bucket(const FragmentKey& k) const;
  static bool same(const FragmentKey& a, const FragmentKey& b) {
    return a.src == b.src && a.dst == b.dst && a.id == b.id && a.proto == b.proto;
  }

  std::vector<Entry> entries_;
  uint32_t mask_ = 0;  // buckets - 1
};

}  // namespace xnat
