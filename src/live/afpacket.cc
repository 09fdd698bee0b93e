// AF_PACKET backend, for interfaces where XDP cannot be attached: a TPACKET_V2
// receive ring per interface; forwarded frames leave by one sendmmsg per
// burst and port (complete), others (held, handed over, the host's) through
// a TPACKET_V2 transmit ring kicked once per loop. The socket sees IPv4
// frames after the tc ingress program (src/live/steer.h), and of those, by
// its filter, only the ones the program took for the gateway: marked with
// XNAT_TAKEN_MARK, and for another host, which the kernel's IP stack drops.
// Not the kernel's, not a VLAN's, not the frames the program's fast path
// forwards itself (--fast-path). Frames are worked on in their receive ring
// slots, whose room after the frame lets the engine grow them in place (ICMP
// errors); the slots go back to the kernel once complete() has sent the
// burst.
//
// The receive ring is TPACKET_V2, a status per frame, because TPACKET_V3
// hands over a block of frames only when it is full or its retire timer
// (at least 1 ms) runs out: a lone ping waited that long. A frame larger than
// a ring slot (a TSO/GSO super-frame) leaves its head in the slot, marked
// TP_STATUS_COPY, and its whole self on the socket's queue
// (PACKET_COPY_THRESH), read with recvmsg in ring order.
//
// Both rings carry a virtio_net_hdr (PACKET_VNET_HDR), so what the hosts'
// offloads leave in a frame comes with it: a partial checksum stays partial
// and a TSO/GSO super-frame stays whole through the gateway, as through the
// kernel's forwarding, and the output device (or the kernel's software GSO)
// finishes them. Super-frames too large for the transmit ring's frames go
// out through a second socket, after the ring, so a flow's order holds.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <sys/uio.h>
#include <net/if.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "live/backend.h"
#include "live/steer.h"
#include "live/vnet_sender.h"

namespace xnat {
namespace {

constexpr uint32_t kRxFrameSize = 2048;  // a slot: an MTU frame behind the ring's headers
constexpr uint32_t kRxFrames = 4096;     // 8 MiB: rides out a worker being descheduled for a few ms
constexpr uint32_t kRxBlockSize = 1 << 16;
constexpr int kRxQueueBytes = 32 << 20;  // super-frames waiting on the socket's queue
constexpr uint32_t kTxFrameSize = 2048;
// A super-frame: an IPv4 datagram of up to 64 KiB behind its link header.
constexpr uint32_t kBigBufSize = 65536 + 2048;

Error sys_error(const std::string& what) { return Error{fmt::format("{}: {}", what, std::strerror(errno))}; }

// Only the frames the tc program took (skb->mark XNAT_TAKEN_MARK): the rest
// are the kernel's and never fill a ring slot. That alone keeps out a
// VLAN-tagged frame for which the kernel has no VLAN device: it reaches this
// socket untagged and marked for another host, as a taken frame is.
Status accept_only_taken(int fd) {
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_MARK)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, XNAT_TAKEN_MARK, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, 0xFFFFFFFFu),
      BPF_STMT(BPF_RET | BPF_K, 0),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0) return sys_error("SO_ATTACH_FILTER");
  return {};
}

struct PacketPort {
  int rx_fd = -1, tx_fd = -1;
  uint8_t* rx_ring = nullptr;
  uint8_t* tx_ring = nullptr;
  uint32_t rx_head = 0;   // next receive slot
  uint32_t rx_taken = 0;  // slots before rx_head handed out by rx(), not yet released
  uint32_t tx_frames = 0, tx_head = 0, tx_pending = 0;
};

class AfPacketBackend final : public Backend {
 public:
  ~AfPacketBackend() override {
    for (PacketPort& p : ports_) {
      if (p.rx_ring) munmap(p.rx_ring, size_t{kRxFrameSize} * kRxFrames);
      if (p.tx_ring) munmap(p.tx_ring, size_t{p.tx_frames} * kTxFrameSize);
      if (p.rx_fd >= 0) ::close(p.rx_fd);
      if (p.tx_fd >= 0) ::close(p.tx_fd);
    }
  }

