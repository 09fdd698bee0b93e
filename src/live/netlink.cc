#include "live/netlink.h"

#include <fmt/format.h>
#include <linux/fib_rules.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <cerrno>
#include <cstring>

namespace xnat {
namespace {

Error sys_error(const std::string& what) { return Error{fmt::format("{}: {}", what, std::strerror(errno))}; }

template <typename Fn>
void for_each_attr(const rtattr* rta, int len, Fn&& fn) {
  for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) fn(rta);
}

uint32_t attr_u32(const rtattr* a) {
  uint32_t v = 0;
  if (RTA_PAYLOAD(a) >= 4) std::memcpy(&v, RTA_DATA(a), 4);
  return v;
}

void parse_message(const nlmsghdr* h, KernelState* st) {
  switch (h->nlmsg_type) {
    case RTM_NEWLINK: {
      const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
      KernelLink l;
      l.ifindex = ifi->ifi_index;
      l.up = ifi->ifi_flags & IFF_UP;
      for_each_attr(IFLA_RTA(ifi), static_cast<int>(IFLA_PAYLOAD(h)), [&](const rtattr* a) {
        if (a->rta_type == IFLA_IFNAME) l.name = static_cast<const char*>(RTA_DATA(a));
        if (a->rta_type == IFLA_ADDRESS && RTA_PAYLOAD(a) == 6) std::memcpy(l.mac.b, RTA_DATA(a), 6);
        if (a->rta_type == IFLA_MTU) l.mtu = attr_u32(a);
      });
      st->links.push_back(l);
      break;
    }
    case RTM_NEWADDR: {
      const auto* ifa = static_cast<const ifaddrmsg*>(NLMSG_DATA(h));
      if (ifa->ifa_family != AF_INET) break;
      KernelAddr ka;
      ka.ifindex = static_cast<int>(ifa->ifa_index);
      ka.prefix_len = ifa->ifa_prefixlen;
      ka.secondary = ifa->ifa_flags & IFA_F_SECONDARY;
      ka.global = ifa->ifa_scope == RT_SCOPE_UNIVERSE;
      for_each_attr(IFA_RTA(ifa), static_cast<int>(IFA_PAYLOAD(h)), [&](const rtattr* a) {
        if (a->rta_type == IFA_LOCAL) ka.addr = attr_u32(a);
      });
      if (ka.addr) st->addrs.push_back(ka);
      break;
    }
    case RTM_NEWROUTE: {
      const auto* rt = static_cast<const rtmsg*>(NLMSG_DATA(h));
      if (rt->rtm_family != AF_INET) break;
      if (rt->rtm_type != RTN_UNICAST && rt->rtm_type != RTN_BLACKHOLE && rt->rtm_type != RTN_UNREACHABLE &&
          rt->rtm_type != RTN_PROHIBIT)
        break;
      KernelRoute r;
      r.type = rt->rtm_type;
      r.prefix_len = rt->rtm_dst_len;
      uint32_t table = rt->rtm_table;
      for_each_attr(RTM_RTA(rt), static_cast<int>(RTM_PAYLOAD(h)), [&](const rtattr* a) {
        if (a->rta_type == RTA_DST) r.dst = attr_u32(a);
        if (a->rta_type == RTA_GATEWAY) r.gateway = attr_u32(a);
        if (a->rta_type == RTA_OIF) r.ifindex = static_cast<int>(attr_u32(a));
        if (a->rta_type == RTA_PRIORITY) r.priority = attr_u32(a);
        if (a->rta_type == RTA_TABLE) table = attr_u32(a);
        if (a->rta_type == RTA_MULTIPATH) {
          // rtnexthop records, each with its own attributes (the gateway).
          const auto* nh = static_cast<const rtnexthop*>(RTA_DATA(a));
          int left = static_cast<int>(RTA_PAYLOAD(a));
          // RTNH_OK reads rtnh_len before it looks at the length left.
          while (left >= static_cast<int>(sizeof(rtnexthop)) && RTNH_OK(nh, left)) {
            uint32_t gw = 0;
            for_each_attr(RTNH_DATA(nh), static_cast<int>(nh->rtnh_len - RTNH_LENGTH(0)), [&](const rtattr* b) {
              if (b->rta_type == RTA_GATEWAY) gw = attr_u32(b);
            });
            r.nexthops.emplace_back(gw, nh->rtnh_ifindex);
            left -= static_cast<int>(RTNH_ALIGN(nh->rtnh_len));
            nh = RTNH_NEXT(nh);
          }
        }
      });
      if (!r.nexthops.empty() && r.ifindex == 0) {
        r.gateway = r.nexthops[0].first;
        r.ifindex = r.nexthops[0].second;
      }
      // A reject route has no device.
      if (table == RT_TABLE_MAIN && (r.ifindex > 0 || r.type != RTN_UNICAST)) st->routes.push_back(r);
      break;
    }
    case RTM_NEWNEIGH: {
      const auto* nd = static_cast<const ndmsg*>(NLMSG_DATA(h));
      if (nd->ndm_family != AF_INET) break;
      constexpr uint16_t kUsable = NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP;
      if (!(nd->ndm_state & kUsable)) break;
      KernelNeighbor n;
      n.ifindex = nd->ndm_ifindex;
      bool has_mac = false;
      for_each_attr(reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(nd) + NLMSG_ALIGN(sizeof(ndmsg))),
                    static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(ndmsg))), [&](const rtattr* a) {
                      if (a->rta_type == NDA_DST) n.addr = attr_u32(a);
                      if (a->rta_type == NDA_LLADDR && RTA_PAYLOAD(a) == 6) {
                        std::memcpy(n.mac.b, RTA_DATA(a), 6);
                        has_mac = true;
                      }
                    });
      if (n.addr && has_mac) st->neighbors.push_back(n);
      break;
    }
    case RTM_NEWRULE: {
      const auto* frh = static_cast<const fib_rule_hdr*>(NLMSG_DATA(h));
      if (frh->family != AF_INET) break;
      uint32_t table = frh->table, priority = 0;
      std::string sel;  // the selectors, as `ip rule` prints them
      for_each_attr(reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(frh) + NLMSG_ALIGN(sizeof *frh)),
                    static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof *frh)), [&](const rtattr* a) {
                      switch (a->rta_type) {
                        case FRA_TABLE: table = attr_u32(a); break;
                        case FRA_PRIORITY: priority = attr_u32(a); break;
                        case FRA_SRC: sel += fmt::format(" from {}/{}", ip_to_string(attr_u32(a)), frh->src_len); break;
                        case FRA_DST: sel += fmt::format(" to {}/{}", ip_to_string(attr_u32(a)), frh->dst_len); break;
                        case FRA_FWMARK: sel += fmt::format(" fwmark {:#x}", attr_u32(a)); break;
                        case FRA_IFNAME: sel += fmt::format(" iif {}", static_cast<const char*>(RTA_DATA(a))); break;
                        case FRA_OIFNAME: sel += fmt::format(" oif {}", static_cast<const char*>(RTA_DATA(a))); break;
                        case FRA_PROTOCOL: case FRA_SUPPRESS_PREFIXLEN: case FRA_SUPPRESS_IFGROUP: break;
                        default: sel += " ..."; break;
                      }
                    });
      if (frh->tos) sel += fmt::format(" tos {:#x}", frh->tos);
      const bool plain = sel.empty() && frh->action == FR_ACT_TO_TBL && !frh->flags;
      const bool stock = plain && ((priority == 0 && table == RT_TABLE_LOCAL) ||
                                   (priority == 32766 && table == RT_TABLE_MAIN) ||
                                   (priority == 32767 && table == RT_TABLE_DEFAULT));
      if (!stock)
        st->policy_rules.push_back(frh->action == FR_ACT_TO_TBL
                                       ? fmt::format("{}:{}{} lookup {}", priority, sel.empty() ? " from all" : "", sel, table)
                                       : fmt::format("{}:{}{} action {}", priority, sel.empty() ? " from all" : "", sel,
                                                     frh->action));
      break;
    }
    default:
      break;
  }
}

}  // namespace

