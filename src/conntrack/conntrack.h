// Conntrack: the connection table with netfilter's semantics.
//
// Timers
// ------
// A refresh writes only the flow's expiry time, so the per-packet path touches
// no list. Reclaiming memory is the job of a hashed timer wheel (4096 slots of
// one second): a flow sits in the slot of its expiry as it was when it was
// scheduled. Expiry only moves later on a refresh, so the wheel reaches a flow
// at or before its true expiry; then it is freed if due, or moved to the slot
// of its current expiry. A due slot is spliced onto a sweep list, and each
// burst works off a bounded number of its entries (expire_some), so a second
// in which tens of thousands of flows expire never stalls one burst; a full
// table works it off until it has room. When an expiry moves earlier (a state change such as
// ESTABLISHED -> FIN_WAIT, or a RST) the flow is rescheduled at once. Lookups
// and listings treat a flow whose time has passed as gone, exactly, whatever
// the wheel has reached (netfilter does the same: nf_ct_is_expired).
//
// A full table is never a silent drop
// -----------------------------------
// When nf_conntrack_max flows exist, a new flow takes, in order: an expired
// entry (any the wheel has passed; else the eviction lists' heads or the first
// 16 of the current second's slot, if expired); the oldest TIME_WAIT or CLOSE
// entry whose connection is over (CLOSE, or TIME_WAIT after a FIN from each
// side); the oldest entry never answered
// (UNREPLIED: a SYN the client will retransmit, or a mid-stream pick-up of a
// connection whose entry is gone); the oldest half-closed entry (FIN_WAIT,
// CLOSE_WAIT, LAST_ACK, and TIME_WAIT after one side's FIN only), last,
// because packets of it are still due: data one way, or the final ACK.
// TIME_WAIT with one FIN is not over: netfilter's table takes a retransmitted
// FIN for the second and the next ACK for the last, so a response
// retransmitted after the server's FIN would find its entry gone and leave
// untranslated (from port 80 behind DNAT), and the client resets it. LAST_ACK
// goes before the live states: otherwise the final ACK of an evicted entry is
// picked up as a new, untranslated connection whose tuple collides with the
// client port's next one. These are
// the entries netfilter's early drop may take (unassured, or
// tcp_can_early_drop), but netfilter looks at only a few hash buckets and
// drops the packet if none there qualifies, whereas three FIFO lists find the
// oldest candidate anywhere in O(1). Only when all are empty is the packet
// dropped, counted as table_full.
//
// Evicted flows are held
// ----------------------
// An evicted connection may still be alive: a half-closed one still carries
// data one way, and an unreplied SYN's SYN-ACK may be on its way. Its next
// packet would otherwise be picked up as a new connection and translated by
// the rules alone, which cannot restore a DNAT reply's source or a SNAT
// port: the peer sees a stranger and resets the connection. So evicted
// flows are kept, off the table and outside nf_conntrack_max, in a second
// table of xnat_evicted_hold entries until their own timeout; when it is
// full, the least recently used closed one goes, else the least recently used
// live one, and a closed one never pushes out a live one. A late packet that
// matches one brings it back with its mapping and state (readmitted, counted)
// when the table has room or a dead entry (expired, closed) to give; else the
// packet is translated by the held mapping, which it keeps alive
// (held_frames), and no live entry is evicted for it: that only traded
// places. A SYN on its original tuple is a new connection and forgets it.
// While held, its reply tuple stays reserved: the port allocator skips it, and
// its port claim and directory entry (several workers) stay.
// Closed connections (TIME_WAIT after both FINs, CLOSE) are held too, as
// second class: TIME_WAIT is reached on the first ACK after the second FIN,
// which may be the client's duplicate ACK ahead of the server's final one;
// that final ACK, and FINs retransmitted when it is lost, would find no entry
// and be picked up as a new connection from the server's own port (port 80
// behind DNAT), which the client resets. A held closed flow comes back into
// the table only when there is room.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "conntrack/by_source.h"
#include "conntrack/events.h"
#include "conntrack/flow_observer.h"
#include "conntrack/flow_offload.h"
#include "conntrack/flow_table.h"
#include "conntrack/held_flows.h"
#include "conntrack/reply_claims.h"
#include "conntrack/shard.h"
#include "conntrack/timeouts.h"
#include "conntrack/translated_counts.h"
#include "packet/parse.h"

