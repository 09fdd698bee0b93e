#include "live/receive_coalescing.h"

#include <fmt/format.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace xnat {
namespace {

// The ethtool ioctls (what `ethtool -k/-K/-i` use), on a socket of the
// gateway's namespace.
class Ethtool {
 public:
  Ethtool() : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {}
  ~Ethtool() {
    if (fd_ >= 0) ::close(fd_);
  }
  Ethtool(const Ethtool&) = delete;
  Ethtool& operator=(const Ethtool&) = delete;

  // 0 or the errno.
  int call(const std::string& ifname, void* data) const {
    if (fd_ < 0) return EBADF;
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname.c_str());
    ifr.ifr_data = static_cast<char*>(data);
    return ::ioctl(fd_, SIOCETHTOOL, &ifr) < 0 ? errno : 0;
  }
  int gro(const std::string& ifname, bool* on) const {
    ethtool_value v{};
    v.cmd = ETHTOOL_GGRO;
    const int err = call(ifname, &v);
    *on = v.data != 0;
    return err;
  }
  int set_gro(const std::string& ifname, bool on) const {
    ethtool_value v{};
    v.cmd = ETHTOOL_SGRO;
    v.data = on ? 1 : 0;
    return call(ifname, &v);
  }
  std::string driver(const std::string& ifname) const {
    ethtool_drvinfo d{};
    d.cmd = ETHTOOL_GDRVINFO;
    return call(ifname, &d) == 0 ? std::string(d.driver) : std::string();
  }

 private:
  int fd_;
};

}  // namespace

std::unique_ptr<ReceiveCoalescing> ReceiveCoalescing::apply(const std::vector<std::string>& ifnames,
                                                            bool only_veth) {
  std::unique_ptr<ReceiveCoalescing> r(new ReceiveCoalescing);
  Ethtool et;
  for (const std::string& ifname : ifnames) {
    if (only_veth && et.driver(ifname) != "veth") continue;
    bool on = false;
    if (et.gro(ifname, &on) != 0 || on) continue;  // no GRO to switch, or the operator's on already
    if (const int err = et.set_gro(ifname, true); err) {
      r->warnings_.push_back(fmt::format("--gro: GRO on {} not turned on ({}); `ethtool -K {} gro on` does it by hand",
                                         ifname, std::strerror(err), ifname));
      continue;
    }
    r->set_.push_back(ifname);
  }
  return r;
}

ReceiveCoalescing::~ReceiveCoalescing() {
  Ethtool et;
  for (const std::string& ifname : set_) {
    bool on = false;
    // Turned off since (by an operator, a test): theirs now. A device gone
    // with its namespace answers with an error: nothing to put back.
    if (et.gro(ifname, &on) == 0 && on) (void)et.set_gro(ifname, false);
  }
}

std::string ReceiveCoalescing::describe() const {
  if (set_.empty()) return "";
  std::string names;
  for (const std::string& n : set_) names += (names.empty() ? "" : ", ") + n;
  return fmt::format("GRO on {} for the run", names);
}

}  // namespace xnat