const KernelLink* KernelState::link(const std::string& name) const {
  for (const KernelLink& l : links)
    if (l.name == name) return &l;
  return nullptr;
}

Rtnl::~Rtnl() {
  if (fd_ >= 0) ::close(fd_);
  if (events_ >= 0) ::close(events_);
}

Status Rtnl::open() {
  fd_ = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd_ < 0) return sys_error("rtnetlink socket");
  events_ = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  if (events_ < 0) return sys_error("rtnetlink socket");
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  // RTNLGRP_IPV4_NETCONF: a changed rp_filter.
  sa.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_NEIGH | RTMGRP_IPV4_RULE |
                 (1u << (RTNLGRP_IPV4_NETCONF - 1));
  if (::bind(events_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) return sys_error("rtnetlink subscribe");
  return {};
}

Result<std::vector<std::vector<uint8_t>>> Rtnl::request(uint16_t type, const void* body, size_t len) {
  struct {
    nlmsghdr h;
    uint8_t body[64];
  } req{};
  req.h.nlmsg_len = static_cast<uint32_t>(NLMSG_LENGTH(len));
  req.h.nlmsg_type = type;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.h.nlmsg_seq = ++seq_;
  std::memcpy(req.body, body, len);
  if (::send(fd_, &req, req.h.nlmsg_len, 0) < 0) return sys_error("rtnetlink send");
  std::vector<std::vector<uint8_t>> out;
  std::vector<uint8_t> buf(1 << 16);
  for (;;) {
    const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return sys_error("rtnetlink recv");
    }
    int left = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_seq != seq_) continue;
      if (h->nlmsg_type == NLMSG_DONE) return out;
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        errno = -e->error;
        return sys_error("rtnetlink dump");
      }
      const auto* p = reinterpret_cast<const uint8_t*>(h);
      out.emplace_back(p, p + h->nlmsg_len);
    }
  }
}

