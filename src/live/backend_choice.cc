#include "live/backend_choice.h"

#include <fmt/format.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "live/backend.h"
#include "live/kernel_files.h"

namespace xnat {
namespace {

// include/uapi/linux/netdev.h; defined here as the build host's headers may
// predate the family.
constexpr uint8_t kNetdevCmdDevGet = 1;
constexpr uint16_t kNetdevAttrIfindex = 1;
constexpr uint16_t kNetdevAttrXdpFeatures = 3;

// One generic netlink request and its single answer; attrs appended raw.
class Genl {
 public:
  ~Genl() {
    if (fd_ >= 0) ::close(fd_);
  }
  Status open() {
    fd_ = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
    if (fd_ < 0) return Error{fmt::format("generic netlink socket: {}", std::strerror(errno))};
    timeval tv{2, 0};  // the kernel answers at once; never hang a start on it
    (void)::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return {};
  }
  // Sends cmd to family with one attribute; returns the answer's attributes.
  Result<std::vector<uint8_t>> ask(uint16_t family, uint8_t cmd, uint16_t attr, const void* val, uint16_t len) {
    struct {
      nlmsghdr h;
      genlmsghdr g;
      uint8_t attrs[64];
    } req{};
    nlattr* a = reinterpret_cast<nlattr*>(req.attrs);
    a->nla_type = attr;
    a->nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
    std::memcpy(req.attrs + NLA_HDRLEN, val, len);
    req.h.nlmsg_len = static_cast<uint32_t>(NLMSG_LENGTH(GENL_HDRLEN) + NLA_ALIGN(a->nla_len));
    req.h.nlmsg_type = family;
    req.h.nlmsg_flags = NLM_F_REQUEST;
    req.h.nlmsg_seq = ++seq_;
    req.g.cmd = cmd;
    req.g.version = 1;
    if (::send(fd_, &req, req.h.nlmsg_len, 0) < 0)
      return Error{fmt::format("generic netlink send: {}", std::strerror(errno))};
    std::vector<uint8_t> buf(8192);
    for (;;) {
      const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Error{fmt::format("generic netlink recv: {}", std::strerror(errno))};
      }
      int left = static_cast<int>(n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
        if (h->nlmsg_seq != seq_) continue;
        if (h->nlmsg_type == NLMSG_ERROR) {
          const int e = -static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
          return Error{std::strerror(e)};
        }
        if (h->nlmsg_len < NLMSG_LENGTH(GENL_HDRLEN)) return Error{"short generic netlink answer"};
        const auto* p = static_cast<const uint8_t*>(NLMSG_DATA(h)) + GENL_HDRLEN;
        return std::vector<uint8_t>(p, p + (h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN)));
      }
    }
  }

 private:
  int fd_ = -1;
  uint32_t seq_ = 0;
};

// The attribute's payload, if the answer has it.
const uint8_t* find_attr(const std::vector<uint8_t>& attrs, uint16_t type, uint16_t* len) {
  size_t at = 0;
  while (at + NLA_HDRLEN <= attrs.size()) {
    nlattr a;
    std::memcpy(&a, attrs.data() + at, sizeof a);
    if (a.nla_len < NLA_HDRLEN || at + a.nla_len > attrs.size()) return nullptr;
    if ((a.nla_type & NLA_TYPE_MASK) == type) {
      *len = static_cast<uint16_t>(a.nla_len - NLA_HDRLEN);
      return attrs.data() + at + NLA_HDRLEN;
    }
    at += NLA_ALIGN(a.nla_len);
  }
  return nullptr;
}

}  // namespace

BackendChoice choose_backend(const std::vector<InterfaceXdp>& ifs, int workers) {
  for (const InterfaceXdp& i : ifs) {
    if (!i.features)
      return {"af_packet", fmt::format("the kernel does not say whether {} has AF_XDP zero-copy ({})", i.name,
                                       i.features.error().message)};
    if (!(i.features.value() & kXdpActXskZerocopy))
      return {"af_packet", fmt::format("{}'s driver has no AF_XDP zero-copy", i.name)};
    if (i.rx_queues < static_cast<uint32_t>(workers))
      return {"af_packet", fmt::format("{} has {} rx queue{} for {} workers", i.name, i.rx_queues,
                                       i.rx_queues == 1 ? "" : "s", workers)};
    if (i.mtu > kAfXdpMtuMax)
      return {"af_packet", fmt::format("{}'s MTU {} is more than af_xdp's buffers take whole (jumbo frames; at most {})",
                                       i.name, i.mtu, kAfXdpMtuMax)};
  }
  return {"af_xdp", "every interface's driver has AF_XDP zero-copy"};
}

Result<uint64_t> xdp_features(int ifindex) {
  Genl g;
  if (auto r = g.open(); !r) return r.error();
  const char name[] = "netdev";
  auto fam = g.ask(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_NAME, name, sizeof name);
  if (!fam) return Error{fmt::format("no netdev netlink family (Linux 6.3 or later): {}", fam.error().message)};
  uint16_t len = 0;
  const uint8_t* id = find_attr(*fam, CTRL_ATTR_FAMILY_ID, &len);
  if (!id || len < 2) return Error{"no netdev netlink family id"};
  uint16_t family;
  std::memcpy(&family, id, sizeof family);
  const uint32_t idx = static_cast<uint32_t>(ifindex);
  auto dev = g.ask(family, kNetdevCmdDevGet, kNetdevAttrIfindex, &idx, sizeof idx);
  if (!dev) return Error{fmt::format("netdev dev-get: {}", dev.error().message)};
  const uint8_t* f = find_attr(*dev, kNetdevAttrXdpFeatures, &len);
  if (!f || len != 8) return Error{"no xdp-features in the netdev answer"};
  uint64_t features;
  std::memcpy(&features, f, sizeof features);
  return features;
}

std::vector<InterfaceXdp> describe_interfaces(const std::vector<std::string>& names) {
  std::vector<InterfaceXdp> out;
  for (const std::string& n : names) {
    InterfaceXdp i;
    i.name = n;
    const unsigned idx = if_nametoindex(n.c_str());
    i.features = idx ? xdp_features(static_cast<int>(idx)) : Result<uint64_t>(Error{"no such interface"});
    i.rx_queues = rx_queue_count(n);  // as the af_xdp backend will count them
    if (const std::string mtu = kernel_line("/sys/class/net/" + n + "/mtu"); !mtu.empty())
      i.mtu = static_cast<uint32_t>(std::strtoul(mtu.c_str(), nullptr, 10));
    out.push_back(std::move(i));
  }
  return out;
}

}  // namespace xnat
