#include "live/cpus.h"

#include <fmt/format.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "live/kernel_files.h"

namespace xnat {
namespace {

// CPU_SETSIZE (1 024) CPUs: what the fixed cpu_set_t holds.
constexpr int kMaxCpu = CPU_SETSIZE - 1;

bool parse_cpu(std::string_view s, int* cpu) {
  if (s.empty()) return false;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *cpu);
  return ec == std::errc() && p == s.data() + s.size() && *cpu >= 0 && *cpu <= kMaxCpu;
}

}  // namespace

Result<std::vector<int>> parse_cpu_list(std::string_view text) {
  auto bad = [&](std::string_view part) {
    return Error{fmt::format("'{}': '{}' is not a CPU or a range of CPUs (expected a list such as 1,3-4; CPUs 0-{})",
                             text, part, kMaxCpu)};
  };
  std::vector<int> cpus;
  if (text.empty()) return bad(text);
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    const std::string_view part = text.substr(at, comma - at);
    at = comma + 1;
    const size_t dash = part.find('-');
    int lo, hi;
    if (dash == std::string_view::npos) {
      if (!parse_cpu(part, &lo)) return bad(part);
      hi = lo;
    } else if (!parse_cpu(part.substr(0, dash), &lo) || !parse_cpu(part.substr(dash + 1), &hi) || hi < lo) {
      return bad(part);
    }
    for (int c = lo; c <= hi; ++c) {
      if (std::find(cpus.begin(), cpus.end(), c) != cpus.end())
        return Error{fmt::format("'{}': CPU {} is given twice (a CPU runs one worker)", text, c)};
      cpus.push_back(c);
    }
  }
  return cpus;
}

std::string cpu_list_text(std::vector<int> cpus) {
  std::sort(cpus.begin(), cpus.end());
  std::string s;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!s.empty()) s += ',';
    s += j == i ? fmt::format("{}", cpus[i]) : fmt::format("{}-{}", cpus[i], cpus[j]);
    i = j + 1;
  }
  return s;
}

Result<std::vector<int>> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0)
    return Error{fmt::format("sched_getaffinity: {}", std::strerror(errno))};
  std::vector<int> cpus;
  for (int c = 0; c <= kMaxCpu; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

Result<std::vector<int>> online_cpus() {
  std::string text;
  if (!read_kernel_line("/sys/devices/system/cpu/online", &text))
    return Error{"/sys/devices/system/cpu/online: cannot be read"};
  return parse_cpu_list(text);
}

Result<std::vector<int>> check_worker_cpus(const std::vector<int>& worker_cpus, int workers,
                                           const std::vector<int>& allowed) {
  if (static_cast<int>(worker_cpus.size()) != workers)
    return Error{fmt::format("--worker-cpus {}: {} CPU{} for {} worker{}; give one CPU per worker",
                             cpu_list_text(worker_cpus), worker_cpus.size(), worker_cpus.size() == 1 ? "" : "s",
                             workers, workers == 1 ? "" : "s")};
  for (int c : worker_cpus)
    if (std::find(allowed.begin(), allowed.end(), c) == allowed.end())
      return Error{fmt::format("--worker-cpus {}: CPU {} is not one this process may run on (allowed: {})",
                               cpu_list_text(worker_cpus), c, cpu_list_text(allowed))};
  std::vector<int> rest;
  for (int c : allowed)
    if (std::find(worker_cpus.begin(), worker_cpus.end(), c) == worker_cpus.end()) rest.push_back(c);
  return rest;
}

Status pin_thread(pthread_t thread, const std::vector<int>& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) CPU_SET(c, &set);
  if (const int e = pthread_setaffinity_np(thread, sizeof set, &set); e != 0)
    return Error{fmt::format("pin a thread to CPU {}: {}", cpu_list_text(cpus), std::strerror(e))};
  return {};
}

}  // namespace xnat
