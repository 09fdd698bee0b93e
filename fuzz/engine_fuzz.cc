// Fuzzes the engine's input path: any bytes as a frame on any interface, with
// rules that exercise SNAT, DNAT and stateless NAT, and a small table so
// eviction runs. The engine must never crash, hang or read out of bounds.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>

#include "control/config.h"
#include "control/example_gateway.h"
#include "nat/rules_parser.h"

namespace {
std::unique_ptr<xnat::Engine> make_engine() {
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
  return std::make_unique<xnat::Engine>(std::move(*cfg));
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<xnat::Engine> engine = make_engine();
  static uint64_t now = 1000000;
  if (size < 2) return 0;
  // First byte: interface (bits 0-1: eth0, eth1, eth0, or the live gateway's
  // host port) and clock step; the rest is one or more frames separated by
  // the length in the second byte.
  const int in_if = (data[0] & 3) == 3 ? xnat::kHostPort : data[0] & 1;
  now += data[0] >> 2;
  uint8_t buf[2048];
  size_t off = 1;
  while (off < size) {
    size_t len = data[off++];
    if (len == 0) len = size - off;
    if (len > size - off) len = size - off;
    const size_t take = len < sizeof buf ? len : sizeof buf;
    std::memcpy(buf, data + off, take);
    xnat::Packet p;
    p.data = buf;
    p.len = static_cast<uint32_t>(take);
    p.capacity = sizeof buf;
    p.in_if = static_cast<int16_t>(in_if);
    engine->process(p, now);
    off += len;
  }
  return 0;
}
