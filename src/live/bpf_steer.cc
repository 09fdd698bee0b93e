#include "live/bpf_steer.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "live/steer.h"

extern const unsigned char xnat_steer_bpf_obj[];
extern const size_t xnat_steer_bpf_obj_size;

namespace xnat {
namespace {

Error bpf_error(const std::string& what, int err) {
  return Error{fmt::format("{}: {}", what, std::strerror(err < 0 ? -err : err))};
}

int quiet_libbpf(enum libbpf_print_level level, const char* fmt, va_list ap) {
  if (level == LIBBPF_WARN) return vfprintf(stderr, fmt, ap);
  return 0;
}

int silent_libbpf(enum libbpf_print_level, const char*, va_list) { return 0; }

constexpr size_t kClaimsBytes = XNAT_CLAIM_ENTRIES * sizeof(uint64_t);
constexpr size_t kFastSeenBytes = XNAT_FAST_SLOTS * sizeof(uint64_t);
constexpr size_t kFastSentBytes = 2 * XNAT_FAST_SLOTS * sizeof(uint64_t);
constexpr uint32_t kSteerStats = 10;  // steer_stats' entries (bpf/xnat_steer.bpf.c)

// tcx attachments (Linux 6.6): links, detached when their last fd closes, so
// a crashed gateway leaves nothing behind. The libbpf this builds against
// predates the enum values (include/uapi/linux/bpf.h).
constexpr int kTcxIngress = 46;
constexpr int kTcxEgress = 47;
// BPF_F_XDP_DEV_BOUND_ONLY (Linux 6.3): a program bound to one device that
// is not offloaded to it.
constexpr uint32_t kXdpDevBoundOnly = 1u << 6;

}  // namespace

BpfSteer::~BpfSteer() { detach_all(); }

Status BpfSteer::load() {
  libbpf_set_print(quiet_libbpf);
  LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "xnat_steer");
  obj_ = bpf_object__open_mem(xnat_steer_bpf_obj, xnat_steer_bpf_obj_size, &opts);
  if (!obj_) return bpf_error("open the steering BPF object", errno);
  // Loaded for each interface instead (attach_own_xdp), with its slot, and
  // bound to its device where it can be, as only a program bound to its
  // device may call the device's metadata kfuncs.
  (void)bpf_program__set_autoload(bpf_object__find_program_by_name(obj_, "xnat_xdp_bound"), false);
  (void)bpf_program__set_autoload(bpf_object__find_program_by_name(obj_, "xnat_xdp"), false);
  if (int err = bpf_object__load(obj_))
    return bpf_error("load the steering BPF program (needs root or CAP_BPF+CAP_NET_ADMIN)", err);
  xsks_fd_ = bpf_object__find_map_fd_by_name(obj_, "xsks");
  local_fd_ = bpf_object__find_map_fd_by_name(obj_, "local_addrs");
  claims_fd_ = bpf_object__find_map_fd_by_name(obj_, "claims");
  stats_fd_ = bpf_object__find_map_fd_by_name(obj_, "steer_stats");
  host_replies_fd_ = bpf_object__find_map_fd_by_name(obj_, "host_replies");
  host_port_fd_ = bpf_object__find_map_fd_by_name(obj_, "host_port");
  fast_fd_ = bpf_object__find_map_fd_by_name(obj_, "fastpath");
  fast_seen_fd_ = bpf_object__find_map_fd_by_name(obj_, "fast_seen");
  fast_sent_fd_ = bpf_object__find_map_fd_by_name(obj_, "fast_sent");
  if (xsks_fd_ < 0 || local_fd_ < 0 || claims_fd_ < 0 || stats_fd_ < 0 || host_replies_fd_ < 0 ||
      host_port_fd_ < 0 || fast_fd_ < 0 || fast_seen_fd_ < 0 || fast_sent_fd_ < 0)
    return Error{"steering BPF object lacks its maps"};
  void* m = mmap(nullptr, kClaimsBytes, PROT_READ | PROT_WRITE, MAP_SHARED, claims_fd_, 0);
  if (m == MAP_FAILED) return bpf_error("mmap the port claims map", errno);
  claims_ = static_cast<uint64_t*>(m);
  m = mmap(nullptr, kFastSeenBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fast_seen_fd_, 0);
  if (m == MAP_FAILED) return bpf_error("mmap the fast path's fast_seen map", errno);
  fast_seen_ = static_cast<uint64_t*>(m);
  m = mmap(nullptr, kFastSentBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fast_sent_fd_, 0);
  if (m == MAP_FAILED) return bpf_error("mmap the fast path's fast_sent map", errno);
  fast_sent_ = static_cast<uint64_t*>(m);
  return {};
}

