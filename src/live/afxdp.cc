// AF_XDP backend: a socket on every rx queue of every interface (with several
// workers, this worker's queues), all sharing one UMEM, so a frame received on one interface is transmitted on another by
// passing its UMEM address; nothing is copied in user space. Free frames are a
// stack; fill rings are topped up from it, completions return to it. In copy
// mode (a veth), where every frame is copied into an skb anyway, a burst with
// TCP segments to coalesce leaves through a packet socket (vnet_sender.h).
// Frames larger than a UMEM frame (jumbo MTUs; XDP multi-buffer, Linux 6.6)
// are gathered into a buffer of their own and leave by the packet socket too.
#include <fmt/format.h>
#include <linux/ethtool.h>
#include <linux/if_xdp.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xdp/xsk.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "live/backend.h"
#include "live/vnet_sender.h"
#include "live/steering.h"

#ifndef SOL_XDP
#define SOL_XDP 283
#endif
#ifndef XDP_MAX_TX_SKB_BUDGET
#define XDP_MAX_TX_SKB_BUDGET 9  // kernel 6.17+
#endif
#ifndef XDP_USE_SG
#define XDP_USE_SG (1 << 4)  // kernel 6.6+: a frame may come in several descriptors
#endif
#ifndef XDP_PKT_CONTD
#define XDP_PKT_CONTD (1 << 0)  // the frame goes on in the next descriptor
#endif

namespace xnat {
namespace {

constexpr uint32_t kFrameSize = XSK_UMEM__DEFAULT_FRAME_SIZE;  // 4096
// A frame larger than one UMEM frame (a jumbo MTU) comes in several
// descriptors; it is gathered into one of kBurst buffers for the engine and
// leaves through the port's packet socket. The buffers take a frame of the
// largest MTU at start (frame_for_mtu); a larger frame (an MTU raised since)
// is cut to its first descriptor, which the engine drops as truncated.


// One ETHTOOL_G* request (its cmd set) on ifname; false if the device does not answer.
bool ethtool_get(const std::string& ifname, void* request) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname.c_str());
  ifr.ifr_data = static_cast<char*>(request);
  const bool ok = ::ioctl(fd, SIOCETHTOOL, &ifr) == 0;
  ::close(fd);
  return ok;
}

// The driver's name ("veth", "ixgbe"); "" if the device does not say.
std::string interface_driver(const std::string& ifname) {
  ethtool_drvinfo info{};
  info.cmd = ETHTOOL_GDRVINFO;
  return ethtool_get(ifname, &info) ? std::string(info.driver) : std::string();
}

// Virtual devices hand over their sender's partial checksums (veth: a
// container's or namespace's CHECKSUM_PARTIAL) and XDP has no way to say so;
// a NIC's frames come from a wire, complete.
bool may_carry_partial_checksums(const std::string& ifname) {
  const std::string drv = interface_driver(ifname);
  return drv.empty() || drv == "veth" || drv == "tun" || drv == "netkit";
}

struct Sock {
  xsk_socket* xsk = nullptr;
  xsk_ring_cons rx{};
  xsk_ring_prod tx{};
  xsk_ring_prod fill{};
  xsk_ring_cons comp{};
  int fd = -1;
  int port = 0;
  uint32_t queue = 0;
  uint32_t tx_pending = 0;  // submitted, not yet kicked
  uint32_t outstanding = 0; // on the tx ring, not yet completed
  bool zerocopy = false;
};

class AfXdpBackend final : public Backend {
 public:
  ~AfXdpBackend() override {
    for (Sock& s : socks_)
      if (s.xsk) xsk_socket__delete(s.xsk);
    if (umem_) xsk_umem__delete(umem_);
    if (area_) munmap(area_, area_size_);
  }

