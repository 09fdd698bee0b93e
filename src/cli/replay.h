// `xnat replay`: the engine driven by pcap files, with the pcap timestamps as
// its clock. Writes what the gateway sent on each interface, what it handed to
// the host, the final connection table and every counter.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "dataplane/engine.h"
#include "dataplane/report.h"

namespace xnat {

struct ReplayOptions {
  std::string config_path;
  std::vector<std::pair<std::string, std::string>> inputs;  // interface, pcap path
  std::string out_dir;
  // Also write events.txt: the connection events, as `conntrack -E -o extended` prints them.
  bool events = false;
};

struct ReplaySummary {
  uint64_t frames = 0;
  uint64_t forwarded = 0;
  uint64_t to_host = 0;
  uint64_t dropped = 0;
  uint64_t flows = 0;
};

Result<ReplaySummary> run_replay(const ReplayOptions& opts);

}  // namespace xnat
