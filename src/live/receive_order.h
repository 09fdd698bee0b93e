// A flow's frames reach the AF_PACKET gateway in the order they were sent.
//
// A veth has no receive queue of its own: its frames are received on the
// sending CPU, into that CPU's backlog. A TCP sender sends from two CPUs
// (its process's, and wherever the ACKs that open its window are received),
// so one flow's frames wait in two backlogs, worked off independently, and
// meet again in the gateway's ring out of order. The receiver then reports
// holes, and the sender retransmits what was only late and shrinks its
// window (iperf3, one stream through a veth gateway: 200-600 retransmissions
// in 3 s, TcpExtTCPSACKReorder and DSACKs at the sender). RPS puts each
// flow's frames into one CPU's backlog, in the order they were sent,
// wherever they were sent from. A NIC needs none of this: its RSS keeps a
// flow on one queue.
//
// So on each of the gateway's veth interfaces that has no RPS mask of its
// own yet, xnat sets one for the run and puts the old one back at the end
// (unless it was changed meanwhile). An operator's mask is left alone.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

namespace xnat {

// "f", "1,00000000": the rps_cpus bitmap of cpus (32-bit words, highest first).
std::string rps_mask(const std::vector<int>& cpus);
// Whether an rps_cpus text sets no CPU.
bool rps_mask_empty(const std::string& text);

class ReceiveOrder {
 public:
  // The interface's driver name ("veth"), "" if unknown.
  using DriverOf = std::function<std::string(const std::string& ifname)>;

  // RPS over `cpus` on each veth among ifnames whose receive queues have no
  // mask. class_net: the sysfs directory of the interfaces. A mask that
  // cannot be written is not an error: warnings() says so.
  static std::unique_ptr<ReceiveOrder> apply(const std::vector<std::string>& ifnames, const std::vector<int>& cpus,
                                             const DriverOf& driver_of = ethtool_driver,
                                             const std::string& class_net = "/sys/class/net");
  ~ReceiveOrder();
  ReceiveOrder(const ReceiveOrder&) = delete;
  ReceiveOrder& operator=(const ReceiveOrder&) = delete;

  // For the banner: "RPS on veth0, veth1 to CPU 0 (a flow's frames in order)"; "" if none set.
  std::string describe() const;
  const std::vector<std::string>& warnings() const { return warnings_; }

  static std::string ethtool_driver(const std::string& ifname);

 private:
  ReceiveOrder() = default;
  struct Set {
    std::string path, was, mask;
  };
  std::vector<Set> set_;
  std::vector<std::string> ifnames_;  // those set
  std::vector<int> cpus_;
  std::vector<std::string> warnings_;
};

}  // namespace xnat