namespace xnat {

// conntrack -S fields, plus xnat's breakdown of why entries left the table.
struct ConntrackStats {
  uint64_t found = 0;
  uint64_t invalid = 0;
  uint64_t insert = 0;
  uint64_t insert_failed = 0;  // kept for conntrack -S compatibility; xnat never fails an insert
  uint64_t drop = 0;           // new flows refused: table full and nothing to evict
  uint64_t early_drop = 0;     // entries evicted to make room
  uint64_t error = 0;          // ICMP errors that match no flow, or are malformed
  uint64_t expired = 0;
  uint64_t evicted_expired = 0;
  uint64_t evicted_closing = 0;      // TIME_WAIT, CLOSE
  uint64_t evicted_unreplied = 0;
  uint64_t evicted_half_closed = 0;  // FIN_WAIT, CLOSE_WAIT, LAST_ACK
  uint64_t reopened = 0;  // TCP connections reopened from TIME_WAIT/CLOSE
  uint64_t killed = 0;    // deleted by a RST answering a SYN
  uint64_t source_limited = 0;  // new flows refused by xnat_max_flows_per_source
  uint64_t directory_full = 0;  // new flows refused: no room in the workers' directory window
  uint64_t borrowed = 0;        // entries taken over the shared limit for another worker to evict
  uint64_t source_share_full = 0;  // mappings or per-source counts not shared: a SourceMap window full
  uint64_t held = 0;            // evicted flows kept for their late packets
  uint64_t readmitted = 0;      // held flows brought back by a late packet
  uint64_t offloads = 0;           // flows handed to the fast path (flow_offload.h)
  uint64_t offload_full = 0;       // offers the fast path had no room for
  uint64_t offload_withdrawn = 0;  // taken back: FIN or RST, idle, routes changed, reload

  ConntrackStats& operator+=(const ConntrackStats& o) {
    found += o.found, invalid += o.invalid, insert += o.insert, insert_failed += o.insert_failed;
    drop += o.drop, early_drop += o.early_drop, error += o.error, expired += o.expired;
    evicted_expired += o.evicted_expired, evicted_closing += o.evicted_closing;
    evicted_unreplied += o.evicted_unreplied, evicted_half_closed += o.evicted_half_closed;
    reopened += o.reopened, killed += o.killed, source_limited += o.source_limited;
    directory_full += o.directory_full, borrowed += o.borrowed, held += o.held, readmitted += o.readmitted;
    source_share_full += o.source_share_full;
    offloads += o.offloads, offload_full += o.offload_full, offload_withdrawn += o.offload_withdrawn;
    return *this;
  }
};

// Cold per-flow links: the timer wheel slot list and the eviction FIFO.
struct FlowLinks {
  uint32_t wheel_prev = 0, wheel_next = 0;
  uint32_t evict_prev = 0, evict_next = 0;
};

enum class TrackVerdict : uint8_t { kAccept, kInvalid, kReopen };

class Conntrack {
 public:
  Conntrack(const ConntrackSettings& settings, uint64_t seed);
  ~Conntrack();
  Conntrack(const Conntrack&) = delete;
  Conntrack& operator=(const Conntrack&) = delete;

