// AF_XDP backend: a socket on every rx queue of every interface (with several
// workers, this worker's queues), all sharing one UMEM, so a frame received on one interface is transmitted on another by
// passing its UMEM address; nothing is copied in user space. Free frames are a
// stack; fill rings are topped up from it, completions return to it. In copy
// mode (a veth), where every frame is copied into an skb anyway, a burst with
// TCP segments to coalesce leaves through a packet socket (vnet_sender.h).
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

namespace xnat {
namespace {

constexpr uint32_t kFrameSize = XSK_UMEM__DEFAULT_FRAME_SIZE;  // 4096


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
      int err = -EOPNOTSUPP;
      for (uint16_t mode : {uint16_t(XDP_ZEROCOPY), uint16_t(XDP_COPY)}) {
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
    // In copy mode (a veth) every frame is copied into an skb anyway; where
    // TCP segments can be coalesced, a packet socket sends them as one.
    coalescers_.resize(o.ifnames.size());
    for (size_t p = 0; p < o.ifnames.size(); ++p) {
      bool copy_mode = true;
      for (const Sock& s : socks_) copy_mode &= s.port != static_cast<int>(p) || !s.zerocopy;
      if (!copy_mode) continue;
      coalescers_[p] = std::make_unique<VnetSender>();
      if (auto r = coalescers_[p]->open(o.ifindexes[p], o.ifnames[p]); !r) return r;
    }
    pfds_.resize(socks_.size() + 2);  // the last two: the worker's wake-up fd and an extra one
    for (size_t i = 0; i < socks_.size(); ++i) pfds_[i] = pollfd{socks_[i].fd, POLLIN, 0};
    return {};
  }

  size_t rx(int port, Packet* pkts, size_t max) override {
    size_t n = 0;
    for (Sock& s : socks_) {
      if (s.port != port || n == max) continue;
      uint32_t idx = 0;
      const uint32_t got = xsk_ring_cons__peek(&s.rx, static_cast<uint32_t>(max - n), &idx);
      for (uint32_t i = 0; i < got; ++i) {
        const xdp_desc* d = xsk_ring_cons__rx_desc(&s.rx, idx + i);
        Packet& p = pkts[n++];
        const uint64_t base = xsk_umem__extract_addr(d->addr);
        const uint64_t addr = xsk_umem__add_offset_to_addr(d->addr);
        p = Packet{};
        p.data = static_cast<uint8_t*>(xsk_umem__get_data(area_, addr));
        p.len = d->len;
        p.capacity = static_cast<uint32_t>(kFrameSize - (addr - base));
        p.in_if = static_cast<int16_t>(port);
        p.l4_csum = csum_[static_cast<size_t>(port)];
        stats_[static_cast<size_t>(port)].rx_bytes += d->len;
      }
      if (got) {
        xsk_ring_cons__release(&s.rx, got);
        stats_[static_cast<size_t>(port)].rx += got;
        refill(s);
      }
    }
    return n;
  }

  void complete(Packet* pkts, size_t n) override {
    // A copy-mode port's burst that has TCP segments to coalesce leaves by
    // its packet socket, after what its tx ring already holds.
    uint64_t by_socket = 0;  // ports
    for (size_t port = 0; port < coalescers_.size() && port < 64 && n <= kBurst; ++port) {
      if (!coalescers_[port] || !coalescers_[port]->prepare(pkts, n, static_cast<int>(port))) continue;
      if (tx_of_port_[port] >= 0) kick(socks_[static_cast<size_t>(tx_of_port_[port])]);
      coalescers_[port]->transmit(stats_[port]);
      by_socket |= uint64_t{1} << port;
    }
    for (size_t i = 0; i < n; ++i) {
      Packet& p = pkts[i];
      const uint64_t addr = static_cast<uint64_t>(p.data - area_);
      const bool sent = p.verdict == Verdict::kForward && p.out_if >= 0 && p.out_if < 64 && (by_socket >> p.out_if & 1);
      if (sent || p.verdict != Verdict::kForward || !enqueue_tx(p.out_if, addr, p.len))
        free_.push_back(addr - addr % kFrameSize);  // a socket's send copied it
    }
  }

  bool send_copy(int port, const uint8_t* frame, uint32_t len) override {
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
  std::vector<std::unique_ptr<VnetSender>> coalescers_;  // per port, copy mode only
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
