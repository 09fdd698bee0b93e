// The kernel's view of the gateway's interfaces over rtnetlink: links (MAC,
// MTU, up), IPv4 addresses, main-table IPv4 routes and neighbours. Read whole
// at start; a second socket subscribed to the change groups says when to read
// again. Neighbour resolution is asked of the kernel (RTM_NEWNEIGH with
// NTF_USE), which sends the ARP requests; the answer arrives as a change.
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
};
struct KernelAddr {
  int ifindex = 0;
  uint32_t addr = 0;  // network order
  uint8_t prefix_len = 0;
};
struct KernelRoute {
  int ifindex = 0;
  uint32_t dst = 0;  // network order
  uint8_t prefix_len = 0;
  uint32_t gateway = 0;  // network order, 0: on link
  uint32_t priority = 0;
};
struct KernelNeighbor {
  int ifindex = 0;
  uint32_t addr = 0;
  MacAddr mac{};
};

struct KernelState {
  std::vector<KernelLink> links;
  std::vector<KernelAddr> addrs;
  std::vector<KernelRoute> routes;        // main table, unicast, IPv4
  std::vector<KernelNeighbor> neighbors;  // with a usable MAC
  const KernelLink* link(const std::string& name) const;
};

class Rtnl {
 public:
  Rtnl() = default;
  Rtnl(const Rtnl&) = delete;
  Rtnl& operator=(const Rtnl&) = delete;
  ~Rtnl();

  Status open();
  Result<KernelState> dump();
  // Reads pending change notifications without blocking: true if any arrived.
  bool changed();
  // Asks the kernel to resolve `addr` (network order) on `ifindex`.
  Status resolve(int ifindex, uint32_t addr);

 private:
  Result<std::vector<std::vector<uint8_t>>> request(uint16_t type, const void* body, size_t len);
  int fd_ = -1;        // requests
  int events_ = -1;    // subscribed to changes
  uint32_t seq_ = 1;
};

// The engine's Fib for a live gateway: the config's interfaces in its order,
// with what the config does not pin taken from the kernel (MAC, address,
// routes unless [[route]]s are given; config neighbours override the kernel's).
Result<Fib> live_fib(const EngineConfig& cfg, const KernelState& k);

}  // namespace xnat
