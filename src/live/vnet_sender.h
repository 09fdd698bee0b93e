// Frames out through an AF_PACKET socket that carries a virtio_net_hdr
// (PACKET_VNET_HDR): what a frame's offloads left in it goes with it, a
// partial checksum for the output to finish, a super-frame for the output
// (its TSO, or the kernel's GSO) to cut. A burst's frames for one port go by
// one sendmmsg, and consecutive MTU segments of one TCP connection leave as
// one super-frame (packet/offload.h TcpRun), as GRO on a NIC would have
// made them: the receiver takes one frame instead of dozens.
//
// AF_PACKET sends everything it forwards this way; AF_XDP in copy mode
// (a veth), which cannot send a super-frame, sends a port's burst this way
// when it has a run to coalesce.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/result.h"
#include "dataplane/packet.h"
#include "live/backend.h"

namespace xnat {

// struct virtio_net_hdr (linux/virtio_net.h, whose C does not compile as C++),
// in the host's byte order as a packet socket has it.
struct VnetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len, gso_size, csum_start, csum_offset;
};
inline constexpr uint8_t kVnetNeedsCsum = 1, kVnetDataValid = 2;
inline constexpr uint8_t kVnetGsoTcpV4 = 1, kVnetGsoUdpL4 = 5, kVnetGsoEcn = 0x80;
inline constexpr uint32_t kVnet = sizeof(VnetHdr);
static_assert(kVnet == 10);

// What the kernel says of a received frame's offloads: a partial checksum, a
// checksum already verified (by the device, or GRO), a super-frame's
// segmentation.
void read_vnet(const VnetHdr& v, Packet* p);
// The header a frame leaves with: the partial checksum's place and the
// segmentation the output should do.
VnetHdr vnet_of(const Packet& p);

class VnetSender {
 public:
  VnetSender() = default;
  VnetSender(const VnetSender&) = delete;
  VnetSender& operator=(const VnetSender&) = delete;
  ~VnetSender();

  // A socket bound to the interface, sending past the qdisc.
  Status open(int ifindex, const std::string& ifname);
  int fd() const { return fd_; }

  // Sends the packets among pkts[0..n) forwarded to `port`, in order,
  // coalescing runs (within kBurst frames), and counts them in `st`.
  void send_burst(const Packet* pkts, size_t n, int port, PortStats& st);
  // The same in two steps: prepare() builds the messages for at most kBurst
  // packets (rewriting the first frame of each run) and says whether it
  // coalesced any; transmit() sends them.
  bool prepare(const Packet* pkts, size_t n, int port);
  void transmit(PortStats& st);
  // One frame by sendmsg (a super-frame too large for a ring frame).
  bool send_one(const Packet& p, PortStats& st);

 private:
  int fd_ = -1;
  size_t messages_ = 0;  // built by prepare(), not yet sent
  VnetHdr vnets_[kBurst];
  // A message's iovecs: its header, the frame, then the payload of each
  // segment coalesced into it.
  iovec iovs_[3 * kBurst];
  mmsghdr mmsgs_[kBurst];
};

}  // namespace xnat
