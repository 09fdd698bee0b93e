// The steering program's part of the live gateway (bpf/xnat_steer.bpf.c,
// live/steer.h): which frames are the gateway's. BpfSteer is the real one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "packet/tuple.h"

namespace xnat {

enum class SteerHook : uint8_t { kXdp, kTc };

class Steering {
 public:
  virtual ~Steering() = default;
  // Attaches to the interface (kernel ifindex), once the sockets that will
  // receive what it steers exist.
  virtual Status attach(SteerHook hook, int ifindex, const std::string& name) = 0;
  // What was attached to one interface (attach, attach_fast_path,
  // attach_egress); the maps stay.
  virtual void detach(int ifindex) = 0;
  virtual void detach_all() = 0;
  virtual Status set_local_addrs(const std::vector<uint32_t>& addrs) = 0;
  // The per-port claim counts the program reads (XNAT_CLAIM_ENTRIES of them).
  virtual uint64_t* claims() = 0;
  // AF_XDP: the socket of `queue` on `ifindex`.
  virtual Status set_xsk(int ifindex, uint32_t queue, int xsk_fd) = 0;
  // The host port: the host's frames on connections entered with
  // set_host_reply leave through the device `host_ifindex` instead.
  virtual Status set_host_port(int host_ifindex) = 0;
  virtual Status attach_egress(int ifindex, const std::string& name) = 0;
  // false: the kernel refused (map full).
  virtual bool set_host_reply(const Tuple& reply, bool add) = 0;
  // Host frames the program sent to the host port.
  virtual uint64_t host_port_steered() const = 0;
  // VLAN-tagged frames the program left to the kernel.
  virtual uint64_t vlan_to_kernel() const { return 0; }
  // What the attachments could not do, for the operator.
  virtual std::vector<std::string> warnings() const { return {}; }
  // The fast path (tc ingress; live/fast_path.h): the map of offloaded
  // connections' directions, the memory-mapped times they were last seen
  // (XNAT_FAST_SLOTS of them) and tags of the last segments the gateway
  // sent of each direction (twice as many), and what it forwarded, dropped
  // and opened. -1 and null where there is none.
  virtual int fast_path_fd() const { return -1; }
  // AF_XDP: tc ingress beside the XDP program, which passes the fast
  // path's segments on to it.
  virtual Status attach_fast_path(int, const std::string&) { return Error{"no fast path here"}; }
  virtual uint64_t* fast_seen() { return nullptr; }
  virtual uint64_t* fast_sent() { return nullptr; }
  struct FastPathStats {
    uint64_t frames = 0, bytes = 0, dropped = 0;
    // Directions opened once the gateway had sent what it had of them, and
    // when the wait for that ran out (steer.h).
    uint64_t opened = 0, opened_late = 0;
  };
  virtual FastPathStats fast_path_stats() const { return {}; }
};

}  // namespace xnat