  Status init(const BackendOptions& o, Steering& steer) {
    stats_.resize(o.ifnames.size());
    ring_ = o.ring_size;
    for (const std::string& ifname : o.ifnames)
      csum_.push_back(may_carry_partial_checksums(ifname) ? L4Csum::kMaybePartial : L4Csum::kFull);
    // Sockets first (count), then the UMEM they share.
    std::vector<std::pair<int, uint32_t>> want;  // port, queue
    for (size_t p = 0; p < o.ifnames.size(); ++p) {
      const uint32_t nq = rx_queue_count(o.ifnames[p]);
      if (nq < o.workers)
        return Error{fmt::format("interface {} has {} rx queue(s); --workers {} needs at least {} on af_xdp, one "
                                 "per worker to receive and transmit on (a NIC: ethtool -L {} combined {}; veth: "
                                 "create it with numrxqueues {} numtxqueues {})",
                                 o.ifnames[p], nq, o.workers, o.workers, o.ifnames[p], o.workers, o.workers,
                                 o.workers)};
      for (uint32_t q = o.worker; q < nq; q += o.workers) want.emplace_back(static_cast<int>(p), q);
    }
    for (size_t a = 0; a < o.ifindexes.size(); ++a)
      for (size_t b = a + 1; b < o.ifindexes.size(); ++b)
        if ((o.ifindexes[a] & 63) == (o.ifindexes[b] & 63))
          return Error{fmt::format("interfaces {} and {} have ifindexes equal modulo 64; AF_XDP steering keys on it "
                                   "(use --backend af_packet)", o.ifnames[a], o.ifnames[b])};
    nframes_ = static_cast<uint32_t>(want.size()) * ring_ * 3;
    area_size_ = size_t{nframes_} * kFrameSize;
    area_ = static_cast<uint8_t*>(mmap(nullptr, area_size_, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0));
    if (area_ == MAP_FAILED) {
      area_ = nullptr;
      return Error{fmt::format("mmap {} MiB of UMEM: {}", area_size_ >> 20, std::strerror(errno))};
    }
    free_.reserve(nframes_);
    for (uint32_t i = nframes_; i-- > 0;) free_.push_back(uint64_t{i} * kFrameSize);

    socks_.resize(want.size());
    xsk_umem_config ucfg{};
    ucfg.fill_size = ring_;
    ucfg.comp_size = ring_;
    ucfg.frame_size = kFrameSize;
    ucfg.frame_headroom = 0;
    ucfg.flags = 0;
    if (int err = xsk_umem__create(&umem_, area_, area_size_, &socks_[0].fill, &socks_[0].comp, &ucfg))
      return Error{fmt::format("create AF_XDP UMEM: {}", std::strerror(-err))};
    for (size_t i = 0; i < want.size(); ++i) {
      Sock& s = socks_[i];
      s.port = want[i].first;
      s.queue = want[i].second;
      const std::string& ifname = o.ifnames[static_cast<size_t>(s.port)];
      xsk_socket_config scfg{};
      scfg.rx_size = ring_;
      scfg.tx_size = ring_;
      scfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;  // our own program steers
      // Multi-buffer where the kernel (6.6) and, for zero-copy, the driver
      // have it; a socket without it takes frames of one UMEM frame only.
      int err = -EOPNOTSUPP;
      for (uint16_t mode : {uint16_t(XDP_ZEROCOPY | XDP_USE_SG), uint16_t(XDP_ZEROCOPY), uint16_t(XDP_COPY | XDP_USE_SG),
                            uint16_t(XDP_COPY)}) {
        scfg.bind_flags = static_cast<uint16_t>(mode | XDP_USE_NEED_WAKEUP);
        err = xsk_socket__create_shared(&s.xsk, ifname.c_str(), s.queue, umem_, &s.rx, &s.tx, &s.fill, &s.comp, &scfg);
        if (err == 0) break;
      }
      if (err)
        return Error{fmt::format("AF_XDP socket on {} queue {}: {}", ifname, s.queue, std::strerror(-err))};
      s.fd = xsk_socket__fd(s.xsk);
      xdp_options opt{};
      socklen_t optlen = sizeof opt;
      if (getsockopt(s.fd, SOL_XDP, XDP_OPTIONS, &opt, &optlen) == 0 && (opt.flags & XDP_OPTIONS_ZEROCOPY)) {
        ++zerocopy_;
        s.zerocopy = true;
      }
      uint32_t budget = ring_;
      (void)setsockopt(s.fd, SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &budget, sizeof budget);
      if (o.busy_poll) {
        int v = 20;
        (void)setsockopt(s.fd, SOL_SOCKET, SO_BUSY_POLL, &v, sizeof v);
        v = 1;
        (void)setsockopt(s.fd, SOL_SOCKET, 69 /* SO_PREFER_BUSY_POLL */, &v, sizeof v);
      }
      refill(s);
      if (auto r = steer.set_xsk(o.ifindexes[static_cast<size_t>(s.port)], s.queue, s.fd); !r) return r;
    }
    for (size_t p = 0; p < o.ifnames.size(); ++p) {
      tx_of_port_.push_back(-1);
      for (size_t i = 0; i < socks_.size(); ++i)
        if (socks_[i].port == static_cast<int>(p)) {
          tx_of_port_.back() = static_cast<int>(i);
          break;
        }
    }
    // A packet socket per port, for frames larger than a UMEM frame and, in
    // copy mode (a veth), where every frame is copied into an skb anyway,
    // for bursts with TCP segments to coalesce, sent as one.
    for (size_t p = 0; p < o.ifnames.size(); ++p) {
      bool copy_mode = true;
      for (const Sock& s : socks_) copy_mode &= s.port != static_cast<int>(p) || !s.zerocopy;
      coalesce_.push_back(copy_mode);
      packet_out_.push_back(std::make_unique<VnetSender>());
      if (auto r = packet_out_.back()->open(o.ifindexes[p], o.ifnames[p]); !r) return r;
    }
    jumbo_size_ = frame_for_mtu(o.largest_mtu());
    jumbo_ = std::make_unique_for_overwrite<uint8_t[]>(size_t{kBurst} * jumbo_size_);
    pfds_.resize(socks_.size() + 2);  // the last two: the worker's wake-up fd and an extra one
    for (size_t i = 0; i < socks_.size(); ++i) pfds_[i] = pollfd{socks_[i].fd, POLLIN, 0};
    return {};
  }

