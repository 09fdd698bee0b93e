#include "live/host_port.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "live/kernel_files.h"

namespace xnat {
namespace {

Error sys_error(const std::string& what) { return Error{fmt::format("{}: {}", what, std::strerror(errno))}; }

}  // namespace

Result<std::unique_ptr<HostPort>> HostPort::open(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) return Error{fmt::format("host port name '{}': 1 to {} characters", name, IFNAMSIZ - 1)};
  std::unique_ptr<HostPort> hp(new HostPort);
  hp->name_ = name;
  hp->fd_ = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (hp->fd_ < 0) return sys_error("open /dev/net/tun for the host port (REDIRECT)");
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.c_str(), name.size());
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  if (ioctl(hp->fd_, TUNSETIFF, &ifr) < 0) {
    if (errno == EBUSY)
      return Error{fmt::format("create tun device '{}' (host port, for REDIRECT and DNAT to a host address): it is in "
                               "use; is another xnat running in this network namespace?",
                               name)};
    return sys_error(fmt::format("create tun device '{}' (host port, for REDIRECT and DNAT to a host address)", name));
  }
  // IPv6 would give it a link-local address and router solicitations.
  (void)write_kernel_file(fmt::format("/proc/sys/net/ipv6/conf/{}/disable_ipv6", name), "1");
  if (write_kernel_file(fmt::format("/proc/sys/net/ipv4/conf/{}/rp_filter", name), "0") != 0)
    return sys_error(fmt::format("set rp_filter = 0 on '{}'", name));
  if (kernel_line("/proc/sys/net/ipv4/conf/all/rp_filter") == "1")
    hp->warning_ = fmt::format(
        "net.ipv4.conf.all.rp_filter = 1 (strict): the kernel will drop what the host port '{}' gives it for "
        "REDIRECT; set it to 0 or 2",
        name);
  const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return sys_error("socket");
  ifreq up{};
  std::memcpy(up.ifr_name, name.c_str(), name.size());
  bool ok = ioctl(s, SIOCGIFFLAGS, &up) == 0;
  up.ifr_flags = static_cast<short>(up.ifr_flags | IFF_UP);
  ok = ok && ioctl(s, SIOCSIFFLAGS, &up) == 0;
  // The host's answers queue here until worker 0 reads them. A TCP sender's
  // burst arrives segmented at once (the device has no offloads), so the
  // default 500 overflowed under iperf3 -R (211 of ~25 000 dropped).
  ifreq q{};
  std::memcpy(q.ifr_name, name.c_str(), name.size());
  q.ifr_qlen = kQueueLen;
  ok = ok && ioctl(s, SIOCSIFTXQLEN, &q) == 0;
  ok = ok && ioctl(s, SIOCGIFINDEX, &up) == 0;
  const int err = errno;
  ::close(s);
  errno = err;
  if (!ok) return sys_error(fmt::format("bring up '{}'", name));
  hp->ifindex_ = up.ifr_ifindex;
  hp->buf_.resize(kBurst * kFrame);
  return hp;
}

HostPort::~HostPort() {
  if (fd_ >= 0) ::close(fd_);
}

size_t HostPort::rx(Packet* pkts, size_t max) {
  size_t n = 0;
  for (size_t tries = 0; n < max && n < kBurst && tries < 2 * kBurst; ++tries) {
    uint8_t* f = &buf_[n * kFrame];
    const ssize_t r = ::read(fd_, f + 14, kFrame - 14);
    if (r <= 0) break;
    if ((f[14] >> 4) != 4) continue;
    std::memset(f, 0, 12);
    f[12] = 0x08;
    f[13] = 0x00;
    Packet& p = pkts[n++];
    p = Packet{};
    p.data = f;
    p.len = static_cast<uint32_t>(r) + 14;
    p.capacity = kFrame;
    p.in_if = kHostPort;
  }
  return n;
}

bool HostPort::write(const uint8_t* ip, const uint8_t* end) {
  const size_t tot = (size_t{ip[2]} << 8) | ip[3];
  if (tot < 20 || tot > static_cast<size_t>(end - ip)) return false;
  return ::write(fd_, ip, tot) == static_cast<ssize_t>(tot);
}

uint64_t HostPort::queue_dropped() const {
  const std::string v = kernel_line(fmt::format("/sys/class/net/{}/statistics/tx_dropped", name_));
  return v.empty() ? 0 : std::strtoull(v.c_str(), nullptr, 10);
}

}  // namespace xnat
