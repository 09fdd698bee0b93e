// Every counter the data plane keeps. Drop reasons are counters named
// drop_<reason>; "why was this packet dropped?" is answered by reading them.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace xnat {

// X(name, description); the descriptions document the counters here and in README.md.
#define XNAT_DROP_REASONS(X)                                                                 \
  X(truncated, "a header runs past the end of the frame")                                   \
  X(bad_ip_header, "IPv4 version, header length or total length inconsistent")             \
  X(bad_checksum, "IPv4 header checksum wrong")                                             \
  X(bad_l4_header, "TCP data offset or UDP length inconsistent")                            \
  X(bad_l4_checksum, "TCP/UDP/ICMP checksum wrong (nf_conntrack_checksum = 1)")             \
  X(bad_icmp_error, "ICMP error whose embedded datagram cannot be parsed")                  \
  X(bad_ip_options, "IPv4 options malformed as the kernel checks them (ICMP parameter problem sent when allowed)") \
  X(source_route, "IPv4 loose or strict source route option: not forwarded, as net.ipv4.conf.all.accept_source_route = 0") \
  X(fragment, "IPv4 fragment that cannot be translated alone: transport header cut or overlapped (RFC 1858), or a fragmented ICMP error") \
  X(fragment_unmatched, "later IPv4 fragment whose first fragment did not come within net.ipv4.ipfrag_time, or that found no room to wait for it") \
  X(rp_filter, "a new connection's source fails reverse path filtering (rp_filter 1: the route back to it is not through the interface it came in on; 2: there is none)") \
  X(martian_source, "source 0/8, 127/8, multicast, broadcast or the gateway's own address: none a router forwards (RFC 1812 5.3.7)")                   \
  X(invalid, "conntrack INVALID: impossible TCP flags or state, or ICMP reply with no flow") \
  X(icmp_error_untracked, "ICMP error about a connection that is not tracked")              \
  X(table_full, "conntrack table full and nothing expired, closing or unreplied to evict")  \
  X(source_limit, "the source already holds xnat_max_flows_per_source flows")              \
  X(no_port, "no free translated tuple in the NAT range")                                    \
  X(no_address, "MASQUERADE or REDIRECT through an interface that has no IPv4 address (live: it left the interface; the kernel drops these too)") \
  X(no_route, "no route to the destination (an ICMP network unreachable is sent)")                                                 \
  X(blackhole_route, "the destination's route is a blackhole route: dropped without an ICMP error, as the kernel") \
  X(unreachable_route, "the destination's route is an unreachable route (an ICMP host unreachable is sent)") \
  X(prohibit_route, "the destination's route is a prohibit route (an ICMP communication administratively prohibited is sent)") \
  X(no_neighbor, "next hop's MAC address unknown")                                           \
  X(ttl_expired, "TTL ran out (ICMP time exceeded sent when allowed)")                      \
  X(frag_needed, "larger than the output's MTU with DF set (ICMP fragmentation needed with the MTU sent when allowed)") \
  X(neighbor_timeout, "next hop did not resolve in time, or the wait queue had no room for the frame (live)") \
  X(host_port_claimed, "for the host's own stack, taken from the kernel (a claimed port), and no host port to pass it on (live)") \
  X(host_untracked, "sent by the host through the host port on a connection that has no flow (any more)") \
  X(host_port_write, "for the host's stack through the host port, but the write failed (live)") \
  X(tx_ring_full, "the interface's transmit ring had no room (live)")                      \
  X(handoff_full, "the ring to the worker that owns the flow was full (live, several workers)") \
  X(handoff_loop, "handed between workers twice and still not at its owner (flow moved meanwhile)") \
  X(directory_full, "no room in the workers' flow directory for a new flow's reply tuple") \
  X(filtered, "dropped by filter FORWARD: a DROP rule or the chain's DROP policy")          \
  X(rejected, "refused by a filter FORWARD REJECT rule (its ICMP error or TCP reset is counted as sent)")

