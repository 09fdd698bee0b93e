// Fuzzes the engine's input path: any bytes as frames on any interface, in
// bursts of 1 to 32 (the staged burst path as the live gateway runs it), with
// any offload state a backend may report, rules that exercise SNAT, DNAT and
// stateless NAT, and a small table so eviction runs. The engine must never
// crash, hang or read out of bounds, and a forwarded frame stays within its
// buffer. Each input gets a fresh engine, so a failure reproduces from its
// input alone.
//
// Input (FuzzedDataProvider): frame bytes from the front; from the back, per
// burst a clock step (ms) and a size, and per frame a control byte (bits 0-1:
// eth0, eth1, eth0, or the host port; bits 2-3: full, partial or maybe-partial
// L4 checksum; bits 4-5: no GSO, TCP or UDP GSO) and a length.
// fuzz/make_engine_corpus.py writes seeds in this form. A fast path
// (conntrack/flow_offload.h) that checks what it is told: connections are
// offered with paths on real interfaces, taken back once each, and the table's
// count of offloaded flows is always its own.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>

#include <fuzzer/FuzzedDataProvider.h>

#include "control/config.h"
#include "control/example_gateway.h"
#include "nat/rules_parser.h"
#include "packet/offload.h"

namespace {
struct CheckedOffload final : xnat::FlowOffload {
  std::map<uint32_t, uint64_t> live;  // flow index -> when added
  bool add(uint32_t idx, const xnat::OffloadPath (&d)[2], uint64_t now_ms) override {
    for (const xnat::OffloadPath& p : d)
      if (p.match.proto != 6 || p.out.proto != 6 || p.out_if < 0 || p.out_if > 1) __builtin_trap();
    if (!live.emplace(idx, now_ms).second) __builtin_trap();
    return true;
  }
  void remove(uint32_t idx, const xnat::Flow&) override {
    if (live.erase(idx) != 1) __builtin_trap();
  }
  uint64_t last_seen_ms(uint32_t idx) const override {
    const auto it = live.find(idx);
    if (it == live.end()) __builtin_trap();
    return it->second;
  }
};

xnat::EngineConfig make_config() {
  xnat::ExampleGateway g;
  g.inside = "in0";
  g.outside = "out0";
  g.conntrack_lines = "nf_conntrack_max = 64";  // small, so eviction runs
  g.neighbors = {{"198.18.0.2", "02:00:00:00:00:10"}};
  const std::string cfg_text = xnat::example_gateway_toml(g);
  auto cfg = xnat::parse_config(cfg_text, "fuzz.toml", xnat::ConfigMode::kReplay);
  if (!cfg) {
    std::fprintf(stderr, "fuzz config: %s\n", cfg.error().message.c_str());
    __builtin_trap();
  }
  auto rules = xnat::parse_rules(R"(*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 198.19.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.18.0.2:80
-A PREROUTING -d 198.19.0.1/32 -p udp -j DNAT --to-destination 198.18.0.2-198.18.0.3
-A POSTROUTING -s 198.18.0.0/16 -o out0 -p tcp -j MASQUERADE --to-ports 20000-20010
-A POSTROUTING -s 198.18.0.0/16 -o out0 -p udp -j SNAT --to-source 198.19.0.1-198.19.0.3:20000-20003 --random-fully
-A POSTROUTING -s 198.18.0.0/16 -o out0 -j MASQUERADE
COMMIT
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -d 198.19.5.0/24 -j RAWDNAT --to-destination 198.18.5.0/24
COMMIT
*rawpost
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 198.18.5.0/24 -o out0 -j RAWSNAT --to-source 198.19.5.0/24
COMMIT
)", "fuzz.rules");
  if (!rules) {
    std::fprintf(stderr, "fuzz rules: %s\n", rules.error().message.c_str());
    __builtin_trap();
  }
  cfg->rules = std::move(*rules);
  return std::move(*cfg);
}
}  // namespace