  const ConntrackSettings& settings() const { return settings_; }
  // Takes the settings that may change while the table lives (timeouts, the
  // TCP tracker's flags, nf_conntrack_checksum) and the table's limit, at
  // most its capacity. Flows take new timeouts at their next packet, as in
  // netfilter; a limit below the count drops none, new flows wait for room.
  void retune(const ConntrackSettings& s, uint64_t max);
  uint64_t hash(const Tuple& t) const { return table_.hash(t); }
  void prefetch(uint64_t h) const { table_.prefetch(h); }
  // The index slot a lookup of hash h starts at, brought in as flow lines are.
  void bring_in_slot(uint64_t h) const { table_.bring_in_slot(h); }
  uint32_t prefetch_flow(uint64_t h) const { return table_.prefetch_flow(h); }
  // Once the flow's line has had time to arrive: a TCP flow's window state.
  void prefetch_window(uint32_t ref) const { table_.prefetch_window(ref); }
  // For the n-th packet of a burst that will likely open a flow: loads what
  // insert() will touch at random places (its by-source bucket, and the
  // slot, lines and links the flow will get), so the misses of a burst's
  // new flows overlap instead of coming one after another.
  // Brought in as the table's flow lines are (bring_in).
  // Returns the by-source bucket, for prefetch_new_chain.
  // A TCP one is the burst's n_tcp-th new TCP flow.
  uint32_t prefetch_new(const Tuple& orig, uint32_t n, uint32_t n_tcp) const {
    const bool pf = table_.prefetches();
    const uint32_t bucket = by_source_.bucket(orig);
    bring_in(by_source_.head(bucket), pf);
    const uint32_t idx = table_.prefetch_free(n, orig.proto == kProtoTcp, n_tcp);
    if (idx != kNoRef) bring_in(&links_[idx], pf);
    return bucket;
  }

  // After prefetch_new, once its by-source head has had time to arrive: the
  // first flow of that chain, which insert()'s find_appropriate_src reads
  // first (another source whose hash shares the head, or the same source).
  void prefetch_new_chain(uint32_t bucket) const {
    const uint32_t i = *by_source_.head(bucket);
    if (i != kNoRef) bring_in(&table_.flow(i), table_.prefetches());
  }

  // flow * 2 + direction of the live flow holding `t`, or kNoRef. A flow found
  // past its expiry is deleted on the spot and reported absent.
  uint32_t find(const Tuple& t, uint64_t h, uint64_t now_ms) {
    const uint32_t ref = table_.find(t, h);
    if (ref == kNoRef) return kNoRef;
    if (table_.flow(ref >> 1).expires_ms <= now_ms) [[unlikely]] return remove_expired(ref);
    ++stats_.found;
    return ref;
  }
  // find() with the candidate of a staged bulk lookup (FlowTable::resolve):
  // prefetch(h), then cand = prefetch_flow(h), then this.
  uint32_t find(const Tuple& t, uint64_t h, uint32_t cand, uint64_t now_ms) {
    const uint32_t ref = table_.resolve(cand, t, h);
    if (ref == kNoRef) return kNoRef;
    if (table_.flow(ref >> 1).expires_ms <= now_ms) [[unlikely]] return remove_expired(ref);
    ++stats_.found;
    return ref;
  }
  // Whether a flow holds `t`: in this table, or (several workers) another
  // worker's flow whose reply tuple is in the directory.
  bool tuple_in_use(const Tuple& t, uint64_t now_ms) {
    const uint64_t h = hash(t);
    if (find(t, h, now_ms) != kNoRef) return true;
    if (held_.reserves(t, h)) return true;
    const Shard& s = claims_.shard;
    return s.directory && s.directory->find(FlowDirectory::fingerprint(t, s.seed)) >= 0;
  }

  // Whether a packet may open a new entry (tcp_new, icmp_new): invalid openers
  // such as a lone ACK with tcp_loose off or an ICMP echo reply return false.
  bool can_open(const ParsedPacket& p) const;

