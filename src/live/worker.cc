#include "live/worker.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>

#include "live/steer.h"

namespace xnat {

uint64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

std::vector<uint32_t> host_addresses(const Fib& fib) {
  std::vector<uint32_t> out;
  for (const Interface& i : fib.interfaces())
    if (i.addr) out.push_back(i.addr);  // one that left: none to claim
  for (uint32_t a : fib.other_locals())
    if (out.size() < kMaxHostAddresses) out.push_back(a);
  return out;
}

void set_claim_addrs(LocalClaims* c, const Fib& fib) { c->set_addrs(host_addresses(fib)); }

namespace {

// The runqueue wait of "on-CPU-ns runqueue-wait-ns timeslices\n", re-read
// from offset 0; false if there is nothing to read. (The on-CPU figure of a
// running thread lags until the scheduler next accounts it, a tick or a
// switch; the thread's own clock is exact.)
bool read_runqueue_wait(int fd, uint64_t* wait) {
  if (fd < 0) return false;
  char buf[96];
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return false;
  const char* end = buf + n;
  const char* sp = std::find(static_cast<const char*>(buf), end, ' ');
  return sp != end && std::from_chars(sp + 1, end, *wait).ec == std::errc();
}

}  // namespace

void publish(Worker& w, uint64_t now, uint64_t dump_gen) {
  w.io->update_kernel_stats();
  uint64_t run = 0, wait = 0;
  // Only the worker itself has the file open (a report after the stop
  // publishes from the control thread, and keeps the worker's last figures),
  // so only then is this thread's clock the worker's.
  timespec t;
  const bool sched = read_runqueue_wait(w.schedstat_fd, &wait) && clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) == 0;
  if (sched) run = uint64_t(t.tv_sec) * 1'000'000'000 + uint64_t(t.tv_nsec);
  uint64_t full = 0;
  for (size_t p = 0; p < w.io->ports(); ++p) full += w.io->stats(static_cast<int>(p)).tx_ring_full;
  w.live.v[static_cast<size_t>(Counter::drop_tx_ring_full)] = full;
  std::lock_guard<std::mutex> lock(w.mu);
  w.snap.engine = counter_source(*w.engine);
  w.live.v[static_cast<size_t>(Counter::gso_segmented)] = w.offload.segmented();
  w.snap.live = w.live;
  w.snap.loop_max_ns = w.loop_max_ns;
  if (sched) w.snap.cpu_ns = run, w.snap.runqueue_wait_ns = wait;
  w.snap.ports.resize(w.io->ports());
  for (size_t p = 0; p < w.io->ports(); ++p) {
    w.snap.ports[p] = w.io->stats(static_cast<int>(p));
    if (p < w.ports_before.size()) w.snap.ports[p] += w.ports_before[p];
  }
  w.snap.translated.clear();
  w.engine->conntrack().translated().for_each([&](const TranslatedCounts::Slot& s) { w.snap.translated.push_back(s); });
  if (dump_gen != w.snap.dump_done) {
    w.snap.chunks.push_back(format_conntrack_table(w.engine->conntrack(), now));
    w.snap.dump_done = dump_gen;
  }
}