Result<bpf_link*> BpfSteer::attach_own_xdp(int ifindex, uint32_t slot, bool bound) {
  LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "xnat_steer");
  bpf_object* obj = bpf_object__open_mem(xnat_steer_bpf_obj, xnat_steer_bpf_obj_size, &opts);
  if (!obj) return bpf_error("open the steering BPF object", errno);
  own_objs_.emplace_back(ifindex, obj);
  bpf_program* p;
  bpf_object__for_each_program(p, obj) (void)bpf_program__set_autoload(p, false);
  bpf_program* prog = bpf_object__find_program_by_name(obj, bound ? "xnat_xdp_bound" : "xnat_xdp");
  (void)bpf_program__set_autoload(prog, true);
  if (bound) {
    bpf_program__set_ifindex(prog, static_cast<uint32_t>(ifindex));
    (void)bpf_program__set_flags(prog, bpf_program__flags(prog) | kXdpDevBoundOnly);
  }
  // The same maps as every other program of the gateway's, but for its
  // constants: the interface's slot.
  bpf_map* m;
  bpf_object__for_each_map(m, obj) {
    if (bpf_map__is_internal(m)) {
      // Its only constant.
      if (bpf_map__set_initial_value(m, &slot, sizeof slot) != 0)
        return Error{"the steering BPF object lacks its xsk_slot"};
      continue;
    }
    const int fd = bpf_object__find_map_fd_by_name(obj_, bpf_map__name(m));
    if (fd < 0 || bpf_map__reuse_fd(m, fd) != 0) return Error{fmt::format("map {} not shared", bpf_map__name(m))};
  }
  // A refusal is the caller's to report, once.
  libbpf_set_print(silent_libbpf);
  const int err = bpf_object__load(obj);
  bpf_link* link = err ? nullptr : bpf_program__attach_xdp(prog, ifindex);
  const int attach_err = errno;
  libbpf_set_print(quiet_libbpf);
  if (err) return bpf_error("load", err);
  if (!link) return bpf_error("attach", attach_err);
  return link;
}

Result<uint32_t> BpfSteer::slot_of(int ifindex) {
  for (uint32_t i = 0; i < slots_.size(); ++i)
    if (slots_[i] == ifindex) return i;
  for (uint32_t i = 0; i < slots_.size(); ++i)
    if (slots_[i] == 0) {
      slots_[i] = ifindex;
      return i;
    }
  return Error{fmt::format("AF_XDP: at most {} interfaces", slots_.size())};
}