  // Whether `src` (network order) already holds xnat_max_flows_per_source
  // flows; always false when no limit is set.
  // With several workers the flows the others hold count too: the limit is
  // the gateway's (at most workers - 1 over, when they admit at once).
  bool source_at_limit(uint32_t src) const {
    if (!by_source_.counting()) return false;
    uint64_t n = by_source_.count(src);
    if (const SourceMap* c = claims_.shard.flow_counts) n += c->sum_others(count_key(src), claims_.shard.index);
    return n >= by_source_.max_per_source();
  }

  // Inserts a flow with the given tuples, making room first if the table is
  // full. Returns the flow index, or kNoRef and why (counted in stats().drop,
  // or in stats().directory_full when its reply tuple could not be entered
  // in the workers' directory).
  enum class InsertFailure : uint8_t { kNone, kTableFull, kDirectoryFull };
  struct Inserted {
    uint32_t idx = kNoRef;
    InsertFailure failure = InsertFailure::kNone;
  };
  Inserted insert(const Tuple& orig, const Tuple& reply, uint64_t now_ms);

  // Applies a packet travelling in direction `dir` to flow `idx`: protocol
  // state, timers, SEEN_REPLY and ASSURED. The flow may be deleted (RST as the
  // only reply); the packet is still accepted then.
  // UDP, the common case with no state machine, is inline; the timer and
  // the lists move only when something changed.
  [[gnu::always_inline]] TrackVerdict track(uint32_t idx, int dir, const ParsedPacket& p, uint64_t now_ms) {
    if (event_mask_) [[unlikely]]
      return track_reporting(idx, dir, p, now_ms);
    return track_quiet(idx, dir, p, now_ms);
  }
  // track() for the first packet of a flow just inserted, whose translation
  // is now final: then its NEW event (netfilter's confirm).
  void track_opening(uint32_t idx, const ParsedPacket& p, uint64_t now_ms) {
    (void)track_quiet(idx, 0, p, now_ms);
    if (event_mask_ & kEventNew) [[unlikely]]
      emit(idx, kEventNew, kShowState | kShowTimeout, now_ms);
  }

  // Events (events.h) into `ring`, of the types in `mask` (0: none; the
  // per-packet cost is then one test).
  void set_events(EventRing* ring, uint8_t mask) {
    events_ = ring;
    event_mask_ = ring ? mask : 0;
  }
  uint8_t event_mask() const { return event_mask_; }
  // With rules after conntrack that may still drop a packet (filter
  // FORWARD), a packet's UPDATE waits for its verdict: netfilter delivers
  // the events a packet caused only once it passes (nf_confirm), merged into
  // one, and keeps those of a dropped packet for the flow's next one.
  void hold_updates(bool on) { hold_updates_ = on; }
  // The packet of flow idx passed: its held UPDATE, if any, goes out.
  void accepted(uint32_t idx, uint64_t now_ms) {
    if (event_mask_ & kEventUpdate) [[unlikely]]
      if (table_.flow(idx).status & kStatusEventPending) deliver(idx, now_ms);
  }
  // A rule changed the connection mark at `ref`: an UPDATE, if it is a
  // table flow's (mark_ref) rather than a held flow's copy.
  void mark_changed(const uint32_t* ref, uint64_t now_ms) {
    if (!(event_mask_ & kEventUpdate) || !marks_.size() || ref < &marks_[0] || ref >= &marks_[0] + marks_.size())
      return;
    const uint32_t idx = static_cast<uint32_t>(ref - &marks_[0]);
    if (hold_updates_) table_.flow(idx).status |= kStatusEventPending | kStatusEventMark;
    else emit(idx, kEventUpdate, kShowMark | kShowTimeout, now_ms);
  }

  void remove(uint32_t idx);

