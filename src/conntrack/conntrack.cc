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
      by_source_(settings.nf_conntrack_max, settings.xnat_max_flows_per_source),
      max_(static_cast<uint32_t>(settings.nf_conntrack_max)),
      held_(settings.xnat_evicted_hold, seed, settings.xnat_tcp_window_tracking, &claims_) {
  tcp_policy_.timeout_s = settings_.timeout_s.data();
  tcp_policy_.be_liberal = settings_.nf_conntrack_tcp_be_liberal;
  tcp_policy_.ignore_invalid_rst = settings_.nf_conntrack_tcp_ignore_invalid_rst;
  tcp_policy_.max_retrans = static_cast<uint8_t>(settings_.nf_conntrack_tcp_max_retrans);
  const uint32_t heads = table_.capacity();
  for (uint32_t h = heads; h <= sweep_head(); ++h) links_[h] = FlowLinks{h, h, h, h};
}

void Conntrack::retune(const ConntrackSettings& s, uint64_t max) {
  settings_.timeout_s = s.timeout_s;
  settings_.nf_conntrack_tcp_loose = s.nf_conntrack_tcp_loose;
  settings_.nf_conntrack_checksum = s.nf_conntrack_checksum;
  settings_.nf_conntrack_tcp_be_liberal = s.nf_conntrack_tcp_be_liberal;
  settings_.nf_conntrack_tcp_ignore_invalid_rst = s.nf_conntrack_tcp_ignore_invalid_rst;
  settings_.nf_conntrack_tcp_max_retrans = s.nf_conntrack_tcp_max_retrans;
  tcp_policy_.be_liberal = settings_.nf_conntrack_tcp_be_liberal;
  tcp_policy_.ignore_invalid_rst = settings_.nf_conntrack_tcp_ignore_invalid_rst;
  tcp_policy_.max_retrans = static_cast<uint8_t>(settings_.nf_conntrack_tcp_max_retrans);
  max_ = static_cast<uint32_t>(std::min<uint64_t>(max, table_.capacity()));
}

void Conntrack::set_src_nat(uint32_t idx) {
  Flow& f = table_.flow(idx);
  if (f.status & kStatusSrcNat) return;
  f.status |= kStatusSrcNat;
  by_source_.link(table_, idx);
  translated_.add(f.tuple[1].dst, f.tuple[0].proto);
}

namespace {
// The address and port a source-translated flow leaves with, as a SourceMap value.
uint64_t leaves_with(const Flow& f) { return SourceMap::mapping(f.tuple[1].dst, f.tuple[1].dport); }
}  // namespace

uint64_t Conntrack::source_key(const Tuple& orig) const {
  return SourceMap::fingerprint(orig.proto, orig.src, orig.sport, claims_.shard.seed);
}

void Conntrack::share_source(uint32_t idx) {
  SourceMap* m = claims_.shard.mappings;
  Flow& f = table_.flow(idx);
  if (!m || !(f.status & kStatusSrcNat) || (f.status & kStatusSourceShared)) return;
  // One entry per worker and source: a flow of this source may hold it already.
  bool held = false;
  by_source_.for_each(table_, f.tuple[0], 0, [&](const Flow& o) {
    held = &o != &f && (o.status & kStatusSourceShared);
    return held;
  });
  if (held) return;
  if (m->enter(source_key(f.tuple[0]), claims_.shard.index, leaves_with(f))) f.status |= kStatusSourceShared;
  else ++stats_.source_share_full;
}

// The holder of its source's entry leaves (already unlinked by source): the
// entry passes to another of the source's flows here, with its mapping, or
// is removed with the last.
void Conntrack::pass_source_share(uint32_t idx) {
  SourceMap* m = claims_.shard.mappings;
  Flow& f = table_.flow(idx);
  f.status &= static_cast<uint16_t>(~kStatusSourceShared);
  const uint64_t key = source_key(f.tuple[0]);
  Flow* heir = nullptr;
  by_source_.for_each(table_, f.tuple[0], 0, [&](const Flow& o) {
    heir = const_cast<Flow*>(&o);
    return true;
  });
  if (!heir) return m->erase(key, claims_.shard.index);
  heir->status |= kStatusSourceShared;
  m->update(key, claims_.shard.index, leaves_with(*heir));
}

void Conntrack::publish_source_count(uint32_t src) {
  SourceMap* c = claims_.shard.flow_counts;
  if (!c) return;
  const uint64_t key = count_key(src);
  const uint32_t w = claims_.shard.index, n = by_source_.count(src);
  if (n == 0) c->erase(key, w);
  else if (!c->update(key, w, n) && !c->enter(key, w, n)) ++stats_.source_share_full;
}