namespace {
// What AF_PACKET's output does with a burst (live/afpacket.cc): runs of TCP
// segments leave as one super-frame each. Cut again as the output's GSO cuts
// it, a run must give back exactly its segments, with their checksums full.
void check_coalescing(const xnat::Packet* pkts, size_t n) {
  static uint8_t copy[xnat::kBurst][2048];
  static uint8_t super[65536 + 2048];
  static uint8_t scratch[2048];
  for (int16_t port = 0; port < 2; ++port) {
    size_t idx[xnat::kBurst];
    xnat::TcpSegmentView views[xnat::kBurst];
    size_t k = 0;
    for (size_t i = 0; i < n; ++i) {
      const xnat::Packet& p = pkts[i];
      if (p.verdict != xnat::Verdict::kForward || p.out_if != port || p.gso != xnat::Gso::kNone) continue;
      if (p.l4_csum != xnat::L4Csum::kVerified && p.l4_csum != xnat::L4Csum::kPartial) continue;
      if (!xnat::tcp_segment_view(p.data, p.len, &views[k])) continue;
      std::memcpy(copy[k], p.data, views[k].ip_end);
      if (!xnat::finish_l4_checksum(copy[k], views[k].ip_end)) __builtin_trap();
      idx[k++] = i;
    }
    size_t at = 0;
    while (at < k) {
      xnat::TcpRun run;
      uint8_t first[2048];
      std::memcpy(first, pkts[idx[at]].data, views[at].ip_end);
      run.open(first, views[at]);
      size_t end = at + 1;
      uint32_t len = views[at].ip_end;
      std::memcpy(super, first, len);
      while (end < k && run.accepts(pkts[idx[end]].data, views[end])) {
        run.add(views[end]);
        std::memcpy(super + len, pkts[idx[end]].data + views[end].payload_at, views[end].payload);
        len += views[end].payload;
        ++end;
      }
      if (run.segments > 1) {
        run.finish();
        std::memcpy(super, first, views[at].payload_at);
        size_t seg = at;
        auto sink = [&](const uint8_t* f, uint32_t l) {
          if (seg >= end || l != views[seg].ip_end || std::memcmp(f, copy[seg], l) != 0) __builtin_trap();
          ++seg;
          return true;
        };
        if (xnat::segment_gso(super, len, run.head.payload, scratch, sizeof scratch, sink) != end - at) __builtin_trap();
      }
      at = end;
    }
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const xnat::EngineConfig config = make_config();
  xnat::Engine engine(config);
  CheckedOffload fast;
  engine.set_flow_offload(&fast);
  FuzzedDataProvider in(data, size);
  uint64_t now = 1000000;
  static uint8_t bufs[xnat::kBurst][2048];
  xnat::Packet pkts[xnat::kBurst];
  while (in.remaining_bytes() > 0) {
    now += in.ConsumeIntegralInRange<uint32_t>(0, 40000);
    const size_t n = in.ConsumeIntegralInRange<size_t>(1, xnat::kBurst);
    for (size_t i = 0; i < n; ++i) {
      const uint8_t ctl = in.ConsumeIntegral<uint8_t>();
      const size_t len = in.ConsumeIntegralInRange<size_t>(0, 1600);
      const std::vector<uint8_t> bytes = in.ConsumeBytes<uint8_t>(len);
      std::memcpy(bufs[i], bytes.data(), bytes.size());
      xnat::Packet& p = pkts[i];
      p = xnat::Packet{};
      p.data = bufs[i];
      p.len = static_cast<uint32_t>(bytes.size());
      p.capacity = sizeof bufs[i];
      p.in_if = static_cast<int16_t>((ctl & 3) == 3 ? xnat::kHostPort : ctl & 1);
      const uint8_t csum = (ctl >> 2) & 3;
      p.l4_csum = csum == 1   ? xnat::L4Csum::kPartial
                  : csum == 2 ? xnat::L4Csum::kMaybePartial
                  : csum == 3 ? xnat::L4Csum::kVerified
                              : xnat::L4Csum::kFull;
      const uint8_t gso = (ctl >> 4) & 3;
      p.gso = gso == 1 ? xnat::Gso::kTcp : gso == 2 ? xnat::Gso::kUdp : xnat::Gso::kNone;
      p.gso_size = p.gso == xnat::Gso::kNone ? 0 : 536;
    }
    engine.process_burst(pkts, n, now);
    check_coalescing(pkts, n);
    engine.offload_tick(now);
    if (engine.conntrack().offloaded() != fast.live.size()) __builtin_trap();
    for (size_t i = 0; i < n; ++i) {
      xnat::Packet& p = pkts[i];
      if (p.len > p.capacity || (p.verdict == xnat::Verdict::kForward && p.out_if < 0)) __builtin_trap();
      // What the live gateway does with a frame it cannot hand on whole.
      if (p.verdict == xnat::Verdict::kHeld) continue;  // the engine's copy waits
      if (p.verdict != xnat::Verdict::kDrop && p.gso != xnat::Gso::kNone) {
        static uint8_t scratch[2048];
        auto sink = [](const uint8_t*, uint32_t len) { return len <= sizeof scratch; };
        xnat::segment_gso(p.data, p.len, p.gso_size, scratch, sizeof scratch, sink);
      } else if (p.verdict != xnat::Verdict::kDrop && p.l4_csum == xnat::L4Csum::kPartial) {
        xnat::finish_l4_checksum(p.data, p.len);
      }
      if (p.verdict != xnat::Verdict::kDrop && p.frag_mtu) {
        // Too large for its output, without DF: the engine promised it can be cut.
        static uint8_t piece[4096];
        const uint32_t mtu = p.frag_mtu;
        auto sink = [&](const uint8_t*, uint32_t len) { return len <= 18 + mtu; };  // at most a VLAN tag's link header
        if (xnat::fragment_ipv4(p.data, p.len, mtu, piece, sizeof piece, sink) < 2) __builtin_trap();
      }
    }
    // Later fragments that waited for their first, as the worker takes them.
    for (size_t m; (m = engine.take_released(pkts, xnat::kBurst, now)) > 0; engine.released_done()) {
      engine.process_burst(pkts, m, now);
      for (size_t i = 0; i < m; ++i)
        if (pkts[i].len > pkts[i].capacity || pkts[i].verdict == xnat::Verdict::kHeld ||
            (pkts[i].verdict == xnat::Verdict::kForward && pkts[i].out_if < 0))
          __builtin_trap();
    }
  }
  return 0;
}
