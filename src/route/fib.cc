#include "route/fib.h"

#include <fmt/format.h>

#include <algorithm>

#include "packet/tuple.h"

namespace xnat {

Fib::Fib()
    : hops_{Hop{}, Hop{RouteKind::kLocal, -1, 0}, Hop{RouteKind::kBlackhole, -1, 0}, Hop{RouteKind::kUnreachable, -1, 0},
            Hop{RouteKind::kProhibit, -1, 0}},
      lpm_(std::make_shared<Lpm>()) {
  // The kernel's local table holds 127.0.0.0/8 whole.
  lpm_->insert(0x7F000000, 8, kLocalRank + 8, 1);
}

Lpm& Fib::lpm_for_write() {
  if (lpm_.use_count() > 1) lpm_ = std::make_shared<Lpm>(*lpm_);
  return *lpm_;
}

int Fib::add_interface(const Interface& itf) {
  ifs_.push_back(itf);
  if_addrs_.push_back(itf.addr);
  if_macs_.push_back(itf.mac);
  if (itf.addr != 0 && itf.prefix_len < 31) {
    const Prefix p = connected_prefix(itf);
    broadcasts_.push_back(__builtin_bswap32(p.addr | ~p.mask()));
  }
  const int idx = static_cast<int>(ifs_.size() - 1);
  if (itf.addr == 0) return idx;  // live: no address yet, no connected route
  lpm_for_write().insert(__builtin_bswap32(itf.addr), 32, kLocalRank + 32, 1);
  (void)add_route(connected_prefix(itf), 0, idx);
  return idx;
}

void Fib::add_local(uint32_t addr_raw) {
  if (addr_raw == 0 || is_local(addr_raw)) return;  // an interface's, one added before, or in 127/8
  locals_.push_back(addr_raw);
  lpm_for_write().insert(__builtin_bswap32(addr_raw), 32, kLocalRank + 32, 1);
}

void Fib::add_interface_address(int i, uint32_t addr_raw, uint8_t prefix_len) {
  Interface itf = ifs_[static_cast<size_t>(i)];
  itf.addr = addr_raw;
  itf.prefix_len = prefix_len;
  more_addrs_.push_back(MoreAddr{i, addr_raw, connected_prefix(itf)});
  add_local(addr_raw);
}

std::vector<uint32_t> Fib::interface_addresses(int i) const {
  std::vector<uint32_t> out;
  if (const uint32_t first = if_addrs_[static_cast<size_t>(i)]) out.push_back(first);
  for (const MoreAddr& m : more_addrs_)
    if (m.ifindex == i) out.push_back(m.addr);
  return out;
}

uint32_t Fib::source_among(int i, uint32_t next_hop_raw) const {
  const Interface& itf = ifs_[static_cast<size_t>(i)];
  const uint32_t nh = __builtin_bswap32(next_hop_raw);
  if (connected_prefix(itf).contains(nh)) return itf.addr;
  for (const MoreAddr& m : more_addrs_)
    if (m.ifindex == i && m.prefix.contains(nh)) return m.addr;
  return itf.addr;
}

Status Fib::add_route(const Prefix& p, uint32_t gateway, int ifindex) {
  if (ifindex < 0) {
    if (!gateway) return Error{"a route needs a gateway ('via') or an interface ('dev')"};
    // Only connected prefixes resolve a gateway (no recursive routes): the
    // longest holding it, the first added of two equal ones.
    const uint32_t gh = __builtin_bswap32(gateway);
    const RouteEntry* best = nullptr;
    for (const RouteEntry& r : direct_)
      if (r.prefix.contains(gh) && (!best || r.prefix.len > best->prefix.len)) best = &r;
    if (!best) return Error{fmt::format("gateway {} is not on any interface's connected prefix", ip_to_string(gateway))};
    ifindex = best->ifindex;
  }
  const uint64_t key = (uint64_t{static_cast<uint32_t>(ifindex)} << 32) | gateway;
  auto [it, added] = hop_index_.try_emplace(key, static_cast<uint32_t>(hops_.size()));
  if (added) {
    if (hops_.size() > Lpm::kMaxValue) {
      hop_index_.erase(it);
      return Error{"too many distinct next hops for the route table"};
    }
    hops_.push_back(Hop{RouteKind::kForward, ifindex, gateway});
  }
  if (!lpm_for_write().insert(p.addr, p.len, p.len, it->second))
    return Error{fmt::format("route {}/{}: the route table is full", ip_to_string(__builtin_bswap32(p.addr)), p.len)};
  routes_.push_back(RouteEntry{p, ifindex, gateway});
  if (!gateway) direct_.push_back(routes_.back());
  return {};
}

Status Fib::add_reject_route(const Prefix& p, RouteKind kind) {
  const uint32_t value = kind == RouteKind::kBlackhole ? 2 : kind == RouteKind::kUnreachable ? 3 : 4;
  if (!lpm_for_write().insert(p.addr, p.len, p.len, value))
    return Error{fmt::format("route {}/{}: the route table is full", ip_to_string(__builtin_bswap32(p.addr)), p.len)};
  return {};
}

Status Fib::add_multipath(const Prefix& p, const std::vector<std::pair<uint32_t, int>>& hops) {
  if (hops.empty()) return Error{"a multipath route needs a next hop"};
  if (hops.size() == 1) return add_route(p, hops[0].first, hops[0].second);
  if (hops_.size() > Lpm::kMaxValue) return Error{"too many distinct next hops for the route table"};
  const auto first = static_cast<uint32_t>(paths_.size());
  for (auto [gateway, ifindex] : hops) paths_.push_back(Hop{RouteKind::kForward, ifindex, gateway, 0});
  const auto value = static_cast<uint32_t>(hops_.size());
  hops_.push_back(Hop{RouteKind::kForward, hops[0].second, first, static_cast<uint32_t>(hops.size())});
  if (!lpm_for_write().insert(p.addr, p.len, p.len, value))
    return Error{fmt::format("route {}/{}: the route table is full", ip_to_string(__builtin_bswap32(p.addr)), p.len)};
  routes_.push_back(RouteEntry{p, hops[0].second, hops[0].first});
  return {};
}

bool Fib::reverse_path_ok(uint32_t src_raw, int in_if, bool strict) const {
  const Hop& h = hops_[lpm_->lookup(__builtin_bswap32(src_raw))];
  if (h.kind != RouteKind::kForward) return false;
  if (!strict) return true;
  if (!h.paths) return h.ifindex == in_if;
  for (uint32_t i = 0; i < h.paths; ++i)
    if (paths_[h.gateway + i].ifindex == in_if) return true;
  return false;
}

void Fib::add_neighbor(uint32_t addr, const MacAddr& mac) {
  if (addr == 0) return;
  if ((neighbor_count_ + 1) * 2 > neighbors_.size()) {
    std::vector<Neighbor> old = std::move(neighbors_);
    neighbors_.assign(old.size() * 2, Neighbor{});
    neighbor_mask_ = neighbors_.size() - 1;
    neighbor_count_ = 0;
    for (const Neighbor& n : old)
      if (n.addr) add_neighbor(n.addr, n.mac);
  }
  for (size_t i = neighbor_slot(addr, neighbor_mask_);; i = (i + 1) & neighbor_mask_) {
    if (neighbors_[i].addr == addr) {
      neighbors_[i].mac = mac;
      return;
    }
    if (neighbors_[i].addr == 0) {
      neighbors_[i] = Neighbor{addr, mac};
      ++neighbor_count_;
      return;
    }
  }
}

int Fib::find_interface(const std::string& name) const {
  for (size_t i = 0; i < ifs_.size(); ++i)
    if (ifs_[i].name == name) return static_cast<int>(i);
  return -1;
}

uint16_t Fib::addr_type(uint32_t addr_raw) const {
  const uint32_t h = __builtin_bswap32(addr_raw);
  if (h == 0) return kAddrUnspec;
  if (h == 0xFFFFFFFF) return kAddrBroadcast;
  if ((h >> 28) == 0xE) return kAddrMulticast;
  NextHop nh;
  const RouteKind k = resolve(addr_raw, &nh);
  if (k == RouteKind::kLocal) return kAddrLocal;
  if (is_directed_broadcast(addr_raw)) return kAddrBroadcast;
  switch (k) {
    case RouteKind::kForward: return kAddrUnicast;
    case RouteKind::kBlackhole: return kAddrBlackhole;
    case RouteKind::kProhibit: return kAddrProhibit;
    default: return kAddrUnreachable;
  }
}

bool Fib::is_directed_broadcast(uint32_t addr_raw) const {
  for (uint32_t b : broadcasts_)
    if (b == addr_raw) return true;
  return false;
}

bool Fib::is_martian_source(uint32_t addr_raw) const {
  const uint32_t h = __builtin_bswap32(addr_raw);
  if ((h >> 24) == 0 || (h >> 24) == 127 || (h >> 28) == 0xE || h == 0xFFFFFFFF) return true;
  return is_local(addr_raw);
}

}  // namespace xnat
