#include "conntrack/tcp_tracker.h"

#include "packet/headers.h"

namespace xnat {
namespace {

// Flag-set indices, netfilter's enum tcp_bit_set.
enum : uint8_t { kSynSet, kSynAckSet, kFinSet, kAckSet, kRstSet, kNoneSet };

constexpr uint8_t kIV = 10;  // invalid (TCP_CONNTRACK_MAX)
constexpr uint8_t kIG = 11;  // ignore (TCP_CONNTRACK_IGNORE)
constexpr uint8_t sNO = 0, sSS = 1, sSR = 2, sES = 3, sFW = 4, sCW = 5, sLA = 6, sTW = 7, sCL = 8,
                  sS2 = 9;

// tcp_conntracks[dir][index][old state], transcribed from Linux 6.x.
constexpr uint8_t kTransitions[2][6][kTcpStateCount] = {
    {
        // ORIGINAL  sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
        /*syn*/ {sSS, sSS, kIG, kIG, kIG, kIG, kIG, sSS, sSS, sS2},
        /*synack*/ {kIV, kIV, sSR, kIV, kIV, kIV, kIV, kIV, kIV, sSR},
        /*fin*/ {kIV, kIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, kIV},
        /*ack*/ {sES, kIV, sES, sES, sCW, sCW, sTW, sTW, sCL, kIV},
        /*rst*/ {kIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
        /*none*/ {kIV, kIV, kIV, kIV, kIV, kIV, kIV, kIV, kIV, kIV},
    },
    {
        // REPLY     sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
        /*syn*/ {kIV, sS2, kIV, kIV, kIV, kIV, kIV, sSS, kIV, sS2},
        /*synack*/ {kIV, sSR, kIG, kIG, kIG, kIG, kIG, kIG, kIG, sSR},
        /*fin*/ {kIV, kIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, kIV},
        /*ack*/ {kIV, kIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, kIG},
        /*rst*/ {kIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
        /*none*/ {kIV, kIV, kIV, kIV, kIV, kIV, kIV, kIV, kIV, kIV},
    },
};

uint8_t flag_index(uint8_t flags) {
  if (flags & kTcpRst) return kRstSet;
  if (flags & kTcpSyn) return (flags & kTcpAck) ? kSynAckSet : kSynSet;
  if (flags & kTcpFin) return kFinSet;
  if (flags & kTcpAck) return kAckSet;
  return kNoneSet;
}

}  // namespace

bool tcp_flags_valid(uint8_t flags) {
  switch (flags & ~(kTcpEce | kTcpCwr | kTcpPsh)) {
    case kTcpSyn:
    case kTcpSyn | kTcpUrg:
    case kTcpSyn | kTcpAck:
    case kTcpRst:
    case kTcpRst | kTcpAck:
    case kTcpFin | kTcpAck:
    case kTcpFin | kTcpAck | kTcpUrg:
    case kTcpAck:
    case kTcpAck | kTcpUrg:
      return true;
    default:
      return false;
  }
}

TimeoutClass tcp_timeout_class(TcpState s) {
  switch (s) {
    case TcpState::kSynSent: return TimeoutClass::kTcpSynSent;
    case TcpState::kSynRecv: return TimeoutClass::kTcpSynRecv;
    case TcpState::kEstablished: return TimeoutClass::kTcpEstablished;
    case TcpState::kFinWait: return TimeoutClass::kTcpFinWait;
    case TcpState::kCloseWait: return TimeoutClass::kTcpCloseWait;
    case TcpState::kLastAck: return TimeoutClass::kTcpLastAck;
    case TcpState::kTimeWait: return TimeoutClass::kTcpTimeWait;
    case TcpState::kSynSent2: return TimeoutClass::kTcpSynSent2;
    case TcpState::kNone:
    case TcpState::kClose: return TimeoutClass::kTcpClose;
  }
  return TimeoutClass::kTcpClose;
}

bool tcp_can_open(uint8_t flags, bool loose, TcpState* initial) {
  if (!tcp_flags_valid(flags)) return false;
  uint8_t s = kTransitions[0][flag_index(flags)][sNO];
  if (s == sSS) {
    *initial = TcpState::kSynSent;
    return true;
  }
  if (s >= kIV || !loose) return false;
  *initial = TcpState::kEstablished;  // picked up mid-stream
  return true;
}

TcpDecision tcp_track(Flow& f, int dir, uint8_t flags, bool seen_reply) {
  TcpDecision d;
  if (!tcp_flags_valid(flags)) return d;  // kInvalid
  const uint8_t old_state = static_cast<uint8_t>(f.tcp_state);
  const uint8_t index = flag_index(flags);
  uint8_t new_state = kTransitions[dir][index][old_state];

  switch (new_state) {
    case sSS:
      if (old_state < sTW) break;
      // RFC 1122 reopen from TIME_WAIT/CLOSE: allowed when the connection was
      // closed (a FIN opened the close) or aborted by a RST from this side.
      if (f.tcp_close_init || (f.tcp_last_dir == dir && f.tcp_last_index == kRstSet)) {
        d.verdict = TcpVerdict::kReopen;
        return d;
      }
      [[fallthrough]];
    case kIG:
      // Out of sync with the endpoints: let the packet through unchanged.
      f.tcp_last_index = index;
      f.tcp_last_dir = static_cast<uint8_t>(dir);
      d.verdict = TcpVerdict::kIgnore;
      return d;
    case kIV:
      return d;  // kInvalid
    case sS2:
      f.tcp_simultaneous = 1;
      break;
    case sSR:
      if (dir == 1 && index == kAckSet && f.tcp_simultaneous) new_state = sES;
      break;
    default:
      break;
  }

  f.tcp_last_index = index;
  f.tcp_last_dir = static_cast<uint8_t>(dir);
  f.tcp_state = static_cast<TcpState>(new_state);
  if (old_state != new_state && new_state == sFW) f.tcp_close_init |= static_cast<uint8_t>(1 << dir);
  if (flags & kTcpFin) f.tcp_fin_seen |= static_cast<uint8_t>(1 << dir);

  d.verdict = TcpVerdict::kAccept;
  d.timeout = index == kRstSet ? TimeoutClass::kTcpClose
                               : tcp_timeout_class(static_cast<TcpState>(new_state));
  if (!seen_reply) {
    // "If only reply is a RST, we can consider ourselves not to have an
    // established connection" (netfilter): delete the entry.
    if (flags & kTcpRst) {
      d.verdict = TcpVerdict::kKill;
      return d;
    }
    // ESTABLISHED without a reply is a mid-stream pick-up: avoid the 5-day timeout.
    if (new_state == sES) d.timeout = TimeoutClass::kTcpUnacknowledged;
  } else if (!(f.status & kStatusAssured) && (old_state == sSR || old_state == sES) &&
             new_state == sES) {
    d.set_assured = true;
  }
  return d;
}

}  // namespace xnat
