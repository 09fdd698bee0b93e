// Counts instructions per packet under callgrind, which counts instructions
// exactly and repeatably on this VM (no hardware counters). Setup runs with
// instrumentation off; only the measured packets are counted:
//
//   valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=OUT
//     build/xnat_instr_count WORKLOAD PACKETS
//
// Workloads: established_udp_b32, established_udp_b1, established_tcp_b32 (ACK
// segments both ways, after a handshake per flow), new_udp (a table that never
// fills), new_udp_95 and new_udp_150 (the steady state of BM_NewUdpFlows at that
// load: each new flow's arrival expires, or at 150 evicts, an older one; 64 k
// flows of capacity), stateless.
#include <valgrind/callgrind.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench_util.h"

using namespace xnat;
using namespace xnat::bench;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr,
                 "usage: %s established_udp_b32|established_udp_b1|established_tcp_b32|new_udp|new_udp_95|"
                 "new_udp_150|stateless PACKETS\n",
                 argv[0]);
    return 2;
  }
  const std::string w = argv[1];
  const size_t packets = std::strtoull(argv[2], nullptr, 10);
  const uint64_t t0 = 1'700'000'000'000ull;
  const size_t flows = 1000;
  std::unique_ptr<Engine> e;
  std::vector<uint8_t> trace;
  std::vector<int16_t> in_if;
  size_t batch = 32;
  if (w == "established_udp_b32" || w == "established_udp_b1") {
    if (w == "established_udp_b1") batch = 1;
    e = make_engine(masquerade_rules(), 2 * flows);
    trace.resize(2 * flows * kFrameStride);
    in_if.resize(2 * flows);
    Runner one(1);
    for (size_t i = 0; i < flows; ++i) {
      for (int d = 0; d < 2; ++d) {
        write_udp(&trace[(2 * i + d) * kFrameStride], flow_addr(i), d);
        in_if[2 * i + d] = static_cast<int16_t>(d == 0 ? kIn : kOut);
        one.run(*e, &trace[(2 * i + d) * kFrameStride], &in_if[2 * i + d], 0, 1, 1, t0);
      }
    }
  } else if (w == "established_tcp_b32") {
    e = make_engine(masquerade_rules(), 2 * flows);
    trace.resize(2 * flows * kFrameStride);
    in_if.resize(2 * flows);
    Runner one(1);
    std::vector<uint8_t> f(kFrameStride);
    for (size_t i = 0; i < flows; ++i) {
      const int16_t out = kOut, in = kIn;
      write_tcp(f.data(), flow_addr(i), 0, 0x02);  // SYN
      one.run(*e, f.data(), &in, 0, 1, 1, t0);
      write_tcp(f.data(), flow_addr(i), 1, 0x12);  // SYN-ACK
      one.run(*e, f.data(), &out, 0, 1, 1, t0);
      for (int d = 0; d < 2; ++d) {
        write_tcp(&trace[(2 * i + d) * kFrameStride], flow_addr(i), d, 0x10);
        in_if[2 * i + d] = static_cast<int16_t>(d == 0 ? kIn : kOut);
        one.run(*e, &trace[(2 * i + d) * kFrameStride], &in_if[2 * i + d], 0, 1, 1, t0);
      }
    }
  } else if (w == "new_udp") {
    e = make_engine(masquerade_rules(), packets + 64);
    trace.resize(packets * kFrameStride);
    in_if.assign(packets, kIn);
    for (size_t i = 0; i < packets; ++i) write_udp(&trace[i * kFrameStride], flow_addr(i), 0);
  } else if (w == "new_udp_95" || w == "new_udp_150") {
    // The clock advances so that flows (30 s) expire as fast as they arrive.
    const uint64_t cap = 65536;
    const double load = w == "new_udp_95" ? 0.95 : 1.5;
    const double ms_per_conn = 30'000.0 / (cap * load);
    e = make_engine(masquerade_rules(), cap);
    Runner one(1);
    uint8_t f[kFrameStride];
    const int16_t in0 = kIn;
    const uint64_t warm = static_cast<uint64_t>(cap * load);
    for (uint64_t i = 0; i < warm; ++i) {
      write_udp(f, flow_addr(i), 0);
      one.run(*e, f, &in0, 0, 1, 1, t0 + static_cast<uint64_t>(i * ms_per_conn));
    }
    trace.resize(packets * kFrameStride);
    in_if.assign(packets, kIn);
    for (size_t i = 0; i < packets; ++i) write_udp(&trace[i * kFrameStride], flow_addr(warm + i), 0);
    Runner runner(32);
    size_t fwd = 0;
    CALLGRIND_START_INSTRUMENTATION;
    for (size_t i = 0; i + 32 <= packets; i += 32)
      fwd += runner.run(*e, trace.data(), in_if.data(), i, 32, packets, t0 + static_cast<uint64_t>((warm + i) * ms_per_conn));
    CALLGRIND_STOP_INSTRUMENTATION;
    std::printf("%s packets=%zu forwarded=%zu\n", w.c_str(), packets, fwd);
    return fwd == packets / 32 * 32 ? 0 : 1;
  } else if (w == "stateless") {
    e = make_engine("*rawpost\n:POSTROUTING ACCEPT [0:0]\n"
                    "-A POSTROUTING -s 198.18.0.0/16 -o eth0 -j RAWSNAT --to-source 198.19.0.0/16\nCOMMIT\n", 64);
    trace.resize(flows * kFrameStride);
    in_if.assign(flows, kIn);
    for (size_t i = 0; i < flows; ++i) write_udp(&trace[i * kFrameStride], flow_addr(i), 0);
  } else {
    std::fprintf(stderr, "unknown workload %s\n", w.c_str());
    return 2;
  }
  Runner runner(batch);
  const size_t len = in_if.size();
  CALLGRIND_START_INSTRUMENTATION;
  const size_t fwd = runner.run(*e, trace.data(), in_if.data(), 0, packets, len, t0 + 10'000);
  CALLGRIND_STOP_INSTRUMENTATION;
  std::printf("%s packets=%zu forwarded=%zu\n", w.c_str(), packets, fwd);
  return fwd == packets ? 0 : 1;
}
