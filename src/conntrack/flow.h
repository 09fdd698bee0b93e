// One tracked connection (netfilter's struct nf_conn), in one cache line.
//
// Layout: both directions' tuples (the reply tuple already carries the NAT
// translation, as in netfilter: a packet matching tuple[d] leaves as
// invert(tuple[!d])), the expiry time, the checksum deltas of that rewrite
// precomputed per direction (RFC 1624), status bits with netfilter's meaning,
// the TCP tracker's few bytes and the by-source chain's link. The lists that
// order flows for expiry and eviction live in a separate, colder array
// (flow_table.h), so the per-packet path touches this one line and the hash
// slot that led to it.
#pragma once

#include <cstdint>

#include "packet/tuple.h"

namespace xnat {

// netfilter's IPS_* status bits that xnat sets (same meaning, own values).
enum FlowStatus : uint16_t {
  kStatusSeenReply = 1 << 0,  // IPS_SEEN_REPLY: a packet in the reply direction passed
  kStatusAssured = 1 << 1,    // IPS_ASSURED
  kStatusSrcNat = 1 << 2,     // IPS_SRC_NAT
  kStatusDstNat = 1 << 3,     // IPS_DST_NAT
  kStatusObserved1 = 1 << 4,  // xnat: for the FlowObserver (flow_observer.h), to remember what it took
  kStatusDirectory = 1 << 5,  // xnat: its reply tuple is in the workers' FlowDirectory (shard.h)
  kStatusObserved2 = 1 << 6,  // xnat: the same, a second thing
  kStatusObserved = kStatusObserved1 | kStatusObserved2,
  // xnat: an UPDATE event waits for its packet's verdict (Conntrack::accepted),
  // and what it will show besides the timeout.
  kStatusEventPending = 1 << 7,
  kStatusEventState = 1 << 8,
  kStatusEventMark = 1 << 9,
  kStatusEventBits = kStatusEventPending | kStatusEventState | kStatusEventMark,
  // IPS_OFFLOAD: a fast path outside the engine forwards the flow's packets
  // (conntrack/flow_offload.h).
  kStatusOffload = 1 << 10,
  // xnat: the flow holds its worker's entry for its source in the workers'
  // source mappings (SourceMap, shard.h).
  kStatusSourceShared = 1 << 11,
  // xnat: its original tuple is in the FlowDirectory: another worker owns it
  // by hash, and this one took the connection for the client's mapping.
  kStatusDirectoryOrig = 1 << 12,
  // MASQUERADE translated it to its output's address (netfilter keeps the
  // output, nat->masq_index): forgotten when that address goes or the
  // output goes down, as nf_nat_masquerade's notifiers forget it.
  kStatusMasquerade = 1 << 13,
};

// TCP states, in netfilter's order (tcp_conntrack_names).
enum class TcpState : uint8_t {
  kNone,
  kSynSent,
  kSynRecv,
  kEstablished,
  kFinWait,
  kCloseWait,
  kLastAck,
  kTimeWait,
  kClose,
  kSynSent2,
};
inline constexpr int kTcpStateCount = 10;
// FIN_WAIT..CLOSE: the states netfilter's early drop may take (tcp_can_early_drop).
inline bool tcp_closing(TcpState s) { return s >= TcpState::kFinWait && s <= TcpState::kClose; }
const char* tcp_state_name(TcpState s);

// Which timeout a flow currently runs on. Each maps to one sysctl.
enum class TimeoutClass : uint8_t {
  kTcpSynSent,
  kTcpSynRecv,
  kTcpEstablished,
  kTcpFinWait,
  kTcpCloseWait,
  kTcpLastAck,
  kTcpTimeWait,
  kTcpClose,
  kTcpSynSent2,
  kTcpMaxRetrans,
  kTcpUnacknowledged,
  kUdp,
  kUdpStream,
  kIcmp,
  kGeneric,
  kCount,
};

// Which eviction list a flow is on (see Conntrack::make_room).
// In the order make_room takes from them.
enum class EvictList : uint8_t { kNone, kClosing, kUnreplied, kHalfClosed };
inline constexpr int kEvictLists = 3;

inline constexpr uint32_t kNoWindow = UINT32_MAX;

struct alignas(64) Flow {
  Tuple tuple[2];           // [0] original, [1] reply
  uint64_t expires_ms = 0;  // engine clock; expired when <= now
  uint16_t ip_delta[2] = {0, 0};  // folded checksum delta for the IP header, per direction
  uint16_t l4_delta[2] = {0, 0};  // same for the TCP/UDP checksum or the ICMP checksum
  union {
    // UDP: low 32 bits of the creation time in ms, for the "still active after
    // two seconds" check (nf_conntrack_proto_udp.c), compared wrap-safely.
    uint32_t created_ms32 = 0;
    // TCP: its window state's index in the table's window pool (FlowTable),
    // kNoWindow without window tracking. Set by FlowTable::alloc only.
    uint32_t window;
  };
  uint16_t status = 0;
  TcpState tcp_state = TcpState::kNone;
  TimeoutClass timeout_class = TimeoutClass::kGeneric;
  EvictList evict_list = EvictList::kNone;
  // TCP tracker memory (netfilter's ip_ct_tcp, minus window tracking):
  uint8_t tcp_last_index = 5;  // index of the last packet (TCP_NONE_SET initially)
  uint8_t tcp_last_dir = 0;
  uint8_t tcp_close_init : 2 = 0;  // bit d: direction d sent the first FIN (CLOSE_INIT)
  uint8_t tcp_simultaneous : 1 = 0;
  // Bit d: direction d sent a FIN. netfilter's table takes a retransmitted FIN
  // for the second one, and the next ACK into TIME_WAIT, while the other side
  // still has data to send; only with both bits is the connection over.
  uint8_t tcp_fin_seen : 2 = 0;
  // The next flow in this one's by-source chain (Conntrack::for_each_same_source),
  // while it is source-translated; UINT32_MAX ends the chain. In the flow's
  // own line because the chain's walk compares the flows anyway: a link kept
  // apart would be a second random line per step.
  uint32_t src_next = UINT32_MAX;
};
static_assert(sizeof(Flow) == 64, "a flow is one cache line; see the layout note above");

}  // namespace xnat
