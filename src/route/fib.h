// Forwarding information: interfaces, connected prefixes, static routes
// (longest-prefix match), neighbours (next hop -> MAC), and the address
// classification addrtype needs.
//
// Routes and the gateway's own addresses are looked up together in one
// longest-prefix-match table (lpm.h: at most three reads, whatever the
// number of routes), the local addresses ranked above every route as the
// kernel's local table is consulted before its main one. The table is shared
// between copies of a Fib (the live gateway's workers each take one) and
// copied only when a shared one is changed.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/huge_array.h"
#include "base/result.h"
#include "packet/addr.h"
#include "packet/headers.h"
#include "route/lpm.h"

namespace xnat {

struct Interface {
  std::string name;
  uint32_t addr = 0;  // network order
  uint8_t prefix_len = 0;
  MacAddr mac{};
  uint32_t mtu = 1500;  // for TCPMSS --clamp-mss-to-pmtu
  // Reverse path filtering of new connections' sources, as the kernel's
  // net.ipv4.conf.{all,IF}.rp_filter (the larger): 0 off, 1 strict (the
  // route back to the source leaves by this interface), 2 loose (there is
  // one). Live: read from the kernel.
  uint8_t rp_filter = 0;
};

// The prefix an interface's address makes directly reachable (host order).
inline Prefix connected_prefix(const Interface& itf) {
  Prefix p;
  p.len = itf.prefix_len;
  p.addr = __builtin_bswap32(itf.addr) & p.mask();
  return p;
}

struct RouteEntry {
  Prefix prefix;        // host order
  int ifindex = -1;
  uint32_t gateway = 0;  // network order; 0: directly connected
};

struct NextHop {
  int ifindex = -1;
  uint32_t addr = 0;  // network order: the gateway, or the destination itself
};

// What a destination resolves to.
enum class RouteKind : uint8_t {
  kNone,         // no route
  kLocal,        // one of the gateway's own addresses, or 127/8
  kForward,      // forwarded: the NextHop says where
  kBlackhole,    // a blackhole route: dropped without a word
  kUnreachable,  // an unreachable route: ICMP host unreachable
  kProhibit,     // a prohibit route: ICMP communication administratively prohibited
};

class Fib {
 public:
  Fib();
  // Returns the interface's index.
  int add_interface(const Interface& itf);
  // Adds a route. `ifindex` < 0: take the interface whose connected prefix holds
  // the gateway. Returns an error message or nullopt.
  Status add_route(const Prefix& p, uint32_t gateway, int ifindex);
  // A route that forwards nothing (kind: kBlackhole, kUnreachable or
  // kProhibit), as the kernel's route types of those names.
  Status add_reject_route(const Prefix& p, RouteKind kind);
  // A route of several next hops ({gateway, interface}, gateways on link),
  // one taken per source and destination (resolve).
  Status add_multipath(const Prefix& p, const std::vector<std::pair<uint32_t, int>>& hops);
  static uint32_t multipath_hash(uint32_t src_raw, uint32_t dst_raw) {
    // MurmurHash3's finaliser: every bit of both addresses reaches the low bits.
    uint64_t x = uint64_t{src_raw} << 32 | dst_raw;
    x = (x ^ (x >> 33)) * 0xff51afd7ed558ccdull;
    x = (x ^ (x >> 33)) * 0xc4ceb9fe1a85ec53ull;
    return static_cast<uint32_t>(x ^ (x >> 33));
  }
  void add_neighbor(uint32_t addr, const MacAddr& mac);

  // Another primary address of interface `i`'s, in another prefix than its
  // first (Interface::addr): local, and a source MASQUERADE may pick.
  void add_interface_address(int i, uint32_t addr_raw, uint8_t prefix_len);
  // The addresses interface `i` speaks from, its first first.
  std::vector<uint32_t> interface_addresses(int i) const;
  // The source MASQUERADE gives a connection leaving interface `i` for
  // `next_hop`: as inet_select_addr, the interface's primary address whose
  // prefix holds the next hop, else its first (0: it has none).
  uint32_t source_for(int i, uint32_t next_hop_raw) const {
    const uint32_t first = if_addrs_[static_cast<size_t>(i)];
    if (more_addrs_.empty() || !first) [[likely]]
      return first;
    return source_among(i, next_hop_raw);
  }

  // Another of the host's own addresses (a second one on an interface, one
  // on lo or on a device the gateway does not own): local, as the kernel's
  // local table has it. An interface's own address or one added before is
  // not added again.
  void add_local(uint32_t addr_raw);
  // Those, in the order added.
  const std::vector<uint32_t>& other_locals() const { return locals_; }

  const std::vector<Interface>& interfaces() const { return ifs_; }
  // ifs_.size() without the division by sizeof(Interface) (per packet).
  size_t interface_count() const { return if_addrs_.size(); }
  const std::vector<RouteEntry>& routes() const { return routes_; }  // in the order added
  template <typename Fn>
  void for_each_neighbor(Fn&& fn) const {
    for (const Neighbor& n : neighbors_)
      if (n.addr) fn(n.addr, n.mac);
  }
  const Interface& interface(int i) const { return ifs_[i]; }
  const MacAddr& interface_mac(int i) const { return if_macs_[i]; }
  int find_interface(const std::string& name) const;

