// Forwarding information: interfaces, connected prefixes, static routes
// (longest-prefix match), neighbours (next hop -> MAC), and the address
// classification addrtype needs.
//
// Routes are few on a NAT gateway (connected prefixes plus a default); they are
// kept sorted by prefix length, longest first, and scanned. A table with
// thousands of routes would want a DIR-24-8 or Poptrie; the interface is
// ready for that swap.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nat/rules.h"
#include "packet/headers.h"

namespace xnat {

struct Interface {
  std::string name;
  uint32_t addr = 0;  // network order
  uint8_t prefix_len = 0;
  MacAddr mac{};
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

class Fib {
 public:
  // Returns the interface's index.
  int add_interface(const Interface& itf);
  // Adds a route. `ifindex` < 0: take the interface whose connected prefix holds
  // the gateway. Returns an error message or nullopt.
  std::optional<std::string> add_route(const Prefix& p, uint32_t gateway, int ifindex);
  void add_neighbor(uint32_t addr, const MacAddr& mac);

  const std::vector<Interface>& interfaces() const { return ifs_; }
  // ifs_.size() without the division by sizeof(Interface) (per packet).
  size_t interface_count() const { return if_addrs_.size(); }
  const std::vector<RouteEntry>& routes() const { return routes_; }
  template <typename Fn>
  void for_each_neighbor(Fn&& fn) const {
    for (const Neighbor& n : neighbors_)
      if (n.addr) fn(n.addr, n.mac);
  }
  const Interface& interface(int i) const { return ifs_[i]; }
  const MacAddr& interface_mac(int i) const { return if_macs_[i]; }
  int find_interface(const std::string& name) const;

  // Longest-prefix match. False when no route covers `dst`.
  bool lookup(uint32_t dst_raw, NextHop* out) const {
    const uint32_t h = __builtin_bswap32(dst_raw);
    for (const RouteEntry& r : routes_) {
      if (r.prefix.contains(h)) {
        out->ifindex = r.ifindex;
        out->addr = r.gateway ? r.gateway : dst_raw;
        return true;
      }
    }
    return false;
  }
  const MacAddr* neighbor(uint32_t addr_raw) const;

  // Index of the interface owning this address, or -1.
  int local_interface(uint32_t addr_raw) const {
    for (size_t i = 0; i < if_addrs_.size(); ++i)
      if (if_addrs_[i] == addr_raw) return static_cast<int>(i);
    return -1;
  }
  bool is_local(uint32_t addr_raw) const {
    return local_interface(addr_raw) >= 0 || (__builtin_bswap32(addr_raw) >> 24) == 127;
  }
  // The all-ones host address of a connected prefix (not /31, /32).
  bool is_directed_broadcast(uint32_t addr_raw) const;
  // addrtype bits for an address (xt_addrtype's view of the routing table).
  uint16_t addr_type(uint32_t addr_raw) const;
  // A source address no router forwards (RFC 1812 5.3.7): 0/8, 127/8,
  // multicast, limited broadcast, or one of the gateway's own addresses.
  bool is_martian_source(uint32_t addr_raw) const;

 private:
  std::vector<Interface> ifs_;
  std::vector<uint32_t> if_addrs_;  // ifs_[i].addr, packed for the per-packet is_local scan
  std::vector<MacAddr> if_macs_;    // ifs_[i].mac, packed for the per-packet source MAC
  std::vector<uint32_t> broadcasts_;  // connected prefixes' all-ones addresses (network order; not /31, /32)
  std::vector<RouteEntry> routes_;  // longest prefix first
  // Neighbours: open addressing, linear probing, power-of-two size at load
  // <= 1/2, keyed by address (0.0.0.0 marks an empty slot and is never a next hop).
  struct Neighbor {
    uint32_t addr = 0;
    MacAddr mac{};
  };
  std::vector<Neighbor> neighbors_;
  size_t neighbor_count_ = 0;
};

}  // namespace xnat
