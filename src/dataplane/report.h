// The text an operator reads: the connection table as `conntrack -L -o
// extended` prints it, and the counters. Written by `xnat replay` and by the
// live gateway alike.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/engine.h"

namespace xnat {

std::string format_conntrack_table(const Conntrack& ct, uint64_t now_ms);
// The lines of the flows with a table index in [begin, end), appended to *out.
void append_conntrack_range(const Conntrack& ct, uint64_t now_ms, uint32_t begin, uint32_t end, std::string* out);
std::string format_counters(const Engine& e);
// Several workers: their figures summed, and a `conntrack -S` line per worker.
struct CounterSource {
  Counters counters;
  ConntrackStats stats;
  uint32_t count = 0, capacity = 0;
  size_t bytes_per_flow = 0;
};
CounterSource counter_source(const Engine& e);
std::string format_counters(const std::vector<CounterSource>& workers);
// `conntrack -S`'s layout: a line per worker, as it prints one per CPU.
std::string format_conntrack_stats(const std::vector<CounterSource>& workers);

}  // namespace xnat