  // Marks flow `idx` as source-translated (IPS_SRC_NAT) and enters it in the
  // by-source index. Its original tuple must be final.
  void set_src_nat(uint32_t idx);
  // Several workers: enters the source-translated flow idx's mapping in the
  // workers' SourceMap of mappings for its source, unless a flow of its source here
  // holds this worker's entry already.
  void share_source(uint32_t idx);
  // That entry's key for a connection's original tuple.
  uint64_t source_key(const Tuple& orig) const;
  // Calls fn(const Flow&) for the live source-translated flows whose original
  // source (address, port or ICMP identifier, protocol) is that of `orig`,
  // until fn returns true; returns whether one did (find_appropriate_src).
  template <typename Fn>
  bool for_each_same_source(const Tuple& orig, uint64_t now_ms, Fn&& fn) const {
    return by_source_.for_each(table_, orig, now_ms, fn);
  }
  // Source-translated flows per translated address and protocol.
  const TranslatedCounts& translated() const { return translated_; }
  // Evicted flows held for their late packets (see the note above).
  bool holds() const { return held_.size() > 0; }
  uint32_t held_count() const { return held_.size(); }
  // held index * 2 + direction of the held flow with `t`, or kNoRef. One past
  // its expiry is forgotten on the spot.
  uint32_t find_held(const Tuple& t, uint64_t h, uint64_t now_ms) { return held_.find(t, h, now_ms); }
  const Flow& held_flow(uint32_t hidx) const { return held_.flow(hidx); }
  // Forgets a held flow (a new connection reuses its original tuple).
  void drop_held(uint32_t hidx) { held_.drop(hidx); }
  // Brings held flow `hidx` back into the table with its mapping and state if
  // there is room, or an expired or closed entry to evict. Returns its new
  // index; else kNoRef and the flow stays held. `*copy` receives the held
  // flow either way.
  uint32_t readmit(uint32_t hidx, uint64_t now_ms, Flow* copy);
  // The protocol part of track(): state, ASSURED, SEEN_REPLY, counters, and
  // (kRefresh) the timeout to run on; no timers or lists.
  // kShorten: invalid, and the timeout is to be cut to the unacknowledged one
  // (TcpDecision::shorten).
  enum class Step : uint8_t { kRefresh, kIgnore, kInvalid, kShorten, kReopen, kKill };
  // track() for a flow that stays held: its state and expiry follow its
  // packets as in the table (kReopen and RST-kills forget it).
  TrackVerdict track_held(uint32_t hidx, int dir, const ParsedPacket& p, uint64_t now_ms);

  // Keeps port claims for flows that end on a host address (live gateway).
  void set_observer(FlowObserver* o) { claims_.observer = o; }
  // The fast path (flow_offload.h). While a flow is offloaded it runs on a
  // day's timeout, renewed by offload_tick, as netfilter's flowtable keeps
  // its entries (nf_ct_offload_timeout); `conntrack -L` shows [OFFLOAD].
  void set_offload(FlowOffload* o);
  bool offloading() const { return offload_ != nullptr; }
  // Offers flow idx with its two paths: true if the fast path took it. Its
  // window tracking turns liberal both ways, as a flowtable's flow's.
  bool offload(uint32_t idx, const OffloadPath (&dirs)[2], uint64_t now_ms);
  // Takes flow idx back: its own timeout runs again, from `packet_ms` (the
  // packet that brought it back) or else from the fast path's last packet,
  // and the highest ACKs its window tracking holds are forgotten, as
  // flow_offload_fixup_tcp does: the fast path's packets moved them on.
  void withdraw(uint32_t idx, uint64_t packet_ms = 0);
  // A segment of offloaded flow idx the engine forwards (FlowOffload::segment).
  void offloaded_segment(uint32_t idx, int dir, const uint8_t* ip) { offload_->segment(idx, dir, ip); }
  // Calls fn(idx, const Flow&) for every offloaded flow; fn may withdraw it.
  template <typename Fn>
  void for_each_offloaded(Fn&& fn) {
    for (size_t i = 0; i < offload_list_.size(); ++i) {
      const uint32_t idx = offload_list_[i];
      if (table_.in_use(idx) && (table_.flow(idx).status & kStatusOffload)) fn(idx, table_.flow(idx));
    }
  }
  // About once a second: an offloaded flow the fast path has not carried a
  // packet of for its timeout is taken back (and expires); the rest are
  // kept a day ahead.
  void offload_tick(uint64_t now_ms);
  uint32_t offloaded() const { return offloaded_; }
  // This table is one worker's share (shard.h): a flow whose reply tuple
  // hashes to another worker is entered in the directory while it lives.
  void set_shard(const Shard& s) { claims_.shard = s; }
  const Shard& shard() const { return claims_.shard; }
  // Frees flows whose expiry passed, up to the last whole second before now.
  void expire(uint64_t now_ms);
  // The same work spread out: slots that are due move onto a sweep list (a
  // splice each) and at most `budget` of its entries are looked at, so the
  // data path never stalls on a second's worth of expirations (at 1 M flows
  // and 30 s lifetimes, 33 000 fall due in one second). A flow past its expiry is
  // gone for lookups and listings either way. until_room: stop at the first
  // one freed once the table has room. Returns the entries looked at.
  size_t expire_some(uint64_t now_ms, size_t budget, bool until_room = false);
  // Several workers: evicts entries this worker can spare while others are
  // over the shared limit (SharedLimit::debt).
  void repay();

