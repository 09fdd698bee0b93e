// The live gateway's reports: the counters file (SIGUSR1, exit) and the
// periodic --stats screen.
#include <fmt/format.h>

#include "live/gateway.h"

namespace xnat {

std::string Gateway::counters_text(GatewayReport& r) const {
  // The loops' own count of super-frames they cut, beside the engines' counters.
  if (!r.engines.empty()) r.engines[0].counters.inc(Counter::gso_segmented, r.live.get(Counter::gso_segmented));
  std::string c = format_counters(r.engines);
  for (Counter k : {Counter::drop_neighbor_timeout, Counter::drop_host_port_claimed, Counter::drop_tx_ring_full,
                    Counter::drop_handoff_full, Counter::drop_host_port_write})
    if (r.live.get(k)) c += fmt::format("live_{} {}\n", counter_name(k), r.live.get(k));
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
  for (size_t p = 0; p < bo_.ifnames.size(); ++p) {
    const std::string& n = bo_.ifnames[p];
    c += fmt::format("live_rx_{} {}\nlive_tx_{} {}\nlive_rx_ring_dropped_{} {}\n", n, r.ports[p].rx, n, r.ports[p].tx, n,
                     r.ports[p].rx_ring_dropped);
    c += fmt::format("live_rx_gso_{} {}\nlive_tx_gso_{} {}\n", n, r.ports[p].rx_gso, n, r.ports[p].tx_gso);
  }
  if (workers_.size() > 1) c += fmt::format("live_directory_entries {}\n", directory_->size());
  return c;
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
    out += fmt::format("{} handoffs/s: {:.1f}; directory entries: {}\n", t, h / secs, directory_->size());
  }
  return out;
}

}  // namespace xnat
