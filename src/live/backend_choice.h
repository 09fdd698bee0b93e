// `xnat run --backend auto` (the default): AF_XDP where it can beat the
// kernel's own copies, AF_PACKET elsewhere. AF_XDP pays off in zero-copy
// mode, which the driver must offer (the netdev netlink family's
// xdp-features, XSK_ZEROCOPY). Without it AF_XDP copies every frame, and on
// a device like veth, where XDP strips the peer's TSO/GSO, TCP arrives as
// MTU-sized frames: there AF_PACKET, which keeps super-frames whole, carries
// 3-4x AF_XDP's TCP at the same packet rate (BENCHMARKS.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace xnat {

// The netdev family's XDP feature bits (include/uapi/linux/netdev.h).
inline constexpr uint64_t kXdpActXskZerocopy = 8;

// The largest MTU `auto` gives AF_XDP. Its buffers are 4 KiB: a larger
// frame comes in several (XDP multi-buffer, which many drivers do not have
// and refuse an XDP program for above about 3 000-3 500 bytes of MTU) and
// AF_XDP gathers it into one and sends it by a packet socket, two copies, as
// AF_PACKET makes of every frame: jumbo frames go to AF_PACKET.
inline constexpr uint32_t kAfXdpMtuMax = 3000;

// What the kernel says of one interface.
struct InterfaceXdp {
  std::string name;
  Result<uint64_t> features = Error{"not asked"};  // xdp-features, or why unknown
  uint32_t rx_queues = 1;
  uint32_t mtu = 1500;
};

struct BackendChoice {
  std::string backend;  // "af_xdp" or "af_packet"
  std::string reason;   // for the operator: why this one
};

// af_xdp if every interface offers AF_XDP zero-copy, has an rx queue for
// each worker and an MTU of at most kAfXdpMtuMax; af_packet otherwise,
// naming the first interface that decided it.
BackendChoice choose_backend(const std::vector<InterfaceXdp>& ifs, int workers);

// The driver's XDP features, from the netdev generic netlink family
// (Linux 6.3 and later); an error if the kernel cannot say.
Result<uint64_t> xdp_features(int ifindex);

// Each named interface as the kernel has it (xdp_features, rx_queue_count, MTU).
std::vector<InterfaceXdp> describe_interfaces(const std::vector<std::string>& names);

}  // namespace xnat
