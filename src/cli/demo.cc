#include "cli/demo.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/replay.h"
#include "control/example_gateway.h"
#include "io/pcap.h"
#include "packet/describe.h"
#include "packet/frame_builder.h"

namespace xnat {
namespace {

constexpr const char* kRules = R"(# iptables-save format, as on a Linux gateway
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:PORTFWD - [0:0]
-A PREROUTING -d 198.19.0.1/32 -i wan0 -j PORTFWD
-A POSTROUTING -s 198.18.0.0/16 -o wan0 -j MASQUERADE
-A PORTFWD -p tcp -m tcp --dport 8080 -m comment --comment "published web server" -j DNAT --to-destination 198.18.0.80:80
COMMIT
)";

struct Timed {
  uint64_t t_us;
  std::vector<uint8_t> f;
};

}  // namespace

int run_demo(const std::string& out_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) {
    fmt::print(stderr, "xnat demo: {}: {}\n", out_dir, ec.message());
    return 1;
  }
  ExampleGateway gw;
  gw.inside = "lan0";
  gw.outside = "wan0";
  gw.rules_file = "nat.rules";
  gw.conntrack_lines = "nf_conntrack_max = 1024\nnf_conntrack_tcp_timeout_time_wait = 120";
  gw.neighbors = {{"198.18.0.2", "02:00:00:00:00:10"}, {"198.18.0.80", "02:00:00:00:00:80"}};
  std::ofstream(fs::path(out_dir) / "gw.toml")
      << "# xnat demo gateway: an inside LAN behind one outside address.\n" << example_gateway_toml(gw);
  std::ofstream(fs::path(out_dir) / "nat.rules") << kRules;

  const MacAddr lan_gw = {{2, 0, 0, 0, 0, 1}}, wan_gw = {{2, 0, 0, 0, 0, 2}}, router = {{2, 0, 0, 0, 0, 0xfe}},
                client = {{2, 0, 0, 0, 0, 0x10}}, web = {{2, 0, 0, 0, 0, 0x80}};
  const uint64_t T = 1'763'800'000'000'000ull;
  auto c = [&] { return std::move(FrameBuilder().eth(client, lan_gw)); };
  auto w = [&] { return std::move(FrameBuilder().eth(web, lan_gw)); };
  auto r = [&] { return std::move(FrameBuilder().eth(router, wan_gw)); };
  std::vector<Timed> lan = {
      // DNS query, web fetch, ping, a traceroute probe that dies at the gateway
      {T + 0, c().ip("198.18.0.2", "203.0.113.53").udp(41000, 53).payload("A? example.test").build()},
      {T + 2000, c().ip("198.18.0.2", "198.51.100.80").tcp(42000, 80, kTcpSyn, 1000).build()},
      {T + 4000, c().ip("198.18.0.2", "198.51.100.80").tcp(42000, 80, kTcpAck, 1001, 5001).build()},
      {T + 5000, c().ip("198.18.0.2", "198.51.100.80").tcp(42000, 80, kTcpAck | kTcpPsh, 1001, 5001).payload("GET / HTTP/1.1\r\n\r\n").build()},
      {T + 9000, c().ip("198.18.0.2", "198.51.100.80").tcp(42000, 80, kTcpFin | kTcpAck, 1019, 5020).build()},
      {T + 11000, c().ip("198.18.0.2", "198.51.100.80").tcp(42000, 80, kTcpAck, 1020, 5021).build()},
      {T + 12000, c().ip("198.18.0.2", "198.51.100.7").icmp(kIcmpEcho, 0, 777, 1).payload("ping").build()},
      {T + 14000, c().ip("198.18.0.2", "198.51.100.7").ttl(1).udp(43000, 33434).payload("traceroute").build()},
      // the published web server answers the outside client
      {T + 21000, w().ip("198.18.0.80", "198.51.100.9").tcp(80, 50000, kTcpSyn | kTcpAck, 9000, 7001).build()},
  };
  std::vector<Timed> wan = {
      {T + 1000, r().ip("203.0.113.53", "198.19.0.1").udp(53, 41000).payload("A 198.51.100.80").build()},
      {T + 3000, r().ip("198.51.100.80", "198.19.0.1").tcp(80, 42000, kTcpSyn | kTcpAck, 5000, 1001).build()},
      {T + 7000, r().ip("198.51.100.80", "198.19.0.1").tcp(80, 42000, kTcpAck | kTcpPsh, 5001, 1019).payload("HTTP/1.1 200 OK\r\n").build()},
      {T + 10000, r().ip("198.51.100.80", "198.19.0.1").tcp(80, 42000, kTcpFin | kTcpAck, 5020, 1020).build()},
      {T + 13000, r().ip("198.51.100.7", "198.19.0.1").icmp(kIcmpEchoReply, 0, 777, 1).payload("ping").build()},
      // an outside client opens the published port
      {T + 20000, r().ip("198.51.100.9", "198.19.0.1").tcp(50000, 8080, kTcpSyn, 7000).build()},
      // noise an operator must be able to explain: a corrupted header, a stray reply
      {T + 30000, [&] {
         auto f = r().ip("198.51.100.66", "198.19.0.1").udp(1, 2).build();
         f[24] ^= 0xFF;  // IPv4 header checksum
         return f;
       }()},
      {T + 31000, r().ip("198.51.100.67", "198.19.0.1").tcp(443, 60000, kTcpSyn | kTcpAck, 1, 1).build()},
  };
  auto write = [&](const std::string& name, const std::vector<Timed>& frames) {
    auto pw = PcapWriter::create((fs::path(out_dir) / name).string());
    if (!pw) return false;
    for (const Timed& t : frames) pw->write(t.t_us * 1000, t.f.data(), t.f.size());
    return pw->close();
  };
  if (!write("lan0-in.pcap", lan) || !write("wan0-in.pcap", wan)) {
    fmt::print(stderr, "xnat demo: cannot write the demo captures in {}\n", out_dir);
    return 1;
  }

  ReplayOptions ro;
  ro.config_path = (fs::path(out_dir) / "gw.toml").string();
  ro.inputs = {{"lan0", (fs::path(out_dir) / "lan0-in.pcap").string()},
               {"wan0", (fs::path(out_dir) / "wan0-in.pcap").string()}};
  ro.out_dir = (fs::path(out_dir) / "out").string();
  fmt::print("$ xnat replay --config {} --in lan0={} --in wan0={} --out {}\n", ro.config_path, ro.inputs[0].second,
             ro.inputs[1].second, ro.out_dir);
  auto sum = run_replay(ro);
  if (!sum) {
    fmt::print(stderr, "xnat demo: {}\n", sum.error().message);
    return 1;
  }
  fmt::print("replayed {} frames: {} forwarded, {} to host, {} dropped; {} connections tracked\n\n", sum->frames,
             sum->forwarded, sum->to_host, sum->dropped, sum->flows);
  for (const char* itf : {"wan0", "lan0"}) {
    fmt::print("== frames the gateway sent on {}\n", itf);
    auto recs = read_pcap((fs::path(ro.out_dir) / (std::string(itf) + ".pcap")).string());
    if (!recs) return 1;
    for (const PcapRecord& rec : *recs)
      fmt::print("  +{:>6.3f} ms  {}\n", (rec.ts_ns / 1000 - T) / 1000.0, describe_frame(rec.data));
  }
  auto slurp = [&](const char* name) {
    std::ifstream in(fs::path(ro.out_dir) / name);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  fmt::print("\n== conntrack -L -o extended (out/conntrack.txt)\n{}", slurp("conntrack.txt"));
  fmt::print("\n== counters that are not zero (out/counters.txt has all)\n");
  std::istringstream cs(slurp("counters.txt"));
  std::string line;
  while (std::getline(cs, line)) {
    const size_t sp = line.rfind(' ');
    if (line.rfind("cpu=", 0) == 0 || (sp != std::string::npos && line.substr(sp + 1) != "0"))
      fmt::print("  {}\n", line);
  }
  fmt::print("\nEverything is in {}\n", out_dir);
  return 0;
}

}  // namespace xnat
