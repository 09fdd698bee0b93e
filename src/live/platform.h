// What the live gateway takes from the machine, behind interfaces: the
// kernel's view of interfaces, addresses, routes and neighbours; the steering
// program that decides which frames are the gateway's; the frame I/O of each
// worker; the host port. `xnat run` uses the real ones (rtnetlink, BPF,
// AF_XDP or AF_PACKET, a tun device); a test drives start-up and the control
// loop with fakes, without root (as Katran's tests do with its adapters).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "live/backend.h"
#include "live/host_port.h"
#include "live/kernel_view.h"
#include "live/receive_coalescing.h"
#include "live/receive_order.h"
#include "live/steering.h"

namespace xnat {

struct Platform {
  std::unique_ptr<KernelView> kernel;
  std::unique_ptr<Steering> steering;
  // One worker's frame I/O.
  std::function<Result<std::unique_ptr<Backend>>(const BackendOptions&, Steering&)> open_backend;
  // The host port, when the rules translate for the host's own stack.
  std::function<Result<std::unique_ptr<HostPort>>()> open_host_port;
  // RPS over cpus on the interfaces (--rps-cpus, live/receive_order.h),
  // held for the run. Null for a test's fakes.
  std::function<std::unique_ptr<ReceiveOrder>(const std::vector<std::string>& ifnames, const std::vector<int>& cpus)>
      set_rps;
  // GRO on the interfaces that have it off (--gro, live/receive_coalescing.h),
  // held for the run. Null for a test's fakes.
  std::function<std::unique_ptr<ReceiveCoalescing>(const std::vector<std::string>& ifnames, bool only_veth)> set_gro;
  SteerHook hook = SteerHook::kXdp;
};

// The machine's own: rtnetlink, the BPF program loaded, the named backend.
Result<Platform> open_live_platform(const std::string& backend);

}  // namespace xnat
