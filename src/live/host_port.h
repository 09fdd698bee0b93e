// The host port: how the live gateway reaches the host's own stack with
// connections it translated for it (REDIRECT, DNAT to a host address).
//
// Frames the gateway takes from an interface (AF_XDP, or AF_PACKET behind the
// tc program) never reach the kernel's IP stack. For a connection translated
// for the host, the gateway therefore writes the translated datagram into a
// tun device, where the kernel receives it as if it had arrived there; the
// host's answers leave through the interface the client is on, where the tc
// egress program (bpf/xnat_steer.bpf.c) finds their tuple in host_replies and
// sends them to the tun device instead, for the gateway to read, translate
// back and forward. The device exists while its file descriptor is open, so
// it goes away with the gateway however that ends.
//
// The kernel sees the client's source address arrive on the tun device:
// strict reverse-path filtering (rp_filter = 1) would drop it, so the device
// gets rp_filter = 0, which is what counts unless conf/all/rp_filter is 1
// (open() reports that case).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "dataplane/packet.h"

namespace xnat {

class HostPort {
 public:
  // Creates the tun device `name` in the current network namespace and
  // brings it up (no address, no routes, no IPv6).
  static Result<std::unique_ptr<HostPort>> open(const std::string& name);
  ~HostPort();
  HostPort(const HostPort&) = delete;
  HostPort& operator=(const HostPort&) = delete;

  int fd() const { return fd_; }
  int ifindex() const { return ifindex_; }
  const std::string& name() const { return name_; }
  // A warning for the start-up output, or empty (strict rp_filter on all).
  const std::string& warning() const { return warning_; }

  // Reads up to `max` packets the host sent; each becomes an Ethernet frame
  // (addresses zero) in the port's own buffers, with in_if = kHostPort. The
  // buffers are reused by the next rx(). IPv6 and other non-IPv4 packets are
  // skipped (the device has no IPv6; nothing else is sent to it).
  size_t rx(Packet* pkts, size_t max);
  // Writes the IPv4 datagram at `ip` (its header's total length, which must
  // fit before `end`) to the host's stack.
  bool write(const uint8_t* ip, const uint8_t* end);

  // The host's frames the device's queue dropped because the gateway did not
  // read them in time (its transmit drops in the kernel's statistics).
  uint64_t queue_dropped() const;

 private:
  HostPort() = default;
  static constexpr int kQueueLen = 8192;   // the device's queue towards the gateway, in packets
  static constexpr size_t kFrame = 16384;  // the largest datagram the host sends, plus room for ICMP errors
  int fd_ = -1;
  int ifindex_ = 0;
  std::string name_, warning_;
  std::vector<uint8_t> buf_;  // kBurst frames of kFrame
};

}  // namespace xnat