  // The local table, then longest-prefix match over the routes. A route of
  // several next hops (ECMP) takes one by a hash of the source and
  // destination, as the kernel's L3 multipath hash (fib_multipath_hash_policy
  // 0): a flow's packets in a direction keep to one path.
  RouteKind resolve(uint32_t dst_raw, NextHop* out, uint32_t src_raw = 0) const {
    const uint32_t v = lpm_->lookup(__builtin_bswap32(dst_raw));
    const Hop* h = &hops_[v];  // hops_[0]: no route
    if (h->kind != RouteKind::kForward) return h->kind;
    if (h->paths) [[unlikely]]
      h = &paths_[h->gateway + multipath_hash(src_raw, dst_raw) % h->paths];
    out->ifindex = h->ifindex;
    out->addr = h->gateway ? h->gateway : dst_raw;
    return RouteKind::kForward;
  }
  // Whether a packet from `src_raw` may come in on interface `in_if`, as
  // fib_validate_source: a route back to it that leaves by that interface
  // (strict; one of a multipath route's hops will do), or any (loose).
  bool reverse_path_ok(uint32_t src_raw, int in_if, bool strict) const;
  // Longest-prefix match. False when no route covers `dst`, and for local addresses.
  bool lookup(uint32_t dst_raw, NextHop* out) const { return resolve(dst_raw, out) == RouteKind::kForward; }
  // Memory of the lookup table (shared between copies).
  size_t lookup_table_bytes() const { return lpm_->memory_bytes(); }
  // Loads the entry neighbor(addr_raw) will read first, ahead of the lookup
  // (a real load: see Engine::process_burst).
  void bring_in_neighbor(uint32_t addr_raw) const {
    bring_in(&neighbors_[neighbor_slot(addr_raw, neighbor_mask_)], false);
  }
  const MacAddr* neighbor(uint32_t addr_raw) const {
    if (addr_raw == 0) return nullptr;
    for (size_t i = neighbor_slot(addr_raw, neighbor_mask_);; i = (i + 1) & neighbor_mask_) {
      if (neighbors_[i].addr == addr_raw) return &neighbors_[i].mac;
      if (neighbors_[i].addr == 0) return nullptr;
    }
  }

  // The address the gateway speaks from on an interface: its own, or, when
  // it has none (it left at runtime), the first another interface has, as
  // inet_select_addr falls back to other devices. 0 when none has one.
  uint32_t source_addr(int ifindex) const {
    if (const uint32_t a = if_addrs_[static_cast<size_t>(ifindex)]) return a;
    for (uint32_t a : if_addrs_)
      if (a) return a;
    return 0;
  }
  // Index of the interface owning this address, or -1.
  int local_interface(uint32_t addr_raw) const {
    if (addr_raw == 0) return -1;  // an interface without an address owns none
    for (size_t i = 0; i < if_addrs_.size(); ++i)
      if (if_addrs_[i] == addr_raw) return static_cast<int>(i);
    return -1;
  }
  bool is_local(uint32_t addr_raw) const {
    return hops_[lpm_->lookup(__builtin_bswap32(addr_raw))].kind == RouteKind::kLocal;
  }
  // The all-ones host address of a connected prefix (not /31, /32).
  bool is_directed_broadcast(uint32_t addr_raw) const;
  // addrtype bits for an address (xt_addrtype's view of the routing table).
  uint16_t addr_type(uint32_t addr_raw) const;
  // A source address no router forwards (RFC 1812 5.3.7): 0/8, 127/8,
  // multicast, limited broadcast, or one of the host's own addresses.
  bool is_martian_source(uint32_t addr_raw) const;

 private:
  std::vector<Interface> ifs_;
  std::vector<uint32_t> if_addrs_;  // ifs_[i].addr, packed for the per-packet is_local scan
  std::vector<MacAddr> if_macs_;    // ifs_[i].mac, packed for the per-packet source MAC
  std::vector<uint32_t> broadcasts_;  // connected prefixes' all-ones addresses (network order; not /31, /32)
  std::vector<uint32_t> locals_;      // add_local's (network order)
  struct MoreAddr {
    int ifindex;
    uint32_t addr;  // network order
    Prefix prefix;  // host order
  };
  std::vector<MoreAddr> more_addrs_;  // add_interface_address's
  uint32_t source_among(int i, uint32_t next_hop_raw) const;
  std::vector<RouteEntry> routes_;  // in the order added
  std::vector<RouteEntry> direct_;  // those without a gateway, which resolve gateways
  // Lookup results, deduplicated: [0] no route, [1] local, [2..4] the reject
  // routes' kinds, then next hops.
  struct Hop {
    RouteKind kind = RouteKind::kNone;
    int ifindex = -1;
    uint32_t gateway = 0;  // network order; with paths, the first's index in paths_
    uint32_t paths = 0;    // a multipath route's next hops, in paths_; 0: this one
  };
  std::vector<Hop> hops_;
  std::vector<Hop> paths_;  // multipath routes' next hops
  std::unordered_map<uint64_t, uint32_t> hop_index_;  // {ifindex, gateway} -> index in hops_
  std::shared_ptr<Lpm> lpm_;  // values index hops_
  Lpm& lpm_for_write();
  // Local addresses outrank every route, whatever its length.
  static constexpr uint8_t kLocalRank = 64;
  // Neighbours: open addressing, linear probing, power-of-two size at load
  // <= 1/2, keyed by address (0.0.0.0 marks an empty slot and is never a next hop).
  struct Neighbor {
    uint32_t addr = 0;
    MacAddr mac{};
  };
  std::vector<Neighbor> neighbors_ = std::vector<Neighbor>(16);  // never empty
  size_t neighbor_mask_ = 15;                                      // neighbors_.size() - 1
  static size_t neighbor_slot(uint32_t addr, size_t mask) {
    return static_cast<size_t>((uint64_t{addr} * 0x9E3779B97F4A7C15ull) >> 32) & mask;
  }
  size_t neighbor_count_ = 0;
};

}  // namespace xnat
