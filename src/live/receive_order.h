// `xnat run --rps-cpus LIST`: RPS on the gateway's interfaces for the run.
//
// A veth has no receive queue of its own: its frames are received on the
// sending CPU, into that CPU's backlog. A TCP sender sends from two CPUs
// (its process's, and wherever the ACKs that open its window are received),
// so one flow's frames wait in two backlogs, worked off independently, and
// meet again in an AF_PACKET gateway's ring out of order. The receiver then
// reports holes, and the sender retransmits what was only late and shrinks
// its window (iperf3, one stream through a veth gateway: 200-600
// retransmissions in 3 s, TcpExtTCPSACKReorder and DSACKs at the sender).
// RPS puts each flow's frames into one CPU's backlog in the order they were
// sent. It is not the default: a frame received on another CPU than its
// flow's crosses to it, which costs short connections and a host sharing
// the worker's CPU more than the reordering costs bulk TCP (BENCHMARKS.md).
// A NIC needs none of it: its RSS keeps a flow on one queue. AF_XDP needs
// none either: XDP on a veth receives through one queue.
//
// Each of the gateway's interfaces whose receive queues have no mask gets
// one for the run, and the old one back at the end unless it was changed
// meanwhile. An operator's mask is left alone.
#pragma once

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
  // RPS over `cpus` on each of ifnames' receive queues that have no mask.
  // class_net: the sysfs directory of the interfaces. A mask that cannot be
  // written is not an error: warnings() says so.
  static std::unique_ptr<ReceiveOrder> apply(const std::vector<std::string>& ifnames, const std::vector<int>& cpus,
                                             const std::string& class_net = "/sys/class/net");
  ~ReceiveOrder();
  ReceiveOrder(const ReceiveOrder&) = delete;
  ReceiveOrder& operator=(const ReceiveOrder&) = delete;

  // For the banner: "RPS on veth0, veth1 to CPU 0"; "" if none set.
  std::string describe() const;
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  ReceiveOrder() = default;
  struct Set {
    std::string path, was;
  };
  std::vector<Set> set_;
  std::string mask_;  // rps_mask(cpus_), what each of set_ was given
  std::vector<std::string> ifnames_;  // those set
  std::vector<int> cpus_;
  std::vector<std::string> warnings_;
};

}  // namespace xnat