  // Connection marks (CONNMARK), kept beside the flows only once asked for
  // (the flow's line is full): 4 bytes per flow of capacity. Whoever
  // inserts a flow sets its mark; a held flow keeps none, and one brought
  // back starts at 0.
  void keep_marks() {
    if (marks_.size() == 0) marks_ = HugeArray<uint32_t>(table_.capacity());
  }
  uint32_t* mark_ref(uint32_t idx) { return marks_.size() ? &marks_[idx] : nullptr; }
  uint32_t mark(const Flow& f) const {
    return marks_.size() ? marks_[static_cast<size_t>(&f - &table_.flow(0))] : 0;
  }

  Flow& flow(uint32_t idx) { return table_.flow(idx); }
  const Flow& flow(uint32_t idx) const { return table_.flow(idx); }
  // A TCP flow's window state; null without window tracking.
  const TcpWindow* window(uint32_t idx) const { return table_.window(idx); }
  uint32_t count() const { return table_.size(); }
  uint32_t capacity() const { return table_.capacity(); }
  const ConntrackStats& stats() const { return stats_; }
  // Refusals decided outside the table that netfilter counts in its
  // conntrack statistics (conntrack -S): an opener that may not open
  // (can_open), a source at its limit, an ICMP error about no entry.
  void count_invalid() { ++stats_.invalid; }
  void count_source_limited() { ++stats_.source_limited; }
  void count_untracked_error() { ++stats_.error; }
  // All memory the table holds, and the part that grows with nf_conntrack_max:
  // per flow of capacity, the flow, its share of the index, its links and its
  // free-stack entry (the timer wheel's 64 KiB of heads is fixed). TCP flows'
  // window state comes on top, 68 B for each of the most TCP flows held at once.
  size_t memory_bytes() const;
  size_t bytes_per_flow() const;
  size_t window_bytes() const { return table_.window_bytes(); }
  uint32_t windows_in_use() const { return table_.windows_in_use(); }
  size_t held_memory_bytes() const { return held_.memory_bytes(); }  // part of memory_bytes(), fixed

  // Whether slot idx holds a live flow (a listing walking the table by index).
  bool live(uint32_t idx, uint64_t now_ms) const {
    return idx < table_.capacity() && table_.in_use(idx) && table_.flow(idx).expires_ms > now_ms;
  }
  // Calls fn(const Flow&) for every live flow, in index order; with a range,
  // for those with an index in [begin, end) (a listing in pieces).
  template <typename Fn>
  void for_each_live(uint64_t now_ms, Fn&& fn, uint32_t begin = 0, uint32_t end = UINT32_MAX) const {
    if (end > table_.capacity()) end = table_.capacity();
    for (uint32_t i = begin; i < end; ++i)
      if (table_.in_use(i) && table_.flow(i).expires_ms > now_ms) fn(table_.flow(i));
  }

