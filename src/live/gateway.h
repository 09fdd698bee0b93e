// The live gateway: from a configuration and a Platform (platform.h) it takes
// the rest from the kernel, opens each worker's frame I/O, starts the workers
// (one, or several sharing the flows: conntrack/shard.h), and attaches the
// steering program once their sockets exist. The control thread then calls
// poll() to follow the kernel (addresses, routes, neighbours) and to resolve
// the next hops workers wait for; reports come from the workers' published
// snapshots. stop() joins the workers and detaches everything, so the
// interfaces are the kernel's again.
#pragma once

#include <atomic>
#include <map>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "control/config.h"
#include "live/control_server.h"
#include "live/event_readers.h"
#include "live/platform.h"
#include "live/worker.h"
#include "nat/pools.h"

namespace xnat {

struct RunOptions {
  std::string config;
  std::string backend = "auto";  // "af_xdp", "af_packet", or chosen (backend_choice.h)
  std::string backend_reason;    // why auto chose it, for the banner and `xnat status`
  int workers = 1;
  int stats_interval = 0;     // seconds; 0: no periodic report
  std::string conntrack_out;  // written on exit (and on SIGUSR1): conntrack -L -o extended
  std::string counters_out;   // written on exit (and on SIGUSR1)
  std::string control = "/run/xnat/xnat.sock";  // the control socket; empty: none
  std::string metrics;  // ADDRESS:PORT for Prometheus; empty: none
  bool busy_poll = false;
  // af_packet: established TCP connections forwarded by the tc program
  // (live/fast_path.h, conntrack/flow_offload.h).
  bool fast_path = false;
  uint32_t ring_size = 2048;
  // A CPU list (cpus.h): worker i runs on its i-th CPU only; empty: the
  // scheduler places them.
  std::string worker_cpus;
  // A CPU list: RPS over these CPUs on each of the gateway's interfaces
  // without a mask, for the run (live/receive_order.h); empty: none.
  std::string rps_cpus;
  // GRO on the gateway's interfaces for the run (live/receive_coalescing.h):
  // "auto" (af_packet's veths), "on" (every interface), "keep".
  std::string gro = "auto";
};

// `xnat run`: returns the process exit code; errors are printed to stderr.
int run_gateway(const RunOptions& o);

// The workers' figures summed, as of their last snapshots (or, stopped, now).
struct GatewayReport {
  std::vector<CounterSource> engines;  // one per worker
  Counters live;                       // the loops' own counts
  std::vector<PortStats> ports;        // per interface
  std::string table;                   // conntrack listing, when asked for
  uint64_t loop_max_ns = 0;  // the longest worker loop's work (over 250 us), any worker
  // Per worker, the scheduler's count: time on its CPU, and runnable but
  // waiting for it.
  struct WorkerTime {
    uint64_t cpu_ns = 0, runqueue_wait_ns = 0;
  };
  std::vector<WorkerTime> worker_times;
  // Source-translated flows per translated address and protocol, all workers'.
  std::map<std::pair<uint32_t, uint8_t>, uint64_t> translated;
};

class Gateway {
 public:
  // cfg as loaded (ConfigMode::kLive); the platform must outlive the gateway.
  static Result<std::unique_ptr<Gateway>> start(EngineConfig cfg, const RunOptions& o, Platform& platform);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // One turn of the control loop: a changed kernel's state to the workers and
  // the steering program, next hops the workers asked for to the kernel.
  void poll();
  // Asks every worker for its conntrack listing, built a piece per loop, and
  // waits for them (bounded: about a second per million slots).
  void collect_listing();
  // With the workers running, from their snapshots (the table only after
  // collect_listing); stopped, from the engines.
  GatewayReport report(bool with_table);
  // The counters file: engines' counters, then the loops' and the ports'.
  std::string counters_text(GatewayReport& r) const;
  // Prometheus' text exposition (metrics_server.h).
  std::string metrics_text();
  // One screen of rates since the last call, for --stats.
  std::string stats_text(double secs, const std::string& clock);
  void stop();
  // Why the gateway cannot go on (its workers stopped), or empty.
  const std::string& broken() const { return broken_; }
  // A request from the control socket (control_server.h): conntrack, sysctl, status.
  ControlReply control(const std::vector<std::string>& args);

  uint32_t workers() const { return static_cast<uint32_t>(workers_.size()); }
  const Engine& engine(uint32_t w) const { return *workers_[w]->engine; }
  const std::vector<std::string>& ifnames() const { return bo_.ifnames; }
  std::string banner() const;  // the start-up line
  // With --worker-cpus, the CPUs the workers left for the other threads
  // (empty: none, or no --worker-cpus).
  const std::vector<int>& control_cpus() const { return control_cpus_; }