#define XNAT_OTHER_COUNTERS(X)                                                               \
  X(rx_frames, "frames received")                                                            \
  X(tx_frames, "frames sent")                                                                \
  X(neighbor_wait, "frames held until the kernel resolved their next hop's MAC (live)")     \
  X(to_host, "frames handed to the host's own stack (ARP, IPv6, local addresses)")          \
  X(host_port_in, "frames given to the host's stack through the host port: REDIRECT, DNAT to a host address (live)") \
  X(host_port_out, "frames the host sent on those connections, taken back through the host port (live)") \
  X(flows_created, "connections created")                                                    \
  X(snat_flows, "connections created with a source translation")                            \
  X(dnat_flows, "connections created with a destination translation")                       \
  X(tracked_frames, "frames of tracked connections forwarded")                              \
  X(stateless_frames, "frames translated by RAWSNAT/RAWDNAT, untracked")                     \
  X(notrack_frames, "frames forwarded untracked by NOTRACK / CT --notrack")                  \
  X(icmp_errors_translated, "ICMP errors about tracked connections translated (RFC 5508)")  \
  X(icmp_errors_sent, "ICMP errors generated by the gateway")                               \
  X(icmp_errors_ratelimited, "ICMP errors not generated because of the gateway's rate limit (icmp_msgs_per_sec, icmp_msgs_burst)") \
  X(icmp_errors_ratelimited_host, "ICMP errors not generated because their destination had its share (net.ipv4.icmp_ratelimit)") \
  X(tcp_resets_sent, "TCP resets sent for REJECT --reject-with tcp-reset")                   \
  X(logged, "lines logged by -j LOG rules")                                                  \
  X(log_lines_lost, "-j LOG lines lost: the log ring was full (the reader fell behind)")     \
  X(handoffs, "frames passed to the worker that owns their flow (several workers)")           \
  X(adoptions, "new connections passed to the worker that owns the reply of their client's mapping (several workers)") \
  X(fragments_translated, "later IPv4 fragments sent as their datagram's first fragment was")   \
  X(fragments_held, "later IPv4 fragments that came ahead of their first and waited for it (RFC 4787 REQ-14)") \
  X(fragmented, "datagrams without DF larger than the output's MTU, sent in fragments") \
  X(fragments_created, "fragments made of them")                                             \
  X(held_frames, "frames of evicted, held flows translated without readmitting (table full of live flows)") \
  X(l4_csum_completed, "TCP/UDP checksums a virtual device's sender left partial (CHECKSUM_PARTIAL) and the backend could not flag, completed as a NIC would (af_xdp on veth)") \
  X(gso_segmented, "super-frames (TSO/GSO) cut into frames in software because they could not leave whole (live)") \
  X(loops_over_250us, "worker loops whose work (bursts, expiry, control requests) took over 250 us: frames waited that long (live)") \
  X(loops_over_2ms, "worker loops whose work took over 2 ms (live)") \
  X(busy_nanoseconds, "nanoseconds workers spent in loops that had frames to work on: their CPU time for the traffic, polling excluded (live)")

enum class Counter : uint16_t {
#define XNAT_ENUM_DROP(n, d) drop_##n,
#define XNAT_ENUM(n, d) n,
  XNAT_DROP_REASONS(XNAT_ENUM_DROP) XNAT_OTHER_COUNTERS(XNAT_ENUM)
#undef XNAT_ENUM_DROP
#undef XNAT_ENUM
      kCount
};
inline constexpr size_t kCounterCount = static_cast<size_t>(Counter::kCount);
// Drop reasons come first in Counter; this many of them.
#define XNAT_COUNT_ONE(n, d) +1
inline constexpr size_t kDropReasonCount = 0 XNAT_DROP_REASONS(XNAT_COUNT_ONE);
#undef XNAT_COUNT_ONE

// A drop reason is the counter it increments.
using DropReason = Counter;

const char* counter_name(Counter c);
const char* counter_description(Counter c);

struct Counters {
  std::array<uint64_t, kCounterCount> v{};
  void inc(Counter c, uint64_t n = 1) { v[static_cast<size_t>(c)] += n; }
  uint64_t get(Counter c) const { return v[static_cast<size_t>(c)]; }
  uint64_t total_drops() const;
};

}  // namespace xnat
