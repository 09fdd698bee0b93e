// A worker of the live gateway: one run-to-completion thread with its own
// engine (flow table, share of the ports) and its own backend sockets. The
// loop takes bursts from the backend, the host port and the other workers'
// handoff rings, runs the engine, and settles what the backend does not do
// itself (handoffs, frames waiting for a neighbour, frames for the host's
// stack); between bursts it expires flows, serves the neighbour queue,
// publishes its figures and builds a requested listing a piece at a time, and
// sleeps when idle until a frame or a wake-up arrives.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "control/conntrack_query.h"
#include "dataplane/engine.h"
#include "dataplane/report.h"
#include "live/backend.h"
#include "live/fast_path.h"
#include "live/handoff_ring.h"
#include "live/host_port.h"
#include "live/local_claims.h"
#include "live/neighbor_queue.h"
#include "live/software_offload.h"

namespace xnat {

uint64_t now_ms();  // CLOCK_MONOTONIC, the workers' clock

// What the workers share with the control thread.
struct Shared {
  std::atomic<bool> stop{false};
  // The kernel's view, re-read on change; workers copy it between bursts.
  std::mutex fib_mu;
  Fib fib;
  std::atomic<uint64_t> fib_version{0};
  // Next hops to resolve, from the workers to the control thread's rtnetlink socket.
  std::mutex resolve_mu;
  std::vector<std::pair<int, uint32_t>> resolve;  // ifindex, address
  // A walk over every worker's table (a listing, a deletion, a count),
  // generation dump_gen: `query`, or the whole extended listing when null.
  std::atomic<uint64_t> dump_gen{0};
  // A walk whose reader left (a listing's client closed it): the workers
  // drop it where they are.
  std::atomic<uint64_t> dump_cancel{0};
  std::mutex query_mu;
  std::shared_ptr<const ConntrackQuery> query;
  // Settings changed live (`xnat sysctl -w`), generation settings_gen, with
  // each worker's table limit; a worker applies them between bursts.
  std::atomic<uint64_t> settings_gen{0};
  std::shared_ptr<const ConntrackSettings> settings;
  uint64_t table_max = 0;  // under query_mu with settings
  // Rules loaded live (`xnat reload`, SIGHUP, `xnat restore`), generation
  // rules_gen: a copy per worker, made by the control thread; the worker
  // swaps its own in between bursts and leaves the old ones there for the
  // control thread to free, so a large ruleset costs it no copy and no free.
  std::atomic<uint64_t> rules_gen{0};
  std::vector<std::unique_ptr<RuleSet>> rules;  // per worker, under query_mu
  // The connection events someone reads (`xnat conntrack -E`; 0: none): each
  // worker records them into its events ring between bursts' decisions.
  std::atomic<uint8_t> event_mask{0};
};

// A worker's figures as last published, for the control thread.
struct Snapshot {
  CounterSource engine;
  Counters live;
  std::vector<PortStats> ports;
  std::vector<TranslatedCounts::Slot> translated;  // flows per translated address and protocol
  // A walk's output, in the pieces the worker made of it, until the control
  // thread takes them (Worker::backlog counts their bytes).
  std::vector<std::string> chunks;
  uint64_t dump_done = 0;
  uint64_t matched = 0;  // the last walk's flows that matched its query
  uint64_t settings_done = 0;  // the settings generation applied
  uint64_t rules_done = 0;     // the rules generation applied
  uint64_t loop_max_ns = 0;    // the longest loop's work since the start
  // The thread's time as the scheduler counts it (schedstat): on its CPU,
  // and runnable but waiting for it (what a shared CPU costs in latency).
  uint64_t cpu_ns = 0, runqueue_wait_ns = 0;
};

struct Worker {
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Backend> io;
  // What the sockets counted before they were opened again (Gateway::rebind).
  std::vector<PortStats> ports_before;
  LocalClaims claims;
  // The host port (host_port.h), if the rules can translate for the host:
  // every worker writes to it, worker 0 alone reads it (a frame of another
  // worker's flow is handed on, as from an interface).
  HostPort* host = nullptr;
  bool host_reader = false;
  NeighborQueue held;
  Counters live;  // the loop's own drops and figures, beside the engine's
  uint64_t loop_max_ns = 0;
  // /proc/thread-self/schedstat, opened by the worker's thread and closed
  // when it ends (the control thread's publish after the stop reads nothing).
  int schedstat_fd = -1;
  std::vector<HandoffRing*> to;    // to[w]: ring to worker w (null for itself)
  std::vector<HandoffRing*> from;  // from[w]: ring from worker w
  std::vector<Worker*> peers;
  int wake_fd = -1;
  std::atomic<bool> sleeping{false};
  uint64_t fib_version = 0;
  // The generations of the requests taken, kept across a stop and start of
  // the thread (Gateway::rebind): rules are swapped, not set.
  uint64_t dump_seen = 0, settings_seen = 0, rules_seen = 0;
  std::mutex mu;  // guards snap
  Snapshot snap;
  // A walk asked for (SIGUSR1, `xnat conntrack`) is done a piece per loop,
  // between bursts: formatting a table of a million flows at once would
  // stall the worker for about a second. dump_gen is the walk being done
  // (0: none), dump_query its query.
  uint64_t dump_gen = 0;
  uint32_t dump_next = 0;
  std::shared_ptr<const ConntrackQuery> dump_query;
  uint64_t dump_matched = 0;
  // Bytes of snap.chunks not yet taken. Past kBacklogMax the walk waits: a
  // listing goes as fast as its reader takes it, and the worker holds no
  // more than that of it.
  static constexpr uint64_t kBacklogMax = 4 << 20;
  std::atomic<uint64_t> backlog{0};
  SoftwareOffload offload;  // for frames that leave other than through the backend
  std::unique_ptr<FastPath> fast;  // --fast-path: this worker's offloaded connections
  std::unique_ptr<EventRing> events;  // to the control thread (Shared::event_mask)

  // After a push: the consumer may have gone to sleep having seen the ring
  // empty. Its store of `sleeping` and our store of the ring's tail are
  // ordered against the other side's load by the fences (a Dekker pair).
  void wake() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (sleeping.load(std::memory_order_relaxed)) {
      const uint64_t one = 1;
      (void)!::write(wake_fd, &one, sizeof one);
    }
  }
};

// The host's addresses the steering program passes to the kernel and the
// claims are counted on: the interfaces' own, then the host's others, up to
// kMaxHostAddresses in all (the program's local_addrs map holds that many;
// one beyond is forwarded as any address, and the gateway says so).
constexpr size_t kMaxHostAddresses = 1024;
std::vector<uint32_t> host_addresses(const Fib& fib);
void set_claim_addrs(LocalClaims* c, const Fib& fib);

// Publishes the worker's figures (and, when asked, its whole listing) to snap.
void publish(Worker& w, uint64_t now, uint64_t dump_gen);

// Runs until sh.stop.
void run_worker(Worker& w, Shared& sh, const BackendOptions& bo);

}  // namespace xnat