// Formats the next piece of a listing being built; publishes it when whole.
// Not an atomic snapshot (neither is netfilter's netlink dump): a flow created
// or freed meanwhile may or may not be in it.
namespace {

// Returns whether it did any: a walk waiting for its reader does none.
bool dump_step(Worker& w, uint64_t now) {
  // Table slots per loop: a piece of a full table's listing holds the worker
  // up about 100 us (formatting a line costs about a microsecond), so the
  // frames that arrive meanwhile are fewer than a burst takes.
  constexpr uint32_t kPiece = 128;
  if (w.backlog.load(std::memory_order_relaxed) > Worker::kBacklogMax) return false;
  Conntrack& ct = w.engine->conntrack();
  uint32_t end = std::min<uint64_t>(ct.capacity(), uint64_t{w.dump_next} + kPiece);
  std::string piece;
  if (w.dump_query && w.dump_query->table_count) {
    w.dump_matched = ct.count();
    end = ct.capacity();
  } else if (!w.dump_query) {
    append_conntrack_range(ct, now, w.dump_next, end, &piece);
  } else {
    using C = ConntrackQuery::Command;
    const ConntrackQuery& q = *w.dump_query;
    for (uint32_t i = w.dump_next; i < end; ++i) {
      if (!ct.live(i, now)) continue;
      const Flow& f = ct.flow(i);
      const uint32_t mark = ct.mark(f);
      if (q.command != C::kFlush && !q.matches(f, mark)) continue;
      ++w.dump_matched;
      if (q.command == C::kList || q.command == C::kGet || q.command == C::kDelete) {
        const uint64_t id = uint64_t{w.engine->config().shard.index} << 32 | i;
        q.append(&piece, f, now, mark, id);
      }
      // Its ports and claims freed: its next packet is a new connection.
      if (q.command == C::kDelete || q.command == C::kFlush) ct.remove(i);
    }
  }
  w.dump_next = end;
  // The figures as the walk ends, before it is seen to: a report taken with
  // the listing (SIGUSR1) has both from the same moment, not figures up to a
  // publishing interval older.
  if (end >= ct.capacity()) publish(w, now, w.snap.dump_done);
  std::lock_guard<std::mutex> lock(w.mu);
  if (!piece.empty()) {
    w.backlog.fetch_add(piece.size(), std::memory_order_relaxed);
    w.snap.chunks.push_back(std::move(piece));
  }
  if (end < ct.capacity()) return true;
  w.snap.matched = w.dump_matched;
  w.snap.dump_done = w.dump_gen;
  w.dump_gen = 0;
  w.dump_matched = 0;
  w.dump_query.reset();
  return true;
}

}  // namespace

