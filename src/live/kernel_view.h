// The kernel's view of the gateway's interfaces: links, IPv4 addresses,
// routes and neighbours, as the live gateway reads them (rtnetlink in
// netlink.h; a fake in tests), and the Fib made from them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "dataplane/engine.h"

namespace xnat {

struct KernelLink {
  int ifindex = 0;
  std::string name;
  MacAddr mac{};
  uint32_t mtu = 0;
  bool up = false;
  uint8_t rp_filter = 0;  // net.ipv4.conf.{all,IF}.rp_filter, the larger
};
struct KernelAddr {
  int ifindex = 0;
  uint32_t addr = 0;  // network order
  uint8_t prefix_len = 0;
  // IFA_F_SECONDARY (a second address in a prefix the interface has), or a
  // scope narrower than global (link, host): never a source the kernel
  // selects for traffic leaving the host (inet_select_addr).
  bool secondary = false;
  bool global = true;
};
struct KernelRoute {
  int ifindex = 0;
  uint32_t dst = 0;  // network order
  uint8_t prefix_len = 0;
  uint32_t gateway = 0;  // network order, 0: on link
  uint32_t priority = 0;
  uint8_t type = 1;  // RTN_UNICAST, or RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT
  // A multipath (ECMP) route's next hops, {gateway, ifindex}; ifindex and
  // gateway above are the first's. Empty: one next hop.
  std::vector<std::pair<uint32_t, int>> nexthops;
};
struct KernelNeighbor {
  int ifindex = 0;
  uint32_t addr = 0;
  MacAddr mac{};
};

struct KernelState {
  std::vector<KernelLink> links;
  std::vector<KernelAddr> addrs;
  std::vector<KernelRoute> routes;        // main table, unicast and reject, IPv4
  std::vector<KernelNeighbor> neighbors;  // with a usable MAC
  // IPv4 policy routing rules (ip rule) beyond the kernel's three (local,
  // main, default), as `ip rule` prints their start: the gateway routes by
  // the main table alone, and says so.
  std::vector<std::string> policy_rules;
  const KernelLink* link(const std::string& name) const;
};

// rtnetlink's part (netlink.h).
class KernelView {
 public:
  virtual ~KernelView() = default;
  virtual Result<KernelState> dump() = 0;
  // Whether something changed since the last call (without blocking).
  virtual bool changed() = 0;
  // Asks the kernel to resolve `addr` (network order) on `ifindex`; the
  // answer arrives as a change.
  virtual Status resolve(int ifindex, uint32_t addr) = 0;
};

// The engine's Fib for a live gateway: the config's interfaces (`conf`, as
// the config gives them) in its order, with what the config does not pin
// taken from the kernel as it is now (MAC, address; routes unless the
// config's are pinned; config neighbours override the kernel's).
// `at_start`: an interface with no address is an error (nothing to
// masquerade to, no source for ICMP errors); later, when its address left,
// it is kept without one, as the kernel keeps forwarding through it.
Result<Fib> live_fib(const Fib& conf, bool routes_pinned, const KernelState& k, bool at_start);

}  // namespace xnat
