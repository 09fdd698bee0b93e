// Where the gateway's threads run: `xnat run --worker-cpus LIST` gives each
// worker a CPU of its own, as VPP's corelist-workers and DPDK's lcores do. A
// polling worker that shares its CPU waits, whenever the scheduler runs
// something else there, for that task's whole slice (milliseconds) with
// frames in its rings; the control thread, which wakes every 10 ms, is then
// kept off the workers' CPUs.
#pragma once

#include <pthread.h>

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace xnat {

// A CPU list as taskset -c and isolcpus take it: "1", "1,3", "2-5,8".
// In the order written (worker i takes the i-th); a CPU given twice is an
// error.
Result<std::vector<int>> parse_cpu_list(std::string_view text);

// "0-1,4": the list's compact form, for messages.
std::string cpu_list_text(std::vector<int> cpus);

// The CPUs this process may run on (sched_getaffinity).
Result<std::vector<int>> allowed_cpus();

// The CPUs the kernel has online (/sys/devices/system/cpu/online): where
// RPS may send work, whichever CPUs this process may run on.
Result<std::vector<int>> online_cpus();

// The workers' CPUs checked against the worker count and the CPUs allowed;
// on success, the CPUs left for the other threads (empty: none left, they
// share the workers').
Result<std::vector<int>> check_worker_cpus(const std::vector<int>& worker_cpus, int workers,
                                           const std::vector<int>& allowed);

// Pins a thread to cpus.
Status pin_thread(pthread_t thread, const std::vector<int>& cpus);

}  // namespace xnat