Status BpfSteer::attach(SteerHook hook, int ifindex, const std::string& name) {
  if (hook == SteerHook::kXdp) {
    auto slot = slot_of(ifindex);
    if (!slot) return slot.error();
    // Bound to the interface, the program sees the VLAN tags it takes out
    // of frames; where it cannot be (generic XDP only, a kernel before 6.8),
    // the unbound one steers and the operator is told what it misses.
    Result<bpf_link*> bound = attach_own_xdp(ifindex, *slot, true);
    if (bound) {
      links_.emplace_back(ifindex, *bound);
      return {};
    }
    std::erase_if(own_objs_, [&](const std::pair<int, bpf_object*>& o) {
      return o.first == ifindex && (bpf_object__close(o.second), true);
    });
    // A program left by another xnat that was killed before its link closed
    // cannot exist (links die with their process); one attached the old way
    // (ip link set xdp) is replaced here only if it is not a link.
    Result<bpf_link*> link = attach_own_xdp(ifindex, *slot, false);
    if (!link) {
      const std::string& why = link.error().message;
      if (why.ends_with(std::strerror(EBUSY)) || why.ends_with(std::strerror(EEXIST)))
        return Error{fmt::format("interface '{}' already has an XDP program; remove it (ip link set dev {} xdp off) "
                                 "or use --backend af_packet",
                                 name, name)};
      return Error{fmt::format("attach XDP to '{}': {}", name, why)};
    }
    links_.emplace_back(ifindex, *link);
    warnings_.push_back(fmt::format(
        "interface {}: the XDP program cannot be bound to it ({}), so a VLAN tag the device takes out of a frame "
        "(rx-vlan-offload) goes unseen and the frame is taken as untagged; switch that off (ethtool -K {} rxvlan off) "
        "or use --backend af_packet",
        name, bound.error().message, name));
    return {};
  }
  return attach_tc("xnat_tc", ifindex, name);
}

Status BpfSteer::attach_fast_path(int ifindex, const std::string& name) {
  return attach_tc("xnat_tc_xdp", ifindex, name);
}

Status BpfSteer::attach_tc(const char* program, int ifindex, const std::string& name) {
  bpf_program* prog = bpf_object__find_program_by_name(obj_, program);
  // A tcx link (Linux 6.6) goes away with the process, as the XDP link does;
  // older kernels get a classic filter, which a crash leaves behind until
  // the next start replaces it.
  const int link = bpf_link_create(bpf_program__fd(prog), ifindex, static_cast<bpf_attach_type>(kTcxIngress), nullptr);
  LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
  if (link >= 0) {
    tcx_links_.emplace_back(ifindex, link);
    // A classic filter a crashed xnat of the older kind left would run after
    // it. Usually there is none, nor a clsact qdisc: libbpf's warning about
    // that is no news to the operator.
    LIBBPF_OPTS(bpf_tc_opts, stale, .handle = 0x8a7, .priority = 1);
    libbpf_set_print(silent_libbpf);
    (void)bpf_tc_detach(&h, &stale);
    libbpf_set_print(quiet_libbpf);
    return {};
  }
  int err = bpf_tc_hook_create(&h);
  if (err && err != -EEXIST) return bpf_error(fmt::format("create tc ingress hook on '{}'", name), err);
  // Fixed handle and priority: a filter left by a crashed xnat is replaced.
  LIBBPF_OPTS(bpf_tc_opts, o, .prog_fd = bpf_program__fd(prog), .flags = BPF_TC_F_REPLACE, .handle = 0x8a7,
              .priority = 1);
  if ((err = bpf_tc_attach(&h, &o))) return bpf_error(fmt::format("attach tc filter to '{}'", name), err);
  tc_ifindexes_.push_back(ifindex);
  return {};
}

Status BpfSteer::attach_egress(int ifindex, const std::string& name) {
  bpf_program* prog = bpf_object__find_program_by_name(obj_, "xnat_tc_egress");
  const int fd = bpf_link_create(bpf_program__fd(prog), ifindex, static_cast<bpf_attach_type>(kTcxEgress), nullptr);
  if (fd < 0)
    return bpf_error(fmt::format("attach the host port's tc egress program to '{}' (needs Linux 6.6 or later for tcx)",
                                 name),
                     fd);
  tcx_links_.emplace_back(ifindex, fd);
  return {};
}

Status BpfSteer::set_host_port(int host_ifindex) {
  const uint32_t zero = 0, v = static_cast<uint32_t>(host_ifindex);
  if (int err = bpf_map_update_elem(host_port_fd_, &zero, &v, BPF_ANY)) return bpf_error("update host_port", err);
  return {};
}

