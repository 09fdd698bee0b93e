// Loads bpf/xnat_steer.bpf.c (built into the binary) and attaches it: as XDP
// through a bpf_link for the AF_XDP backend, as tc ingress for AF_PACKET
// through a tcx link where the kernel has them (6.6; else a classic filter),
// so the program goes away with the process however it ends. Gives
// the gateway the maps: local addresses, the memory-mapped port claims, and
// the AF_XDP socket map.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "live/steering.h"

struct bpf_object;
struct bpf_link;

namespace xnat {

class BpfSteer final : public Steering {
 public:
  BpfSteer() = default;
  BpfSteer(const BpfSteer&) = delete;
  BpfSteer& operator=(const BpfSteer&) = delete;
  ~BpfSteer();

  Status load();
  // Attaches to the interface (kernel ifindex). XDP tries native mode first.
  Status attach(SteerHook hook, int ifindex, const std::string& name) override;
  Status attach_fast_path(int ifindex, const std::string& name) override;
  void detach(int ifindex) override;
  void detach_all() override;

  Status set_local_addrs(const std::vector<uint32_t>& addrs) override;
  // The host port: tc egress on the interface (a tcx link, gone with the
  // process) sends the host's frames on connections in host_replies to the
  // device `host_ifindex` given to set_host_port.
  Status attach_egress(int ifindex, const std::string& name) override;
  Status set_host_port(int host_ifindex) override;
  bool set_host_reply(const Tuple& reply, bool add) override;
  uint64_t host_port_steered() const override { return stats()[3]; }
  uint64_t vlan_to_kernel() const override { return stats()[7]; }
  int fast_path_fd() const override { return fast_fd_; }
  uint64_t* fast_seen() override { return fast_seen_; }
  uint64_t* fast_sent() override { return fast_sent_; }
  FastPathStats fast_path_stats() const override {
    const std::vector<uint64_t> s = stats();
    return {s[4], s[5], s[6], s[8], s[9]};
  }
  // Interfaces must differ in ifindex % 64 and have at most 64 queues.
  Status set_xsk(int ifindex, uint32_t queue, int xsk_fd) override;
  uint64_t* claims() override { return claims_; }
  // Sum over CPUs of steer_stats: to the gateway, to the kernel, no socket,
  // host frames to the host port, fast path frames, bytes and drops, VLAN
  // frames left to the kernel, directions opened in order and late.
  std::vector<uint64_t> stats() const;

  std::vector<std::string> warnings() const override { return warnings_; }

 private:
  // The XDP program, loaded for one device with the maps of obj_ and the
  // interface's slot, and attached; `bound`: the one that reads the VLAN tag
  // its device took out, bound to the device.
  Result<bpf_link*> attach_own_xdp(int ifindex, uint32_t slot, bool bound);
  // The interface's slot in xsks' keys, given on first asking.
  Result<uint32_t> slot_of(int ifindex);
  // tc ingress: a tcx link where the kernel has them, else a classic filter.
  Status attach_tc(const char* program, int ifindex, const std::string& name);

  bpf_object* obj_ = nullptr;
  int xsks_fd_ = -1, local_fd_ = -1, claims_fd_ = -1, stats_fd_ = -1;
  int host_replies_fd_ = -1, host_port_fd_ = -1, fast_fd_ = -1, fast_seen_fd_ = -1, fast_sent_fd_ = -1;
  uint64_t* fast_seen_ = nullptr;
  uint64_t* fast_sent_ = nullptr;
  // Each with its interface's ifindex, for detach().
  std::vector<std::pair<int, int>> tcx_links_;  // tcx link fds: tc ingress (AF_PACKET) and the host port's egress
  uint64_t* claims_ = nullptr;
  std::vector<std::pair<int, bpf_link*>> links_;
  std::vector<int> tc_ifindexes_;
  std::vector<std::pair<int, bpf_object*>> own_objs_;  // one per interface with XDP
  std::array<int, 64> slots_{};  // ifindex of each slot, 0: free
  std::vector<std::string> warnings_;
  std::vector<uint32_t> local_;
};

}  // namespace xnat
