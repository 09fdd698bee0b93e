// `xnat replay`: the engine driven by pcap files, with the pcap timestamps as
// its clock. Writes what the gateway sent on each interface, what it handed to
// the host, the final connection table and every counter.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "control/result.h"
#include "dataplane/engine.h"

namespace xnat {

struct ReplayOptions {
  std::string config_path;
  std::vector<std::pair<std::string, std::string>> inputs;  // interface, pcap path
  std::string out_dir;
};

struct ReplaySummary {
  uint64_t frames = 0;
  uint64_t forwarded = 0;
  uint64_t to_host = 0;
  uint64_t dropped = 0;
  uint64_t flows = 0;
};

Result<ReplaySummary> run_replay(const ReplayOptions& opts);

// Writers for the text outputs, shared with the live gateway.
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

}  // namespace xnat