  Status init(const BackendOptions& o) {
    ports_.resize(o.ifnames.size());
    senders_ = std::vector<VnetSender>(o.ifnames.size());
    stats_.resize(o.ifnames.size());
    big_bufs_.resize(size_t{kBurst} * kBigBufSize);
    for (size_t i = 0; i < ports_.size(); ++i) {
      PacketPort& p = ports_[i];
      const std::string& ifname = o.ifnames[i];
      // Receive: no protocol until the ring exists, then bind to the interface.
      p.rx_fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
      if (p.rx_fd < 0) return sys_error("AF_PACKET socket (needs root or CAP_NET_RAW)");
      int v = TPACKET_V2;
      if (setsockopt(p.rx_fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0) return sys_error("TPACKET_V2");
      v = 1;
      if (setsockopt(p.rx_fd, SOL_PACKET, PACKET_VNET_HDR, &v, sizeof v) < 0) return sys_error("PACKET_VNET_HDR");
      if (setsockopt(p.rx_fd, SOL_PACKET, PACKET_COPY_THRESH, &v, sizeof v) < 0) return sys_error("PACKET_COPY_THRESH");
      if (auto r = accept_only_taken(p.rx_fd); !r) return r;
      v = kRxQueueBytes;
      if (setsockopt(p.rx_fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) < 0)
        (void)setsockopt(p.rx_fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
      tpacket_req req{};
      req.tp_block_size = kRxBlockSize;
      req.tp_block_nr = kRxFrameSize * kRxFrames / kRxBlockSize;
      req.tp_frame_size = kRxFrameSize;
      req.tp_frame_nr = kRxFrames;
      if (setsockopt(p.rx_fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) return sys_error("PACKET_RX_RING");
      void* m = mmap(nullptr, size_t{kRxFrameSize} * kRxFrames, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED,
                     p.rx_fd, 0);
      if (m == MAP_FAILED) return sys_error("mmap receive ring");
      p.rx_ring = static_cast<uint8_t*>(m);
      v = 1;
      (void)setsockopt(p.rx_fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &v, sizeof v);
      sockaddr_ll sll{};
      sll.sll_family = AF_PACKET;
      // IPv4 only, and after tc ingress (ETH_P_ALL taps run before it): the
      // tc program decides what this socket sees. Its fast path's frames
      // never reach it; what the gateway takes comes marked for another
      // host, which the kernel's IP stack drops (bpf/xnat_steer.bpf.c).
      sll.sll_protocol = htons(ETH_P_IP);
      sll.sll_ifindex = o.ifindexes[i];
      if (::bind(p.rx_fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0)
        return sys_error(fmt::format("bind AF_PACKET to {}", ifname));
      if (o.workers > 1) {
        // Each frame to one worker's socket, by a symmetric flow hash; the
        // engine hands it on if another worker owns its flow.
        const int arg = ((o.fanout_id + static_cast<int>(i)) & 0xffff) | (PACKET_FANOUT_HASH << 16);
        if (setsockopt(p.rx_fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) < 0)
          return sys_error(fmt::format("PACKET_FANOUT on {}", ifname));
      }

      p.tx_fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
      if (p.tx_fd < 0) return sys_error("AF_PACKET socket");
      v = TPACKET_V2;
      if (setsockopt(p.tx_fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0) return sys_error("TPACKET_V2");
      v = 1;
      if (setsockopt(p.tx_fd, SOL_PACKET, PACKET_VNET_HDR, &v, sizeof v) < 0) return sys_error("PACKET_VNET_HDR");
      tpacket_req treq{};
      p.tx_frames = o.ring_size;
      treq.tp_block_size = 1 << 16;
      treq.tp_frame_size = kTxFrameSize;
      treq.tp_block_nr = p.tx_frames * kTxFrameSize / treq.tp_block_size;
      treq.tp_frame_nr = p.tx_frames;
      if (setsockopt(p.tx_fd, SOL_PACKET, PACKET_TX_RING, &treq, sizeof treq) < 0) return sys_error("PACKET_TX_RING");
      m = mmap(nullptr, size_t{p.tx_frames} * kTxFrameSize, PROT_READ | PROT_WRITE, MAP_SHARED, p.tx_fd, 0);
      if (m == MAP_FAILED) return sys_error("mmap transmit ring");
      p.tx_ring = static_cast<uint8_t*>(m);
      v = 1;
      (void)setsockopt(p.tx_fd, SOL_PACKET, PACKET_QDISC_BYPASS, &v, sizeof v);
      sll.sll_protocol = 0;
      if (::bind(p.tx_fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0)
        return sys_error(fmt::format("bind AF_PACKET to {}", ifname));
      // Forwarded frames (complete), and what is too big for a ring frame.
      if (auto r = senders_[i].open(o.ifindexes[i], ifname); !r) return r.error();
      pfds_.push_back(pollfd{p.rx_fd, POLLIN, 0});
    }
    pfds_.reserve(pfds_.size() + 2);  // wait() appends the wake-up and extra fds
    return {};
  }

  size_t rx(int port, Packet* pkts, size_t max) override {
    PacketPort& p = ports_[static_cast<size_t>(port)];
    PortStats& st = stats_[static_cast<size_t>(port)];
    size_t n = 0;
    max = std::min(max, size_t{kBurst});
    while (n < max) {
      auto* h = reinterpret_cast<tpacket2_hdr*>(p.rx_ring + size_t{p.rx_head} * kRxFrameSize);
      const uint32_t status = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
      if (!(status & TP_STATUS_USER)) break;
      Packet& out = pkts[n];
      out = Packet{};
      VnetHdr vnet;
      if (status & TP_STATUS_COPY) {
        // Too big for the slot: the whole frame is next on the socket's queue.
        uint8_t* buf = big_bufs_.data() + n * kBigBufSize;
        iovec iov[2] = {{&vnet, kVnet}, {buf, kBigBufSize}};
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = 2;
        ssize_t got = ::recvmsg(p.rx_fd, &msg, MSG_DONTWAIT);
        if (got < 0 && errno != EAGAIN) {
          // A pending socket error (the interface went down) is returned
          // alone, and read; the frame is still there.
          ++st.socket_errors;
          got = ::recvmsg(p.rx_fd, &msg, MSG_DONTWAIT);
        }
        if (got < static_cast<ssize_t>(kVnet)) {
          take_rx(p);
          ++st.rx_ring_dropped;
          continue;
        }
        out.data = buf;
        out.len = static_cast<uint32_t>(got - static_cast<ssize_t>(kVnet));
        out.capacity = kBigBufSize;
      } else if (h->tp_snaplen < h->tp_len) [[unlikely]] {
        // Too big for the slot, and the socket's queue had no room for the
        // whole frame: the kernel kept only its head. Lost on the way in,
        // as one the ring had no room for, not a truncated packet.
        take_rx(p);
        ++st.rx_ring_dropped;
        continue;
      } else {
        // Worked on where it lies: the slot goes back after complete().
        uint8_t* frame = reinterpret_cast<uint8_t*>(h) + h->tp_mac;
        out.capacity = kRxFrameSize - h->tp_mac;
        out.len = std::min<uint32_t>(h->tp_snaplen, out.capacity);
        std::memcpy(&vnet, frame - kVnet, kVnet);
        out.data = frame;
      }
      take_rx(p);
      ++st.rx;
      st.rx_bytes += out.len;
      read_vnet(vnet, &out);
      if (out.gso != Gso::kNone) ++st.rx_gso;
      if (out.l4_csum == L4Csum::kVerified) ++st.rx_csum_valid;
      out.in_if = static_cast<int16_t>(port);
      ++n;
    }
    return n;
  }

  void complete(Packet* pkts, size_t n) override {
    for (size_t port = 0; port < ports_.size(); ++port) {
      kick(ports_[port]);  // what send() put on the ring goes first
      senders_[port].send_burst(pkts, n, static_cast<int>(port), stats_[port]);
    }
    release_rx();  // everything sent has been copied by now, the rest dropped
  }

  bool send_copy(int port, const uint8_t* frame, uint32_t len) override {
    Packet p;
    p.data = const_cast<uint8_t*>(frame);  // only read
    p.len = len;
    p.out_if = static_cast<int16_t>(port);
    return send(p);
  }

  bool send_packet(const Packet& p) override { return send(p); }

  void flush() override {
    for (PacketPort& p : ports_) kick(p);
  }

  void wait(int timeout_ms, int wake_fd, int extra_fd) override {
    pfds_.push_back(pollfd{wake_fd, POLLIN, 0});  // poll ignores a negative fd
    pfds_.push_back(pollfd{extra_fd, POLLIN, 0});
    (void)::poll(pfds_.data(), pfds_.size(), timeout_ms);
    pfds_.resize(pfds_.size() - 2);
    // The kernel reports an interface going down as an error on its socket
    // (ENETDOWN), which poll reports until it is read: unread, an idle
    // worker would never sleep again.
    for (size_t i = 0; i < ports_.size(); ++i)
      if (pfds_[i].revents & POLLERR) [[unlikely]] {
        int err = 0;
        socklen_t len = sizeof err;
        (void)getsockopt(ports_[i].rx_fd, SOL_SOCKET, SO_ERROR, &err, &len);
        ++stats_[i].socket_errors;
      }
  }

  void update_kernel_stats() override {
    for (size_t i = 0; i < ports_.size(); ++i) {
      tpacket_stats st{};
      socklen_t l = sizeof st;
      // Reading resets the kernel's counts: accumulate.
      if (getsockopt(ports_[i].rx_fd, SOL_PACKET, PACKET_STATISTICS, &st, &l) == 0)
        stats_[i].rx_ring_dropped += st.tp_drops;
    }
  }
  const char* name() const override { return "af_packet"; }
  std::string describe() const override {
    return fmt::format("TPACKET_V2 rx {} frames, TPACKET_V2 tx {} frames", kRxFrames,
                       ports_.empty() ? 0 : ports_[0].tx_frames);
  }

 private:
  static void take_rx(PacketPort& p) {
    p.rx_head = (p.rx_head + 1) % kRxFrames;
    ++p.rx_taken;
  }

  // The slots rx() handed out go back to the kernel, in ring order (the
  // kernel fills the slot at its head only once that one is free).
  void release_rx() {
    for (PacketPort& p : ports_) {
      for (uint32_t i = p.rx_taken; i > 0; --i) {
        const uint32_t slot = (p.rx_head + kRxFrames - i) % kRxFrames;
        auto* h = reinterpret_cast<tpacket2_hdr*>(p.rx_ring + size_t{slot} * kRxFrameSize);
        __atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
      }
      p.rx_taken = 0;
    }
  }

  bool send(const Packet& pk) {
    const int port = pk.out_if;
    if (port < 0 || static_cast<size_t>(port) >= ports_.size()) return false;
    PacketPort& p = ports_[static_cast<size_t>(port)];
    PortStats& st = stats_[static_cast<size_t>(port)];
    constexpr uint32_t kData = TPACKET2_HDRLEN - sizeof(sockaddr_ll);
    if (pk.len + kVnet > kTxFrameSize - kData) {
      kick(p);  // after what the ring holds, so the flow's order holds
      return senders_[static_cast<size_t>(port)].send_one(pk, st);
    }
    const VnetHdr vnet = vnet_of(pk);
    auto* h = reinterpret_cast<tpacket2_hdr*>(p.tx_ring + size_t{p.tx_head} * kTxFrameSize);
    if (h->tp_status != TP_STATUS_AVAILABLE) {
      ++st.tx_ring_full;
      return false;
    }
    uint8_t* d = reinterpret_cast<uint8_t*>(h) + kData;
    std::memcpy(d, &vnet, kVnet);
    std::memcpy(d + kVnet, pk.data, pk.len);
    h->tp_len = pk.len + kVnet;
    __atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
    p.tx_head = (p.tx_head + 1) % p.tx_frames;
    ++p.tx_pending;
    ++st.tx;
    st.tx_bytes += pk.len;
    if (vnet.gso_type) ++st.tx_gso;
    return true;
  }

  static void kick(PacketPort& p) {
    if (p.tx_pending) {
      if (::send(p.tx_fd, nullptr, 0, MSG_DONTWAIT) >= 0 || errno != EAGAIN) p.tx_pending = 0;
    }
  }

  std::vector<PacketPort> ports_;
  std::vector<uint8_t> big_bufs_;
  std::vector<pollfd> pfds_;
  std::vector<VnetSender> senders_;  // per port
};

}  // namespace

Result<std::unique_ptr<Backend>> make_afpacket_backend(const BackendOptions& o) {
  auto b = std::make_unique<AfPacketBackend>();
  if (auto r = b->init(o); !r) return r.error();
  return std::unique_ptr<Backend>(std::move(b));
}

}  // namespace xnat
