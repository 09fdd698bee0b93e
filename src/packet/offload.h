// What a host's offloads leave in a frame, and how the gateway finishes it.
//
// Hosts as they come (containers, VMs, anything behind a veth or tap) send
// TCP and UDP with CHECKSUM_PARTIAL: the L4 checksum field holds only the
// pseudo-header's sum, to be completed by the NIC. With TSO/GSO they also
// send super-frames of up to 64 KB, one TCP segment (or UDP datagram train)
// to be cut at `gso_size` bytes of payload by whoever transmits it. A NAT
// gateway in the kernel forwards both as they are; so does xnat where the
// backend can say so (AF_PACKET's virtio_net_hdr), and finishes them in
// software where it cannot pass them on (the live gateway's neighbour wait
// queue and host port).
#pragma once

#include <cstddef>
#include <cstdint>

namespace xnat {

// The state of a frame's TCP/UDP checksum as the backend received it.
enum class L4Csum : uint8_t {
  // Full, as on a wire: verified when nf_conntrack_checksum = 1.
  kFull,
  // Known to be partial (the backend was told: CHECKSUM_PARTIAL). Not
  // verified, as the kernel trusts it too; the engine keeps the field the
  // pseudo-header sum of the translated header, and the frame leaves partial
  // or is finished by finish_l4_checksum.
  kPartial,
  // Maybe partial: the device can hand over partial checksums without saying
  // which (AF_XDP on a veth). A checksum that fails verification but holds
  // exactly the pseudo-header's sum is a partial one and is completed; one
  // that holds anything else is wrong. A corruption that happens to leave that
  // sum is as rare (2^-16) as one that happens to leave a valid checksum.
  kMaybePartial,
  // Full and known right: verified by the engine (nf_conntrack_checksum = 1;
  // translation keeps it right), or before it by the receiving device or the
  // kernel's GRO (CHECKSUM_UNNECESSARY, which AF_PACKET passes on as
  // virtio_net_hdr's DATA_VALID). Not verified again, as netfilter does not
  // verify what the device vouched for. The frame may leave with it partial
  // instead, as one of a coalesced super-frame's segments (tcp_run_*).
  kVerified,
};

// Segmentation metadata of a super-frame (virtio_net_hdr's gso_type).
enum class Gso : uint8_t { kNone, kTcp, kUdp };

// Where a frame's TCP/UDP checksum field is: offsets into the frame. Fails
// (returns false) for anything else: not IPv4, not TCP/UDP, a fragment,
// lengths that do not add up.
struct L4Field {
  uint32_t l3 = 0, l4 = 0, l4_len = 0, field = 0;
  uint8_t proto = 0;
};
bool locate_l4_checksum(const uint8_t* frame, uint32_t len, L4Field* out);

// Writes the full TCP/UDP checksum into a frame whose field is partial (or
// anything). False if the frame has no such checksum (locate_l4_checksum).
bool finish_l4_checksum(uint8_t* frame, uint32_t len);

// Writes the pseudo-header's sum into the field: the frame leaves with its
// checksum partial, for the output device (or the kernel) to finish.
bool set_partial_l4_checksum(uint8_t* frame, uint32_t len);

// Cuts a TCP or UDP super-frame into frames of at most `gso_size` payload
// bytes, each with its own IPv4 total length, identification (incremented
// per segment, as the kernel's GSO does for TCP), header checksum and full
// L4 checksum. TCP: sequence numbers advance; FIN and PSH only on the last
// segment, CWR only on the first (as tcp_gso_segment). UDP (UDP_L4 GSO):
// each segment is a datagram of its own. `scratch` must hold `mtu`-sized
// frames: the headers plus gso_size bytes. `emit(frame, len)` is called for
// each segment; the count of segments is returned, 0 if the frame cannot be
// cut (not TCP/UDP over IPv4, gso_size 0, or a segment would not fit
// `scratch_len`).
using SegmentSink = bool (*)(void* ctx, const uint8_t* frame, uint32_t len);
size_t segment_gso(const uint8_t* frame, uint32_t len, uint16_t gso_size, uint8_t* scratch, uint32_t scratch_len,
                   SegmentSink emit, void* ctx);

template <typename F>
size_t segment_gso(const uint8_t* frame, uint32_t len, uint16_t gso_size, uint8_t* scratch, uint32_t scratch_len,
                   F& emit) {
  return segment_gso(
      frame, len, gso_size, scratch, scratch_len,
      [](void* c, const uint8_t* f, uint32_t l) -> bool { return (*static_cast<F*>(c))(f, l); }, &emit);
}

// Cuts the IPv4 datagram in the Ethernet `frame` (checksums complete) into fragments of at most `mtu` bytes of IPv4 each, as the
// kernel's ip_fragment does for a datagram without DF larger than its
// output's MTU: every fragment has the link header and the IPv4 header (a
// later one keeps only the options whose copied flag is set, the others
// replaced by no-ops, as ip_options_fragment), a multiple of 8 payload
// bytes but the last, offsets and MF continuing those of a datagram that was
// a fragment already. `scratch` must hold the link header and mtu bytes.
// `emit(frame, len)` is called for each; the count is returned, 0 if the
// datagram cannot be cut (not IPv4, malformed, or no 8 payload bytes fit
// `mtu`).
size_t fragment_ipv4(const uint8_t* frame, uint32_t len, uint32_t mtu, uint8_t* scratch, uint32_t scratch_len,
                     SegmentSink emit, void* ctx);

template <typename F>
size_t fragment_ipv4(const uint8_t* frame, uint32_t len, uint32_t mtu, uint8_t* scratch, uint32_t scratch_len,
                     F& emit) {
  return fragment_ipv4(
      frame, len, mtu, scratch, scratch_len,
      [](void* c, const uint8_t* f, uint32_t l) -> bool { return (*static_cast<F*>(c))(f, l); }, &emit);
}

// Coalescing: what GRO does on a NIC's receive, done at the gateway's output
// where a backend can send super-frames (AF_PACKET). Consecutive segments of
// one TCP connection in a burst leave as one super-frame, its checksum
// partial, to be cut again by the output device or the kernel's GSO into
// exactly the frames that came in (segment_gso does the same cut). As in
// tcp_gro_receive, a segment joins only if the cut gives it back unchanged:
// the same link, IPv4 (no options, not fragmented, the same TOS, TTL, DF, and
// the identification one more than the last) and TCP header (ports, ack,
// window, options) as the run's first, its sequence number next, flags ACK
// with PSH at most; every segment but the last carries the first's payload
// size, and a shorter one or one with PSH ends the run.
struct TcpSegmentView {
  uint16_t l3 = 0, l4 = 0;
  uint16_t payload_at = 0;  // link, IPv4 and TCP headers
  uint16_t payload = 0;
  uint16_t ip_end = 0;  // bytes after it are link padding
  uint16_t id = 0;
  uint32_t seq = 0;
  uint8_t flags = 0;
};

// Whether a frame could open or join a run, with its offsets; false for
// anything else (not TCP over IPv4, IPv4 options, a fragment, no payload,
// flags other than ACK and ACK|PSH).
bool tcp_segment_view(const uint8_t* frame, uint32_t len, TcpSegmentView* out);

struct TcpRun {
  uint8_t* first = nullptr;  // the first segment's frame: its headers become the super-frame's
  TcpSegmentView head;
  uint32_t bytes = 0;  // payload so far
  uint16_t segments = 0;
  uint8_t last_flags = 0;
  bool closed = false;  // a short segment or PSH ended it

  void open(uint8_t* frame, const TcpSegmentView& s);
  bool accepts(const uint8_t* frame, const TcpSegmentView& s) const;
  void add(const TcpSegmentView& s);
  // Rewrites the first frame's headers for the whole run (IPv4 total length
  // and checksum, PSH of the last segment, the TCP checksum partial: the
  // pseudo-header sum). The super-frame is those headers followed by every
  // segment's payload, to be cut at head.payload bytes.
  void finish() const;
};

}  // namespace xnat