void run_worker(Worker& w, Shared& sh, const BackendOptions& bo) {
  w.schedstat_fd = ::open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);  // none: figures stay 0
  Engine& engine = *w.engine;
  Backend& io = *w.io;
  Packet pkts[Engine::kBurst];
  const size_t nports = io.ports();
  uint64_t next_tick = 0, next_publish = 0, next_offload_tick = 0, idle_since = now_ms();
  uint64_t last_piece = 0;
  uint64_t host_read_ns = 0;
  bool host_busy = true;
  struct Asked {
    uint32_t addr;
    uint64_t at;
  };
  std::vector<Asked> asked;
  asked.reserve(65);

  // A datagram to leave in fragments: they go as copies, and the packet
  // itself is done (not a drop: the engine counted it as fragmented).
  auto send_fragments = [&](Packet& p) {
    w.offload.fragment(p, [&](Packet& q) { return io.send_copy(q.out_if, q.data, q.len); });
    p.verdict = Verdict::kDrop;
    p.reason = Counter::kCount;
  };
  // After the engine: what the backend does not do itself.
  auto settle = [&](Packet* ps, size_t n, uint64_t now) {
    for (size_t i = 0; i < n; ++i) {
      Packet& p = ps[i];
      switch (p.verdict) {
        case Verdict::kHandoff: {
          HandoffRing* r = w.to[static_cast<size_t>(p.out_if)];
          if (r->push(p))  // whole, offloads and all
            w.peers[static_cast<size_t>(p.out_if)]->wake();
          else
            w.live.inc(Counter::drop_handoff_full);
          break;
        }
        case Verdict::kForward:
          if (p.frag_mtu) [[unlikely]]
            send_fragments(p);
          break;
        case Verdict::kNeighborPending: {
          auto hold = [&](Packet& q) {
            if (!w.held.hold(q, now)) w.live.inc(Counter::drop_neighbor_timeout);
            return true;
          };
          if (p.frag_mtu) [[unlikely]]
            w.offload.fragment(p, hold);
          else
            w.offload.finish(p, hold);
          bool recent = false;
          for (const Asked& a : asked) recent |= a.addr == p.next_hop && now - a.at < 1000;
          if (!recent) {
            {
              std::lock_guard<std::mutex> lock(sh.resolve_mu);
              sh.resolve.emplace_back(bo.ifindexes[static_cast<size_t>(p.out_if)], p.next_hop);
            }
            asked.push_back({p.next_hop, now});
            if (asked.size() > 64) asked.erase(asked.begin());
          }
          break;
        }
        case Verdict::kToHost:
          // Taken from the kernel (transit, or a port a mapping or DNAT rule
          // claims): it reaches the host's stack only through the host port.
          w.offload.finish(p, [&](Packet& q) {
            if (const uint8_t* ip = xnat_ipv4_header(q.data, q.data + q.len)) {  // ARP, IPv6: never taken
              if (!w.host) w.live.inc(Counter::drop_host_port_claimed);
              else if (w.host->write(ip, q.data + q.len)) w.live.inc(Counter::host_port_in);
              else w.live.inc(Counter::drop_host_port_write);
            }
            return true;
          });
          break;
        default:
          break;
      }
    }
  };

  // One clock read per loop: where a loop ends the next begins.
  timespec loop_start;
  clock_gettime(CLOCK_MONOTONIC, &loop_start);
  while (!sh.stop.load(std::memory_order_relaxed)) {
    const uint64_t now = uint64_t(loop_start.tv_sec) * 1000 + uint64_t(loop_start.tv_nsec) / 1000000;
    if (const uint64_t v = sh.fib_version.load(std::memory_order_acquire); v != w.fib_version) {
      std::lock_guard<std::mutex> lock(sh.fib_mu);
      engine.replace_fib(sh.fib);
      set_claim_addrs(&w.claims, engine.fib());
      w.fib_version = v;
    }
    size_t got = 0;
    bool full = false;  // a burst came full: more frames wait
    for (size_t port = 0; port < nports; ++port) {
      size_t n = io.rx(static_cast<int>(port), pkts, Engine::kBurst);
      if (!n) continue;
      got += n;
      full |= n == Engine::kBurst;
      engine.process_burst(pkts, n, now);
      settle(pkts, n, now);
      io.complete(pkts, n);
    }
    // Frames in buffers the backend does not own: sent as copies.
    auto process_copies = [&](size_t n) {
      got += n;
      engine.process_burst(pkts, n, now);
      settle(pkts, n, now);
      for (size_t i = 0; i < n; ++i)
        if (pkts[i].verdict == Verdict::kForward) (void)io.send_packet(pkts[i]);  // settle() sent fragments
    };
    const uint64_t loop_ns = uint64_t(loop_start.tv_sec) * 1'000'000'000 + uint64_t(loop_start.tv_nsec);
    if (w.host_reader && (host_busy || loop_ns - host_read_ns >= 50'000)) {
      // The host's answers on connections translated for it (host_port.h).
      // A read is a system call, too dear for every loop of a busy worker:
      // the host port is read every 50 us (its frames wait at most that
      // long), at once again while it has more, and after every wake-up.
      host_read_ns = loop_ns;
      const size_t n = w.host->rx(pkts, Engine::kBurst);
      host_busy = n > 0;
      if (n) {
        w.live.inc(Counter::host_port_out, n);
        process_copies(n);
      }
    }
    for (HandoffRing* r : w.from) {
      if (!r) continue;
      const size_t n = r->peek(pkts, Engine::kBurst);
      if (!n) continue;
      process_copies(n);
      r->release(n);
    }
    // Later fragments that came ahead of their first, which came since.
    for (size_t n; (n = engine.take_released(pkts, Engine::kBurst, now)) > 0; engine.released_done())
      process_copies(n);
    io.flush();
    if (w.fast) w.fast->publish();

    if (got) idle_since = now;
    if (now >= next_tick) {
      next_tick = now + 10;
      if (w.fast) w.fast->flush(now);
      if (now >= next_offload_tick) {
        next_offload_tick = now + 1000;
        engine.offload_tick(now);
      }
      engine.conntrack().repay();  // other workers' debts, while this one is idle
      // Expiry goes on without traffic too (bursts only work off 64 + 2n
      // entries each): up to 1 024 every 10 ms, about 0.3 ms of work.
      engine.conntrack().expire_some(now, 1024);
      w.live.inc(Counter::drop_neighbor_timeout,
                 w.held.service(engine.fib(), now, [&](int port, const uint8_t* d, uint32_t len) {
                   return io.send_copy(port, d, len);
                 }));
      io.flush();
      if (now >= next_publish) {
        next_publish = now + 100;
        publish(w, now, w.snap.dump_done);  // figures only; the listing is built below
      }
    }
    if (const uint64_t gen = sh.rules_gen.load(std::memory_order_acquire); gen != w.rules_seen) [[unlikely]] {
      w.rules_seen = gen;
      {
        std::lock_guard<std::mutex> lock(sh.query_mu);
        // The old ones go back in the slot, for the control thread to free.
        const size_t i = engine.config().shard.index;
        if (i < sh.rules.size() && sh.rules[i]) engine.swap_rules(*sh.rules[i]);
      }
      std::lock_guard<std::mutex> lock(w.mu);
      w.snap.rules_done = gen;
    }
    if (const uint64_t gen = sh.settings_gen.load(std::memory_order_acquire); gen != w.settings_seen) [[unlikely]] {
      w.settings_seen = gen;
      std::shared_ptr<const ConntrackSettings> s;
      uint64_t max;
      {
        std::lock_guard<std::mutex> lock(sh.query_mu);
        s = sh.settings;
        max = sh.table_max;
      }
      engine.retune(*s, max);
      std::lock_guard<std::mutex> lock(w.mu);
      w.snap.settings_done = gen;
    }
    if (const uint64_t gen = sh.dump_gen.load(std::memory_order_acquire); gen != w.dump_seen) {
      w.dump_seen = gen;
      w.dump_gen = gen;
      w.dump_next = 0;
      w.dump_matched = 0;
      std::lock_guard<std::mutex> lock(sh.query_mu);
      w.dump_query = sh.query;
    }
    if (const uint8_t m = sh.event_mask.load(std::memory_order_relaxed); m != engine.conntrack().event_mask())
      [[unlikely]] engine.conntrack().set_events(w.events.get(), m);
    bool walked = false;
    if (w.dump_gen) [[unlikely]] {
      if (sh.dump_cancel.load(std::memory_order_acquire) == w.dump_gen) {
        // Its reader left: dropped here, its pieces by the control thread.
        std::lock_guard<std::mutex> lock(w.mu);
        w.snap.matched = w.dump_matched;
        w.snap.dump_done = w.dump_gen;
        w.dump_gen = 0;
        w.dump_query.reset();
      } else if (!full || now - last_piece >= 10) {
        // Frames first: while bursts come full the walk takes a piece only
        // every 10 ms, so it still ends.
        walked = dump_step(w, now);
        last_piece = now;
      } else {
        walked = true;  // not done: no sleeping
      }
    }
    {
      // How long the frames of the next burst waited for this loop's work.
      timespec t;
      clock_gettime(CLOCK_MONOTONIC, &t);
      const uint64_t ns = uint64_t(t.tv_sec - loop_start.tv_sec) * 1'000'000'000 + uint64_t(t.tv_nsec) -
                          uint64_t(loop_start.tv_nsec);
      if (got) w.live.inc(Counter::busy_nanoseconds, ns);
      if (ns > 250'000) [[unlikely]] {
        w.live.inc(Counter::loops_over_250us);
        if (ns > 2'000'000) w.live.inc(Counter::loops_over_2ms);
        w.loop_max_ns = std::max(w.loop_max_ns, ns);
      }
      loop_start = t;
    }
    if (!got && !walked && !bo.busy_poll && now - idle_since > 2) {
      w.sleeping.store(true, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      bool pending = false;
      for (HandoffRing* r : w.from) pending |= r && !r->empty();
      if (!pending) io.wait(w.held.size() ? 10 : 100, w.wake_fd, w.host_reader ? w.host->fd() : -1);
      w.sleeping.store(false, std::memory_order_relaxed);
      host_busy = true;  // it may be what woke the worker
      uint64_t drain;
      (void)!::read(w.wake_fd, &drain, sizeof drain);
      clock_gettime(CLOCK_MONOTONIC, &loop_start);
    }
  }
  publish(w, now_ms(), w.snap.dump_done);  // its last figures, for the report after the stop
  if (w.schedstat_fd >= 0) ::close(w.schedstat_fd);
  w.schedstat_fd = -1;
}

}  // namespace xnat