 private:
  // carried: the reply claims (status bits) a held flow brings along, or
  // kNoCarry for a new flow that takes its own.
  static constexpr uint32_t kNoCarry = 1u << 16;
  Inserted place(const Tuple& orig, const Tuple& reply, uint64_t now_ms, uint32_t carried = kNoCarry);
  static constexpr uint32_t kWheelSlots = 4096;
  // links_ past the flows: the wheel's slots, the eviction lists, the sweep.
  static constexpr uint32_t kListHeads = kWheelSlots + kEvictLists + 1;
  static constexpr uint64_t kTickMs = 1000;

  Step advance(Flow& f, TcpWindow* w, int dir, const ParsedPacket& p, uint64_t now_ms, TimeoutClass* timeout);
  // find()'s rare case: the flow found is past its expiry. Deletes it; kNoRef.
  uint32_t remove_expired(uint32_t ref);
  [[gnu::always_inline]] TrackVerdict track_quiet(uint32_t idx, int dir, const ParsedPacket& p, uint64_t now_ms) {
    Flow& f = table_.flow(idx);
    if (f.tuple[0].proto != kProtoUdp) return track_stateful(idx, dir, p, now_ms);
    set_expiry(idx, udp_step(f, dir, now_ms), now_ms);
    place_on_evict_list(idx);
    return TrackVerdict::kAccept;
  }
  // track() while events are asked for: an UPDATE if the packet changed what
  // ctnetlink reports (state, SEEN_REPLY, ASSURED).
  TrackVerdict track_reporting(uint32_t idx, int dir, const ParsedPacket& p, uint64_t now_ms);
  // Records an event of flow idx as it is now; `shows` as in events.h, the
  // mark added when set, the state only for TCP.
  [[gnu::cold, gnu::noinline]] void emit(uint32_t idx, uint8_t type, uint8_t shows, uint64_t now_ms);
  // The held UPDATE of flow idx (kStatusEventPending), merged.
  [[gnu::cold, gnu::noinline]] void deliver(uint32_t idx, uint64_t now_ms);
  // track() for every protocol but UDP.
  TrackVerdict track_stateful(uint32_t idx, int dir, const ParsedPacket& p, uint64_t now_ms);
  // advance() for UDP; returns the timeout to run on. nf_conntrack_proto_udp:
  // seen both ways and still active two seconds after creation is a stream,
  // with the longer timeout and ASSURED.
  static TimeoutClass udp_step(Flow& f, int dir, uint64_t now_ms) {
    TimeoutClass t = TimeoutClass::kUdp;
    if ((f.status & kStatusSeenReply) && static_cast<int32_t>(static_cast<uint32_t>(now_ms) - f.created_ms32) > 2000) {
      t = TimeoutClass::kUdpStream;
      f.status |= kStatusAssured;
    }
    if (dir == 1) f.status |= kStatusSeenReply;
    return t;
  }
  // Step::kShorten: the new expiry, or 0 to leave it (nf_tcp_handle_invalid).
  uint64_t shortened_expiry(const Flow& f, uint64_t now_ms) const;
  void set_expiry(uint32_t idx, TimeoutClass c, uint64_t now_ms) {
    Flow& f = table_.flow(idx);
    const uint64_t old = f.expires_ms;
    f.timeout_class = c;
    f.expires_ms = now_ms + settings_.timeout_ms(c);
    // The wheel may pass a flow late but never early; a shorter expiry must
    // move it. (A refresh seldom shortens it: the first test spares the divisions.)
    if (f.expires_ms < old && f.expires_ms / kTickMs < old / kTickMs) [[unlikely]]
      reschedule(idx);
  }
  void reschedule(uint32_t idx);
  void schedule(uint32_t idx);
  void unschedule(uint32_t idx);
  // Moves a flow to the eviction list its state calls for, if not on it.
  void place_on_evict_list(uint32_t idx) {
    const Flow& f = table_.flow(idx);
    // FIN_WAIT..CLOSE: closing if over (connection_over), else half-closed.
    EvictList want = EvictList::kNone;
    if (f.tuple[0].proto == kProtoTcp && tcp_closing(f.tcp_state)) [[unlikely]]
      want = connection_over(f) ? EvictList::kClosing : EvictList::kHalfClosed;
    else if (!(f.status & kStatusSeenReply))
      want = EvictList::kUnreplied;
    if (want != f.evict_list) [[unlikely]]
      move_to_evict_list(idx, want);
  }
  void move_to_evict_list(uint32_t idx, EvictList want);
  bool full() const {
    const SharedLimit* lim = claims_.shard.limit;
    return table_.size() >= max_ ||
           (lim && lim->count.load(std::memory_order_relaxed) >= lim->max.load(std::memory_order_relaxed));
  }
  // false: nothing to evict. live_too: unreplied and half-closed entries may
  // go too, not only expired and closed ones.
  bool make_room(uint64_t now_ms, bool live_too = true);
  bool evict_from(EvictList l);     // the list's oldest entry, counted as an early drop
  bool evict_one();                 // closing, unreplied, half-closed: the oldest of the first non-empty
  bool borrow();                    // several workers: an entry over the limit, another worker to evict one
  void sweep_slot(uint64_t tick);  // moves a due wheel slot's flows onto the sweep list
  // The fast path forgets flow idx, which is leaving the table.
  void drop_offload(uint32_t idx);
  // Unlinks a flow from every list and index and frees it; keep_reply: its
  // port claim and directory entry pass to a held copy.
  void release(uint32_t idx, bool keep_reply = false);
  void pass_source_share(uint32_t idx);
  // Several workers: this worker's count of flows from src, for the others.
  void publish_source_count(uint32_t src);
  uint64_t count_key(uint32_t src) const { return SourceMap::fingerprint(0, src, 0, claims_.shard.seed); }