  size_t rx(int port, Packet* pkts, size_t max) override {
    size_t n = 0, jumbo = 0;
    for (Sock& s : socks_) {
      if (s.port != port || n == max) continue;
      uint32_t idx = 0;
      // Descriptors, not frames: a frame in several is taken only whole.
      const uint32_t got = xsk_ring_cons__peek(&s.rx, ring_, &idx);
      uint32_t used = 0, frames = 0;
      while (used < got && n < max) {
        const xdp_desc* d = xsk_ring_cons__rx_desc(&s.rx, idx + used);
        uint32_t descs = 1;
        while (used + descs <= got && (xsk_ring_cons__rx_desc(&s.rx, idx + used + descs - 1)->options & XDP_PKT_CONTD))
          ++descs;
        if (used + descs > got) break;  // its rest later
        Packet& p = pkts[n++];
        const uint64_t base = xsk_umem__extract_addr(d->addr);
        const uint64_t addr = xsk_umem__add_offset_to_addr(d->addr);
        p = Packet{};
        p.data = static_cast<uint8_t*>(xsk_umem__get_data(area_, addr));
        p.len = d->len;
        p.capacity = static_cast<uint32_t>(kFrameSize - (addr - base));
        p.in_if = static_cast<int16_t>(port);
        p.l4_csum = csum_[static_cast<size_t>(port)];
        if (descs > 1) gather(&s.rx, idx + used, descs, &p, jumbo++);
        stats_[static_cast<size_t>(port)].rx_bytes += p.len;
        used += descs;
        ++frames;
      }
      s.rx.cached_cons -= got - used;  // what was peeked and not taken is peeked again next time
      if (used) {
        xsk_ring_cons__release(&s.rx, used);
        stats_[static_cast<size_t>(port)].rx += frames;
        refill(s);
      }
    }
    return n;
  }

