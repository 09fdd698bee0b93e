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

std::optional<std::string> ConntrackSettings::set(std::string_view name, int64_t value) {
  auto need_range = [&](int64_t lo, int64_t hi) -> std::optional<std::string> {
    if (value < lo || value > hi)
      return fmt::format("{} = {} is out of range; expected {}..{}", name, value, lo, hi);
    return std::nullopt;
  };
  if (name == "nf_conntrack_tcp_timeout_max_retrans" && value != 300)
    return fmt::format(
        "nf_conntrack_tcp_timeout_max_retrans = {}: this timeout applies after repeated "
        "retransmissions, which xnat cannot see without TCP window tracking (not implemented); "
        "remove the line (the default, 300, is accepted)",
        value);
  if (name == "nf_conntrack_tcp_max_retrans")
    return "nf_conntrack_tcp_max_retrans: retransmission counting needs TCP window tracking, which "
           "xnat does not implement yet; remove the line";
  for (size_t i = 0; i < static_cast<size_t>(TimeoutClass::kCount); ++i) {
    if (name == timeout_sysctl_name(static_cast<TimeoutClass>(i))) {
      // Upper bound: the kernel stores timeouts in jiffies (u32); 30 days is ample.
      if (auto e = need_range(1, 30 * 86400)) return e;
      timeout_s[i] = static_cast<uint32_t>(value);
      return std::nullopt;
    }
  }
  if (name == "nf_conntrack_max") {
    // Indices are 32-bit with one bit for the direction.
    if (auto e = need_range(1, int64_t{1} << 30)) return e;
    nf_conntrack_max = static_cast<uint64_t>(value);
  } else if (name == "nf_conntrack_buckets") {
    if (auto e = need_range(0, int64_t{1} << 31)) return e;
    nf_conntrack_buckets = static_cast<uint64_t>(value);
  } else if (name == "nf_conntrack_tcp_loose") {
    if (auto e = need_range(0, 1)) return e;
    nf_conntrack_tcp_loose = value != 0;
  } else if (name == "nf_conntrack_checksum") {
    if (auto e = need_range(0, 1)) return e;
    nf_conntrack_checksum = value != 0;
  } else if (name == "xnat_max_flows_per_source") {
    if (auto e = need_range(0, int64_t{1} << 30)) return e;
    xnat_max_flows_per_source = static_cast<uint32_t>(value);
  } else if (name == "xnat_evicted_hold") {
    if (auto e = need_range(0, int64_t{1} << 24)) return e;
    xnat_evicted_hold = static_cast<uint32_t>(value);
  } else if (name == "nf_conntrack_tcp_be_liberal") {
    // xnat does not track TCP windows, which is what be_liberal = 1 means in the
    // kernel. Accept 1; refuse 0 rather than pretend to check windows.
    if (value != 1)
      return fmt::format(
          "nf_conntrack_tcp_be_liberal = {}: xnat does not track TCP sequence windows yet "
          "(it always behaves as nf_conntrack_tcp_be_liberal = 1); set it to 1 or remove the line",
          value);
  } else if (name == "nf_conntrack_acct") {
    if (value != 0)
      return fmt::format(
          "nf_conntrack_acct = {}: per-flow packet and byte accounting is not implemented; "
          "set it to 0 or remove the line",
          value);
  } else {
    return fmt::format("unknown conntrack setting '{}'; known settings: {}", name, known_names());
  }
  return std::nullopt;
}

std::string ConntrackSettings::known_names() {
  std::string s =
      "nf_conntrack_max, nf_conntrack_buckets, nf_conntrack_tcp_loose, nf_conntrack_checksum, "
      "nf_conntrack_tcp_be_liberal (1 only), nf_conntrack_acct (0 only), "
      "xnat_max_flows_per_source, xnat_evicted_hold";
  for (size_t i = 0; i < static_cast<size_t>(TimeoutClass::kCount); ++i)
    s += fmt::format(", {}", timeout_sysctl_name(static_cast<TimeoutClass>(i)));
  return s;
}

}  // namespace xnat
