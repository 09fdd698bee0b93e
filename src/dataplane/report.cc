#include "dataplane/report.h"

#include <fmt/format.h>

#include "conntrack/listing.h"

namespace xnat {

std::string format_conntrack_table(const Conntrack& ct, uint64_t now_ms) {
  std::string out;
  append_conntrack_range(ct, now_ms, 0, ct.capacity(), &out);
  return out;
}

void append_conntrack_range(const Conntrack& ct, uint64_t now_ms, uint32_t begin, uint32_t end, std::string* out) {
  ct.for_each_live(
      now_ms,
      [&](const Flow& f) {
        *out += format_conntrack_extended(f, now_ms, ct.mark(f));
        *out += '\n';
      },
      begin, end);
}

CounterSource counter_source(const Engine& e) {
  const Conntrack& ct = e.conntrack();
  return CounterSource{e.counters(), ct.stats(), ct.count(), ct.capacity(), ct.bytes_per_flow()};
}

std::string format_counters(const Engine& e) { return format_counters(std::vector<CounterSource>{counter_source(e)}); }

std::string format_counters(const std::vector<CounterSource>& workers) {
  CounterSource t;
  for (const CounterSource& w : workers) {
    for (size_t i = 0; i < kCounterCount; ++i) t.counters.v[i] += w.counters.v[i];
    t.stats += w.stats;
    t.count += w.count;
    t.capacity += w.capacity;
    t.bytes_per_flow = w.bytes_per_flow;
  }
  std::string out;
  for (size_t i = 0; i < kCounterCount; ++i)
    out += fmt::format("{} {}\n", counter_name(static_cast<Counter>(i)), t.counters.v[i]);
  const ConntrackStats& s = t.stats;
  out += fmt::format("conntrack_count {}\n", t.count);
  out += fmt::format("conntrack_max {}\n", t.capacity);
  out += fmt::format("conntrack_expired {}\n", s.expired);
  out += fmt::format("conntrack_evicted_expired {}\n", s.evicted_expired);
  out += fmt::format("conntrack_evicted_closing {}\n", s.evicted_closing);
  out += fmt::format("conntrack_evicted_unreplied {}\n", s.evicted_unreplied);
  out += fmt::format("conntrack_evicted_half_closed {}\n", s.evicted_half_closed);
  out += fmt::format("conntrack_evicted_held {}\n", s.held);
  out += fmt::format("conntrack_readmitted {}\n", s.readmitted);
  out += fmt::format("conntrack_tcp_reopened {}\n", s.reopened);
  out += fmt::format("conntrack_tcp_killed_by_rst {}\n", s.killed);
  out += fmt::format("conntrack_source_limited {}\n", s.source_limited);
  out += fmt::format("conntrack_directory_full {}\n", s.directory_full);
  out += fmt::format("conntrack_borrowed {}\n", s.borrowed);
  out += fmt::format("conntrack_source_share_full {}\n", s.source_share_full);
  out += fmt::format("conntrack_offloads {}\n", s.offloads);
  out += fmt::format("conntrack_offload_full {}\n", s.offload_full);
  out += fmt::format("conntrack_offload_withdrawn {}\n", s.offload_withdrawn);
  out += fmt::format("conntrack_bytes_per_flow {}\n", t.bytes_per_flow);
  return out + format_conntrack_stats(workers);
}

std::string format_conntrack_stats(const std::vector<CounterSource>& workers) {
  std::string out;
  for (size_t w = 0; w < workers.size(); ++w) {
    const ConntrackStats& c = workers[w].stats;
    out += fmt::format(
        "cpu={} found={} invalid={} insert={} insert_failed={} drop={} early_drop={} error={} "
        "search_restart=0 clash_resolve=0 chaintoolong=0\n",
        w, c.found, c.invalid, c.insert, c.insert_failed, c.drop, c.early_drop, c.error);
  }
  return out;
}

}  // namespace xnat
