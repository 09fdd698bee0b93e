// Sharding the connection table over workers.
//
// Each worker owns a private flow table and its share of the NAT port space;
// a packet must be handled by the worker whose table holds its flow. Which
// worker that is follows from the packet alone for almost every flow:
//
//   owner(t) = G(proto, sport + dport) mod W           TCP, UDP, ICMP queries
//   owner(t) = G(H(min/max of the two addresses, proto)) mod W     the rest
//
// (for ICMP queries the identifier instead of the two ports), H and G
// mixing hashes. The function is symmetric, so a flow that is not
// translated has the same owner in both directions. The addresses are left
// out where there are ports because a source translation changes one of
// them and keeps the ports: a connection that keeps its port (as netfilter
// keeps it when free) has a reply of the same port sum, so the worker that
// takes the connection owns its reply, whatever the destination. Thus a
// client's port is kept on every worker -- one mapping towards every
// destination, RFC 4787 REQ-1 -- and the connections that could clash on a
// reply tuple (the same server address and port, the same outside port)
// all meet in one worker's table, which sees the clash. The cost: flows of
// one port pair (NTP 123-123, IKE 500-500 from many clients) share a worker.
// When the port must change, the allocator picks one (or an ICMP
// identifier) whose reply tuple's owner is itself, skipping the candidates
// another worker would own, as VPP's NAT44-ED gives each worker its own port
// ranges. (The ports are mixed, not added modulo W: Linux hands connect()
// even ports first, leaving odd ones to bind(), so with W = 2 a plain sum
// would send every connection from one client to one server to one worker.)
//
// Such a changed port, and an address a pool chose by destination, are the
// client's mapping for its next connections too (find_appropriate_src), and
// those may land on any worker: the workers share them in a SourceMap. A
// new connection of such a client goes to the worker that owns the reply its
// mapping would give (Engine::adopt_elsewhere), which takes it there.
//
// A tuple its flow's worker could not choose (the reply of a DNAT, where it
// comes from the server to the client's own port, or of a source mapping
// with a single port; the original of an adopted connection) is entered in
// a FlowDirectory, a lock-free map from tuple to worker that every worker
// reads when a packet misses its own table. So a worker that receives a
// packet:
//
//   1. looks it up in its own table: a hit is handled there (the usual case);
//   2. else asks the directory, then owner(); if another worker owns it, the
//      packet is handed to that worker through a ring;
//   3. else, if the client's shared mapping gives a reply another worker
//      owns, hands it there to be taken;
//   4. else creates the flow.
//
// A handed-off packet that again misses (its flow expired on the way) is
// handed on at most twice more, then dropped as handoff_loop: it creates a
// flow in a worker that does not own its tuple only when handed there to be
// adopted, and that worker enters the tuple in the directory.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "packet/parse.h"

