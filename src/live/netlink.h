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
#include "live/kernel_view.h"

namespace xnat {

class Rtnl final : public KernelView {
 public:
  Rtnl() = default;
  Rtnl(const Rtnl&) = delete;
  Rtnl& operator=(const Rtnl&) = delete;
  ~Rtnl();

  Status open();
  Result<KernelState> dump() override;
  // Reads pending change notifications without blocking: true if any arrived.
  bool changed() override;
  Status resolve(int ifindex, uint32_t addr) override;

 private:
  Result<std::vector<std::vector<uint8_t>>> request(uint16_t type, const void* body, size_t len);
  int fd_ = -1;        // requests
  int events_ = -1;    // subscribed to changes
  uint32_t seq_ = 1;
};

}  // namespace xnat
