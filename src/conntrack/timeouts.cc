#include "conntrack/timeouts.h"

#include <fmt/format.h>

namespace xnat {

const char* tcp_state_name(TcpState s) {
  static constexpr const char* kNames[] = {"NONE",       "SYN_SENT",  "SYN_RECV", "ESTABLISHED",
                                           "FIN_WAIT",   "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT",
                                           "CLOSE",      "SYN_SENT2"};
  return kNames[static_cast<int>(s)];
}

const char* timeout_sysctl_name(TimeoutClass c) {
  static constexpr const char* kNames[] = {
      "nf_conntrack_tcp_timeout_syn_sent",    "nf_conntrack_tcp_timeout_syn_recv",
      "nf_conntrack_tcp_timeout_established", "nf_conntrack_tcp_timeout_fin_wait",
      "nf_conntrack_tcp_timeout_close_wait",  "nf_conntrack_tcp_timeout_last_ack",
      "nf_conntrack_tcp_timeout_time_wait",   "nf_conntrack_tcp_timeout_close",
      "nf_conntrack_tcp_timeout_syn_sent2",   "nf_conntrack_tcp_timeout_max_retrans",
      "nf_conntrack_tcp_timeout_unacknowledged", "nf_conntrack_udp_timeout",
      "nf_conntrack_udp_timeout_stream",      "nf_conntrack_icmp_timeout",
      "nf_conntrack_generic_timeout"};
  static_assert(std::size(kNames) == static_cast<size_t>(TimeoutClass::kCount));
  return kNames[static_cast<int>(c)];
}

Status ConntrackSettings::set(std::string_view name, int64_t value) {
  auto need_range = [&](int64_t lo, int64_t hi) -> Status {
    if (value < lo || value > hi)
      return Error{fmt::format("{} = {} is out of range; expected {}..{}", name, value, lo, hi)};
    return {};
  };
  for (size_t i = 0; i < static_cast<size_t>(TimeoutClass::kCount); ++i) {
    if (name == timeout_sysctl_name(static_cast<TimeoutClass>(i))) {
      // Upper bound: the kernel stores timeouts in jiffies (u32); 30 days is ample.
      if (auto r = need_range(1, 30 * 86400); !r) return r;
      timeout_s[i] = static_cast<uint32_t>(value);
      return {};
    }
  }
  if (name == "nf_conntrack_max") {
    // Indices are 32-bit with one bit for the direction.
    if (auto r = need_range(1, int64_t{1} << 30); !r) return r;
    nf_conntrack_max = static_cast<uint64_t>(value);
  } else if (name == "nf_conntrack_buckets") {
    if (auto r = need_range(0, int64_t{1} << 31); !r) return r;
    nf_conntrack_buckets = static_cast<uint64_t>(value);
  } else if (name == "nf_conntrack_tcp_loose") {
    if (auto r = need_range(0, 1); !r) return r;
    nf_conntrack_tcp_loose = value != 0;
  } else if (name == "nf_conntrack_checksum") {
    if (auto r = need_range(0, 1); !r) return r;
    nf_conntrack_checksum = value != 0;
  } else if (name == "xnat_max_flows_per_source") {
    if (auto r = need_range(0, int64_t{1} << 30); !r) return r;
    xnat_max_flows_per_source = static_cast<uint32_t>(value);
  } else if (name == "xnat_evicted_hold") {
    if (auto r = need_range(0, int64_t{1} << 24); !r) return r;
    xnat_evicted_hold = static_cast<uint32_t>(value);
  } else if (name == "nf_conntrack_tcp_be_liberal") {
    if (auto r = need_range(0, 1); !r) return r;
    nf_conntrack_tcp_be_liberal = value != 0;
  } else if (name == "nf_conntrack_tcp_ignore_invalid_rst") {
    if (auto r = need_range(0, 1); !r) return r;
    nf_conntrack_tcp_ignore_invalid_rst = value != 0;
  } else if (name == "nf_conntrack_tcp_max_retrans") {
    if (auto r = need_range(0, 255); !r) return r;  // the kernel's range (a u8)
    nf_conntrack_tcp_max_retrans = static_cast<uint32_t>(value);
  } else if (name == "xnat_tcp_window_tracking") {
    if (auto r = need_range(0, 1); !r) return r;
    xnat_tcp_window_tracking = value != 0;
  } else if (name == "nf_conntrack_acct") {
    if (value != 0)
      return Error{fmt::format(
          "nf_conntrack_acct = {}: per-flow packet and byte accounting is not implemented; "
          "set it to 0 or remove the line",
          value)};
  } else {
    return Error{fmt::format("unknown conntrack setting '{}'; known settings: {}", name, known_names())};
  }
  return {};
}

std::optional<uint64_t> ConntrackSettings::get(std::string_view name) const {
  for (size_t i = 0; i < static_cast<size_t>(TimeoutClass::kCount); ++i)
    if (name == timeout_sysctl_name(static_cast<TimeoutClass>(i))) return timeout_s[i];
  if (name == "nf_conntrack_max") return nf_conntrack_max;
  if (name == "nf_conntrack_buckets") return nf_conntrack_buckets;
  if (name == "nf_conntrack_tcp_loose") return nf_conntrack_tcp_loose;
  if (name == "nf_conntrack_checksum") return nf_conntrack_checksum;
  if (name == "xnat_max_flows_per_source") return xnat_max_flows_per_source;
  if (name == "xnat_evicted_hold") return xnat_evicted_hold;
  if (name == "nf_conntrack_tcp_be_liberal") return nf_conntrack_tcp_be_liberal;
  if (name == "nf_conntrack_tcp_ignore_invalid_rst") return nf_conntrack_tcp_ignore_invalid_rst;
  if (name == "nf_conntrack_tcp_max_retrans") return nf_conntrack_tcp_max_retrans;
  if (name == "xnat_tcp_window_tracking") return xnat_tcp_window_tracking;
  if (name == "nf_conntrack_acct") return 0;
  return std::nullopt;
}

Status ConntrackSettings::check() const {
  if (!xnat_tcp_window_tracking && !nf_conntrack_tcp_be_liberal)
    return Error{
        "xnat_tcp_window_tracking = 0 keeps no TCP window state, so out-of-window segments cannot be "
        "found INVALID: set nf_conntrack_tcp_be_liberal = 1 as well, or remove xnat_tcp_window_tracking"};
  return {};
}

std::string ConntrackSettings::known_names() {
  std::string s =
      "nf_conntrack_max, nf_conntrack_buckets, nf_conntrack_tcp_loose, nf_conntrack_checksum, "
      "nf_conntrack_tcp_be_liberal, nf_conntrack_tcp_max_retrans, nf_conntrack_tcp_ignore_invalid_rst, "
      "nf_conntrack_acct (0 only), xnat_max_flows_per_source, xnat_evicted_hold, xnat_tcp_window_tracking";
  for (size_t i = 0; i < static_cast<size_t>(TimeoutClass::kCount); ++i)
    s += fmt::format(", {}", timeout_sysctl_name(static_cast<TimeoutClass>(i)));
  return s;
}

}  // namespace xnat