namespace xnat {

// The addresses' share of owner() for protocols without ports: symmetric in
// source and destination.
inline uint32_t shard_addr_hash(const Tuple& t, uint64_t seed) {
  const uint32_t a = t.src < t.dst ? t.src : t.dst, b = t.src < t.dst ? t.dst : t.src;
  uint64_t x = (uint64_t{a} << 32 | b) ^ seed ^ (uint64_t{t.proto} << 56);
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return static_cast<uint32_t>(x >> 32);
}

// The ports' share: host order; the ICMP identifier alone (its {type, code}
// differs between a query and its reply); nothing for other protocols.
inline uint32_t shard_port_sum(const Tuple& t) {
  if (t.has_ports()) return uint32_t{__builtin_bswap16(t.sport)} + __builtin_bswap16(t.dport);
  if (t.proto == kProtoIcmp) return __builtin_bswap16(t.sport);
  return 0;
}

inline uint32_t shard_owner(const Tuple& t, uint32_t workers, uint64_t seed) {
  if (workers <= 1) return 0;
  const bool ported = t.has_ports() || t.proto == kProtoIcmp;
  const uint32_t h = ported ? static_cast<uint32_t>(seed >> 32) ^ t.proto : shard_addr_hash(t, seed);
  uint64_t x = (uint64_t{h} << 17 | shard_port_sum(t)) * 0x9E3779B97F4A7C15ull;
  x ^= x >> 29;
  x *= 0xbf58476d1ce4e5b9ull;
  return static_cast<uint32_t>(((x >> 32) * workers) >> 32);
}

// Tuple -> owning worker, for the flows with a tuple (the reply; an adopted
// connection's original) that does not hash to their owner. Many writers (each enters and removes only its own
// flows), many readers, no locks: each slot is one 64-bit word holding a
// 56-bit fingerprint of the tuple and the worker, written by compare-and-swap.
// A key lives in a window of 32 slots (four cache lines) starting at its
// bucket; with twice as many slots as flows a full window is practically
// impossible, and an insert that finds one fails (the caller drops the new
// flow, counted) rather than overwrite. Two different tuples share a
// fingerprint with probability 2^-56 per occupied slot of the window.
class FlowDirectory {
 public:
  static constexpr uint32_t kWindow = 32;
  static constexpr uint32_t kMaxWorkers = 255;

  explicit FlowDirectory(uint64_t max_flows);

  static uint64_t fingerprint(const Tuple& t, uint64_t seed);

  bool insert(uint64_t fp, uint32_t worker);
  void erase(uint64_t fp, uint32_t worker);
  int find(uint64_t fp) const;  // the worker, or -1
  uint64_t size() const { return size_.load(std::memory_order_relaxed); }

 private:
  size_t window_start(uint64_t fp) const { return static_cast<size_t>((fp >> 8) & mask_) * 8; }

  uint64_t mask_ = 0;  // bucket mask
  std::unique_ptr<std::atomic<uint64_t>[]> slot_;
  std::atomic<uint64_t> size_{0};
};

// What the workers share per source, one 48-bit value per worker and source,
// lock-free (each worker writes only its own entries; any worker reads all):
//
//  - a client's source mappings: netfilter's bysource hash
//    (find_appropriate_src), which one worker's table cannot be when the
//    client's connections land on several. Key: protocol, source address and
//    port (ICMP identifier); value: the address and port its connections
//    leave with (mapping()). A worker enters one while it holds
//    source-translated flows from that source whose mapping another worker
//    would not find by itself (a changed port, an address from a pool); a
//    lookup takes any worker's. It is a hint, never the proof: a worker that
//    reuses a mapping still checks that its reply tuple is free, so a stale
//    or torn read costs at most a mapping the kernel would not have chosen,
//    never a shared reply.
//  - with xnat_max_flows_per_source, how many flows each worker holds from a
//    source address (key: the address alone), so the limit is the gateway's.
//
// A slot is a key word and a value word, in two arrays so a lookup that
// misses (most new flows' sources have no entry) reads only keys; the key is
// written last (release) and read first and again after the value, so a
// value is read whole or not used.
class SourceMap {
 public:
  static constexpr uint32_t kWindow = 16;

  explicit SourceMap(uint64_t max_flows);

  static uint64_t fingerprint(uint8_t proto, uint32_t src, uint16_t sport, uint64_t seed);
  // A mapping's value: address and port, network order.
  static uint64_t mapping(uint32_t addr, uint16_t port) { return uint64_t{addr} << 16 | port; }
  static uint32_t mapped_addr(uint64_t v) { return static_cast<uint32_t>(v >> 16); }
  static uint16_t mapped_port(uint64_t v) { return static_cast<uint16_t>(v); }

