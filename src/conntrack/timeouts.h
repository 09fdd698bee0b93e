// Conntrack tunables, named after netfilter's sysctls (net.netfilter.*), with
// the kernel's defaults.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "conntrack/flow.h"

namespace xnat {

struct ConntrackSettings {
  uint64_t nf_conntrack_max = 262144;
  uint64_t nf_conntrack_buckets = 0;  // 0: sized from nf_conntrack_max
  bool nf_conntrack_tcp_loose = true;
  bool nf_conntrack_checksum = true;
  // TCP window tracking (tcp_tracker.h). be_liberal: out-of-window segments
  // pass instead of being INVALID; max_retrans: identical ACK segments in a
  // row before the max_retrans timeout applies; ignore_invalid_rst: a RST
  // below the peer's highest ACK is not INVALID.
  bool nf_conntrack_tcp_be_liberal = false;
  bool nf_conntrack_tcp_ignore_invalid_rst = false;
  uint32_t nf_conntrack_tcp_max_retrans = 3;
  // xnat's own: keep TCP window state (64 bytes per flow of capacity). Off, the
  // state machine runs alone, which needs nf_conntrack_tcp_be_liberal = 1.
  bool xnat_tcp_window_tracking = true;
  // xnat's own (netfilter does this with -m connlimit): the most flows one
  // original source address may hold; 0 = no limit. RFC 6888 REQ-4.
  uint32_t xnat_max_flows_per_source = 0;
  // xnat's own: how many evicted flows are kept, off the table and outside
  // nf_conntrack_max, for their late packets (conntrack.h, "Evicted flows are
  // held"). 0 turns holding off.
  uint32_t xnat_evicted_hold = 4096;
  // Timeouts in seconds, indexed by TimeoutClass.
  std::array<uint32_t, static_cast<size_t>(TimeoutClass::kCount)> timeout_s = {
      120,     // nf_conntrack_tcp_timeout_syn_sent
      60,      // nf_conntrack_tcp_timeout_syn_recv
      432000,  // nf_conntrack_tcp_timeout_established
      120,     // nf_conntrack_tcp_timeout_fin_wait
      60,      // nf_conntrack_tcp_timeout_close_wait
      30,      // nf_conntrack_tcp_timeout_last_ack
      120,     // nf_conntrack_tcp_timeout_time_wait
      10,      // nf_conntrack_tcp_timeout_close
      120,     // nf_conntrack_tcp_timeout_syn_sent2
      300,     // nf_conntrack_tcp_timeout_max_retrans
      300,     // nf_conntrack_tcp_timeout_unacknowledged
      30,      // nf_conntrack_udp_timeout
      120,     // nf_conntrack_udp_timeout_stream
      30,      // nf_conntrack_icmp_timeout
      600,     // nf_conntrack_generic_timeout
  };

  uint64_t timeout_ms(TimeoutClass c) const {
    return uint64_t{timeout_s[static_cast<size_t>(c)]} * 1000;
  }

  // Sets a tunable by its sysctl name (without "net.netfilter."). Returns an
  // error a person can act on.
  Status set(std::string_view name, int64_t value);
  // The value of a tunable `set` understands; nullopt for any other name.
  std::optional<uint64_t> get(std::string_view name) const;
  // Checks the settings together, once all are set.
  Status check() const;
  // All names `set` understands, for documentation and error messages.
  static std::string known_names();
};

const char* timeout_sysctl_name(TimeoutClass c);

}  // namespace xnat