 private:
  Gateway(Platform& p) : platform_(p) {}
  void drain_log();  // the workers' -j LOG lines, to stderr
  // The port pools of the source translations, from the rules and the
  // interfaces' addresses (nat/pools.h), again when either changes.
  void update_pools();
  // The event types read now, to the workers; their events to the readers.
  void pump_events();
  // Has every worker walk its table with q (null: the whole listing);
  // false if they did not finish in time.
  // Appends what they print to *out (if not null).
  bool walk(std::shared_ptr<const ConntrackQuery> q, std::string* out);
  // Starts a walk; its generation.
  uint64_t start_walk(std::shared_ptr<const ConntrackQuery> q);
  // Takes the pieces the workers have published (appended to *out if not
  // null); whether every worker has finished walk `gen`.
  bool take_chunks(uint64_t gen, std::string* out);
  class ListingStream;
  // Wakes the workers and waits until each has published generation `gen`
  // in snap.*done; false after timeout_ms.
  bool await(uint64_t Snapshot::*done, uint64_t gen, int timeout_ms);
  ControlReply conntrack(const std::vector<std::string>& args);
  ControlReply sysctl(const std::vector<std::string>& args);
  // Loads the configuration file again, or (rules_text) the rules given;
  // all or nothing.
  ControlReply reload(const std::string* rules_text);
  ControlReply sysctl_write(const std::vector<std::pair<std::string, std::string>>& writes);
  std::string status_text();
  uint64_t live_count();  // the flows in the tables now
  // MASQUERADE's cleanup, as nf_nat_masquerade's notifiers do it: an
  // address that left one of the gateway's interfaces (`next`, the FIB about
  // to be applied, has another or none), or the address of one that went
  // down, is noted, and the connections masqueraded to it are deleted.
  void note_masquerade_losses(const KernelState& now, const Fib* next);
  // Interface `i`'s programs (attach, and the fast path's beside XDP).
  Status attach_port(size_t i);
  // RPS and GRO on the interfaces, as the options ask.
  void set_receive();
  Status start_workers();
  void stop_workers();
  // Interfaces the kernel now has under a new ifindex: attached again.
  Status rebind(const KernelState& k);
  // Says which of the kernel's policy routing rules the gateway does not
  // follow, when they are not those `before`.
  void warn_policy_rules(const std::vector<std::string>& before) const;
  // The host's addresses to the steering program (host_addresses).
  Status set_host_addresses(const Fib& fib);
  void forget_masqueraded();
  Status open(EngineConfig cfg, const RunOptions& o);

  // The map of reply tuples the host port's egress program takes (steering).
  struct HostReplies {
    Steering* steering = nullptr;
    std::atomic<uint64_t> failed{0};  // entries the kernel refused: those answers leave untranslated
  };
  static void set_host_reply(void* ctx, const Tuple& reply, bool add);

  Platform& platform_;
  EngineConfig cfg_;
  // The config's own interfaces, routes and neighbours: what the kernel's
  // changes are laid over (live_fib), so an address or MAC the config
  // leaves to the kernel follows the kernel's (cfg_.fib is the FIB at start).
  Fib conf_fib_;
  BackendOptions bo_;
  uint64_t total_max_ = 0;
  uint64_t start_max_ = 0;  // nf_conntrack_max the tables were built for
  std::string config_path_;
  std::string backend_reason_;
  std::unique_ptr<HostPort> host_;
  std::unique_ptr<ReceiveOrder> receive_order_;
  std::unique_ptr<ReceiveCoalescing> coalescing_;
  HostReplies host_replies_;
  SharedLimit limit_;
  std::unique_ptr<FlowDirectory> directory_;
  std::unique_ptr<SourceMap> mappings_;     // several workers
  std::unique_ptr<SourceMap> flow_counts_;  // several workers, xnat_max_flows_per_source
  Shared sh_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::unique_ptr<HandoffRing>> rings_;
  std::vector<std::thread> threads_;
  std::vector<int> worker_cpus_, control_cpus_, rps_cpus_;
  std::vector<std::pair<int, uint32_t>> resolve_;
  EventReaders events_;
  uint64_t streamed_walk_ = 0;  // the walk a streamed listing (-L) is doing, 0: none
  uint64_t listing_gone_ = 0;   // the walk whose stream went away
  std::string listing_;         // collect_listing's
  std::vector<PortPool> pools_;
  KernelState kernel_;  // as last read
  struct MasqueradeLoss {
    uint32_t addr;
    size_t port;
    bool down;  // the interface went down (else the address left it)
  };
  std::vector<MasqueradeLoss> masq_lost_;  // not yet forgotten
  std::atomic<uint64_t> masq_forgotten_{0};  // connections deleted for them (read by the metrics' thread)
  bool stopped_ = false;
  bool fast_path_ = false;
  std::string gro_;  // --gro
  std::atomic<uint64_t> rebinds_{0};  // interfaces attached again as new devices (read by the metrics' thread)
  std::string unapplied_;  // why the kernel's last change was not applied, as said
  bool redump_ = false;    // the last dump failed
  bool addresses_capped_ = false, addresses_failed_ = false;  // said once
  std::string broken_;     // why the gateway cannot go on
  uint64_t started_ms_ = 0;
  // stats_text's previous figures.
  std::vector<PortStats> last_ports_;
  Counters last_counters_;
};

}  // namespace xnat
