// ICMP errors the gateway generates itself (time exceeded, network
// unreachable): the rate limit the kernel applies to them, and the error
// built in place of the datagram it is about.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <cstdint>

#include "packet/headers.h"

namespace xnat {

// net.ipv4.icmp_msgs_per_sec / icmp_msgs_burst: a token bucket, refilled per
// millisecond of the packets' clock. One for the gateway, shared by the
// workers (EngineConfig::icmp_limit) as the kernel's is by its CPUs
// (icmp_global_allow), updated lock-free: the worker that moves the refill
// time on adds the tokens for the time between.
class IcmpRateLimit {
 public:
  IcmpRateLimit(uint32_t per_sec, uint32_t burst)
      : per_sec_(per_sec), cap_milli_(uint64_t{burst} * 1000), tokens_milli_(cap_milli_) {}
  // Gives back a token allow() took for an error not sent after all.
  void refund() {
    uint64_t t = tokens_milli_.load(std::memory_order_relaxed);
    while (!tokens_milli_.compare_exchange_weak(t, t + 1000 > cap_milli_ ? cap_milli_ : t + 1000,
                                                std::memory_order_relaxed)) {
    }
  }
  // Takes a token if there is one.
  bool allow(uint64_t now_ms) {
    uint64_t last = last_ms_.load(std::memory_order_relaxed);
    while (now_ms > last) {
      if (last_ms_.compare_exchange_weak(last, now_ms, std::memory_order_relaxed)) {
        const uint64_t refill = (now_ms - last) * per_sec_;
        uint64_t t = tokens_milli_.load(std::memory_order_relaxed);
        while (!tokens_milli_.compare_exchange_weak(t, t + refill > cap_milli_ ? cap_milli_ : t + refill,
                                                    std::memory_order_relaxed)) {
        }
        break;
      }
    }
    uint64_t t = tokens_milli_.load(std::memory_order_relaxed);
    do {
      if (t < 1000) return false;
    } while (!tokens_milli_.compare_exchange_weak(t, t - 1000, std::memory_order_relaxed));
    return true;
  }

 private:
  const uint64_t per_sec_, cap_milli_;
  std::atomic<uint64_t> tokens_milli_;  // tokens * 1000
  std::atomic<uint64_t> last_ms_{0};
};

// net.ipv4.icmp_ratelimit: per destination, at most one error every
// `interval_ms` after a burst of six (inet_peer_xrlim_allow, XRLIM_BURST_FACTOR),
// for the types net.ipv4.icmp_ratemask limits by default: destination
// unreachable but "fragmentation needed", time exceeded, parameter problem.
// The kernel keeps a bucket per peer; here a table of 8192 buckets shared by
// the workers, a destination in one of two slots and an unknown one taking
// the slot used longest ago (starting full, as a new inet_peer). A bucket is
// one word -- the address, the tokens and the time in units of 4 ms, the
// time wrapping after 2^21 of them (140 minutes; a bucket older than 24 s
// is full anyway) -- updated with compare-and-swap.
class IcmpPeerLimit {
 public:
  static constexpr uint32_t kMaxIntervalMs = 1000;  // the kernel's default; the largest the word holds
  explicit IcmpPeerLimit(uint32_t interval_ms);
  // Takes the destination's token (dst: network order) if it has one.
  bool allow(uint32_t dst, uint64_t now_ms);
  // The limited types (icmp_ratemask's default, 0x1818).
  static bool limits(uint8_t type, uint8_t code) {
    return (type == 3 && code != 4) || type == 4 || type == 11 || type == 12;
  }

 private:
  static constexpr uint32_t kSlots = 8192;
  static constexpr uint64_t kTimeMask = (uint64_t{1} << 21) - 1;
  uint32_t cost_, cap_;  // in 4 ms units
  std::unique_ptr<std::atomic<uint64_t>[]> slot_;
};

// Writes a 20-byte IPv4 header for a datagram the gateway sends itself
// (TTL 64, id 0), its checksum included; addresses in network order.
void put_ipv4_header(Ipv4Hdr* ip, uint16_t tot_len, uint8_t tos, uint16_t frag_off, uint8_t proto, uint32_t src,
                     uint32_t dst);

// How many bytes of the IPv4 datagram at frame + l3 (ending at ip_end) an
// error about it quotes: as much as fits in 576 bytes (RFC 1812 4.3.2.3)
// and in the frame's `capacity`; 0 if not even its header and first 8 bytes
// fit, and then no error is sent.
uint32_t icmp_error_quote(const uint8_t* frame, uint32_t capacity, uint32_t l3, uint32_t ip_end);

// Replaces that datagram with an ICMP error of `type`/`code` about it, from
// `src` to `dst` (network order; the datagram's source as received), quoting
// `quote` bytes of it as the frame now holds it; the
// Ethernet addresses are turned back toward the previous hop, from
// `src_mac`. rest: the ICMP header's second word, a "fragmentation needed"
// error's next-hop MTU (RFC 1191) in its low 16 bits, a parameter problem's
// pointer in its top 8. Returns the new frame length.
uint32_t build_icmp_error(uint8_t* frame, uint32_t l3, uint32_t quote, uint32_t src, uint32_t dst,
                          const MacAddr& src_mac, uint8_t type, uint8_t code, uint32_t rest = 0);

}  // namespace xnat