  // value: below 2^48. false: the window is full (the value is then not
  // shared; the callers count it). At the table's limit with every flow's
  // source entered (a pool, each client port once) a few windows in a
  // thousand fill.
  bool enter(uint64_t fp, uint32_t worker, uint64_t value);
  // `worker`'s entry; false if it holds none.
  bool update(uint64_t fp, uint32_t worker, uint64_t value);
  void erase(uint64_t fp, uint32_t worker);
  // Any worker's value.
  bool find(uint64_t fp, uint64_t* value) const;
  // The sum of the values of the other workers' entries.
  uint64_t sum_others(uint64_t fp, uint32_t worker) const;
  // For reports: every worker writes it, so lookups do not read it (find()
  // answers most misses from the cached counts instead).
  uint64_t size() const { return size_.load(std::memory_order_relaxed); }

 private:
  static constexpr uint64_t kBusy = 0xff;  // a slot being filled: no key has a low byte of 0xff
  size_t window_start(uint64_t fp) const { return static_cast<size_t>((fp >> 8) & mask_) * 4; }
  // The slot of `worker`'s entry for fp, or SIZE_MAX.
  size_t own(uint64_t fp, uint32_t worker) const;

  // Entries per group of windows, saturating (255 stays): a lookup that
  // finds 0 here is answered from a quarter megabyte that stays in cache
  // instead of the window's lines, which a map sized for every flow spreads
  // over memory.
  std::atomic<uint8_t>& count_of(uint64_t fp) const { return count_[(fp >> 8) & count_mask_]; }

  uint64_t mask_ = 0;
  uint64_t count_mask_ = 0;
  std::unique_ptr<std::atomic<uint64_t>[]> key_;    // fingerprint | worker + 1
  std::unique_ptr<std::atomic<uint64_t>[]> value_;
  std::unique_ptr<std::atomic<uint8_t>[]> count_;
  std::atomic<uint64_t> size_{0};
};

// nf_conntrack_max is the gateway's, not a worker's: each worker's table has
// room for more than its fair share (flows do not spread evenly), and this
// count, shared by all, holds the total at the limit (netfilter keeps one
// global count too, nf_conntrack_count).
//
// A worker can evict only its own entries, so one at the limit with nothing
// to evict would refuse a connection while another holds closed ones. So
// once the count is within `reserve` of the limit, a new flow first evicts
// its worker's oldest closed entry (TIME_WAIT, CLOSE) if it has
// one -- what netfilter's garbage collector does above 95 % -- and the
// workers keep that headroom for each other.
//
// And a worker with nothing at all to evict may still take an entry, up to
// `overdraft` over the limit, recording a debt that the next worker with an
// evictable entry pays within a loop iteration (Conntrack::repay). The total
// thus exceeds nf_conntrack_max by at most `overdraft`, briefly; netfilter's
// unlocked check of its count can overshoot the same way.
struct SharedLimit {
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> debt{0};
  std::atomic<uint64_t> max{0};  // changed live by `xnat sysctl -w nf_conntrack_max`
  uint64_t reserve = 0;
  uint64_t overdraft = 0;
};

// What a worker's conntrack and engine need to know about the sharding.
struct Shard {
  uint32_t index = 0;
  uint32_t count = 1;
  uint64_t seed = 0;
  FlowDirectory* directory = nullptr;  // set when count > 1
  SourceMap* mappings = nullptr;       // set when count > 1
  SourceMap* flow_counts = nullptr;    // set when count > 1 and xnat_max_flows_per_source is
  SharedLimit* limit = nullptr;        // set when count > 1

  bool active() const { return count > 1; }
  uint32_t owner_by_hash(const Tuple& t) const { return shard_owner(t, count, seed); }
  // The worker that owns `t` (either direction of some flow, or a new one).
  uint32_t owner(const Tuple& t) const {
    if (count <= 1) return 0;
    if (directory) {
      const int w = directory->find(FlowDirectory::fingerprint(t, seed));
      if (w >= 0) return static_cast<uint32_t>(w);
    }
    return owner_by_hash(t);
  }
};

}  // namespace xnat
