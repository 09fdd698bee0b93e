// The engine's building blocks on their own: parse, hash, lookup, checksum
// update, rule matching at 10 / 100 / 1000 rules.
#include <benchmark/benchmark.h>

#include <fmt/format.h>

#include <numeric>
#include <random>

#include "../tests/kube_proxy_rules.h"
#include "bench_util.h"
#include "conntrack/flow_table.h"
#include "conntrack/shard.h"
#include "nat/rules_parser.h"
#include "packet/checksum.h"
#include "packet/parse.h"
#include "route/fib.h"

namespace xnat::bench {
namespace {

void BM_Parse(benchmark::State& state) {
  uint8_t f[kFrameStride];
  write_udp(f, flow_addr(7), 0);
  const ParseOptions opts{.verify_l4_checksum = state.range(0) != 0};
  ParsedPacket p;
  for (auto _ : state) {
    benchmark::DoNotOptimize(parse_frame(f, kFrameLen, opts, &p));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Parse)->Arg(0)->Arg(1)->ArgName("verify_l4_checksum");

void BM_TupleHash(benchmark::State& state) {
  Tuple t;
  t.src = 0x0200A8C6;
  t.dst = 0x07643346;
  t.proto = 17;
  uint64_t h = 0;
  for (auto _ : state) {
    t.sport = static_cast<uint16_t>(h);
    h += tuple_hash(t, 99);
    benchmark::DoNotOptimize(h);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TupleHash);

// Hit lookups in random order; the table does not fit in cache from 1 M on.
void BM_FlowTableLookup(benchmark::State& state) {
  const uint32_t n = static_cast<uint32_t>(state.range(0));
  FlowTable ft(n, 0, 5);
  std::vector<Tuple> keys(n);
  for (uint32_t i = 0; i < n; ++i) {
    const FlowAddr a = flow_addr(i);
    Tuple t;
    t.src = __builtin_bswap32(a.client);
    t.dst = __builtin_bswap32(a.server);
    t.sport = __builtin_bswap16(a.cport);
    t.dport = __builtin_bswap16(a.sport);
    t.proto = 17;
    uint32_t idx = ft.alloc();
    ft.flow(idx).tuple[0] = t;
    ft.flow(idx).tuple[1] = invert(t);
    ft.link(idx);
    keys[i] = t;
  }
  std::shuffle(keys.begin(), keys.end(), std::mt19937(1));
  size_t i = 0;
  for (auto _ : state) {
    const Tuple& k = keys[i];
    benchmark::DoNotOptimize(ft.find(k, ft.hash(k)));
    if (++i == n) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FlowTableLookup)->Arg(1000)->Arg(1 << 20)->Arg(10'000'000)->ArgName("flows");

// What several workers add to a new flow while any client's mapping is
// shared: a lookup of its source in a SourceMap, sized for `flows`, with
// an entry for one flow in `one_in` (4: a pool's every client port; 1000: a
// few changed ports under MASQUERADE). The sources looked up have none (the
// usual new flow) or have one (hit).
void BM_SourceMapLookup(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  const uint64_t one_in = static_cast<uint64_t>(state.range(1));
  const bool hits = state.range(2) != 0;
  SourceMap m(n);
  std::vector<uint64_t> keys(n);
  for (uint64_t i = 0; i < n; ++i) {
    const FlowAddr a = flow_addr(i);
    keys[i] = SourceMap::fingerprint(17, __builtin_bswap32(a.client), __builtin_bswap16(a.cport), 5);
    if (i % one_in == 0) (void)m.enter(keys[i], static_cast<uint32_t>(i % 2), SourceMap::mapping(a.client, a.cport));
  }
  std::vector<uint64_t> probe;
  for (uint64_t i = 0; i < n; ++i)
    if ((i % one_in == 0) == hits) probe.push_back(keys[i]);
  std::shuffle(probe.begin(), probe.end(), std::mt19937(1));
  size_t i = 0, found = 0;
  for (auto _ : state) {
    uint64_t v;
    found += m.find(probe[i], &v);
    if (++i == probe.size()) i = 0;
  }
  if ((found != 0) != hits) state.SkipWithError("lookups did not find what was entered");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SourceMapLookup)
    ->ArgsProduct({{1 << 20}, {4, 1000}, {0, 1}})
    ->ArgNames({"flows", "one_in", "hit"});

void BM_ChecksumIncremental(benchmark::State& state) {
  uint16_t check = 0x1234;
  uint32_t addr = 0x0200A8C6;
  for (auto _ : state) {
    const uint32_t next = addr + 1;
    check = csum_apply(check, csum_fold(csum_delta32(addr, next)));
    addr = next;
    benchmark::DoNotOptimize(check);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ChecksumIncremental);

void BM_ChecksumIpHeader(benchmark::State& state) {
  uint8_t f[kFrameStride];
  write_udp(f, flow_addr(7), 0);
  for (auto _ : state) {
    benchmark::DoNotOptimize(csum_fold(csum_partial(f + 14, 20)));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ChecksumIpHeader);

// N rules in POSTROUTING, only the last of which matches the packet.
void BM_RuleMatch(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::string rules = "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n";
  for (int i = 0; i < n - 1; ++i)
    rules += fmt::format("-A POSTROUTING -s 198.18.{}.0/24 -p tcp -m tcp --dport {} -o eth0 -j MASQUERADE\n", i % 250, 1 + i);
  rules += "-A POSTROUTING -s 198.18.0.0/16 -o eth0 -j MASQUERADE\nCOMMIT\n";
  auto rs = parse_rules(rules, "bench.rules");
  if (!rs) {
    state.SkipWithError(rs.error().message.c_str());
    return;
  }
  rs->bind_interfaces({"eth1", "eth0"});
  RulePacket p;
  p.src = 0xC6120002;
  p.dst = 0xC6336407;
  p.proto = 17;
  p.sport = 5000;
  p.dport = 53;
  p.out_if = 1;
  for (auto _ : state) benchmark::DoNotOptimize(evaluate(rs->nat, Hook::kPostrouting, p));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RuleMatch)->Arg(10)->Arg(100)->Arg(1000)->ArgName("rules");

// Loading kube-proxy's nat table for N Services (3 chains and 8 rules each).
void BM_LoadKubeProxy(benchmark::State& state) {
  const std::string text = test::kube_proxy_rules(static_cast<uint32_t>(state.range(0)));
  for (auto _ : state) {
    auto rs = parse_rules(text, "kube.rules");
    if (!rs) {
      state.SkipWithError(rs.error().message.c_str());
      return;
    }
    benchmark::DoNotOptimize(rs->rule_count());
  }
  state.counters["rules"] = static_cast<double>(parse_rules(text, "kube.rules")->rule_count());
}
BENCHMARK(BM_LoadKubeProxy)->Arg(10)->Arg(1000)->Arg(10000)->ArgName("services")->Unit(benchmark::kMillisecond);

// A new connection to the last Service through kube-proxy's nat PREROUTING:
// KUBE-SERVICES, its KUBE-SVC and KUBE-SEP chains, for N Services.
void BM_KubeProxyNewFlow(benchmark::State& state) {
  const uint32_t n = static_cast<uint32_t>(state.range(0));
  auto rs = parse_rules(test::kube_proxy_rules(n), "kube.rules");
  if (!rs) {
    state.SkipWithError(rs.error().message.c_str());
    return;
  }
  rs->bind_interfaces({"eth1", "eth0"});
  Rng rng(1);
  uint32_t dst = 0;
  parse_ipv4(test::service_ip(n - 1), &dst);
  dst = __builtin_bswap32(dst);
  for (auto _ : state) {
    RulePacket p;
    p.src = 0xC6120002;
    p.dst = dst;
    p.proto = 6;
    p.sport = 5000;
    p.dport = 80;
    p.in_if = 0;
    p.rng = &rng;
    const Rule* r = evaluate(rs->nat, Hook::kPrerouting, p);
    if (!r || r->target.kind != TargetKind::kDnat) state.SkipWithError("no DNAT");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_KubeProxyNewFlow)->Arg(10)->Arg(1000)->Arg(10000)->ArgName("services");

// Route lookup (the gateway's own addresses, then longest-prefix match) with
// N random routes of an Internet table's mix (mostly /24s, some /16-/23, a few
// longer) over a default route, for random destinations: one table read at 3
// routes (a NAT gateway's usual), up to three with a full table. Reports the
// table's memory.
void BM_RouteLookup(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  Fib fib;
  fib.add_interface(Interface{"eth0", __builtin_bswap32(0xC6336402), 24, MacAddr{}});
  fib.add_interface(Interface{"eth1", __builtin_bswap32(0xC6120001), 16, MacAddr{}});
  (void)fib.add_route(Prefix{0, 0}, __builtin_bswap32(0xC6336401), -1);
  std::mt19937_64 rng(3);
  for (size_t i = 0; i < n; ++i) {
    const unsigned pick = rng() % 100;
    Prefix p;
    p.len = static_cast<uint8_t>(pick < 60 ? 24 : pick < 95 ? 16 + rng() % 8 : 25 + rng() % 8);
    p.addr = static_cast<uint32_t>(rng()) & p.mask();
    (void)fib.add_route(p, __builtin_bswap32(0xC6336400 + 3 + static_cast<uint32_t>(rng() % 16)), -1);
  }
  std::vector<uint32_t> dst(1 << 16);
  for (uint32_t& d : dst) d = static_cast<uint32_t>(rng());
  size_t i = 0;
  for (auto _ : state) {
    NextHop nh;
    benchmark::DoNotOptimize(fib.resolve(dst[i++ & 0xFFFF], &nh));
    benchmark::DoNotOptimize(nh);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["table_MiB"] = static_cast<double>(fib.lookup_table_bytes()) / (1 << 20);
}
BENCHMARK(BM_RouteLookup)->Arg(0)->Arg(1000)->Arg(1000000)->ArgName("routes");

}  // namespace
}  // namespace xnat::bench

BENCHMARK_MAIN();
