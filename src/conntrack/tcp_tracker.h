// TCP connection tracking with netfilter's state machine (nf_conntrack_proto_tcp.c).
//
// The transition table is netfilter's tcp_conntracks[dir][flag set][state],
// as of Linux 6.x, including its special cases: a SYN on a TIME_WAIT or
// CLOSE connection that the closing side started reopens it (the old entry is
// deleted and the SYN starts a new one); simultaneous open (SYN_SENT2); a RST
// as the only reply deletes the entry; a mid-stream pick-up (tcp_loose) runs on
// the "unacknowledged" timeout until a reply is seen; ASSURED is set on an ACK
// that moves SYN_RECV or a picked-up ESTABLISHED to ESTABLISHED after a reply.
//
// Not implemented: sequence-window tracking (tcp_in_window). xnat behaves as
// the kernel does with nf_conntrack_tcp_be_liberal = 1, so the max_retrans and
// unacknowledged-data timeouts, which depend on window state, only apply to
// picked-up connections as described above.
#pragma once

#include <cstdint>

#include "conntrack/flow.h"

namespace xnat {

enum class TcpVerdict : uint8_t {
  kAccept,   // state updated; refresh the flow with `timeout`
  kIgnore,   // pass the packet, leave state and timer alone (netfilter's sIG)
  kInvalid,  // netfilter's sIV / tcp_error: the packet is invalid
  kReopen,   // delete this flow and treat the packet as a new connection
  kKill,     // pass the packet, then delete the flow (RST as the only reply)
};

struct TcpDecision {
  TcpVerdict verdict = TcpVerdict::kInvalid;
  TimeoutClass timeout = TimeoutClass::kTcpClose;
  bool set_assured = false;
};

// netfilter's tcp_valid_flags: flag combinations that are never valid
// (ECE, CWR and PSH ignored) make a packet invalid.
bool tcp_flags_valid(uint8_t flags);

// Whether a packet with these flags may open a new entry, and in which state
// (tcp_new). Returns false for invalid openers.
bool tcp_can_open(uint8_t flags, bool loose, TcpState* initial);

// Applies one packet in direction `dir` (0 original, 1 reply) to the flow.
// `seen_reply` is the flow's SEEN_REPLY bit before this packet (netfilter sets
// it after the protocol tracker ran).
TcpDecision tcp_track(Flow& f, int dir, uint8_t flags, bool seen_reply);

TimeoutClass tcp_timeout_class(TcpState s);

}  // namespace xnat
