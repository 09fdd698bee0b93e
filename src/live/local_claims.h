// The live gateway shares the interfaces with the host's own stack: a frame
// to one of the host's addresses goes to the kernel unless its port is in use
// by a NAT mapping (src/live/steer.h). LocalClaims keeps that count as the
// table's observer: a flow whose reply tuple ends on a host address holds one
// claim on (protocol, port) from insert to release. `counts` is shared with
// the kernel program (a memory-mapped BPF array of XNAT_CLAIM_ENTRIES).
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "conntrack/flow_observer.h"

namespace xnat {

class LocalClaims final : public FlowObserver {
 public:
  uint64_t* counts = nullptr;
  // The host's addresses (network order), sorted: set_addrs.
  std::vector<uint32_t> addrs;
  void set_addrs(std::vector<uint32_t> a) {
    std::sort(a.begin(), a.end());
    addrs = std::move(a);
  }
  // A connection translated for the host's own stack (REDIRECT, DNAT to a
  // host address: its reply tuple starts on a host address) is answered by
  // the host; its reply tuple is entered here (add) and removed with the flow,
  // so the kernel sends those answers back through the gateway (the live
  // gateway's host port: a BPF map its tc egress program reads). Unset: none.
  void (*host_reply)(void* ctx, const Tuple& reply, bool add) = nullptr;
  void* host_reply_ctx = nullptr;

  bool is_local(uint32_t a) const { return std::binary_search(addrs.begin(), addrs.end(), a); }
  // Index into counts of the port a reply tuple ends on, or -1: the layout
  // of xnat_claim_index in src/live/steer.h (TCP, UDP, ICMP).
  static int index(const Tuple& reply) {
    switch (reply.proto) {
      case kProtoTcp: return __builtin_bswap16(reply.dport);
      case kProtoUdp: return 65536 + __builtin_bswap16(reply.dport);
      case kProtoIcmp: return 2 * 65536 + __builtin_bswap16(reply.sport);
      default: return -1;
    }
  }

  uint16_t on_insert(const Tuple& reply) override {
    uint16_t taken = 0;
    if (is_local(reply.dst)) {
      if (const int ci = index(reply); ci >= 0) {
        __atomic_fetch_add(&counts[ci], 1, __ATOMIC_RELAXED);
        taken |= kClaim;
      }
    }
    if (host_reply && is_local(reply.src)) {
      host_reply(host_reply_ctx, reply, true);
      taken |= kHostReply;
    }
    return taken;
  }
  void on_release(const Tuple& reply, uint16_t taken) override {
    if (taken & kClaim) __atomic_fetch_sub(&counts[index(reply)], 1, __ATOMIC_RELAXED);
    if (taken & kHostReply) host_reply(host_reply_ctx, reply, false);
  }

 private:
  static constexpr uint16_t kClaim = kStatusObserved1;      // a port claim on a host address
  static constexpr uint16_t kHostReply = kStatusObserved2;  // the reply tuple is in the host port's map
};

}  // namespace xnat
