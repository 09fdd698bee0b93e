#include "live/platform.h"

#include <fmt/format.h>

#include "live/bpf_steer.h"
#include "live/netlink.h"

namespace xnat {

Result<Platform> open_live_platform(const std::string& backend) {
  if (backend != "af_xdp" && backend != "af_packet")
    return Error{fmt::format("unknown backend '{}': use af_xdp or af_packet", backend)};
  Platform p;
  auto rtnl = std::make_unique<Rtnl>();
  if (auto r = rtnl->open(); !r) return r.error();
  p.kernel = std::move(rtnl);
  auto steer = std::make_unique<BpfSteer>();
  if (auto r = steer->load(); !r) return r.error();
  p.steering = std::move(steer);
  if (backend == "af_xdp") {
    p.hook = SteerHook::kXdp;
    p.open_backend = [](const BackendOptions& o, Steering& s) { return make_afxdp_backend(o, s); };
  } else {
    // AF_PACKET's sockets see only what the tc program took (afpacket.cc).
    p.hook = SteerHook::kTc;
    p.open_backend = [](const BackendOptions& o, Steering&) { return make_afpacket_backend(o); };
  }
  p.open_host_port = [] { return HostPort::open("xnat-host"); };
  p.set_rps = [](const std::vector<std::string>& ifnames, const std::vector<int>& cpus) {
    return ReceiveOrder::apply(ifnames, cpus);
  };
  p.set_gro = [](const std::vector<std::string>& ifnames, bool only_veth) {
    return ReceiveCoalescing::apply(ifnames, only_veth);
  };
  return p;
}

}  // namespace xnat
