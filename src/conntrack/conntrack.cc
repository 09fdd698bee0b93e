#include "conntrack/conntrack.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>

#include "conntrack/tcp_tracker.h"

namespace xnat {

Conntrack::Conntrack(const ConntrackSettings& settings, uint64_t seed)
    : settings_(settings),
      table_(static_cast<uint32_t>(settings.nf_conntrack_max), settings.nf_conntrack_buckets, seed,
             settings.xnat_tcp_window_tracking),
      links_(settings.nf_conntrack_max + kListHeads),
      // The same hash seed as the table: a miss there hands its hash on.
      held_(settings.xnat_evicted_hold, 0, seed, settings.xnat_tcp_window_tracking) {
  tcp_policy_.timeout_s = settings_.timeout_s.data();
  tcp_policy_.be_liberal = settings_.nf_conntrack_tcp_be_liberal;
  tcp_policy_.ignore_invalid_rst = settings_.nf_conntrack_tcp_ignore_invalid_rst;
  tcp_policy_.max_retrans = static_cast<uint8_t>(settings_.nf_conntrack_tcp_max_retrans);
  // Two use-order lists, live and closed, each with its sentinel past the entries.
  held_fifo_.assign(size_t{held_.capacity()} + 2, {});
  for (uint32_t c = 0; c < 2; ++c) held_fifo_[held_sentinel(c)] = {held_sentinel(c), held_sentinel(c)};
  if (settings.xnat_max_flows_per_source) sources_ = SourceCounter(settings.nf_conntrack_max);
  const uint32_t heads = table_.capacity();
  for (uint32_t h = heads; h <= sweep_head(); ++h) links_[h] = FlowLinks{h, h, h, h};
  // Chains of one or two at a full table: a chain is walked for every new
  // source-translated flow, one flow line per step.
  const uint64_t nb = std::bit_ceil(std::max<uint64_t>(settings.nf_conntrack_max / 2, 64));
  bysrc_ = HugeArray<uint32_t>(nb);
  bysrc_mask_ = nb - 1;
  for (uint64_t b = 0; b < nb; ++b) bysrc_[b] = kNoRef;
}

void Conntrack::set_src_nat(uint32_t idx) {
  Flow& f = table_.flow(idx);
  if (f.status & kStatusSrcNat) return;
  f.status |= kStatusSrcNat;
  uint32_t& head = bysrc_[bysrc_bucket(f.tuple[0])];
  f.src_next = head;
  head = idx;
}

Conntrack::~Conntrack() = default;

size_t Conntrack::memory_bytes() const {
  return table_.memory_bytes() + (size_t{table_.capacity()} + kListHeads) * sizeof(FlowLinks) +
         (bysrc_mask_ + 1) * sizeof(uint32_t) +
         held_memory_bytes();
}

size_t Conntrack::held_memory_bytes() const {
  return held_.memory_bytes() + held_fifo_.size() * sizeof(held_fifo_[0]);
}

size_t Conntrack::bytes_per_flow() const {
  // The wheel heads and the held flows (at most xnat_evicted_hold) are fixed;
  // TCP flows' windows come on top (window_bytes).
  const size_t fixed = kListHeads * sizeof(FlowLinks) + held_memory_bytes() + table_.window_bytes();
  return (memory_bytes() - fixed + table_.capacity() - 1) / table_.capacity();
}

uint32_t Conntrack::remove_expired(uint32_t ref) {
  ++stats_.expired;
  remove(ref >> 1);
  return kNoRef;
}

bool Conntrack::can_open(const ParsedPacket& p) const {
  switch (p.tuple.proto) {
    case kProtoTcp: {
      TcpState s;
      return tcp_can_open(p.tcp_flags, settings_.nf_conntrack_tcp_loose, &s);
    }
    case kProtoIcmp:
      // icmp_new: only queries open a connection.
      return !p.icmp_error && icmp_reply_type(p.tuple.icmp_type()) != 0xFF;
    default:
      return true;
  }
}

// --- intrusive circular lists over links_ -------------------------------
// Heads are sentinel entries past the flows; an unlinked entry points at itself.

namespace {
template <uint32_t FlowLinks::*Prev, uint32_t FlowLinks::*Next>
struct IntrusiveList {
  static void push_back(FlowLinks* L, uint32_t head, uint32_t idx) {
    const uint32_t tail = L[head].*Prev;
    L[idx].*Prev = tail;
    L[idx].*Next = head;
    L[tail].*Next = idx;
    L[head].*Prev = idx;
  }
  static void unlink(FlowLinks* L, uint32_t idx) {
    const uint32_t p = L[idx].*Prev, n = L[idx].*Next;
    L[p].*Next = n;
    L[n].*Prev = p;
    L[idx].*Prev = L[idx].*Next = idx;
  }
};
using Wheel = IntrusiveList<&FlowLinks::wheel_prev, &FlowLinks::wheel_next>;
using Evict = IntrusiveList<&FlowLinks::evict_prev, &FlowLinks::evict_next>;
}  // namespace

[[gnu::always_inline]] inline void Conntrack::schedule(uint32_t idx) {
  uint64_t tick = table_.flow(idx).expires_ms / kTickMs;
  if (wheel_started_ && tick <= wheel_done_tick_) tick = wheel_done_tick_ + 1;
  Wheel::push_back(links_.get(), wheel_head(tick), idx);
}

void Conntrack::unschedule(uint32_t idx) { Wheel::unlink(links_.get(), idx); }

void Conntrack::reschedule(uint32_t idx) {
  unschedule(idx);
  schedule(idx);
}

void Conntrack::move_to_evict_list(uint32_t idx, EvictList want) {
  Flow& f = table_.flow(idx);
  FlowLinks* L = links_.get();
  if (f.evict_list != EvictList::kNone) Evict::unlink(L, idx);
  if (want != EvictList::kNone) Evict::push_back(L, evict_head(want), idx);
  f.evict_list = want;
}

void Conntrack::release_reply(const Flow& f) {
  if (f.status & kStatusObserved) observer_->on_release(f.tuple[1], f.status & kStatusObserved);
  if (f.status & kStatusDirectory)
    shard_.directory->erase(FlowDirectory::fingerprint(f.tuple[1], shard_.seed), shard_.index);
}

bool Conntrack::hold(const Flow& f, const TcpWindow* w) {
  const bool over = connection_over(f);
  if (held_.size() == held_.capacity()) {
    // A closed connection goes first, and never pushes out a live one.
    const uint32_t closed = held_fifo_[held_sentinel(1)].second;
    if (closed != held_sentinel(1)) drop_held(closed);
    else if (over) return false;
    else drop_held(held_fifo_[held_sentinel(0)].second);
  }
  const uint32_t h = held_.alloc(f.tuple[0].proto == kProtoTcp);
  held_.assign(h, f);
  Flow& g = held_.flow(h);
  if (TcpWindow* hw = held_.window(h); hw && w) *hw = *w;
  g.evict_list = EvictList::kNone;  // on no table list; held_push() files it by its state
  held_.link(h);
  held_push(h);
  ++stats_.held;
  return true;
}

// A held flow's list follows its state: closed (over) or live.
void Conntrack::held_push(uint32_t hidx) {
  const uint32_t s = held_sentinel(connection_over(held_.flow(hidx)) ? 1 : 0);
  const uint32_t last = held_fifo_[s].first;
  held_fifo_[hidx] = {last, s};
  held_fifo_[last].second = hidx;
  held_fifo_[s].first = hidx;
}

void Conntrack::held_unlink(uint32_t hidx) {
  const auto [prev, next] = held_fifo_[hidx];
  held_fifo_[prev].second = next;
  held_fifo_[next].first = prev;
}

void Conntrack::drop_held(uint32_t hidx) {
  release_reply(held_.flow(hidx));
  held_unlink(hidx);
  held_.unlink_and_free(hidx);
}

uint32_t Conntrack::find_held(const Tuple& t, uint64_t h, uint64_t now_ms) {
  const uint32_t ref = held_.find(t, h);
  if (ref == kNoRef) return kNoRef;
  if (held_.flow(ref >> 1).expires_ms <= now_ms) {
    drop_held(ref >> 1);
    return kNoRef;
  }
  return ref;
}

uint32_t Conntrack::readmit(uint32_t hidx, uint64_t now_ms, Flow* copy) {
  *copy = held_.flow(hidx);
  const Flow& rec = *copy;
  TcpWindow window;
  const bool tcp = rec.tuple[0].proto == kProtoTcp;
  if (const TcpWindow* w = held_.window(hidx); w && tcp) window = *w;
  // Room from the dead only: evicting another live flow for this one would
  // only trade places (and under ab -c 1000 at nf_conntrack_max=1000 turned
  // every eviction into a readmission). Else it lives on held, its mapping
  // tracked and kept alive by its packets (track_held).
  // A closed one comes back only to free room: evicting another closed entry
  // for it would only trade places too.
  if (full() && (connection_over(rec) || !make_room(now_ms, /*live_too=*/false))) return kNoRef;
  drop_held(hidx);
  const uint32_t idx = place(rec.tuple[0], rec.tuple[1], now_ms).idx;
  if (idx == kNoRef) {
    // Nothing to evict: keep it held, its claim and directory entry taken again.
    Flow again = rec;
    again.status &= static_cast<uint16_t>(~kStatusObserved);
    if (observer_) again.status |= observer_->on_insert(again.tuple[1]) & kStatusObserved;
    if ((again.status & kStatusDirectory) &&
        !shard_.directory->insert(FlowDirectory::fingerprint(again.tuple[1], shard_.seed), shard_.index))
      again.status &= static_cast<uint16_t>(~kStatusDirectory);
    hold(again, settings_.xnat_tcp_window_tracking ? &window : nullptr);
    --stats_.held;  // the same eviction, still held
    return kNoRef;
  }
  // The held record, but with the claim, directory entry and lists insert()
  // gave the new entry (set_src_nat below links it by source again).
  Flow& f = table_.flow(idx);
  const uint16_t own = kStatusObserved | kStatusDirectory;
  const uint16_t status = static_cast<uint16_t>((f.status & own) | (rec.status & ~(own | kStatusSrcNat)));
  const EvictList listed = f.evict_list;
  unschedule(idx);
  table_.assign(idx, rec);
  if (TcpWindow* w = table_.window(idx); w && tcp) *w = window;
  f.status = status;
  f.evict_list = listed;
  schedule(idx);
  if (rec.status & kStatusSrcNat) set_src_nat(idx);
  place_on_evict_list(idx);
  ++stats_.insert;
  ++stats_.readmitted;
  return idx;
}

void Conntrack::release(uint32_t idx, bool keep_reply) {
  FlowLinks* L = links_.get();
  Wheel::unlink(L, idx);
  if (table_.flow(idx).evict_list != EvictList::kNone) Evict::unlink(L, idx);
  if (sources_.enabled()) sources_.sub(table_.flow(idx).tuple[0].src);
  if (table_.flow(idx).status & kStatusSrcNat) {
    // Singly linked: the chain is walked to the link that points here.
    uint32_t* link = &bysrc_[bysrc_bucket(table_.flow(idx).tuple[0])];
    while (*link != idx) link = &table_.flow(*link).src_next;
    *link = table_.flow(idx).src_next;
  }
  if (!keep_reply) release_reply(table_.flow(idx));
  if (shard_.limit) shard_.limit->count.fetch_sub(1, std::memory_order_relaxed);
  table_.unlink_and_free(idx);
}

void Conntrack::remove(uint32_t idx) { release(idx); }

void Conntrack::sweep_slot(uint64_t tick) {
  FlowLinks* L = links_.get();
  const uint32_t head = wheel_head(tick), sweep = sweep_head();
  if (L[head].wheel_next == head) return;
  const uint32_t first = L[head].wheel_next, last = L[head].wheel_prev, tail = L[sweep].wheel_prev;
  L[tail].wheel_next = first;
  L[first].wheel_prev = tail;
  L[last].wheel_next = sweep;
  L[sweep].wheel_prev = last;
  L[head].wheel_prev = L[head].wheel_next = head;
}

size_t Conntrack::expire_some(uint64_t now_ms, size_t budget, bool until_room) {
  const uint64_t now_tick = now_ms / kTickMs;
  if (!wheel_started_) {
    // Flows scheduled before the first call sit at their own expiry ticks;
    // start one revolution back so every slot is visited once.
    wheel_started_ = true;
    wheel_done_tick_ = now_tick >= kWheelSlots ? now_tick - kWheelSlots : 0;
  }
  if (now_tick > 0 && wheel_done_tick_ < now_tick - 1) {
    uint64_t first = wheel_done_tick_ + 1;
    const uint64_t last = now_tick - 1;
    if (last - first >= kWheelSlots) first = last - kWheelSlots + 1;  // one revolution covers all
    for (uint64_t t = first; t <= last; ++t) sweep_slot(t);
    wheel_done_tick_ = last;
  }
  // Flows rescheduled here go to a later slot, never back onto the sweep.
  FlowLinks* L = links_.get();
  const uint32_t sweep = sweep_head();
  size_t done = 0;
  for (uint32_t cur = L[sweep].wheel_next; cur != sweep && done < budget; cur = L[sweep].wheel_next, ++done) {
    // The next entry's links and flow are the next iteration's misses: start them now.
    const uint32_t next = L[cur].wheel_next;
    if (next != sweep) {
      __builtin_prefetch(&L[next]);
      __builtin_prefetch(&table_.flow(next));
    }
    Wheel::unlink(L, cur);
    if (table_.flow(cur).expires_ms <= now_ms) {
      ++stats_.expired;
      release(cur);
      if (until_room && !full()) return done + 1;
    } else {
      schedule(cur);
    }
  }
  return done;
}

void Conntrack::expire(uint64_t now_ms) { expire_some(now_ms, SIZE_MAX); }

bool Conntrack::make_room(uint64_t now_ms, bool live_too) {
  // Only until one entry is freed: the rest of the sweep stays spread over
  // the bursts to come.
  expire_some(now_ms, SIZE_MAX, /*until_room=*/true);
  if (!full()) return true;
  FlowLinks* L = links_.get();
  auto take_expired = [&](uint32_t victim) {
    ++stats_.expired;
    ++stats_.evicted_expired;
    remove(victim);
    return true;
  };
  // Expired but not yet reached by the wheel (it works in whole seconds). The
  // heads of the two eviction FIFOs are the oldest closing and unreplied
  // entries, so the likeliest to have expired; then a bounded look at the
  // current second's slot. Bounded because under churn that slot holds
  // thousands of flows that are due later, and walking it all on every
  // insert would make each new flow at a full table pay for all of them.
  for (EvictList l : {EvictList::kClosing, EvictList::kUnreplied, EvictList::kHalfClosed}) {
    const uint32_t h = evict_head(l), victim = L[h].evict_next;
    if (victim != h && table_.flow(victim).expires_ms <= now_ms) return take_expired(victim);
  }
  const uint32_t head = wheel_head(now_ms / kTickMs);
  int budget = 16;
  for (uint32_t i = L[head].wheel_next; i != head && budget-- > 0; i = L[i].wheel_next)
    if (table_.flow(i).expires_ms <= now_ms) return take_expired(i);
  return live_too ? evict_one() : evict_from(EvictList::kClosing);
}

bool Conntrack::evict_from(EvictList l) {
  const uint32_t h = evict_head(l), victim = links_[h].evict_next;
  if (victim == h) return false;
  ++stats_.early_drop;
  ++(l == EvictList::kClosing     ? stats_.evicted_closing
     : l == EvictList::kUnreplied ? stats_.evicted_unreplied
                                  : stats_.evicted_half_closed);
  const bool keep = held_.capacity() > 0 && hold(table_.flow(victim), table_.window(victim));
  release(victim, keep);
  return true;
}

bool Conntrack::evict_one() {
  for (EvictList l : {EvictList::kClosing, EvictList::kUnreplied, EvictList::kHalfClosed})
    if (evict_from(l)) return true;
  return false;
}

bool Conntrack::borrow() {
  SharedLimit* lim = shard_.limit;
  if (!lim || table_.size() >= table_.capacity()) return false;
  if (lim->count.fetch_add(1, std::memory_order_relaxed) >= lim->max + lim->overdraft) {
    lim->count.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  lim->debt.fetch_add(1, std::memory_order_relaxed);
  ++stats_.borrowed;
  return true;
}

void Conntrack::repay() {
  SharedLimit* lim = shard_.limit;
  if (!lim) return;
  uint64_t d = lim->debt.load(std::memory_order_relaxed);
  while (d > 0) {
    if (!lim->debt.compare_exchange_weak(d, d - 1, std::memory_order_relaxed)) continue;
    if (!evict_one()) {
      lim->debt.fetch_add(1, std::memory_order_relaxed);  // nothing here to give: another worker pays
      return;
    }
    d = lim->debt.load(std::memory_order_relaxed);
  }
}

// insert() without its counts: readmit() places a held flow back the same way
// but counts otherwise.
[[gnu::always_inline]] inline Conntrack::Inserted Conntrack::place(const Tuple& orig, const Tuple& reply, uint64_t now_ms) {
  if (shard_.limit && shard_.limit->count.load(std::memory_order_relaxed) + shard_.limit->reserve >= shard_.limit->max)
    evict_from(EvictList::kClosing);  // keep headroom for the other workers
  bool borrowed = false;
  if (full() && !make_room(now_ms)) {
    // Several workers: what this one cannot evict, another may hold.
    if (!borrow()) {
      return {kNoRef, InsertFailure::kTableFull};
    }
    borrowed = true;
  }
  if (shard_.limit && !borrowed &&
      shard_.limit->count.fetch_add(1, std::memory_order_relaxed) >= shard_.limit->max) {
    // Another worker took the last entry since full() looked: borrow it.
    shard_.limit->count.fetch_sub(1, std::memory_order_relaxed);
    if (!borrow()) {
      return {kNoRef, InsertFailure::kTableFull};
    }
  }
  const bool listed = shard_.active() && shard_.owner_by_hash(reply) != shard_.index;
  if (listed && !shard_.directory->insert(FlowDirectory::fingerprint(reply, shard_.seed), shard_.index)) {
    if (shard_.limit) shard_.limit->count.fetch_sub(1, std::memory_order_relaxed);
    ++stats_.directory_full;
    return {kNoRef, InsertFailure::kDirectoryFull};
  }
  const uint32_t idx = table_.alloc(orig.proto == kProtoTcp);
  Flow& f = table_.flow(idx);
  if (listed) f.status |= kStatusDirectory;
  f.tuple[0] = orig;
  f.tuple[1] = reply;
  if (orig.proto != kProtoTcp) f.created_ms32 = static_cast<uint32_t>(now_ms);  // TCP: the window's index
  f.expires_ms = now_ms + settings_.timeout_ms(TimeoutClass::kGeneric);
  if (orig.proto == kProtoTcp) {
    f.tcp_state = TcpState::kNone;
  }
  table_.link(idx);
  if (sources_.enabled()) sources_.add(orig.src);
  if (observer_) f.status |= observer_->on_insert(reply) & kStatusObserved;
  FlowLinks* L = links_.get();
  L[idx] = FlowLinks{idx, idx, idx, idx};
  schedule(idx);
  place_on_evict_list(idx);
  return {idx, InsertFailure::kNone};
}

Conntrack::Inserted Conntrack::insert(const Tuple& orig, const Tuple& reply, uint64_t now_ms) {
  const Inserted r = place(orig, reply, now_ms);
  if (r.failure == InsertFailure::kNone) [[likely]]
    ++stats_.insert;
  else if (r.failure == InsertFailure::kTableFull)
    ++stats_.drop;
  return r;
}

// Inlined into its two callers: out of line it cost TCP +28 instructions a packet.
[[gnu::always_inline]] inline Conntrack::Step Conntrack::advance(Flow& f, TcpWindow* w, int dir, const ParsedPacket& p, uint64_t now_ms,
                                   TimeoutClass* timeout) {
  const bool seen_reply = f.status & kStatusSeenReply;
  switch (f.tuple[0].proto) {
    case kProtoTcp: {
      TcpDecision d = tcp_track(f, w, dir, p.tcp_flags, p.tcp, seen_reply, tcp_policy_);
      switch (d.verdict) {
        case TcpVerdict::kInvalid:
          ++stats_.invalid;
          return d.shorten ? Step::kShorten : Step::kInvalid;
        case TcpVerdict::kReopen:
          ++stats_.reopened;
          return Step::kReopen;
        case TcpVerdict::kIgnore:
          // netfilter sets SEEN_REPLY on every reply packet it accepts,
          // ignored ones included (nf_conntrack_in).
          if (dir == 1) f.status |= kStatusSeenReply;
          return Step::kIgnore;
        case TcpVerdict::kKill:
          ++stats_.killed;
          return Step::kKill;
        case TcpVerdict::kAccept:
          break;
      }
      if (d.set_assured) f.status |= kStatusAssured;
      if (!d.refresh) {
        if (dir == 1) f.status |= kStatusSeenReply;
        return Step::kIgnore;  // state kept, timer not renewed
      }
      *timeout = d.timeout;
      break;
    }
    case kProtoUdp:
      *timeout = udp_step(f, dir, now_ms);
      return Step::kRefresh;
    case kProtoIcmp:
      *timeout = TimeoutClass::kIcmp;
      break;
    default:
      *timeout = TimeoutClass::kGeneric;
      break;
  }
  if (dir == 1) f.status |= kStatusSeenReply;
  return Step::kRefresh;
}

uint64_t Conntrack::shortened_expiry(const Flow& f, uint64_t now_ms) const {
  // nf_tcp_handle_invalid: only with at least 120 s left, and only shorter.
  const uint64_t left = f.expires_ms > now_ms ? f.expires_ms - now_ms : 0;
  if (left < 120'000 || left <= settings_.timeout_ms(TimeoutClass::kTcpUnacknowledged)) return 0;
  return now_ms + settings_.timeout_ms(TimeoutClass::kTcpUnacknowledged);
}

namespace {
// What a step other than kRefresh means for the packet; kReopen and kKill
// also end the entry.
TrackVerdict verdict_of(Conntrack::Step s) {
  return s == Conntrack::Step::kInvalid || s == Conntrack::Step::kShorten ? TrackVerdict::kInvalid
         : s == Conntrack::Step::kReopen                                    ? TrackVerdict::kReopen
                                                                             : TrackVerdict::kAccept;
}
bool ends(Conntrack::Step s) { return s == Conntrack::Step::kReopen || s == Conntrack::Step::kKill; }
}  // namespace

TrackVerdict Conntrack::track_stateful(uint32_t idx, int dir, const ParsedPacket& p, uint64_t now_ms) {
  TimeoutClass timeout;
  const Step s = advance(table_.flow(idx), table_.window(idx), dir, p, now_ms, &timeout);
  if (s != Step::kRefresh) [[unlikely]] {
    if (ends(s)) remove(idx);
    else if (s == Step::kIgnore) place_on_evict_list(idx);  // may have been answered
    else if (s == Step::kShorten && shortened_expiry(table_.flow(idx), now_ms))
      set_expiry(idx, TimeoutClass::kTcpUnacknowledged, now_ms);
    return verdict_of(s);
  }
  set_expiry(idx, timeout, now_ms);
  place_on_evict_list(idx);
  return TrackVerdict::kAccept;
}

TrackVerdict Conntrack::track_held(uint32_t hidx, int dir, const ParsedPacket& p, uint64_t now_ms) {
  Flow& f = held_.flow(hidx);
  TimeoutClass timeout;
  const Step s = advance(f, held_.window(hidx), dir, p, now_ms, &timeout);
  if (s != Step::kRefresh) {
    if (ends(s)) drop_held(hidx);
    else if (s == Step::kShorten) {
      if (const uint64_t e = shortened_expiry(f, now_ms)) {
        f.timeout_class = TimeoutClass::kTcpUnacknowledged;
        f.expires_ms = e;
      }
    }
    return verdict_of(s);
  }
  f.timeout_class = timeout;
  f.expires_ms = now_ms + settings_.timeout_ms(timeout);
  // In use: the last to be dropped when the hold is full.
  held_unlink(hidx);
  held_push(hidx);
  return TrackVerdict::kAccept;
}

// --- conntrack -L -o extended ----------------------------------------------

namespace {
const char* proto_name(uint8_t p) {
  switch (p) {
    case 1: return "icmp";
    case 6: return "tcp";
    case 17: return "udp";
    case 33: return "dccp";
    case 47: return "gre";
    case 58: return "icmpv6";
    case 132: return "sctp";
    case 136: return "udplite";
    default: return "unknown";
  }
}

void append_tuple(std::string& out, const Tuple& t) {
  fmt::format_to(std::back_inserter(out), "src={} dst={} ", ip_to_string(t.src),
                 ip_to_string(t.dst));
  if (t.has_ports()) {
    fmt::format_to(std::back_inserter(out), "sport={} dport={} ", __builtin_bswap16(t.sport),
                   __builtin_bswap16(t.dport));
  } else if (t.proto == kProtoIcmp) {
    fmt::format_to(std::back_inserter(out), "type={} code={} id={} ", t.icmp_type(),
                   t.icmp_code(), __builtin_bswap16(t.sport));
  }
}
}  // namespace

std::string format_conntrack_extended(const Flow& f, uint64_t now_ms) {
  std::string out;
  const uint8_t proto = f.tuple[0].proto;
  const uint64_t remaining = f.expires_ms > now_ms ? (f.expires_ms - now_ms) / 1000 : 0;
  fmt::format_to(std::back_inserter(out), "{:<8} {} {:<8} {} {} ", "ipv4", 2, proto_name(proto),
                 proto, remaining);
  if (proto == kProtoTcp) fmt::format_to(std::back_inserter(out), "{} ", tcp_state_name(f.tcp_state));
  append_tuple(out, f.tuple[0]);
  if (!(f.status & kStatusSeenReply)) out += "[UNREPLIED] ";
  append_tuple(out, f.tuple[1]);
  if (f.status & kStatusAssured) out += "[ASSURED] ";
  out += "mark=0 use=1";
  return out;
}

}  // namespace xnat
