// xnat_spin_gaps: how long the machine itself takes a CPU away from a thread
// that never sleeps. It spins for SECONDS reading the clock and prints the
// gaps between two reads longer than 250 us and 2 ms, and the longest. On a
// virtual machine whose CPUs are all busy the host preempts them; a polling
// worker meets the same gaps, which show in its loop counters and in the
// tail of a latency measurement, so bench/e2e prints them beside its latency.
//
//   xnat_spin_gaps SECONDS
#include <time.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace {

uint64_t now_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return uint64_t(t.tv_sec) * 1'000'000'000 + uint64_t(t.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 0;
  if (argc != 2 || seconds <= 0 || seconds > 600) {
    std::fprintf(stderr, "usage: xnat_spin_gaps SECONDS (at most 600)\n");
    return 2;
  }
  const uint64_t end = now_ns() + static_cast<uint64_t>(seconds * 1e9);
  uint64_t last = now_ns(), longest = 0, over_250us = 0, over_2ms = 0;
  for (;;) {
    const uint64_t t = now_ns();
    const uint64_t gap = t - last;
    last = t;
    if (gap > longest) longest = gap;
    over_250us += gap > 250'000;
    over_2ms += gap > 2'000'000;
    if (t >= end) break;
  }
  std::printf("gaps over 250 us %llu, over 2 ms %llu, longest %llu us\n", static_cast<unsigned long long>(over_250us),
              static_cast<unsigned long long>(over_2ms), static_cast<unsigned long long>(longest / 1000));
  return 0;
}
