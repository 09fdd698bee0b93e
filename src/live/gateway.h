// `xnat run`: the live gateway. Loads the config, takes the rest from the
// kernel over rtnetlink, attaches the steering program, opens the backend and
// runs the engine in run-to-completion worker threads (one, or --workers N
// sharing the flows: conntrack/shard.h) until SIGINT/SIGTERM, then
// detaches everything so the interfaces are the kernel's again.
#pragma once

#include <cstdint>
#include <string>

namespace xnat {

struct RunOptions {
  std::string config;
  std::string backend = "af_xdp";  // or "af_packet"
  int workers = 1;
  int stats_interval = 0;     // seconds; 0: no periodic report
  std::string conntrack_out;  // written on exit (and on SIGUSR1): conntrack -L -o extended
  std::string counters_out;   // written on exit (and on SIGUSR1)
  bool busy_poll = false;
  uint32_t ring_size = 2048;
};

// Returns the process exit code; errors are printed to stderr.
int run_gateway(const RunOptions& o);

}  // namespace xnat
