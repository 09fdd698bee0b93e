// Engine benchmarks: one core, in memory, 64-byte frames (60 + FCS).
//
// Each benchmark reports items_per_second (packets, or connections for
// BM_TcpConnections) and s_per_item (its inverse: nanoseconds per packet).
// Instructions per packet, which are stable on this noisy VM, come from
// bench/instr_count under callgrind (bench/compare runs both).
//
// Established-path fixtures are expensive at 10 M flows, so they are built
// once per argument set and kept while Google Benchmark repeats the function.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <numeric>
#include <random>

#include "../tests/kube_proxy_rules.h"
#include "bench_util.h"
#include "control/conntrack_query.h"
#include "dataplane/report.h"
#include "nat/rules_parser.h"

namespace xnat::bench {
namespace {

constexpr uint64_t kT0 = 1'700'000'000'000ull;  // ms

struct Trace {
  std::vector<uint8_t> frames;
  std::vector<int16_t> in_if;
  size_t len = 0;
  void resize(size_t n) {
    frames.assign(n * kFrameStride, 0);
    in_if.assign(n, 0);
    len = n;
  }
  uint8_t* at(size_t i) { return &frames[i * kFrameStride]; }
};

// --- established connections --------------------------------------------------

struct Established {
  std::unique_ptr<Engine> engine;
  Trace trace;
  size_t pos = 0;
  uint64_t rss_engine = 0;
};

enum class Proto { kUdp, kTcp };

Established& established(Proto proto, uint64_t flows, const std::string& rules, bool nat,
                         const std::string& conntrack_lines = "") {
  static std::map<std::tuple<int, uint64_t, std::string>, std::unique_ptr<Established>> cache;
  auto key = std::make_tuple(static_cast<int>(proto), flows, rules + conntrack_lines);
  auto it = cache.find(key);
  if (it != cache.end()) return *it->second;
  cache.clear();  // one fixture at a time: 10 M flows take gigabytes
  auto fx = std::make_unique<Established>();
  const uint64_t rss0 = rss_bytes();
  fx->engine = make_engine(rules, flows + flows / 16 + 64, conntrack_lines);
  Engine& e = *fx->engine;
  // Open every flow: UDP request + reply; TCP handshake.
  Runner one(1);
  uint8_t f[kFrameStride];
  const int16_t in0 = kIn, in1 = kOut;
  for (uint64_t i = 0; i < flows; ++i) {
    const FlowAddr a = flow_addr(i);
    if (proto == Proto::kUdp) {
      write_udp(f, a, 0, nat);
      one.run(e, f, &in0, 0, 1, 1, kT0);
      write_udp(f, a, 1, nat);
      one.run(e, f, &in1, 0, 1, 1, kT0);
    } else {
      write_tcp(f, a, 0, 0x02);
      one.run(e, f, &in0, 0, 1, 1, kT0);
      write_tcp(f, a, 1, 0x12);
      one.run(e, f, &in1, 0, 1, 1, kT0);
      write_tcp(f, a, 0, 0x10);
      one.run(e, f, &in0, 0, 1, 1, kT0);
    }
  }
  fx->rss_engine = rss_bytes() - rss0;
  if (e.conntrack().count() != flows) throw std::runtime_error("fixture: not every flow was created");
  // Trace: every flow once, random order, directions alternating.
  std::vector<uint32_t> perm(flows);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937_64(42));
  fx->trace.resize(flows);
  for (uint64_t k = 0; k < flows; ++k) {
    const int dir = static_cast<int>(k & 1);
    if (proto == Proto::kUdp) write_udp(fx->trace.at(k), flow_addr(perm[k]), dir, nat);
    else write_tcp(fx->trace.at(k), flow_addr(perm[k]), dir, 0x10);
    fx->trace.in_if[k] = static_cast<int16_t>(dir == 0 ? kIn : kOut);
  }
  auto& ref = *fx;
  cache.emplace(key, std::move(fx));
  return ref;
}

void run_established(benchmark::State& state, Proto proto, const std::string& rules, bool nat = true,
                     const std::string& conntrack_lines = "") {
  const uint64_t flows = static_cast<uint64_t>(state.range(0));
  const size_t batch = static_cast<size_t>(state.range(1));
  Established& fx = established(proto, flows, rules, nat, conntrack_lines);
  Runner runner(batch);
  const uint64_t now = kT0 + 10'000;
  size_t forwarded = 0, packets = 0;
  for (auto _ : state) {
    forwarded += runner.run(*fx.engine, fx.trace.frames.data(), fx.trace.in_if.data(), fx.pos, batch, fx.trace.len, now);
    fx.pos = (fx.pos + batch) % fx.trace.len;
    packets += batch;
  }
  if (forwarded != packets) state.SkipWithError("not every packet was forwarded");
  state.SetItemsProcessed(static_cast<int64_t>(packets));
  state.counters["s_per_item"] = benchmark::Counter(static_cast<double>(packets), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["flows"] = static_cast<double>(flows);
  state.counters["bytes_per_flow"] = static_cast<double>(fx.engine->conntrack().bytes_per_flow());
  state.counters["window_bytes_per_flow"] = static_cast<double>(fx.engine->conntrack().window_bytes()) / flows;
  state.counters["rss_engine_MiB"] = static_cast<double>(fx.rss_engine) / (1 << 20);
}

void BM_EstablishedUdp(benchmark::State& s) { run_established(s, Proto::kUdp, masquerade_rules()); }
// windows:0 runs without TCP window state (xnat_tcp_window_tracking = 0).
void BM_EstablishedTcp(benchmark::State& s) {
  run_established(s, Proto::kTcp, masquerade_rules(), true,
                  s.range(2) ? "" : "xnat_tcp_window_tracking = 0\nnf_conntrack_tcp_be_liberal = 1\n");
}
// Floors: tracked forwarding with no NAT rule, and untracked forwarding.
void BM_ForwardTrackedNoNat(benchmark::State& s) {
  run_established(s, Proto::kUdp, "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n", false);
}

void sizes(benchmark::internal::Benchmark* b) {
  for (int64_t flows : {1000, 65536, 1 << 20, 10'000'000})
    for (int64_t batch : {1, 32}) b->Args({flows, batch});
  b->ArgNames({"flows", "batch"});
}
BENCHMARK(BM_EstablishedUdp)->Apply(sizes)->MinTime(1.0);
BENCHMARK(BM_EstablishedTcp)
    ->Args({1000, 32, 1})
    ->Args({1000, 32, 0})
    ->Args({1 << 20, 32, 1})
    ->Args({1 << 20, 32, 0})
    ->ArgNames({"flows", "batch", "windows"})
    ->MinTime(1.0);
BENCHMARK(BM_ForwardTrackedNoNat)->Args({1000, 32})->ArgNames({"flows", "batch"})->MinTime(1.0);

// --- untracked paths ------------------------------------------------------------

void run_untracked(benchmark::State& state, const std::string& rules, bool both_dirs) {
  static std::unique_ptr<Engine> engine;
  static std::string engine_rules;
  if (!engine || engine_rules != rules) {
    engine = make_engine(rules, 1024);
    engine_rules = rules;
  }
  constexpr size_t kFlows = 65536;
  static Trace trace;
  if (trace.len != kFlows) {
    trace.resize(kFlows);
    for (size_t k = 0; k < kFlows; ++k) {
      const int dir = both_dirs ? static_cast<int>(k & 1) : 0;
      FlowAddr a = flow_addr(k);
      write_udp(trace.at(k), a, dir);
      trace.in_if[k] = static_cast<int16_t>(dir == 0 ? kIn : kOut);
    }
  }
  // Replies for RAWDNAT come to 198.19.0.x mapped addresses: rewrite their destination.
  Runner runner(32);
  size_t pos = 0, forwarded = 0, packets = 0;
  for (auto _ : state) {
    forwarded += runner.run(*engine, trace.frames.data(), trace.in_if.data(), pos, 32, trace.len, kT0);
    pos = (pos + 32) % trace.len;
    packets += 32;
  }
  if (forwarded != packets) state.SkipWithError("not every packet was forwarded");
  if (engine->conntrack().count() != 0) state.SkipWithError("untracked path created flows");
  state.SetItemsProcessed(static_cast<int64_t>(packets));
  state.counters["s_per_item"] = benchmark::Counter(static_cast<double>(packets), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_StatelessRawSnat(benchmark::State& s) {
  run_untracked(s,
                "*rawpost\n:POSTROUTING ACCEPT [0:0]\n"
                "-A POSTROUTING -s 198.18.0.0/16 -o eth0 -j RAWSNAT --to-source 198.19.0.0/16\nCOMMIT\n",
                false);
}
void BM_ForwardNotrack(benchmark::State& s) {
  run_untracked(s, "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -j NOTRACK\nCOMMIT\n", false);
}
BENCHMARK(BM_StatelessRawSnat)->MinTime(1.0);
BENCHMARK(BM_ForwardNotrack)->MinTime(1.0);

// --- new connections, steady state ---------------------------------------------
//
// A stream of distinct connections against a table of capacity C. The clock
// advances so that connections expire as fast as they arrive and the table
// holds load% of C in steady state (lifetime 30 s for UDP, 120 s in TIME_WAIT
// for TCP); load 150 keeps the table full so every new connection evicts one.
// load 0 is a table that never fills during the run. Expiry and eviction work
// is part of the measured cost, as it is in a running gateway.

struct Stream {
  std::unique_ptr<Engine> engine;
  uint64_t next = 0;  // next connection number
  double ms_per_conn = 0;
  uint64_t capacity = 0;
};

constexpr uint64_t kStreamCap = 1 << 20;

// The measured part of the new-UDP-flow benchmarks: first packets of new
// connections, pre-generated in chunks, in bursts of 32.
void measure_new_udp(benchmark::State& state, Stream& st) {
  constexpr size_t kChunk = 1 << 20;
  Trace trace;
  trace.resize(kChunk);
  Runner runner(32);
  size_t in_chunk = kChunk, packets = 0, forwarded = 0;
  double max_burst_us = 0;
  size_t slow_bursts = 0;  // over 0.5 ms
  const uint64_t created0 = st.engine->counters().get(Counter::flows_created);
  for (auto _ : state) {
    if (in_chunk + 32 > kChunk) {
      state.PauseTiming();
      for (size_t k = 0; k < kChunk; ++k) write_udp(trace.at(k), flow_addr(st.next + k), 0);
      in_chunk = 0;
      state.ResumeTiming();
    }
    const uint64_t now = kT0 + static_cast<uint64_t>(st.next * st.ms_per_conn);
    // The slowest burst: a stall of the data path (expiry work done in one go)
    // is what overflows a NIC's receive ring.
    const auto t0 = std::chrono::steady_clock::now();
    forwarded += runner.run(*st.engine, trace.frames.data(), trace.in_if.data(), in_chunk, 32, kChunk, now);
    const auto us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    if (us > max_burst_us) max_burst_us = us;
    if (us > 500) ++slow_bursts;
    in_chunk += 32;
    st.next += 32;
    packets += 32;
  }
  const auto& c = st.engine->counters();
  if (forwarded != packets || c.get(Counter::flows_created) - created0 != packets)
    state.SkipWithError("not every new connection was created and forwarded");
  state.SetItemsProcessed(static_cast<int64_t>(packets));
  state.counters["s_per_item"] = benchmark::Counter(static_cast<double>(packets), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["table_fill_pct"] = 100.0 * st.engine->conntrack().count() / st.engine->conntrack().capacity();
  state.counters["evicted"] = static_cast<double>(st.engine->conntrack().stats().early_drop);
  state.counters["max_burst_us"] = max_burst_us;
  state.counters["bursts_over_500us"] = static_cast<double>(slow_bursts);
}

void BM_NewUdpFlows(benchmark::State& state) {
  const int load = static_cast<int>(state.range(0));
  const uint64_t cap = load == 0 ? 64'000'000 : kStreamCap;
  Stream st;
  st.engine = make_engine(masquerade_rules(), cap);
  st.ms_per_conn = load == 0 ? 0.0 : 30'000.0 / (cap * load / 100.0);
  // Warm up to the steady state: one lifetime's worth of connections.
  uint8_t f[kFrameStride];
  const int16_t in0 = kIn;
  Runner one(1);
  const uint64_t warm = load == 0 ? 0 : cap * load / 100;
  for (; st.next < warm; ++st.next) {
    write_udp(f, flow_addr(st.next), 0);
    one.run(*st.engine, f, &in0, 0, 1, 1, kT0 + static_cast<uint64_t>(st.next * st.ms_per_conn));
  }
  measure_new_udp(state, st);
}
BENCHMARK(BM_NewUdpFlows)->Arg(0)->Arg(50)->Arg(95)->Arg(150)->ArgName("load_pct")->MinTime(1.0);

// The same 1 M new flows (no expiry: the clock stands still) into tables of
// 4 M, 16 M and 64 M flows of capacity, at most 25 % full. The work per flow
// is the same; what grows is the memory its random lines are spread over (the
// index, the flow lines, the by-source heads), so the rates' spread is what
// memory and address translation cost a new flow.
void BM_NewUdpFlowsByCapacity(benchmark::State& state) {
  Stream st;
  st.engine = make_engine(masquerade_rules(), static_cast<uint64_t>(state.range(0)));
  measure_new_udp(state, st);
}
BENCHMARK(BM_NewUdpFlowsByCapacity)
    ->Arg(4 << 20)
    ->Arg(16 << 20)
    ->Arg(64 << 20)
    ->ArgName("capacity")
    ->Iterations((1 << 20) / 32);

void BM_TcpConnections(benchmark::State& state) {
  // Each item is a whole connection: SYN, SYN/ACK, ACK, FIN, FIN, ACK.
  const int load = static_cast<int>(state.range(0));
  const uint64_t cap = load == 0 ? 16'000'000 : kStreamCap;
  auto engine = make_engine(masquerade_rules(), cap);
  const double ms_per_conn = load == 0 ? 0.0 : 120'000.0 / (cap * load / 100.0);
  static const struct {
    int dir;
    uint8_t flags;
  } kSeq[6] = {{0, 0x02}, {1, 0x12}, {0, 0x10}, {0, 0x11}, {1, 0x11}, {0, 0x10}};
  uint64_t next = 0;
  auto fill = [&](Trace& t, uint64_t first, size_t conns) {
    for (size_t k = 0; k < conns; ++k)
      for (int j = 0; j < 6; ++j) {
        write_tcp(t.at(k * 6 + j), flow_addr(first + k), kSeq[j].dir, kSeq[j].flags);
        t.in_if[k * 6 + j] = static_cast<int16_t>(kSeq[j].dir == 0 ? kIn : kOut);
      }
  };
  Runner runner(32);
  const uint64_t warm = load == 0 ? 0 : cap * load / 100;
  {
    Trace w;
    constexpr size_t kWarmChunk = 1 << 16;
    w.resize(kWarmChunk * 6);
    for (; next < warm; next += kWarmChunk) {
      fill(w, next, kWarmChunk);
      runner.run(*engine, w.frames.data(), w.in_if.data(), 0, w.len, w.len, kT0 + static_cast<uint64_t>(next * ms_per_conn));
    }
  }
  constexpr size_t kChunk = 1 << 17;  // connections per chunk
  Trace trace;
  trace.resize(kChunk * 6);
  size_t in_chunk = kChunk, conns = 0, forwarded = 0;
  const uint64_t drops0 = engine->counters().total_drops();
  for (auto _ : state) {
    if (in_chunk + 16 > kChunk) {
      state.PauseTiming();
      fill(trace, next, kChunk);
      in_chunk = 0;
      state.ResumeTiming();
    }
    // 16 connections a step: 96 packets in bursts of 32, in order per connection.
    const uint64_t now = kT0 + static_cast<uint64_t>(next * ms_per_conn);
    forwarded += runner.run(*engine, trace.frames.data(), trace.in_if.data(), in_chunk * 6, 96, trace.len, now);
    in_chunk += 16;
    next += 16;
    conns += 16;
  }
  if (forwarded != conns * 6 || engine->counters().total_drops() != drops0)
    state.SkipWithError("not every segment of every connection was forwarded");
  state.SetItemsProcessed(static_cast<int64_t>(conns));
  state.counters["s_per_item"] = benchmark::Counter(static_cast<double>(conns), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["table_fill_pct"] = 100.0 * engine->conntrack().count() / engine->conntrack().capacity();
  state.counters["evicted_closing"] = static_cast<double>(engine->conntrack().stats().evicted_closing);
}
BENCHMARK(BM_TcpConnections)->Arg(0)->Arg(50)->Arg(95)->Arg(150)->ArgName("load_pct")->MinTime(1.0);

// --- memory ----------------------------------------------------------------------

// A table of `flows` flows (capacity as many), each opened and answered:
// UDP, or TCP (SYN, SYN-ACK) with window tracking. bytes_per_flow is what
// grows with capacity; window_bytes_per_flow what the TCP flows' window state
// adds; rss_* is measured (VmRSS before and after).
void BM_Memory(benchmark::State& state) {
  const uint64_t flows = static_cast<uint64_t>(state.range(0));
  const bool tcp = state.range(1);
  for (auto _ : state) {
    const uint64_t rss0 = rss_bytes();
    auto e = make_engine(masquerade_rules(), flows);
    Runner one(1);
    uint8_t f[kFrameStride];
    const int16_t in0 = kIn, in1 = kOut;
    size_t forwarded = 0;
    for (uint64_t i = 0; i < flows; ++i) {
      if (tcp) write_tcp(f, flow_addr(i), 0, kTcpSyn);
      else write_udp(f, flow_addr(i), 0);
      forwarded += one.run(*e, f, &in0, 0, 1, 1, kT0);
      if (tcp) write_tcp(f, flow_addr(i), 1, kTcpSyn | kTcpAck);
      else write_udp(f, flow_addr(i), 1);
      forwarded += one.run(*e, f, &in1, 0, 1, 1, kT0);
    }
    if (forwarded != 2 * flows) state.SkipWithError("not every packet was forwarded");
    const Conntrack& ct = e->conntrack();
    state.counters["rss_MiB"] = static_cast<double>(rss_bytes() - rss0) / (1 << 20);
    state.counters["rss_bytes_per_flow"] = static_cast<double>(rss_bytes() - rss0) / flows;
    state.counters["bytes_per_flow"] = static_cast<double>(ct.bytes_per_flow());
    state.counters["window_bytes_per_flow"] = static_cast<double>(ct.window_bytes()) / flows;
    state.counters["flows"] = static_cast<double>(ct.count());
  }
}
BENCHMARK(BM_Memory)
    ->ArgsProduct({{1000, 65536, 1 << 20, 10'000'000}, {0, 1}})
    ->ArgNames({"flows", "tcp"})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);


// What a worker does between bursts for the control socket, per loop: a
// piece of a listing (512 table slots of a full 1 M-flow table, formatted in
// conntrack's format), and taking a reloaded ruleset (10 000 kube-proxy
// Services, copied and bound by the control thread beforehand). Both bound
// the time the worker's receive rings wait.
void BM_ListingPiece(benchmark::State& state) {
  const uint64_t flows = 1 << 20;
  auto e = make_engine(masquerade_rules(), flows);
  Runner burst(32);
  std::vector<uint8_t> trace(flows * kFrameStride);
  std::vector<int16_t> in_if(flows, kIn);
  for (uint64_t i = 0; i < flows; ++i) write_udp(trace.data() + i * kFrameStride, flow_addr(i), 0);
  burst.run(*e, trace.data(), in_if.data(), 0, flows, flows, kT0);
  ConntrackQuery q;  // -L, conntrack's default format
  uint32_t next = 0;
  std::string buf;
  Conntrack& ct = e->conntrack();
  for (auto _ : state) {
    buf.clear();
    const uint32_t end = std::min<uint32_t>(ct.capacity(), next + 128);  // the worker's piece (worker.cc)
    for (uint32_t i = next; i < end; ++i)
      if (ct.live(i, kT0)) {
        const Flow& f = ct.flow(i);
        if (q.matches(f, 0)) q.append(&buf, f, kT0, 0, i);
      }
    next = end == ct.capacity() ? 0 : end;
    benchmark::DoNotOptimize(buf.data());
  }
  state.counters["flows"] = static_cast<double>(ct.count());
}
BENCHMARK(BM_ListingPiece)->Unit(benchmark::kMicrosecond);

void BM_SwapRules(benchmark::State& state) {
  auto rs = parse_rules(test::kube_proxy_rules(static_cast<uint32_t>(state.range(0))), "kube.rules");
  if (!rs) return state.SkipWithError(rs.error().message.c_str());
  auto e = make_engine(masquerade_rules(), 1024);
  rs->bind_interfaces({"eth1", "eth0"});
  RuleSet spare = *rs;
  for (auto _ : state) e->swap_rules(spare);  // in, and the old back out
  state.counters["rules"] = static_cast<double>(rs->rule_count());
}
BENCHMARK(BM_SwapRules)->Arg(10000)->ArgName("services")->Unit(benchmark::kMicrosecond);
}  // namespace
}  // namespace xnat::bench
