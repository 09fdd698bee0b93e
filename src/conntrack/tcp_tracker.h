// TCP connection tracking with netfilter's semantics (nf_conntrack_proto_tcp.c).
//
// The state machine is netfilter's tcp_conntracks[dir][flag set][state], as of
// Linux 6.x, with its special cases: a SYN on a TIME_WAIT or CLOSE connection
// that the closing side started reopens it (the old entry is deleted and the
// SYN starts a new one); simultaneous open (SYN_SENT2); a RST as the only
// reply deletes the entry; a mid-stream pick-up (tcp_loose) runs on the
// "unacknowledged" timeout until a reply is seen; ASSURED is set on an ACK
// that moves SYN_RECV or a picked-up ESTABLISHED to ESTABLISHED after a reply;
// a retransmitted SYN of an unanswered connection does not renew its timer.
//
// Window tracking (tcp_in_window) follows netfilter's too, per direction: the
// highest sequence sent (td_end), the highest the receiver allowed
// (td_maxend), the largest window seen (td_maxwin), the highest ACK sent
// (td_maxack), window scale and SACK-permitted from the SYNs. A segment whose
// data lies beyond what the receiver's window allowed, or that ACKs data not
// yet sent, is INVALID (dropped and counted by the engine); an old
// retransmission or a very late ACK is let through without updating the state
// (netfilter's IGNORE). nf_conntrack_tcp_be_liberal = 1, and the flag a
// mid-stream pick-up gets, let out-of-window segments through instead. The
// same state gives the max_retrans timeout (nf_conntrack_tcp_max_retrans
// identical ACK segments in a row, or a zero window) and the unacknowledged
// timeout (data sent and not yet ACKed), the challenge-ACK (RFC 5961) and
// out-of-window RST checks, and the resynchronisation on a SYN-ACK that
// answers a SYN the table had ignored. It lives beside the flow (TcpWindow, one
// cache line per flow of capacity), allocated only when
// xnat_tcp_window_tracking is on (the default); without it the state machine
// runs alone, as netfilter with be_liberal = 1 minus those timeouts and checks.
//
// Not as netfilter: NAT sequence adjustment (no helpers rewrite payloads, so
// there is none to take into account); a connection whose segments arrive as
// IP fragments is tracked liberally from its first fragmented segment on, as
// xnat does not reassemble and cannot know the segment's length.
#pragma once

#include <cstdint>

#include "conntrack/flow.h"
#include "packet/parse.h"

namespace xnat {

// One direction's window state (netfilter's struct ip_ct_tcp_state).
struct TcpPeer {
  uint32_t end = 0;     // td_end: highest sequence number sent, plus one
  uint32_t maxend = 0;  // td_maxend: highest sequence number the receiver allowed
  uint32_t maxwin = 0;  // td_maxwin: largest window seen; 0 = nothing seen yet
  uint32_t maxack = 0;  // td_maxack: highest ACK sent (valid with kPeerMaxackSet)
  uint8_t scale = 0;    // td_scale: window scale shift
  uint8_t flags = 0;    // kPeer*
};

// TcpPeer::flags, netfilter's IP_CT_TCP_FLAG_* values.
enum : uint8_t {
  kPeerWindowScale = 0x01,
  kPeerSackPerm = 0x02,
  kPeerLiberal = 0x08,
  kPeerUnacked = 0x10,  // data sent and not yet ACKed
  kPeerMaxackSet = 0x20,
};
// TcpWindow::last_flags: a SYN ignored in LAST_ACK may be answered by an RFC
// 5961 challenge ACK, which must not be taken for the final ACK.
inline constexpr uint8_t kLastChallengeAck = 0x40;

// The rest of netfilter's struct ip_ct_tcp (state, last_index, last_dir and the
// simultaneous-open and close-init bits are in the Flow).
struct alignas(64) TcpWindow {
  TcpPeer seen[2];
  uint32_t last_seq = 0, last_ack = 0, last_end = 0;  // the last ACK-only or ignored segment
  uint16_t last_win = 0;
  uint8_t last_wscale = 0;  // options of an ignored SYN
  uint8_t last_flags = 0;
  uint8_t retrans = 0;  // identical ACK segments in a row
};
static_assert(sizeof(TcpWindow) == 64);

// The tunables the tracker needs.
struct TcpPolicy {
  const uint32_t* timeout_s = nullptr;  // seconds, indexed by TimeoutClass
  bool be_liberal = false;              // nf_conntrack_tcp_be_liberal
  bool ignore_invalid_rst = false;      // nf_conntrack_tcp_ignore_invalid_rst
  uint8_t max_retrans = 3;              // nf_conntrack_tcp_max_retrans
};

enum class TcpVerdict : uint8_t {
  kAccept,   // state updated; refresh the flow with `timeout` (unless !refresh)
  kIgnore,   // pass the packet, leave state and timer alone (netfilter's sIG, NFCT_TCP_IGNORE)
  kInvalid,  // netfilter's sIV / tcp_error / out of window: the packet is invalid
  kReopen,   // delete this flow and treat the packet as a new connection
  kKill,     // pass the packet, then delete the flow (RST as the only reply)
};

struct TcpDecision {
  TcpVerdict verdict = TcpVerdict::kInvalid;
  TimeoutClass timeout = TimeoutClass::kTcpClose;
  bool set_assured = false;
  bool refresh = true;  // kAccept: false for a retransmitted SYN of an unanswered connection
  // kInvalid: an out-of-window FIN or RST answering the other side's FIN or
  // RST on an ASSURED connection; netfilter lowers its timeout to the
  // unacknowledged one if at least 120 s are left (nf_tcp_handle_invalid).
  bool shorten = false;
};

// netfilter's tcp_valid_flags: flag combinations that are never valid
// (ECE, CWR and PSH ignored) make a packet invalid.
bool tcp_flags_valid(uint8_t flags);

// Whether a packet with these flags may open a new entry, and in which state
// (tcp_new). Returns false for invalid openers.
bool tcp_can_open(uint8_t flags, bool loose, TcpState* initial);

// Applies one segment in direction `dir` (0 original, 1 reply) to the flow and,
// when not null, its window state. The flow's first segment (state NONE)
// initialises the window state. `seen_reply` is the flow's SEEN_REPLY bit
// before this packet (netfilter sets it after the protocol tracker ran).
TcpDecision tcp_track(Flow& f, TcpWindow* w, int dir, uint8_t flags, const TcpSegment& s, bool seen_reply,
                      const TcpPolicy& pol);

// The state machine alone, for a segment with these flags (no window state,
// default timeouts).
TcpDecision tcp_track(Flow& f, int dir, uint8_t flags, bool seen_reply);

TimeoutClass tcp_timeout_class(TcpState s);

}  // namespace xnat