Result<KernelState> Rtnl::dump() {
  KernelState st;
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET;
  rtmsg rt{};
  rt.rtm_family = AF_INET;
  ndmsg nd{};
  nd.ndm_family = AF_INET;
  fib_rule_hdr frh{};
  frh.family = AF_INET;
  const std::pair<uint16_t, std::pair<const void*, size_t>> reqs[] = {
      {RTM_GETLINK, {&ifi, sizeof ifi}},
      {RTM_GETADDR, {&ifa, sizeof ifa}},
      {RTM_GETROUTE, {&rt, sizeof rt}},
      {RTM_GETNEIGH, {&nd, sizeof nd}},
      {RTM_GETRULE, {&frh, sizeof frh}},
  };
  for (const auto& [type, body] : reqs) {
    auto msgs = request(type, body.first, body.second);
    if (!msgs) return msgs.error();
    for (const auto& m : *msgs) parse_message(reinterpret_cast<const nlmsghdr*>(m.data()), &st);
  }
  // Not in the links' messages: the sysctls (this network namespace's).
  auto sysctl = [](const std::string& name) {
    std::ifstream f("/proc/sys/net/ipv4/conf/" + name + "/rp_filter");
    int v = 0;
    f >> v;
    return static_cast<uint8_t>(std::clamp(v, 0, 2));
  };
  const uint8_t all = sysctl("all");
  for (KernelLink& l : st.links) l.rp_filter = std::max(all, sysctl(l.name));
  return st;
}

bool Rtnl::changed() {
  bool any = false;
  uint8_t buf[16384];
  for (;;) {
    const ssize_t n = ::recv(events_, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      any = true;
      continue;
    }
    // ENOBUFS: notifications were lost; a re-read of everything covers them.
    if (n < 0 && errno == ENOBUFS) {
      any = true;
      continue;
    }
    return any;
  }
}

Status Rtnl::resolve(int ifindex, uint32_t addr) {
  struct {
    nlmsghdr h;
    ndmsg nd;
    uint8_t attrs[32];
  } req{};
  req.h.nlmsg_type = RTM_NEWNEIGH;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE;
  req.h.nlmsg_seq = ++seq_;
  req.nd.ndm_family = AF_INET;
  req.nd.ndm_ifindex = ifindex;
  req.nd.ndm_state = NUD_NONE;
  req.nd.ndm_flags = NTF_USE;  // neigh_event_send: start resolving now
  auto* a = reinterpret_cast<rtattr*>(req.attrs);
  a->rta_type = NDA_DST;
  a->rta_len = RTA_LENGTH(4);
  std::memcpy(RTA_DATA(a), &addr, 4);
  req.h.nlmsg_len = static_cast<uint32_t>(NLMSG_LENGTH(sizeof(ndmsg)) + RTA_ALIGN(a->rta_len));
  if (::send(fd_, &req, req.h.nlmsg_len, 0) < 0) return sys_error("rtnetlink neighbour request");
  return {};
}

