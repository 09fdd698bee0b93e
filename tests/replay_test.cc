// End-to-end tests of `xnat replay`: pcaps written here, the real binary run on
// them, and its outputs (per-interface pcaps, conntrack.txt, counters.txt)
// checked packet by packet.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "io/pcap.h"
#include "test_util.h"

namespace xnat::test {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/xnat-replay-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& f) const { return path_ + "/" + f; }

 private:
  std::string path_;
};

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}
std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct TimedFrame {
  uint64_t t_us;
  std::vector<uint8_t> frame;
};

void write_pcap(const std::string& path, const std::vector<TimedFrame>& frames) {
  auto w = PcapWriter::create(path);
  ASSERT_TRUE(w.ok());
  for (const auto& f : frames) w->write(f.t_us * 1000, f.frame.data(), f.frame.size());
}

std::vector<std::vector<uint8_t>> frames_of(const std::string& path) {
  auto r = read_pcap(path);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  std::vector<std::vector<uint8_t>> out;
  if (r.ok())
    for (auto& rec : *r) out.push_back(rec.data);
  return out;
}

std::map<std::string, uint64_t> counters_of(const std::string& path) {
  std::map<std::string, uint64_t> m;
  std::istringstream in(read_file(path));
  std::string name;
  uint64_t v;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    if (ls >> name >> v) m[name] = v;
  }
  return m;
}

struct Replay {
  int exit_code;
  std::string stdout_text;
};

Replay run_replay(const TempDir& dir, const std::vector<std::string>& ins) {
  std::string cmd = std::string(XNAT_BINARY) + " replay --config " + (dir / "gw.toml") + " --out " + (dir / "out");
  for (const auto& i : ins) cmd += " --in " + i;
  cmd += " > " + (dir / "stdout.txt") + " 2>&1";
  int rc = std::system(cmd.c_str());
  return Replay{WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, read_file(dir / "stdout.txt")};
}

// The reference gateway, with `rules` as its nat.rules.
void write_gateway(const TempDir& dir, const std::string& rules, const std::string& conntrack = "") {
  std::string cfg = reference_config(conntrack);
  cfg.replace(0, 0, "rules = \"nat.rules\"\n");
  write_file(dir / "gw.toml", cfg);
  write_file(dir / "nat.rules", rules);
}

const uint64_t T = 1'700'000'000'000'000ull;  // µs since the epoch: a realistic capture time

