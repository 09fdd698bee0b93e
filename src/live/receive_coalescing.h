// `xnat run --gro auto|on|keep`: GRO on the gateway's interfaces for the run.
//
// AF_PACKET costs the worker a fixed price per frame (a ring slot, a system
// call's share, an skb to build for the output), so it carries a stream of
// super-frames far faster than the same bytes in MTU frames (BENCHMARKS.md).
// A NIC's driver has GRO on by default, and the kernel's forwarding (and
// xnat) keeps what it coalesced whole to the output, which cuts it again
// (GSO). A veth has it off by default, so `auto` turns it on for af_packet
// on each veth whose GRO is off; `on` on every interface of the gateway
// whose GRO is off, `keep` leaves them as found. AF_XDP takes frames before
// GRO: auto does nothing there. At the end GRO goes off again where it was
// turned on, unless it was changed meanwhile.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace xnat {

class ReceiveCoalescing {
 public:
  // GRO on for each of ifnames that has it off; only_veth: on veth devices only.
  static std::unique_ptr<ReceiveCoalescing> apply(const std::vector<std::string>& ifnames, bool only_veth);
  ~ReceiveCoalescing();
  ReceiveCoalescing(const ReceiveCoalescing&) = delete;
  ReceiveCoalescing& operator=(const ReceiveCoalescing&) = delete;

  // For the banner: "GRO on xgi1, xgo1 for the run"; "" if none turned on.
  std::string describe() const;
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  ReceiveCoalescing() = default;
  std::vector<std::string> set_;  // turned on, off again at the end
  std::vector<std::string> warnings_;
};

}  // namespace xnat