Result<Fib> live_fib(const Fib& conf, bool routes_pinned, const KernelState& k, bool at_start) {
  Fib fib;
  std::vector<int> kindex;  // engine interface -> kernel ifindex
  for (const Interface& ci : conf.interfaces()) {
    const KernelLink* l = k.link(ci.name);
    if (!l) return Error{fmt::format("interface '{}' does not exist (ip link show {})", ci.name, ci.name)};
    Interface itf = ci;
    itf.rp_filter = l->rp_filter;
    if (itf.mac == MacAddr{}) itf.mac = l->mac;
    if (l->mtu) itf.mtu = l->mtu;
    if (itf.addr == 0) {
      // As inet_select_addr: the first primary address of global scope.
      for (const KernelAddr& a : k.addrs)
        if (a.ifindex == l->ifindex && !a.secondary && a.global) {
          itf.addr = a.addr;
          itf.prefix_len = a.prefix_len;
          break;
        }
      if (itf.addr == 0 && at_start)
        return Error{fmt::format("interface '{}' has no IPv4 address: give it one (ip addr add ... dev {}) or "
                                 "set 'address' in the config",
                                 ci.name, ci.name)};
    }
    const int idx = fib.add_interface(itf);
    kindex.push_back(l->ifindex);
    if (ci.addr == 0)
      // Its other primaries, in other prefixes: MASQUERADE picks the one in
      // the next hop's prefix (Fib::source_for).
      for (const KernelAddr& a : k.addrs)
        if (a.ifindex == l->ifindex && !a.secondary && a.global && a.addr != itf.addr)
          fib.add_interface_address(idx, a.addr, a.prefix_len);
  }
  auto engine_if = [&](int ifindex) {
    for (size_t i = 0; i < kindex.size(); ++i)
      if (kindex[i] == ifindex) return static_cast<int>(i);
    return -1;
  };
  if (routes_pinned) {
    for (const RouteEntry& r : conf.routes()) {
      if (r.gateway == 0 && r.ifindex >= 0) {
        // The config's connected prefixes were added with the interfaces.
        const Interface& ci = conf.interface(r.ifindex);
        if (ci.addr && connected_prefix(ci) == r.prefix) continue;
      }
      if (auto st = fib.add_route(r.prefix, r.gateway, r.gateway ? -1 : r.ifindex); !st) return st.error();
    }
  } else {
    // Lowest metric first, so that of two equal prefixes the preferred is found first.
    std::vector<KernelRoute> rs = k.routes;
    std::stable_sort(rs.begin(), rs.end(), [](const KernelRoute& a, const KernelRoute& b) { return a.priority < b.priority; });
    for (const KernelRoute& r : rs) {
      Prefix p;
      p.len = r.prefix_len;
      p.addr = __builtin_bswap32(r.dst) & p.mask();
      if (r.type != RTN_UNICAST) {
        (void)fib.add_reject_route(p, r.type == RTN_BLACKHOLE     ? RouteKind::kBlackhole
                                      : r.type == RTN_UNREACHABLE ? RouteKind::kUnreachable
                                                                  : RouteKind::kProhibit);
        continue;
      }
      const int i = engine_if(r.ifindex);
      if (i < 0 && r.nexthops.size() <= 1) continue;  // a route through an interface the gateway does not own
      if (r.nexthops.size() > 1) {
        // ECMP: the next hops through the gateway's interfaces (one through
        // another device is the kernel's, which the gateway cannot send on).
        std::vector<std::pair<uint32_t, int>> hops;
        for (auto [gw, ifindex] : r.nexthops)
          if (const int e = engine_if(ifindex); e >= 0) hops.emplace_back(gw, e);
        if (!hops.empty()) (void)fib.add_multipath(p, hops);
        continue;
      }
      if (r.gateway == 0) {
        const Interface& itf = fib.interface(i);
        if (itf.addr && connected_prefix(itf) == p) continue;  // connected: already there
      }
      (void)fib.add_route(p, r.gateway, i);
    }
  }
  // Every other address of the host's is its own too: a second address on
  // an interface (a keepalived VIP, an alias), one on lo or on a device the
  // gateway does not own. Not forwarded: the kernel answers for them.
  for (const KernelAddr& a : k.addrs) fib.add_local(a.addr);
  for (const KernelNeighbor& n : k.neighbors)
    if (engine_if(n.ifindex) >= 0) fib.add_neighbor(n.addr, n.mac);
  conf.for_each_neighbor([&](uint32_t addr, const MacAddr& mac) { fib.add_neighbor(addr, mac); });
  return fib;
}

}  // namespace xnat