TEST(Replay, TcpLifecycleThroughMasqueradePacketByPacket) {
  TempDir dir;
  write_gateway(dir, nat_table("-A POSTROUTING -s 198.18.0.0/16 -o eth0 -j MASQUERADE\n"));
  auto c2s = [](uint8_t flags, uint32_t seq, uint32_t ack, const std::string& data = "") {
    return FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.51.100.7").tcp(40000, 80, flags, seq, ack).payload(data);
  };
  auto s2c = [](uint8_t flags, uint32_t seq, uint32_t ack, const std::string& data = "") {
    return FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").tcp(80, 40000, flags, seq, ack).payload(data);
  };
  const uint8_t A = kTcpAck, PA = kTcpAck | kTcpPsh, FA = kTcpFin | kTcpAck;
  std::vector<TimedFrame> in1 = {
      {T + 0, c2s(kTcpSyn, 100, 0).build()},
      {T + 2000, c2s(A, 101, 501).build()},
      {T + 3000, c2s(PA, 101, 501, "GET / HTTP/1.0\r\n\r\n").build()},
      {T + 6000, c2s(FA, 119, 512).build()},
      {T + 8000, c2s(A, 120, 513).build()},
  };
  std::vector<TimedFrame> in0 = {
      {T + 1000, s2c(kTcpSyn | kTcpAck, 500, 101).build()},
      {T + 4000, s2c(PA, 501, 119, "HTTP/1.0 200 OK\r\n").build()},
      {T + 5000, s2c(A, 512, 119).build()},
      {T + 7000, s2c(FA, 512, 120).build()},
  };
  write_pcap(dir / "in1.pcap", in1);
  write_pcap(dir / "in0.pcap", in0);
  Replay r = run_replay(dir, {"eth1=" + (dir / "in1.pcap"), "eth0=" + (dir / "in0.pcap")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("replayed 9 frames: 9 forwarded"), std::string::npos) << r.stdout_text;

  // What left on eth0: the client's segments, source rewritten, TTL - 1.
  auto out0 = frames_of(dir / "out/eth0.pcap");
  ASSERT_EQ(out0.size(), in1.size());
  auto o2s = [](uint8_t flags, uint32_t seq, uint32_t ack, const std::string& data = "") {
    return FrameBuilder().eth(kOutMac, kRouterMac).ip("198.19.0.1", "198.51.100.7").ttl(63).tcp(40000, 80, flags, seq, ack).payload(data).build();
  };
  EXPECT_EQ(out0[0], o2s(kTcpSyn, 100, 0)) << describe(out0[0]);
  EXPECT_EQ(out0[1], o2s(A, 101, 501));
  EXPECT_EQ(out0[2], o2s(PA, 101, 501, "GET / HTTP/1.0\r\n\r\n"));
  EXPECT_EQ(out0[3], o2s(FA, 119, 512));
  EXPECT_EQ(out0[4], o2s(A, 120, 513));
  // What left on eth1: the server's segments, destination restored.
  auto out1 = frames_of(dir / "out/eth1.pcap");
  ASSERT_EQ(out1.size(), in0.size());
  auto o2c = [](uint8_t flags, uint32_t seq, uint32_t ack, const std::string& data = "") {
    return FrameBuilder().eth(kInMac, kClientMac).ip("198.51.100.7", "198.18.0.2").ttl(63).tcp(80, 40000, flags, seq, ack).payload(data).build();
  };
  EXPECT_EQ(out1[0], o2c(kTcpSyn | kTcpAck, 500, 101));
  EXPECT_EQ(out1[1], o2c(PA, 501, 119, "HTTP/1.0 200 OK\r\n"));
  EXPECT_EQ(out1[2], o2c(A, 512, 119));
  EXPECT_EQ(out1[3], o2c(FA, 512, 120));

  // The final table, exactly as `conntrack -L -o extended` prints it.
  EXPECT_EQ(read_file(dir / "out/conntrack.txt"),
            "ipv4     2 tcp      6 120 TIME_WAIT src=198.18.0.2 dst=198.51.100.7 sport=40000 dport=80 "
            "src=198.51.100.7 dst=198.19.0.1 sport=80 dport=40000 [ASSURED] mark=0 use=1\n");
  auto c = counters_of(dir / "out/counters.txt");
  EXPECT_EQ(c["rx_frames"], 9u);
  EXPECT_EQ(c["tx_frames"], 9u);
  EXPECT_EQ(c["flows_created"], 1u);
  EXPECT_EQ(c["snat_flows"], 1u);
  EXPECT_EQ(c["conntrack_count"], 1u);
}

TEST(Replay, DockerHostRulesetLoadsAndWorks) {
  TempDir dir;
  // The nat table iptables-save prints on a Docker host; the bridge subnet is in
  // the RFC 2544 range and the bridge is called docker0, as Docker names it.
  const std::string rules = kDockerHostRules;
  std::string cfg = reference_config();
  cfg.replace(cfg.find("name = \"eth1\""), 13, "name = \"docker0\"");
  write_file(dir / "gw.toml", "rules = \"nat.rules\"\n" + cfg);
  write_file(dir / "nat.rules", rules);
  std::vector<TimedFrame> from_outside = {
      {T, FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.9", "198.19.0.1").tcp(45000, 8080, kTcpSyn).build()},
  };
  std::vector<TimedFrame> from_bridge = {
      {T + 100, FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.51.100.9").tcp(80, 45000, kTcpSyn | kTcpAck, 9, 1001).build()},
      {T + 200, FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "203.0.113.5").udp(33000, 53).payload("dns").build()},
  };
  write_pcap(dir / "o.pcap", from_outside);
  write_pcap(dir / "b.pcap", from_bridge);
  Replay r = run_replay(dir, {"eth0=" + (dir / "o.pcap"), "docker0=" + (dir / "b.pcap")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text;
  auto to_bridge = frames_of(dir / "out/docker0.pcap");
  ASSERT_EQ(to_bridge.size(), 1u);
  EXPECT_EQ(to_bridge[0], FrameBuilder().eth(kInMac, kClientMac).ip("198.51.100.9", "198.18.0.2").ttl(63).tcp(45000, 80, kTcpSyn).build());
  auto to_world = frames_of(dir / "out/eth0.pcap");
  ASSERT_EQ(to_world.size(), 2u);
  EXPECT_EQ(to_world[0], FrameBuilder().eth(kOutMac, kRouterMac).ip("198.19.0.1", "198.51.100.9").ttl(63).tcp(8080, 45000, kTcpSyn | kTcpAck, 9, 1001).build());
  EXPECT_EQ(to_world[1], FrameBuilder().eth(kOutMac, kRouterMac).ip("198.19.0.1", "203.0.113.5").ttl(63).udp(33000, 53).payload("dns").build());
  EXPECT_EQ(read_file(dir / "out/conntrack.txt"),
            "ipv4     2 tcp      6 60 SYN_RECV src=198.51.100.9 dst=198.19.0.1 sport=45000 dport=8080 "
            "src=198.18.0.2 dst=198.51.100.9 sport=80 dport=45000 mark=0 use=1\n"
            "ipv4     2 udp      17 30 src=198.18.0.2 dst=203.0.113.5 sport=33000 dport=53 [UNREPLIED] "
            "src=203.0.113.5 dst=198.19.0.1 sport=53 dport=33000 mark=0 use=1\n");
}

TEST(Replay, IcmpLifeCycleTimeoutsAndErrors) {
  TempDir dir;
  write_gateway(dir, nat_table("-A POSTROUTING -o eth0 -j MASQUERADE --random-fully\n"));
  auto probe = FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.51.100.7").ttl(1).udp(33000, 33434).payload("tr");
  std::vector<TimedFrame> in1 = {
      {T, FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.51.100.7").icmp(kIcmpEcho, 0, 4242, 1).build()},
      {T + 10, probe.build()},
      // 31 s later: the ping's entry (30 s) is gone, a new echo makes a new one.
      {T + 31'000'000, FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.51.100.7").icmp(kIcmpEcho, 0, 4243, 1).build()},
  };
  write_pcap(dir / "in1.pcap", in1);
  std::vector<TimedFrame> in0 = {
      {T + 1000, FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").icmp(kIcmpEchoReply, 0, 0, 1).build()},
  };
  write_pcap(dir / "in0.pcap", in0);
  // The echo reply must carry the identifier the gateway chose; read it from the output first.
  Replay r1 = run_replay(dir, {"eth1=" + (dir / "in1.pcap")});
  ASSERT_EQ(r1.exit_code, 0) << r1.stdout_text;
  auto out0 = frames_of(dir / "out/eth0.pcap");
  ASSERT_EQ(out0.size(), 2u);
  ParsedPacket p;
  ASSERT_EQ(parse_frame(out0[0].data(), out0[0].size(), {}, &p), ParseStatus::kOk);
  const uint16_t chosen_id = __builtin_bswap16(p.tuple.sport);
  in0[0].frame = FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").icmp(kIcmpEchoReply, 0, chosen_id, 1).build();
  write_pcap(dir / "in0.pcap", in0);
  Replay r = run_replay(dir, {"eth1=" + (dir / "in1.pcap"), "eth0=" + (dir / "in0.pcap")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text;

  auto back = frames_of(dir / "out/eth1.pcap");
  ASSERT_EQ(back.size(), 2u);
  // 1) time exceeded for the TTL-1 probe (sent at T+10 us), from the gateway's
  //    inside address, quoting the probe
  EXPECT_EQ(back[0], FrameBuilder().eth(kInMac, kClientMac).ip("198.18.0.1", "198.18.0.2").tos(0xC0).ip_id(0).frag(0)
                         .icmp_error(kIcmpTimeExceeded, 0, probe.ip_part()).build());
  // 2) the echo reply (T+1 ms), identifier restored
  EXPECT_EQ(back[1], FrameBuilder().eth(kInMac, kClientMac).ip("198.51.100.7", "198.18.0.2").ttl(63).icmp(kIcmpEchoReply, 0, 4242, 1).build());
  // The first echo's entry timed out; only the second one is listed.
  const std::string table = read_file(dir / "out/conntrack.txt");
  EXPECT_EQ(table.find("id=4242"), std::string::npos) << table;
  EXPECT_NE(table.find("icmp     1 30 src=198.18.0.2 dst=198.51.100.7 type=8 code=0 id=4243 [UNREPLIED]"), std::string::npos) << table;
  auto c = counters_of(dir / "out/counters.txt");
  EXPECT_EQ(c["drop_ttl_expired"], 1u);
  EXPECT_EQ(c["icmp_errors_sent"], 1u);
  EXPECT_EQ(c["conntrack_count"], 1u);
}

// 20 000 short TCP connections through MASQUERADE with nf_conntrack_max = 1000,
// at most 500 open at once. Every finished connection sits in TIME_WAIT for
// 120 s and is ASSURED, so after the first 1000 the table is full of entries
// netfilter's early drop on insert may not take (it evicts only unassured
// entries; assured closing ones wait for its background collector) and the
// kernel would drop new SYNs. xnat evicts closed connections first, so every
// connection completes.
TEST(Replay, TwentyThousandShortConnectionsWithTableOfThousand) {
  TempDir dir;
  write_gateway(dir, nat_table("-A POSTROUTING -s 198.18.0.0/16 -o eth0 -j MASQUERADE\n"), "nf_conntrack_max = 1000");
  constexpr int kConns = 20000, kWave = 500;
  std::vector<TimedFrame> in1, in0;
  in1.reserve(kConns * 4);
  in0.reserve(kConns * 2);
  uint64_t t = T;
  for (int w = 0; w < kConns / kWave; ++w) {
    // Open 500 connections, then close all 500 (3-way handshake, FIN both ways, last ACK).
    for (int step = 0; step < 6; ++step) {
      for (int i = 0; i < kWave; ++i) {
        const uint16_t port = static_cast<uint16_t>(10000 + w * kWave + i);
        t += 20;
        auto c = FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.51.100.7");
        auto s = FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1");
        switch (step) {
          case 0: in1.push_back({t, c.tcp(port, 80, kTcpSyn, 1).build()}); break;
          case 1: in0.push_back({t, s.tcp(80, port, kTcpSyn | kTcpAck, 7, 2).build()}); break;
          case 2: in1.push_back({t, c.tcp(port, 80, kTcpAck, 2, 8).build()}); break;
          case 3: in1.push_back({t, c.tcp(port, 80, kTcpFin | kTcpAck, 2, 8).build()}); break;
          case 4: in0.push_back({t, s.tcp(80, port, kTcpFin | kTcpAck, 8, 3).build()}); break;
          case 5: in1.push_back({t, c.tcp(port, 80, kTcpAck, 3, 9).build()}); break;
        }
      }
    }
  }
  write_pcap(dir / "in1.pcap", in1);
  write_pcap(dir / "in0.pcap", in0);
  Replay r = run_replay(dir, {"eth1=" + (dir / "in1.pcap"), "eth0=" + (dir / "in0.pcap")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text;
  auto c = counters_of(dir / "out/counters.txt");
  EXPECT_EQ(c["rx_frames"], uint64_t{kConns} * 6);
  EXPECT_EQ(c["tx_frames"], uint64_t{kConns} * 6) << "every segment of every connection forwarded";
  EXPECT_EQ(c["drop_table_full"], 0u);
  EXPECT_EQ(c["flows_created"], uint64_t{kConns});
  EXPECT_EQ(c["conntrack_count"], 1000u);
  EXPECT_EQ(c["conntrack_evicted_closing"], uint64_t{kConns - 1000});
  EXPECT_EQ(c["conntrack_evicted_unreplied"], 0u);
  EXPECT_EQ(frames_of(dir / "out/eth0.pcap").size(), uint64_t{kConns} * 4);
  EXPECT_EQ(frames_of(dir / "out/eth1.pcap").size(), uint64_t{kConns} * 2);
}

// The interfaces' MTUs (replay's `mtu`; the live gateway's are the
// devices'): eth1 at 9 000, eth0 at 1 500. A 4 000-byte datagram from the
// client leaves eth0 in three fragments without DF; with DF, the client gets
// "fragmentation needed" with eth0's MTU. With eth0 at 9 000 it leaves whole.
TEST(Replay, DatagramsLargerThanTheOutputsMtu) {
  TempDir dir;
  for (const char* eth0_mtu : {"", "mtu = 9000\n"}) {
    std::string cfg = "rules = \"nat.rules\"\n" + reference_config();
    cfg.replace(cfg.find("mac = \"02:00:00:00:00:01\"\n"), 26, "mac = \"02:00:00:00:00:01\"\nmtu = 9000\n");
    cfg.replace(cfg.find("mac = \"02:00:00:00:00:02\"\n"), 26, std::string("mac = \"02:00:00:00:00:02\"\n") + eth0_mtu);
    write_file(dir / "gw.toml", cfg);
    write_file(dir / "nat.rules", nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"));
    auto big = [](uint16_t frag) {
      return FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.51.100.7").frag(frag).udp(40000, 53)
          .payload(std::string(4000, 'j')).build();
    };
    write_pcap(dir / "in1.pcap", {{T, big(0)}, {T + 1000, big(0x4000)}});
    Replay r = run_replay(dir, {"eth1=" + (dir / "in1.pcap")});
    ASSERT_EQ(r.exit_code, 0) << r.stdout_text;
    auto out0 = frames_of(dir / "out/eth0.pcap");
    auto out1 = frames_of(dir / "out/eth1.pcap");
    auto c = counters_of(dir / "out/counters.txt");
    if (*eth0_mtu) {
      EXPECT_EQ(out0.size(), 2u);
      EXPECT_EQ(out1.size(), 0u);
      EXPECT_EQ(c["fragmented"], 0u);
      continue;
    }
    ASSERT_EQ(out0.size(), 3u);
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(out0[i].size(), i < 2 ? 14u + 1500 : 14u + 20 + 4008 - 2 * 1480) << i;
    ASSERT_EQ(out1.size(), 1u);
    EXPECT_EQ(out1[0][14 + 20], 3);  // destination unreachable
    EXPECT_EQ(out1[0][14 + 20 + 1], 4);  // fragmentation needed
    EXPECT_EQ(out1[0][14 + 20 + 6] << 8 | out1[0][14 + 20 + 7], 1500);
    EXPECT_EQ(c["fragmented"], 1u);
    EXPECT_EQ(c["fragments_created"], 3u);
    EXPECT_EQ(c["drop_frag_needed"], 1u);
  }
}

TEST(Replay, BadInputsGiveActionableErrors) {
  TempDir dir;
  write_gateway(dir, nat_table("-A POSTROUTING -o eth0 -j MASQUERADE --to-prots 1000\n"));
  write_pcap(dir / "in.pcap", {});
  Replay r = run_replay(dir, {"eth1=" + (dir / "in.pcap")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.stdout_text.find("nat.rules:6: '--to-prots': unknown option"), std::string::npos) << r.stdout_text;

  write_gateway(dir, nat_table(""), "nf_conntrack_maxx = 5");
  r = run_replay(dir, {"eth1=" + (dir / "in.pcap")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.stdout_text.find("gw.toml:3: unknown conntrack setting 'nf_conntrack_maxx'"), std::string::npos) << r.stdout_text;

  write_gateway(dir, nat_table(""));
  r = run_replay(dir, {"wan9=" + (dir / "in.pcap")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.stdout_text.find("no [[interface]] named 'wan9'"), std::string::npos) << r.stdout_text;

  std::string cfg = "rules = \"nat.rules\"\n" + reference_config();
  cfg.replace(cfg.find("mac = \"02:00:00:00:00:02\"\n"), 26, "mac = \"02:00:00:00:00:02\"\nmtu = 40\n");
  write_file(dir / "gw.toml", cfg);
  r = run_replay(dir, {"eth1=" + (dir / "in.pcap")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.stdout_text.find("mtu must be an integer from 68 to 65535"), std::string::npos) << r.stdout_text;

  write_gateway(dir, nat_table(""));
  write_file(dir / "junk.pcap", "this is not a capture at all");
  r = run_replay(dir, {"eth1=" + (dir / "junk.pcap")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.stdout_text.find("not a classic pcap file"), std::string::npos) << r.stdout_text;
}

}  // namespace
}  // namespace xnat::test
