// AF_PACKET backend, for interfaces where XDP cannot be attached: a TPACKET_V2
// receive ring per interface; forwarded frames leave by one sendmmsg per
// burst and port (complete), others (held, handed over, the host's) through
// a TPACKET_V2 transmit ring kicked once per loop. The kernel still gets its copy of every frame;
// the tc ingress program drops the ones the gateway takes (src/live/steer.h),
// and the gateway ignores the rest, which the steering decision marks as the
// kernel's. Frames are worked on in their receive ring slots, whose room
// after the frame lets the engine grow them in place (ICMP errors); the
// slots go back to the kernel once complete() has sent the burst.
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
#include "packet/offload.h"
#include "packet/headers.h"

namespace xnat {
namespace {

constexpr uint32_t kRxFrameSize = 2048;  // a slot: an MTU frame behind the ring's headers
constexpr uint32_t kRxFrames = 4096;     // 8 MiB: rides out a worker being descheduled for a few ms
constexpr uint32_t kRxBlockSize = 1 << 16;
constexpr int kRxQueueBytes = 32 << 20;  // super-frames waiting on the socket's queue
constexpr int kTxQueueBytes = 8 << 20;   // frames sent and not yet freed by the device
constexpr uint32_t kTxFrameSize = 2048;
// A super-frame: an IPv4 datagram of up to 64 KiB behind its link header.
constexpr uint32_t kBigBufSize = 65536 + 2048;

// struct virtio_net_hdr (linux/virtio_net.h, whose C does not compile as C++).
struct virtio_net_hdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len, gso_size, csum_start, csum_offset;
};
constexpr uint8_t kVnetNeedsCsum = 1;
constexpr uint8_t kVnetGsoTcpV4 = 1, kVnetGsoUdpL4 = 5, kVnetGsoEcn = 0x80;
constexpr uint32_t kVnet = sizeof(virtio_net_hdr);
static_assert(kVnet == 10);

Error sys_error(const std::string& what) { return Error{fmt::format("{}: {}", what, std::strerror(errno))}; }

// What the kernel says of a received frame's offloads (virtio_net_hdr in
// the guest's byte order, which for a packet socket is the host's).
void read_vnet(const virtio_net_hdr& v, Packet* p) {
  if (v.flags & kVnetNeedsCsum) p->l4_csum = L4Csum::kPartial;
  switch (v.gso_type & ~kVnetGsoEcn) {
    case kVnetGsoTcpV4: p->gso = Gso::kTcp; break;
    case kVnetGsoUdpL4: p->gso = Gso::kUdp; break;
    default: return;
  }
  p->gso_size = v.gso_size;
}

// The header a frame leaves with: the partial checksum's place and the
// segmentation the output should do.
virtio_net_hdr vnet_of(const Packet& p) {
  virtio_net_hdr v{};
  L4Field at;
  if (p.l4_csum != L4Csum::kPartial || !locate_l4_checksum(p.data, p.len, &at)) return v;
  v.flags = kVnetNeedsCsum;
  v.csum_start = static_cast<uint16_t>(at.l4);
  v.csum_offset = static_cast<uint16_t>(at.field - at.l4);
  if (p.gso != Gso::kNone && p.gso_size) {
    v.gso_type = p.gso == Gso::kTcp ? kVnetGsoTcpV4 : kVnetGsoUdpL4;
    v.gso_size = p.gso_size;
    const uint32_t l4_hdr = p.gso == Gso::kTcp ? (p.data[at.l4 + 12] >> 4) * 4u : 8u;
    v.hdr_len = static_cast<uint16_t>(at.l4 + l4_hdr);
  }
  return v;
}

struct PacketPort {
  int rx_fd = -1, tx_fd = -1;
  int big_fd = -1;  // forwarded frames (complete), and what is too big for a ring frame
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
      if (p.big_fd >= 0) ::close(p.big_fd);
    }
  }

  Status init(const BackendOptions& o) {
    ports_.resize(o.ifnames.size());
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
      sll.sll_protocol = htons(ETH_P_ALL);
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
      p.big_fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
      if (p.big_fd < 0) return sys_error("AF_PACKET socket");
      v = 1;
      if (setsockopt(p.big_fd, SOL_PACKET, PACKET_VNET_HDR, &v, sizeof v) < 0) return sys_error("PACKET_VNET_HDR");
      // A burst of super-frames is up to 2 MiB in flight until the device
      // has sent them: more than the default buffer.
      v = kTxQueueBytes;
      if (setsockopt(p.big_fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) < 0)
        (void)setsockopt(p.big_fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
      v = 1;
      (void)setsockopt(p.big_fd, SOL_PACKET, PACKET_QDISC_BYPASS, &v, sizeof v);
      if (::bind(p.big_fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0)
        return sys_error(fmt::format("bind AF_PACKET to {}", ifname));
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
      virtio_net_hdr vnet;
      if (status & TP_STATUS_COPY) {
        // Too big for the slot: the whole frame is next on the socket's queue.
        uint8_t* buf = big_bufs_.data() + n * kBigBufSize;
        iovec iov[2] = {{&vnet, kVnet}, {buf, kBigBufSize}};
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = 2;
        const ssize_t got = ::recvmsg(p.rx_fd, &msg, MSG_DONTWAIT);
        if (got < static_cast<ssize_t>(kVnet)) {
          take_rx(p);
          ++st.rx_ring_dropped;
          continue;
        }
        out.data = buf;
        out.len = static_cast<uint32_t>(got - static_cast<ssize_t>(kVnet));
        out.capacity = kBigBufSize;
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
      out.in_if = static_cast<int16_t>(port);
      ++n;
    }
    return n;
  }

  void complete(Packet* pkts, size_t n) override {
    for (size_t at = 0; at < n; at += kBurst) complete_burst(pkts + at, std::min(n - at, size_t{kBurst}));
    release_rx();  // everything sent has been copied by now, the rest dropped
  }

  void complete_burst(Packet* pkts, size_t n) {
    // One sendmmsg per output port and burst, from the burst's buffers (the
    // kernel copies each frame once, as into a ring; a ring's frames sent to
    // a local socket, as on a veth, are copied again). Consecutive segments
    // of a TCP connection leave as one super-frame (offload.h), as GRO would
    // have made them: the receiver takes one frame instead of dozens.
    for (size_t port = 0; port < ports_.size(); ++port) {
      size_t k = 0, v = 0;
      TcpRun run;
      auto end_run = [&] {
        if (run.segments > 1) {
          run.finish();
          virtio_net_hdr& h = vnets_[k - 1];
          h.flags = kVnetNeedsCsum;
          h.csum_start = run.head.l4;
          h.csum_offset = offsetof(TcpHdr, check);
          h.gso_type = kVnetGsoTcpV4;
          h.gso_size = run.head.payload;
          h.hdr_len = run.head.payload_at;
          mmsgs_[k - 1].msg_hdr.msg_iov[1].iov_len = run.head.ip_end;  // no link padding inside
          stats_[port].tx_coalesced += run.segments - 1u;
        }
        run.segments = 0;
      };
      for (size_t i = 0; i < n; ++i) {
        Packet& pk = pkts[i];
        if (pk.verdict != Verdict::kForward || static_cast<size_t>(pk.out_if) != port) continue;
        TcpSegmentView s;
        const bool seg = (pk.l4_csum == L4Csum::kVerified || pk.l4_csum == L4Csum::kPartial) &&
                         pk.gso == Gso::kNone && tcp_segment_view(pk.data, pk.len, &s);
        if (seg && run.segments && run.accepts(pk.data, s)) {
          iovs_[v++] = {pk.data + s.payload_at, s.payload};
          ++mmsgs_[k - 1].msg_hdr.msg_iovlen;
          run.add(s);
          continue;
        }
        end_run();
        vnets_[k] = vnet_of(pk);
        iovs_[v] = {&vnets_[k], kVnet};
        iovs_[v + 1] = {pk.data, pk.len};
        mmsgs_[k] = {};
        mmsgs_[k].msg_hdr.msg_iov = &iovs_[v];
        mmsgs_[k].msg_hdr.msg_iovlen = 2;
        v += 2;
        ++k;
        if (seg) run.open(pk.data, s);
      }
      end_run();
      if (k) transmit(port, k);
    }
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
    const virtio_net_hdr vnet = vnet_of(pk);
    constexpr uint32_t kData = TPACKET2_HDRLEN - sizeof(sockaddr_ll);
    if (pk.len + kVnet > kTxFrameSize - kData) {
      // After what the ring holds, so the flow's order holds.
      kick(p);
      iovec iov[2] = {{const_cast<virtio_net_hdr*>(&vnet), kVnet}, {pk.data, pk.len}};
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = 2;
      if (::sendmsg(p.big_fd, &msg, MSG_DONTWAIT) < 0) {
        ++st.tx_ring_full;
        return false;
      }
      ++st.tx;
      st.tx_bytes += pk.len;
      if (vnet.gso_type) ++st.tx_gso;
      return true;
    }
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

  void transmit(size_t port, size_t k) {
    PacketPort& p = ports_[port];
    PortStats& st = stats_[port];
    kick(p);  // what send() put on the ring goes first
    size_t sent = 0;
    while (sent < k) {
      const int r = ::sendmmsg(p.big_fd, &mmsgs_[sent], static_cast<unsigned>(k - sent), MSG_DONTWAIT);
      if (r <= 0) {
        // This frame was refused (the socket's buffer or the device's queue
        // full): its segments are counted, and the rest go on.
        st.tx_ring_full += mmsgs_[sent].msg_hdr.msg_iovlen - 1;
        ++sent;
        continue;
      }
      for (size_t j = sent; j < sent + static_cast<size_t>(r); ++j) {
        ++st.tx;
        st.tx_bytes += mmsgs_[j].msg_len - kVnet;
        if (vnets_[j].gso_type) ++st.tx_gso;
      }
      sent += static_cast<size_t>(r);
    }
  }

  static void kick(PacketPort& p) {
    if (p.tx_pending) {
      if (::send(p.tx_fd, nullptr, 0, MSG_DONTWAIT) >= 0 || errno != EAGAIN) p.tx_pending = 0;
    }
  }

  std::vector<PacketPort> ports_;
  std::vector<uint8_t> big_bufs_;
  std::vector<pollfd> pfds_;
  // complete()'s messages: a frame's is its virtio_net_hdr and the frame,
  // then the payload of each segment coalesced into it.
  virtio_net_hdr vnets_[kBurst];
  iovec iovs_[3 * kBurst];
  mmsghdr mmsgs_[kBurst];
};

}  // namespace

Result<std::unique_ptr<Backend>> make_afpacket_backend(const BackendOptions& o) {
  auto b = std::make_unique<AfPacketBackend>();
  if (auto r = b->init(o); !r) return r.error();
  return std::unique_ptr<Backend>(std::move(b));
}

}  // namespace xnat
