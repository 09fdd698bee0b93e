// The live gateway's reports: the counters file (SIGUSR1, exit) and the
// periodic --stats screen.
#include <fmt/format.h>

#include <tuple>

#include "live/gateway.h"

namespace xnat {

std::string Gateway::counters_text(GatewayReport& r) const {
  // The loops' own count of super-frames they cut, beside the engines' counters.
  if (!r.engines.empty()) r.engines[0].counters.inc(Counter::gso_segmented, r.live.get(Counter::gso_segmented));
  std::string c = format_counters(r.engines);
  for (Counter k : {Counter::drop_neighbor_timeout, Counter::drop_host_port_claimed, Counter::drop_tx_ring_full,
                    Counter::drop_handoff_full, Counter::drop_host_port_write})
    if (r.live.get(k)) c += fmt::format("live_{} {}\n", counter_name(k), r.live.get(k));
  for (Counter k : {Counter::loops_over_250us, Counter::loops_over_2ms, Counter::busy_nanoseconds})
    c += fmt::format("live_{} {}\n", counter_name(k), r.live.get(k));
  if (host_) {
    c += fmt::format("live_host_port_in {}\nlive_host_port_out {}\nlive_host_replies_failed {}\n",
                     r.live.get(Counter::host_port_in), r.live.get(Counter::host_port_out),
                     host_replies_.failed.load(std::memory_order_relaxed));
    c += fmt::format("live_host_port_steered {}\n", platform_.steering->host_port_steered());
    // The host's frames the tun device's queue had no room for (the gateway
    // did not read them in time): the kernel counts them, as the device's
    // transmit drops.
    c += fmt::format("live_host_port_queue_dropped {}\n", host_->queue_dropped());
  }
  c += fmt::format("live_vlan_to_kernel {}\n", platform_.steering->vlan_to_kernel());
  c += fmt::format("live_masquerade_forgotten {}\n", masq_forgotten_.load(std::memory_order_relaxed));
  c += fmt::format("live_interface_rebinds {}\n", rebinds_.load(std::memory_order_relaxed));
  if (workers_[0]->fast) {
    // The tc program's own figures: frames that never reached a worker.
    const Steering::FastPathStats f = platform_.steering->fast_path_stats();
    c += fmt::format("live_fast_path_frames {}\nlive_fast_path_bytes {}\nlive_fast_path_dropped {}\n", f.frames,
                     f.bytes, f.dropped);
    c += fmt::format("live_fast_path_opened {}\nlive_fast_path_opened_late {}\n", f.opened, f.opened_late);
  }
  for (size_t p = 0; p < bo_.ifnames.size(); ++p) {
    const std::string& n = bo_.ifnames[p];
    c += fmt::format("live_rx_{} {}\nlive_tx_{} {}\nlive_rx_ring_dropped_{} {}\n", n, r.ports[p].rx, n, r.ports[p].tx, n,
                     r.ports[p].rx_ring_dropped);
    c += fmt::format("live_rx_gso_{} {}\nlive_tx_gso_{} {}\nlive_tx_coalesced_{} {}\n", n, r.ports[p].rx_gso, n,
                     r.ports[p].tx_gso, n, r.ports[p].tx_coalesced);
    c += fmt::format("live_rx_bytes_{} {}\nlive_tx_bytes_{} {}\n", n, r.ports[p].rx_bytes, n, r.ports[p].tx_bytes);
    c += fmt::format("live_rx_csum_valid_{} {}\n", n, r.ports[p].rx_csum_valid);
    c += fmt::format("live_socket_errors_{} {}\n", n, r.ports[p].socket_errors);
  }
  if (workers_.size() > 1)
    c += fmt::format("live_directory_entries {}\nlive_source_mappings {}\n", directory_->size(), mappings_->size());
  c += fmt::format("live_loop_max_ns {}\n", r.loop_max_ns);
  for (size_t w = 0; w < r.worker_times.size(); ++w)
    c += fmt::format("live_worker{}_cpu_nanoseconds {}\nlive_worker{}_runqueue_wait_nanoseconds {}\n", w,
                     r.worker_times[w].cpu_ns, w, r.worker_times[w].runqueue_wait_ns);
  return c;
}

// Prometheus' text format: a family per figure, named by its conventions
// (xnat_ prefix, _total for counters), each with its HELP.
std::string Gateway::metrics_text() {
  GatewayReport r = report(false);
  std::string out;
  auto family = [&](const std::string& name, const char* type, const std::string& help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  auto counter = [&](const std::string& name, const std::string& help, uint64_t v) {  // a family of one
    family(name, "counter", help);
    out += fmt::format("{} {}\n", name, v);
  };
  Counters all = r.live;
  ConntrackStats st;
  uint64_t entries = 0;
  for (const CounterSource& s : r.engines) {
    for (size_t c = 0; c < kCounterCount; ++c) all.v[c] += s.counters.v[c];
    st += s.stats;
    entries += s.count;
  }
  family("xnat_conntrack_entries", "gauge", "Connections in the table (nf_conntrack_count).");
  out += fmt::format("xnat_conntrack_entries {}\n", entries);
  family("xnat_conntrack_limit", "gauge", "The table's limit (nf_conntrack_max).");
  out += fmt::format("xnat_conntrack_limit {}\n", total_max_);
  family("xnat_drops_total", "counter", "Frames dropped, by reason (README's counter table).");
  for (size_t c = 0; c < kDropReasonCount; ++c)
    out += fmt::format("xnat_drops_total{{reason=\"{}\"}} {}\n", counter_name(static_cast<Counter>(c)) + 5, all.v[c]);
  for (size_t c = kDropReasonCount; c < kCounterCount; ++c) {
    if (static_cast<Counter>(c) == Counter::busy_nanoseconds) {  // Prometheus' unit is the second
      family("xnat_worker_busy_seconds_total", "counter", counter_description(Counter::busy_nanoseconds));
      out += fmt::format("xnat_worker_busy_seconds_total {:.9f}\n", all.v[c] / 1e9);
      continue;
    }
    const std::string name = fmt::format("xnat_{}_total", counter_name(static_cast<Counter>(c)));
    family(name, "counter", counter_description(static_cast<Counter>(c)));
    out += fmt::format("{} {}\n", name, all.v[c]);
  }
  family("xnat_conntrack_evictions_total", "counter", "Entries evicted to make room, by the list they were taken from.");
  for (const auto& [list, n] : {std::pair{"expired", st.evicted_expired}, {"closing", st.evicted_closing},
                                {"unreplied", st.evicted_unreplied}, {"half_closed", st.evicted_half_closed}})
    out += fmt::format("xnat_conntrack_evictions_total{{list=\"{}\"}} {}\n", list, n);
  counter("xnat_conntrack_held_total", "Evicted connections kept for their late packets.", st.held);
  counter("xnat_conntrack_readmitted_total", "Held connections brought back by a late packet.", st.readmitted);
  counter("xnat_conntrack_offloads_total", "Connections handed to the kernel-side fast path.", st.offloads);
  counter("xnat_conntrack_offload_full_total", "Offers of a connection the fast path had no room for.",
          st.offload_full);
  counter("xnat_conntrack_offload_withdrawn_total",
          "Connections taken back from the fast path: FIN or RST, idle, routes or MTU changed, reload.",
          st.offload_withdrawn);
  counter("xnat_conntrack_table_full_total", "New connections refused: the table full, nothing to evict.", st.drop);
  counter("xnat_conntrack_masquerade_forgotten_total",
          "Masqueraded connections deleted because their address left its interface or the interface went down.",
          masq_forgotten_.load(std::memory_order_relaxed));
  counter("xnat_interface_rebinds_total",
          "Interfaces attached again because the kernel made them anew under their name (deleted and created).",
          rebinds_.load(std::memory_order_relaxed));
  if (workers_[0]->fast) {
    // The tc program's own figures (--fast-path): frames no worker saw.
    const Steering::FastPathStats f = platform_.steering->fast_path_stats();
    counter("xnat_fast_path_frames_total", "Frames the fast path forwarded itself.", f.frames);
    counter("xnat_fast_path_bytes_total", "Bytes of the frames the fast path forwarded.", f.bytes);
    counter("xnat_fast_path_dropped_total",
            "Frames the fast path dropped: a rewrite failing half-way, or one XDP passed on it could not take.",
            f.dropped);
    family("xnat_fast_path_opened_total", "counter",
           "Directions of offloaded connections the fast path took over: in order, behind the segments the worker "
           "had of them, or late, when the worker had not sent those within 20 ms.");
    out += fmt::format("xnat_fast_path_opened_total{{order=\"in_order\"}} {}\n", f.opened);
    out += fmt::format("xnat_fast_path_opened_total{{order=\"late\"}} {}\n", f.opened_late);
  }
  // Per interface: traffic, receive overflows, and what the hosts' and the
  // devices' offloads left in the frames (README, "Hosts as they come").
  for (const auto& [name, help, field] :
       {std::tuple{"xnat_interface_received_packets_total", "Frames received, per interface.", &PortStats::rx},
        {"xnat_interface_transmitted_packets_total", "Frames sent, per interface.", &PortStats::tx},
        {"xnat_interface_received_bytes_total", "Bytes of the frames received, per interface.", &PortStats::rx_bytes},
        {"xnat_interface_transmitted_bytes_total", "Bytes of the frames sent, per interface.", &PortStats::tx_bytes},
        {"xnat_interface_rx_ring_dropped_total",
         "Frames the kernel could not put on the receive ring (it was full), per interface.",
         &PortStats::rx_ring_dropped},
        {"xnat_interface_rx_gso_total", "TSO/GSO super-frames received whole, per interface.", &PortStats::rx_gso},
        {"xnat_interface_tx_gso_total", "Super-frames sent whole, per interface.", &PortStats::tx_gso},
        {"xnat_interface_tx_coalesced_total",
         "TCP segments sent inside an earlier segment's super-frame, per interface.", &PortStats::tx_coalesced},
        {"xnat_interface_rx_checksum_verified_total",
         "Frames whose checksum the device or GRO had verified, not verified again, per interface.",
         &PortStats::rx_csum_valid},
        {"xnat_interface_socket_errors_total",
         "Errors the kernel reported on the interface's socket: each time it went down (af_packet), per interface.",
         &PortStats::socket_errors}}) {
    family(name, "counter", help);
    for (size_t p = 0; p < r.ports.size(); ++p)
      out += fmt::format("{}{{interface=\"{}\"}} {}\n", name, bo_.ifnames[p], r.ports[p].*field);
  }
  counter("xnat_vlan_to_kernel_total",
          "VLAN-tagged frames the steering program left to the kernel: a VLAN's device takes them.",
          platform_.steering->vlan_to_kernel());
  // The port pools: flows on each translated address beside the ports it
  // offers a connection. A pool is exhausted for one destination when the
  // flows from the address to it reach its ports (drop_no_port counts what
  // then finds no port).
  family("xnat_nat_pool_ports", "gauge",
         "Ports a source translation to the address may give a connection (from a port >= 1024), per SNAT or "
         "MASQUERADE address.");
  for (const PortPool& p : pools_)
    out += fmt::format("xnat_nat_pool_ports{{address=\"{}\"}} {}\n", ip_to_string(p.addr), p.ports);
  family("xnat_nat_translated_flows", "gauge", "Source-translated connections, by translated address and protocol.");
  for (const PortPool& p : pools_)
    for (uint8_t proto : {kProtoTcp, kProtoUdp, kProtoIcmp}) {
      const auto it = r.translated.find({p.addr, proto});
      out += fmt::format("xnat_nat_translated_flows{{address=\"{}\",proto=\"{}\"}} {}\n", ip_to_string(p.addr),
                         proto == kProtoTcp ? "tcp" : proto == kProtoUdp ? "udp" : "icmp",
                         it == r.translated.end() ? 0 : it->second);
    }
  family("xnat_conntrack_event_readers", "gauge", "Readers of connection events (xnat conntrack -E).");
  out += fmt::format("xnat_conntrack_event_readers {}\n", events_.readers());
  family("xnat_conntrack_events_lost_total", "counter",
         "Connection events lost: a worker's ring found full, or a reader too far behind.");
  out += fmt::format("xnat_conntrack_events_lost_total{{cause=\"ring_full\"}} {}\n", events_.lost_in_rings());
  out += fmt::format("xnat_conntrack_events_lost_total{{cause=\"reader_behind\"}} {}\n", events_.lost_by_readers());
  family("xnat_worker_cpu_seconds_total", "counter", "Time each worker's thread ran on its CPU (the scheduler's count).");
  for (size_t w = 0; w < r.worker_times.size(); ++w)
    out += fmt::format("xnat_worker_cpu_seconds_total{{worker=\"{}\"}} {:.9f}\n", w, r.worker_times[w].cpu_ns / 1e9);
  family("xnat_worker_runqueue_wait_seconds_total", "counter",
         "Time each worker's thread was runnable but waited for its CPU, frames waiting with it: the CPU is shared "
         "(--worker-cpus).");
  for (size_t w = 0; w < r.worker_times.size(); ++w)
    out += fmt::format("xnat_worker_runqueue_wait_seconds_total{{worker=\"{}\"}} {:.9f}\n", w,
                       r.worker_times[w].runqueue_wait_ns / 1e9);
  family("xnat_worker_loop_max_seconds", "gauge",
         "The longest a worker's loop has worked (bursts, expiry, control requests) since the start, if over 250 us.");
  out += fmt::format("xnat_worker_loop_max_seconds {:.6f}\n", r.loop_max_ns / 1e9);
  family("xnat_workers", "gauge", "Worker threads.");
  out += fmt::format("xnat_workers {}\n", workers_.size());
  return out;
}

std::string Gateway::stats_text(double secs, const std::string& t) {
  GatewayReport r = report(false);
  uint32_t flows = 0;
  Counters all;
  for (const CounterSource& s : r.engines) {
    flows += s.count;
    for (size_t c = 0; c < kCounterCount; ++c) all.v[c] += s.counters.v[c];
  }
  std::string out = fmt::format("{} {:<15} {:>10} {:>10} {:>10} {:>10} {:>10}\n", t, "IFACE", "rxpck/s", "txpck/s",
                                "rxfull/s", "txfull/s", "flows");
  for (size_t p = 0; p < r.ports.size(); ++p) {
    const PortStats& s = r.ports[p];
    PortStats& l = last_ports_[p];
    out += fmt::format("{} {:<15} {:>10.1f} {:>10.1f} {:>10.1f} {:>10.1f} {:>10}\n", t, bo_.ifnames[p],
                       (s.rx - l.rx) / secs, (s.tx - l.tx) / secs, (s.rx_ring_dropped - l.rx_ring_dropped) / secs,
                       (s.tx_ring_full - l.tx_ring_full) / secs, flows);
    l = s;
  }
  std::string drops;
  for (size_t c = 0; c < kDropReasonCount; ++c) {
    const uint64_t d = all.v[c] + r.live.v[c] - last_counters_.v[c];
    if (d) drops += fmt::format(" {} {:.1f}", counter_name(static_cast<Counter>(c)), d / secs);
    last_counters_.v[c] = all.v[c] + r.live.v[c];
  }
  out += fmt::format("{} drops/s:{}\n", t, drops.empty() ? " none" : drops);
  if (workers_.size() > 1) {
    const uint64_t h = all.get(Counter::handoffs) - last_counters_.get(Counter::handoffs);
    last_counters_.v[static_cast<size_t>(Counter::handoffs)] = all.get(Counter::handoffs);
    out += fmt::format("{} handoffs/s: {:.1f}; directory entries: {}; shared source mappings: {}\n", t, h / secs,
                       directory_->size(), mappings_->size());
  }
  return out;
}

}  // namespace xnat