  uint32_t wheel_head(uint64_t tick) const {
    return table_.capacity() + static_cast<uint32_t>(tick & (kWheelSlots - 1));
  }
  uint32_t evict_head(EvictList l) const {
    return table_.capacity() + kWheelSlots + static_cast<uint32_t>(l) - 1;
  }
  // Head of the flows of due slots not yet looked at (expire_some).
  uint32_t sweep_head() const { return table_.capacity() + kWheelSlots + kEvictLists; }

  FlowOffload* offload_ = nullptr;
  // Offloaded flows, and those taken back or gone since offload_tick last
  // looked; a flag per flow of capacity keeps a flow on it once.
  std::vector<uint32_t> offload_list_;
  std::vector<uint8_t> offload_listed_;
  uint32_t offloaded_ = 0;
  ConntrackSettings settings_;
  TcpPolicy tcp_policy_;  // points into settings_
  FlowTable table_;
  // Per flow of capacity, then the wheel's slot heads, the eviction lists'
  // heads and the sweep list's.
  HugeArray<FlowLinks> links_;
  BySource by_source_;
  uint64_t wheel_done_tick_ = 0;    // every slot up to this tick has been moved onto the sweep list
  bool wheel_started_ = false;
  ConntrackStats stats_;
  uint32_t max_;  // nf_conntrack_max for this table (retune), at most its capacity
  HugeArray<uint32_t> marks_;  // keep_marks()
  EventRing* events_ = nullptr;  // set_events()
  uint8_t event_mask_ = 0;
  bool hold_updates_ = false;
  TranslatedCounts translated_;
  ReplyClaims claims_;
  HeldFlows held_;
};

}  // namespace xnat