  void complete(Packet* pkts, size_t n) override {
    // A copy-mode port's burst that has TCP segments to coalesce leaves by
    // its packet socket, after what its tx ring already holds.
    uint64_t by_socket = 0;  // ports
    for (size_t port = 0; port < coalesce_.size() && port < 64 && n <= kBurst; ++port) {
      if (!coalesce_[port] || !packet_out_[port]->prepare(pkts, n, static_cast<int>(port))) continue;
      if (tx_of_port_[port] >= 0) kick(socks_[static_cast<size_t>(tx_of_port_[port])]);
      packet_out_[port]->transmit(stats_[port]);
      by_socket |= uint64_t{1} << port;
    }
    for (size_t i = 0; i < n; ++i) {
      Packet& p = pkts[i];
      const bool forward = p.verdict == Verdict::kForward && p.out_if >= 0 && p.out_if < 64;
      const bool sent = forward && (by_socket >> p.out_if & 1);
      if (!in_umem(p.data)) {  // gathered: its descriptors' frames went back at once
        if (forward && !sent && static_cast<size_t>(p.out_if) < packet_out_.size()) {
          if (tx_of_port_[static_cast<size_t>(p.out_if)] >= 0)
            kick(socks_[static_cast<size_t>(tx_of_port_[static_cast<size_t>(p.out_if)])]);  // in order
          (void)packet_out_[static_cast<size_t>(p.out_if)]->send_one(p, stats_[static_cast<size_t>(p.out_if)]);
        }
        continue;
      }
      const uint64_t addr = static_cast<uint64_t>(p.data - area_);
      if (sent || !forward || !enqueue_tx(p.out_if, addr, p.len))
        free_.push_back(addr - addr % kFrameSize);  // a socket's send copied it
    }
  }

  bool send_copy(int port, const uint8_t* frame, uint32_t len) override {
    if (len > kFrameSize && port >= 0 && static_cast<size_t>(port) < packet_out_.size()) {
      Packet p;
      p.data = const_cast<uint8_t*>(frame);
      p.len = p.capacity = len;
      p.out_if = static_cast<int16_t>(port);
      p.l4_csum = L4Csum::kFull;
      return packet_out_[static_cast<size_t>(port)]->send_one(p, stats_[static_cast<size_t>(port)]);
    }
    if (free_.empty() || len > kFrameSize) {
      if (port >= 0 && static_cast<size_t>(port) < stats_.size()) ++stats_[static_cast<size_t>(port)].tx_ring_full;
      return false;
    }
    const uint64_t addr = free_.back();
    free_.pop_back();
    std::memcpy(area_ + addr, frame, len);
    if (enqueue_tx(port, addr, len)) return true;
    free_.push_back(addr);
    return false;
  }

  void flush() override {
    for (Sock& s : socks_) {
      kick(s);
      uint32_t idx = 0;
      const uint32_t done = xsk_ring_cons__peek(&s.comp, ring_, &idx);
      for (uint32_t i = 0; i < done; ++i) {
        const uint64_t a = *xsk_ring_cons__comp_addr(&s.comp, idx + i);
        free_.push_back(a - a % kFrameSize);
      }
      if (done) {
        xsk_ring_cons__release(&s.comp, done);
        s.outstanding -= std::min(s.outstanding, done);
      }
      refill(s);
    }
  }

  void wait(int timeout_ms, int wake_fd, int extra_fd) override {
    for (Sock& s : socks_)
      if (s.outstanding) timeout_ms = std::min(timeout_ms, 1);
    pfds_[pfds_.size() - 2] = pollfd{wake_fd, POLLIN, 0};  // poll ignores a negative fd
    pfds_.back() = pollfd{extra_fd, POLLIN, 0};
    (void)::poll(pfds_.data(), pfds_.size(), timeout_ms);
  }

  void update_kernel_stats() override {
    for (PortStats& p : stats_) p.rx_ring_dropped = 0;
    for (Sock& s : socks_) {
      xdp_statistics st{};
      socklen_t l = sizeof st;
      if (getsockopt(s.fd, SOL_XDP, XDP_STATISTICS, &st, &l) == 0)
        stats_[static_cast<size_t>(s.port)].rx_ring_dropped += st.rx_dropped + st.rx_ring_full;
    }
  }
  const char* name() const override { return "af_xdp"; }
  std::string describe() const override {
    return fmt::format("{} sockets, {} zero-copy, UMEM {} frames of {} B", socks_.size(), zerocopy_, nframes_, kFrameSize);
  }

 private:
  void kick(Sock& s) {
    if (s.tx_pending) {
      xsk_ring_prod__submit(&s.tx, s.tx_pending);
      s.outstanding += s.tx_pending;
      s.tx_pending = 0;
    }
    // Copy mode sends only when kicked; a kick sends a bounded batch, so
    // kick while anything is outstanding.
    if (s.outstanding && (xsk_ring_prod__needs_wakeup(&s.tx) || !zerocopy_))
      (void)::sendto(s.fd, nullptr, 0, MSG_DONTWAIT, nullptr, 0);
  }