Conntrack::~Conntrack() = default;

size_t Conntrack::memory_bytes() const {
  return table_.memory_bytes() + (size_t{table_.capacity()} + kListHeads) * sizeof(FlowLinks) +
         by_source_.memory_bytes() + held_memory_bytes();
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

uint32_t Conntrack::readmit(uint32_t hidx, uint64_t now_ms, Flow* copy) {
  *copy = held_.flow(hidx);
  const Flow& rec = *copy;
  TcpWindow window;
  const TcpWindow* w = held_.window(hidx);
  if (w && rec.tuple[0].proto == kProtoTcp) window = *w;
  else w = nullptr;
  // Room from the dead only: evicting another live flow for this one would
  // only trade places (and under ab -c 1000 at nf_conntrack_max=1000 turned
  // every eviction into a readmission). Else it lives on held, its mapping
  // tracked and kept alive by its packets (track_held).
  // A closed one comes back only to free room: evicting another closed entry
  // for it would only trade places too.
  if (full() && (connection_over(rec) || !make_room(now_ms, /*live_too=*/false))) return kNoRef;
  // Off the hold first: making room may hold an evicted flow, which must not
  // push this one out. Its claims pass to the new entry.
  const uint16_t claims = rec.status & (kStatusObserved | kStatusDirectory | kStatusDirectoryOrig);
  held_.forget(hidx);
  const uint32_t idx = place(rec.tuple[0], rec.tuple[1], now_ms, claims).idx;
  if (idx == kNoRef) {
    // Nothing to evict: it stays held, with its claims.
    if (!held_.hold(rec, w ? &window : nullptr)) claims_.release(rec);
    return kNoRef;
  }
  // The held record, but with the lists place() gave the new entry
  // (set_src_nat below links it by source again).
  Flow& f = table_.flow(idx);
  // Its source's shared mapping went with its eviction (release).
  const uint16_t status = static_cast<uint16_t>(rec.status & ~(kStatusSrcNat | kStatusSourceShared));
  const EvictList listed = f.evict_list;
  unschedule(idx);
  table_.assign(idx, rec);
  if (TcpWindow* tw = table_.window(idx); tw && w) *tw = window;
  f.status = status;
  f.evict_list = listed;
  schedule(idx);
  if (rec.status & kStatusSrcNat) set_src_nat(idx);
  place_on_evict_list(idx);
  if (marks_.size()) marks_[idx] = 0;  // not kept while held
  ++stats_.insert;
  ++stats_.readmitted;
  // Its eviction was a DESTROY; back in the table, it is listed again.
  if (event_mask_ & kEventNew) [[unlikely]]
    emit(idx, kEventNew, kShowState | kShowTimeout, now_ms);
  return idx;
}

void Conntrack::set_offload(FlowOffload* o) {
  offload_ = o;
  offload_listed_.assign(o ? table_.capacity() : 0, 0);
  offload_list_.clear();
  // A flow is on the list once: it never grows past this, nor allocates
  // on the data path.
  offload_list_.reserve(o ? table_.capacity() : 0);
}

// A day, as netfilter's NF_CT_DAY: what an offloaded flow's timeout shows.
constexpr uint64_t kOffloadHoldMs = 86400 * 1000;

bool Conntrack::offload(uint32_t idx, const OffloadPath (&dirs)[2], uint64_t now_ms) {
  Flow& f = table_.flow(idx);
  if (!offload_ || (f.status & kStatusOffload)) return false;
  if (!offload_->add(idx, dirs, now_ms)) {
    ++stats_.offload_full;
    return false;
  }
  f.status |= kStatusOffload;
  ++offloaded_;
  ++stats_.offloads;
  if (TcpWindow* w = table_.window(idx)) {
    w->seen[0].flags |= kPeerLiberal;
    w->seen[1].flags |= kPeerLiberal;
  }
  f.expires_ms = now_ms + kOffloadHoldMs;  // later: the wheel finds it when due
  if (!offload_listed_[idx]) {
    offload_listed_[idx] = 1;
    offload_list_.push_back(idx);
  }
  return true;
}

void Conntrack::drop_offload(uint32_t idx) {
  Flow& f = table_.flow(idx);
  if (!(f.status & kStatusOffload)) [[likely]] return;
  offload_->remove(idx, f);
  f.status &= ~kStatusOffload;
  --offloaded_;
}

void Conntrack::withdraw(uint32_t idx, uint64_t packet_ms) {
  Flow& f = table_.flow(idx);
  if (!(f.status & kStatusOffload)) return;
  const uint64_t since_ms = packet_ms ? packet_ms : offload_->last_seen_ms(idx);
  drop_offload(idx);
  ++stats_.offload_withdrawn;
  if (TcpWindow* w = table_.window(idx)) {
    w->seen[0].flags &= ~kPeerMaxackSet;
    w->seen[1].flags &= ~kPeerMaxackSet;
  }
  // The day's timeout it ran on gives way to its own, whichever is sooner.
  const uint64_t exp = since_ms + settings_.timeout_ms(f.timeout_class);
  const bool sooner = exp < f.expires_ms;
  f.expires_ms = exp;
  if (sooner) reschedule(idx);
}

void Conntrack::offload_tick(uint64_t now_ms) {
  size_t k = 0;
  for (uint32_t idx : offload_list_) {
    Flow& f = table_.flow(idx);
    if (!table_.in_use(idx) || !(f.status & kStatusOffload)) {
      offload_listed_[idx] = 0;
      continue;
    }
    offload_list_[k++] = idx;
    if (offload_->last_seen_ms(idx) + settings_.timeout_ms(f.timeout_class) <= now_ms) {
      withdraw(idx);  // idle: it expires now
      continue;
    }
    if (f.expires_ms < now_ms + kOffloadHoldMs / 2) f.expires_ms = now_ms + kOffloadHoldMs;
  }
  offload_list_.resize(k);
}

void Conntrack::release(uint32_t idx, bool keep_reply) {
  drop_offload(idx);
  // Its timeout as the reader finds it: none once run out, as netfilter's.
  if (event_mask_ & kEventDestroy) [[unlikely]]
    emit(idx, kEventDestroy, kShowState | kShowTimeout, 0);
  FlowLinks* L = links_.get();
  Wheel::unlink(L, idx);
  if (table_.flow(idx).evict_list != EvictList::kNone) Evict::unlink(L, idx);
  if (by_source_.counting()) {
    by_source_.sub(table_.flow(idx).tuple[0].src);
    publish_source_count(table_.flow(idx).tuple[0].src);
  }
  if (table_.flow(idx).status & kStatusSrcNat) {
    by_source_.unlink(table_, idx);
    translated_.sub(table_.flow(idx).tuple[1].dst, table_.flow(idx).tuple[0].proto);
    if (table_.flow(idx).status & kStatusSourceShared) pass_source_share(idx);
  }
  if (!keep_reply) claims_.release(table_.flow(idx));
  if (SharedLimit* lim = claims_.shard.limit) lim->count.fetch_sub(1, std::memory_order_relaxed);
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
  drop_offload(victim);  // not carried into the hold
  const bool keep = held_.capacity() > 0 && held_.hold(table_.flow(victim), table_.window(victim));
  if (keep) ++stats_.held;
  release(victim, keep);
  return true;
}

bool Conntrack::evict_one() {
  for (EvictList l : {EvictList::kClosing, EvictList::kUnreplied, EvictList::kHalfClosed})
    if (evict_from(l)) return true;
  return false;
}

bool Conntrack::borrow() {
  SharedLimit* lim = claims_.shard.limit;
  if (!lim || table_.size() >= table_.capacity()) return false;
  if (lim->count.fetch_add(1, std::memory_order_relaxed) >= lim->max.load(std::memory_order_relaxed) + lim->overdraft) {
    lim->count.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  lim->debt.fetch_add(1, std::memory_order_relaxed);
  ++stats_.borrowed;
  return true;
}

void Conntrack::repay() {
  SharedLimit* lim = claims_.shard.limit;
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
[[gnu::always_inline]] inline Conntrack::Inserted Conntrack::place(const Tuple& orig, const Tuple& reply,
                                                                  uint64_t now_ms, uint32_t carried) {
  SharedLimit* lim = claims_.shard.limit;
  if (lim && lim->count.load(std::memory_order_relaxed) + lim->reserve >= lim->max.load(std::memory_order_relaxed))
    evict_from(EvictList::kClosing);  // keep headroom for the other workers
  bool borrowed = false;
  if (full() && !make_room(now_ms)) {
    // Several workers: what this one cannot evict, another may hold.
    if (!borrow()) return {kNoRef, InsertFailure::kTableFull};
    borrowed = true;
  }
  if (lim && !borrowed &&
      lim->count.fetch_add(1, std::memory_order_relaxed) >= lim->max.load(std::memory_order_relaxed)) {
    // Another worker took the last entry since full() looked: borrow it.
    lim->count.fetch_sub(1, std::memory_order_relaxed);
    if (!borrow()) return {kNoRef, InsertFailure::kTableFull};
  }
  uint16_t claims = 0;
  if (carried != kNoCarry) {
    claims = static_cast<uint16_t>(carried);
  } else if (claims_.shard.active()) {
    // A reply this worker does not own by hash (DNAT; a mapping it could not
    // choose), and an original tuple it does not own (a connection taken over
    // for its client's shared mapping, Engine::adopt_elsewhere): entered, so
    // the packets that reach the hash's owner are handed here.
    auto directory_full = [&]() -> Inserted {
      if (lim) lim->count.fetch_sub(1, std::memory_order_relaxed);
      ++stats_.directory_full;
      return {kNoRef, InsertFailure::kDirectoryFull};
    };
    if (claims_.needs_directory(reply)) {
      if (!claims_.enter(reply)) return directory_full();
      claims = kStatusDirectory;
    }
    if (claims_.needs_directory(orig)) {
      if (!claims_.enter(orig)) {
        if (claims) claims_.leave(reply);
        return directory_full();
      }
      claims |= kStatusDirectoryOrig;
    }
  }
  const uint32_t idx = table_.alloc(orig.proto == kProtoTcp);
  Flow& f = table_.flow(idx);
  if (claims) f.status |= claims;
  f.tuple[0] = orig;
  f.tuple[1] = reply;
  if (orig.proto != kProtoTcp) f.created_ms32 = static_cast<uint32_t>(now_ms);  // TCP: the window's index
  f.expires_ms = now_ms + settings_.timeout_ms(TimeoutClass::kGeneric);
  if (orig.proto == kProtoTcp) f.tcp_state = TcpState::kNone;
  table_.link(idx);
  if (by_source_.counting()) {
    by_source_.add(orig.src);
    publish_source_count(orig.src);
  }
  if (carried == kNoCarry && claims_.observer) f.status |= claims_.observe(reply);
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

// Inlined into its two callers: it is on every TCP packet's path.
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

TrackVerdict Conntrack::track_reporting(uint32_t idx, int dir, const ParsedPacket& p, uint64_t now_ms) {
  const Flow& f = table_.flow(idx);
  const uint16_t status = f.status;
  const TcpState state = f.tcp_state;
  const TrackVerdict v = track_quiet(idx, dir, p, now_ms);
  // Removed (a RST killed it, or it is reopened): its DESTROY is out.
  if (!(event_mask_ & kEventUpdate) || !table_.in_use(idx)) return v;
  const bool new_state = f.tcp_state != state;
  if (!new_state && !((f.status ^ status) & (kStatusSeenReply | kStatusAssured))) return v;
  if (hold_updates_)
    table_.flow(idx).status |= static_cast<uint16_t>(kStatusEventPending | (new_state ? kStatusEventState : 0));
  else
    emit(idx, kEventUpdate, static_cast<uint8_t>(kShowTimeout | (new_state ? kShowState : 0)), now_ms);
  return v;
}

void Conntrack::deliver(uint32_t idx, uint64_t now_ms) {
  Flow& f = table_.flow(idx);
  const uint16_t held = f.status;
  f.status &= static_cast<uint16_t>(~kStatusEventBits);
  emit(idx, kEventUpdate,
       static_cast<uint8_t>(kShowTimeout | (held & kStatusEventState ? kShowState : 0) |
                            (held & kStatusEventMark ? kShowMark : 0)),
       now_ms);
}

void Conntrack::emit(uint32_t idx, uint8_t type, uint8_t shows, uint64_t now_ms) {
  FlowEvent* slot = events_->claim();
  if (!slot) return;  // counted as lost by the ring
  FlowEvent& e = *slot;
  e.flow = table_.flow(idx);
  e.flow.status &= static_cast<uint16_t>(~kStatusEventBits);
  e.id = uint64_t{claims_.shard.index} << 32 | idx;
  e.at_ms = now_ms;
  e.mark = marks_.size() ? marks_[idx] : 0;
  e.type = type;
  if (e.mark) shows |= kShowMark;
  if (e.flow.tuple[0].proto != kProtoTcp) shows &= static_cast<uint8_t>(~kShowState);
  e.shows = shows;
  events_->commit();
}

TrackVerdict Conntrack::track_held(uint32_t hidx, int dir, const ParsedPacket& p, uint64_t now_ms) {
  Flow& f = held_.flow(hidx);
  TimeoutClass timeout;
  const Step s = advance(f, held_.window(hidx), dir, p, now_ms, &timeout);
  if (s != Step::kRefresh) {
    if (ends(s)) held_.drop(hidx);
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
  held_.touch(hidx);
  return TrackVerdict::kAccept;
}

}  // namespace xnat
