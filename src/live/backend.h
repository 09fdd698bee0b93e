// Frame I/O for the live gateway: one Backend per worker, owning a port on each
// of the gateway's interfaces (engine interface order).
//
//   rx(port)     fills Packets whose data points at frames the backend owns,
//                with capacity for in-place growth (ICMP errors)
//   complete()   after the engine ran: kForward frames are queued on their
//                out_if's transmit ring (zero-copy between AF_XDP sockets
//                sharing one UMEM), everything else is recycled
//   send_copy()  transmits a frame held elsewhere (the neighbour wait queue)
//   send_packet() the same for a packet, with its offload state (handoffs)
//   flush()      kicks transmit rings and reaps completions
//   wait()       sleeps until a port has frames, `wake_fd` or `extra_fd`
//                (each if >= 0) is readable, or the timeout passes
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "dataplane/packet.h"

namespace xnat {

class Steering;

struct PortStats {
  uint64_t rx = 0, tx = 0, tx_ring_full = 0;
  uint64_t rx_bytes = 0, tx_bytes = 0;  // whole frames, link header included (as /proc/net/dev counts)
  // Frames the kernel could not put on our receive ring (it was full), or,
  // larger than a slot, on the socket's queue whole (AF_PACKET).
  uint64_t rx_ring_dropped = 0;
  uint64_t rx_gso = 0, tx_gso = 0;  // TSO/GSO super-frames received and sent whole
  uint64_t rx_csum_valid = 0;       // frames whose checksum the device or GRO had verified
  uint64_t tx_coalesced = 0;         // TCP segments sent inside an earlier one's super-frame
  // Errors the kernel reported on the interface's socket: ENETDOWN each
  // time the interface went down (AF_PACKET).
  uint64_t socket_errors = 0;

  PortStats& operator+=(const PortStats& o) {
    rx += o.rx, tx += o.tx, tx_ring_full += o.tx_ring_full, rx_bytes += o.rx_bytes, tx_bytes += o.tx_bytes;
    rx_ring_dropped += o.rx_ring_dropped, rx_gso += o.rx_gso, tx_gso += o.tx_gso, rx_csum_valid += o.rx_csum_valid;
    tx_coalesced += o.tx_coalesced, socket_errors += o.socket_errors;
    return *this;
  }
};

// The largest frame an interface of MTU `mtu` carries behind Ethernet and a
// VLAN tag, counting at least a 9 216-byte jumbo MTU: what a buffer that
// holds a copy of any frame takes.
constexpr uint32_t frame_for_mtu(uint32_t mtu) { return (mtu > 9216 ? mtu : 9216) + 18; }

struct BackendOptions {
  std::vector<std::string> ifnames;  // engine interface order
  std::vector<int> ifindexes;        // kernel ifindexes, same order
  std::vector<uint32_t> mtus;
  uint32_t largest_mtu() const {
    uint32_t m = 0;
    for (uint32_t v : mtus) m = v > m ? v : m;
    return m;
  }
  uint32_t ring_size = 2048;
  bool busy_poll = false;
  // Several workers: each opens its own backend. AF_XDP takes the rx queues
  // q with q % workers == worker (an interface needs at least `workers`
  // queues); AF_PACKET joins a PACKET_FANOUT_HASH group per interface, whose
  // id `fanout_id` + interface position all workers share.
  uint32_t worker = 0;
  uint32_t workers = 1;
  uint16_t fanout_id = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual size_t rx(int port, Packet* pkts, size_t max) = 0;
  virtual void complete(Packet* pkts, size_t n) = 0;
  virtual bool send_copy(int port, const uint8_t* frame, uint32_t len) = 0;
  // Transmits a copy of a packet held elsewhere (a handoff ring) on its
  // out_if, with what its offloads left in it where the backend can carry
  // that (a partial checksum, a super-frame).
  virtual bool send_packet(const Packet& p) { return send_copy(p.out_if, p.data, p.len); }
  virtual void flush() = 0;
  virtual void wait(int timeout_ms, int wake_fd, int extra_fd) = 0;
  // Reads the kernel's drop counts for the receive rings into stats().
  virtual void update_kernel_stats() = 0;
  virtual const char* name() const = 0;
  virtual std::string describe() const = 0;  // mode details for the start-up line
  size_t ports() const { return stats_.size(); }
  const PortStats& stats(int port) const { return stats_[static_cast<size_t>(port)]; }

 protected:
  std::vector<PortStats> stats_;
};

// AF_XDP sockets on every rx queue of each interface (this worker's share),
// one UMEM per worker. The
// steering program must be loaded; the sockets are entered in its xsks map.
Result<std::unique_ptr<Backend>> make_afxdp_backend(const BackendOptions& o, Steering& steer);
// An interface's rx queues as ethtool counts them (rx + combined channels;
// 1 if it cannot say): AF_XDP needs one per worker.
uint32_t rx_queue_count(const std::string& ifname);
// TPACKET_V2 receive and transmit rings.
Result<std::unique_ptr<Backend>> make_afpacket_backend(const BackendOptions& o);

}  // namespace xnat