void BpfSteer::detach(int ifindex) {
  // An interface that was deleted took its attachments with it; what is
  // left here are the links' descriptors and the bound program.
  std::erase_if(tcx_links_, [&](const std::pair<int, int>& l) { return l.first == ifindex && (close(l.second), true); });
  std::erase_if(links_, [&](const std::pair<int, bpf_link*>& l) {
    return l.first == ifindex && (bpf_link__destroy(l.second), true);
  });
  if (std::erase(tc_ifindexes_, ifindex)) {
    LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
    LIBBPF_OPTS(bpf_tc_opts, o, .handle = 0x8a7, .priority = 1);
    libbpf_set_print(silent_libbpf);
    (void)bpf_tc_detach(&h, &o);
    libbpf_set_print(quiet_libbpf);
  }
  std::erase_if(own_objs_, [&](const std::pair<int, bpf_object*>& o) {
    return o.first == ifindex && (bpf_object__close(o.second), true);
  });
  std::replace(slots_.begin(), slots_.end(), ifindex, 0);
}

void BpfSteer::detach_all() {
  for (auto [ifindex, fd] : tcx_links_) close(fd);
  tcx_links_.clear();
  for (auto [ifindex, l] : links_) bpf_link__destroy(l);
  links_.clear();
  for (int ifindex : tc_ifindexes_) {
    LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
    LIBBPF_OPTS(bpf_tc_opts, o, .handle = 0x8a7, .priority = 1);
    (void)bpf_tc_detach(&h, &o);
  }
  tc_ifindexes_.clear();
  if (claims_) munmap(claims_, kClaimsBytes);
  claims_ = nullptr;
  if (fast_seen_) munmap(fast_seen_, kFastSeenBytes);
  fast_seen_ = nullptr;
  if (fast_sent_) munmap(fast_sent_, kFastSentBytes);
  fast_sent_ = nullptr;
  for (auto [ifindex, o] : own_objs_) bpf_object__close(o);
  own_objs_.clear();
  slots_.fill(0);
  if (obj_) bpf_object__close(obj_);
  obj_ = nullptr;
}

Status BpfSteer::set_local_addrs(const std::vector<uint32_t>& addrs) {
  // The new ones in before the old ones out: an address kept is never
  // missing, for a frame to it to be taken as transit meanwhile.
  for (uint32_t a : addrs) {
    const uint32_t one = 1;
    if (int err = bpf_map_update_elem(local_fd_, &a, &one, BPF_ANY)) return bpf_error("update local_addrs", err);
  }
  for (uint32_t a : local_)
    if (std::find(addrs.begin(), addrs.end(), a) == addrs.end()) (void)bpf_map_delete_elem(local_fd_, &a);
  local_ = addrs;
  return {};
}

Status BpfSteer::set_xsk(int ifindex, uint32_t queue, int xsk_fd) {
  if (queue >= 64) return Error{"AF_XDP: at most 64 rx queues per interface"};
  auto slot = slot_of(ifindex);
  if (!slot) return slot.error();
  const uint32_t key = (*slot << 6) | queue;
  if (int err = bpf_map_update_elem(xsks_fd_, &key, &xsk_fd, BPF_ANY)) return bpf_error("update xsks map", err);
  return {};
}

std::vector<uint64_t> BpfSteer::stats() const {
  std::vector<uint64_t> out(kSteerStats, 0);
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0 || stats_fd_ < 0) return out;
  std::vector<uint64_t> per(static_cast<size_t>(ncpu));
  for (uint32_t k = 0; k < kSteerStats; ++k)
    if (bpf_map_lookup_elem(stats_fd_, &k, per.data()) == 0)
      for (uint64_t v : per) out[k] += v;
  return out;
}

static_assert(sizeof(xnat_tuple_key) == sizeof(Tuple) && offsetof(xnat_tuple_key, sport) == offsetof(Tuple, sport) &&
                  offsetof(xnat_tuple_key, proto) == offsetof(Tuple, proto),
              "the egress program keys host_replies by the reply tuple's bytes");

bool BpfSteer::set_host_reply(const Tuple& reply, bool add) {
  const uint8_t one = 1;
  const int err = add ? bpf_map_update_elem(host_replies_fd_, &reply, &one, BPF_ANY)
                      : bpf_map_delete_elem(host_replies_fd_, &reply);
  return err == 0;
}

}  // namespace xnat
