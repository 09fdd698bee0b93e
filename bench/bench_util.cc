#include "bench_util.h"

#include <fmt/format.h>

#include <cstring>
#include <fstream>

#include "control/config.h"
#include "control/example_gateway.h"
#include "nat/rules_parser.h"
#include "packet/checksum.h"

namespace xnat::bench {

FlowAddr flow_addr(uint64_t i) {
  const uint32_t c = static_cast<uint32_t>(i % 65000);
  const uint32_t s = static_cast<uint32_t>(i / 65000);
  return FlowAddr{0xC6120000u + 2 + c, 0xC6336400u + (c & 0xFF), static_cast<uint16_t>(1024 + s),
                  static_cast<uint16_t>(1 + (c >> 8))};
}

namespace {
const uint8_t kGwIn[6] = {2, 0, 0, 0, 0, 1}, kGwOut[6] = {2, 0, 0, 0, 0, 2}, kRouter[6] = {2, 0, 0, 0, 0, 0xfe},
              kClient[6] = {2, 0, 0, 0, 0, 0x10};

void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void put32(uint8_t* p, uint32_t v) {
  put16(p, static_cast<uint16_t>(v >> 16));
  put16(p + 2, static_cast<uint16_t>(v));
}

// Ethernet + IPv4 for a 60-byte frame carrying `proto`; returns the L4 offset.
size_t write_l2l3(uint8_t* f, const FlowAddr& a, int dir, uint8_t proto, bool nat) {
  std::memset(f, 0, kFrameStride);
  std::memcpy(f, dir == 0 ? kGwIn : kGwOut, 6);
  std::memcpy(f + 6, dir == 0 ? kClient : kRouter, 6);
  f[12] = 0x08;
  uint8_t* ip = f + 14;
  ip[0] = 0x45;
  put16(ip + 2, kFrameLen - 14);
  put16(ip + 4, 1);
  put16(ip + 6, 0x4000);
  ip[8] = 64;
  ip[9] = proto;
  put32(ip + 12, dir == 0 ? a.client : a.server);
  put32(ip + 16, dir == 0 ? a.server : nat ? 0xC6130001u /* 198.19.0.1 */ : a.client);
  const uint16_t c = csum_finish(csum_partial(ip, 20));
  std::memcpy(ip + 10, &c, 2);
  return 34;
}
}  // namespace

void write_udp(uint8_t* f, const FlowAddr& a, int dir, bool nat) {
  const size_t l4 = write_l2l3(f, a, dir, 17, nat);
  put16(f + l4, dir == 0 ? a.cport : a.sport);
  put16(f + l4 + 2, dir == 0 ? a.sport : a.cport);
  put16(f + l4 + 4, kFrameLen - l4);
  uint32_t s, d;
  std::memcpy(&s, f + 26, 4);
  std::memcpy(&d, f + 30, 4);
  const uint16_t c = l4_checksum(s, d, 17, f + l4, kFrameLen - l4);
  std::memcpy(f + l4 + 6, &c, 2);
}

void write_tcp(uint8_t* f, const FlowAddr& a, int dir, uint8_t flags, bool nat) {
  const size_t l4 = write_l2l3(f, a, dir, 6, nat);
  put16(f + l4, dir == 0 ? a.cport : a.sport);
  put16(f + l4 + 2, dir == 0 ? a.sport : a.cport);
  put32(f + l4 + 4, dir == 0 ? 1000 : 5000);
  put32(f + l4 + 8, dir == 0 ? 5001 : 1001);
  f[l4 + 12] = 5 << 4;
  f[l4 + 13] = flags;
  put16(f + l4 + 14, 64240);
  uint32_t s, d;
  std::memcpy(&s, f + 26, 4);
  std::memcpy(&d, f + 30, 4);
  const uint16_t c = l4_checksum(s, d, 6, f + l4, kFrameLen - l4);
  std::memcpy(f + l4 + 16, &c, 2);
}

std::string masquerade_rules() {
  return "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
         "-A POSTROUTING -s 198.18.0.0/16 -o eth0 -j MASQUERADE\nCOMMIT\n";
}

std::unique_ptr<Engine> make_engine(const std::string& rules, uint64_t max_flows, const std::string& extra) {
  ExampleGateway g;
  g.conntrack_lines = fmt::format("nf_conntrack_max = {}\n{}", max_flows, extra);
  const std::string cfg_text = example_gateway_toml(g);
  auto cfg = parse_config(cfg_text, "bench.toml", ConfigMode::kReplay);
  if (!cfg) throw std::runtime_error(cfg.error().message);
  auto rs = parse_rules(rules, "bench.rules");
  if (!rs) throw std::runtime_error(rs.error().message);
  cfg->rules = std::move(*rs);
  const MacAddr client{{2, 0, 0, 0, 0, 0x10}};
  for (uint32_t c = 0; c < 65000; ++c) cfg->fib.add_neighbor(__builtin_bswap32(0xC6120000u + 2 + c), client);
  return std::make_unique<Engine>(std::move(*cfg));
}

Runner::Runner(size_t batch) : batch_(batch), bufs_(batch * 2048), pkts_(batch) {}

size_t Runner::run(Engine& e, const uint8_t* trace, const int16_t* in_if, size_t first, size_t count,
                   size_t trace_len, uint64_t now_ms) {
  size_t forwarded = 0;
  size_t pos = first % trace_len;
  while (count > 0) {
    const size_t m = count < batch_ ? count : batch_;
    for (size_t j = 0; j < m; ++j) {
      uint8_t* b = &bufs_[j * 2048];
      std::memcpy(b, trace + pos * kFrameStride, kFrameStride);
      // Fresh, as a backend hands each frame over: an earlier pass's results
      // (a checksum marked verified) must not carry over.
      Packet& p = pkts_[j];
      p = Packet{};
      p.data = b;
      p.len = kFrameLen;
      p.capacity = 2048;
      p.in_if = in_if[pos];
      if (++pos == trace_len) pos = 0;
    }
    e.process_burst(pkts_.data(), m, now_ms);
    for (size_t j = 0; j < m; ++j) forwarded += pkts_[j].verdict == Verdict::kForward;
    count -= m;
  }
  return forwarded;
}

uint64_t rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      uint64_t kb;
      in >> kb;
      return kb * 1024;
    }
    std::getline(in, key);
  }
  return 0;
}

}  // namespace xnat::bench