  bool in_umem(const uint8_t* d) const { return d >= area_ && d < area_ + area_size_; }

  // A frame in `descs` descriptors from rx ring entry `at` (*p set up from
  // the first): copied into jumbo buffer `slot`, its UMEM frames freed.
  // Larger than a buffer, *p keeps the first descriptor's part alone.
  void gather(const xsk_ring_cons* rx, uint32_t at, uint32_t descs, Packet* p, size_t slot) {
    uint32_t total = 0;
    for (uint32_t k = 0; k < descs; ++k) total += xsk_ring_cons__rx_desc(rx, at + k)->len;
    uint8_t* out = jumbo_.get() + slot * jumbo_size_;
    const bool fits = total <= jumbo_size_;
    uint32_t len = 0;
    for (uint32_t k = 0; k < descs; ++k) {
      const xdp_desc* d = xsk_ring_cons__rx_desc(rx, at + k);
      if (fits) std::memcpy(out + len, xsk_umem__get_data(area_, xsk_umem__add_offset_to_addr(d->addr)), d->len);
      len += d->len;
      if (k > 0 || fits) free_.push_back(xsk_umem__extract_addr(d->addr));
    }
    if (!fits) return;
    p->data = out;
    p->len = total;
    p->capacity = jumbo_size_;
  }

  bool enqueue_tx(int port, uint64_t addr, uint32_t len) {
    if (port < 0 || static_cast<size_t>(port) >= tx_of_port_.size()) return false;
    Sock& s = socks_[static_cast<size_t>(tx_of_port_[static_cast<size_t>(port)])];
    uint32_t idx = 0;
    if (xsk_ring_prod__reserve(&s.tx, 1, &idx) != 1) {
      ++stats_[static_cast<size_t>(port)].tx_ring_full;
      return false;
    }
    xdp_desc* d = xsk_ring_prod__tx_desc(&s.tx, idx);
    d->addr = addr;
    d->len = len;
    ++s.tx_pending;
    ++stats_[static_cast<size_t>(port)].tx;
    stats_[static_cast<size_t>(port)].tx_bytes += len;
    return true;
  }

  void refill(Sock& s) {
    uint32_t want = xsk_prod_nb_free(&s.fill, ring_);
    want = std::min<uint32_t>(want, static_cast<uint32_t>(free_.size()));
    if (!want) return;
    uint32_t idx = 0;
    const uint32_t got = xsk_ring_prod__reserve(&s.fill, want, &idx);
    for (uint32_t i = 0; i < got; ++i) {
      *xsk_ring_prod__fill_addr(&s.fill, idx + i) = free_.back();
      free_.pop_back();
    }
    xsk_ring_prod__submit(&s.fill, got);
    if (xsk_ring_prod__needs_wakeup(&s.fill)) (void)::recvfrom(s.fd, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
  }

  xsk_umem* umem_ = nullptr;
  uint8_t* area_ = nullptr;
  size_t area_size_ = 0;
  uint32_t nframes_ = 0;
  uint32_t ring_ = 2048;
  int zerocopy_ = 0;
  std::vector<Sock> socks_;
  std::vector<int> tx_of_port_;
  std::vector<L4Csum> csum_;  // per port: what its frames' checksums may be
  std::vector<std::unique_ptr<VnetSender>> packet_out_;  // per port
  std::vector<bool> coalesce_;                            // per port: copy mode, runs coalesced
  std::unique_ptr<uint8_t[]> jumbo_;                      // kBurst buffers of jumbo_size_
  uint32_t jumbo_size_ = 0;
  std::vector<uint64_t> free_;
  std::vector<pollfd> pfds_;
};

}  // namespace

uint32_t rx_queue_count(const std::string& ifname) {
  ethtool_channels ch{};
  ch.cmd = ETHTOOL_GCHANNELS;
  return ethtool_get(ifname, &ch) ? std::max(ch.rx_count + ch.combined_count, 1u) : 1;
}

Result<std::unique_ptr<Backend>> make_afxdp_backend(const BackendOptions& o, Steering& steer) {
  auto b = std::make_unique<AfXdpBackend>();
  if (auto r = b->init(o, steer); !r) return r.error();
  return std::unique_ptr<Backend>(std::move(b));
}

}  // namespace xnat
