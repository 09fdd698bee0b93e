#include "test_util.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "control/example_gateway.h"
#include "packet/tuple.h"
#include "packet/checksum.h"
#include "packet/describe.h"
#include "packet/parse.h"

namespace xnat::test {

std::string reference_config(const std::string& conntrack_lines) {
  ExampleGateway g;
  g.conntrack_lines = conntrack_lines;
  g.neighbors = {{"198.18.0.2", "02:00:00:00:00:10"}, {"198.18.0.3", "02:00:00:00:00:11"},
                 {"198.19.0.20", "02:00:00:00:00:20"}};
  return example_gateway_toml(g);
}

std::string nat_table(const std::string& body) {
  return "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
         ":POSTROUTING ACCEPT [0:0]\n" +
         body + "COMMIT\n";
}

std::string publish_rules() {
  return nat_table(
      "-A PREROUTING -i eth0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.18.0.2:80\n"
      "-A POSTROUTING -o eth0 -j MASQUERADE\n");
}

std::vector<uint8_t> to_published(uint16_t port, uint8_t flags, uint32_t seq, uint32_t ack, size_t len,
                                  uint16_t window) {
  return FrameBuilder()
      .eth(kServerMac, kOutMac)
      .ip("198.19.0.20", "198.19.0.1")
      .tcp(port, 8080, flags, seq, ack)
      .window(window)
      .payload(std::vector<uint8_t>(len, 0x61))
      .build();
}

std::vector<uint8_t> from_published(uint16_t port, uint8_t flags, uint32_t seq, uint32_t ack, size_t len,
                                    uint16_t window) {
  return FrameBuilder()
      .eth(kClientMac, kInMac)
      .ip("198.18.0.2", "198.19.0.20")
      .tcp(80, port, flags, seq, ack)
      .window(window)
      .payload(std::vector<uint8_t>(len, 0x62))
      .build();
}

EngineConfig engine_config(const std::string& rules, const std::string& conntrack_lines) {
  auto cfg = parse_config(reference_config(conntrack_lines), "test.toml", ConfigMode::kReplay);
  EXPECT_TRUE(cfg.ok()) << (cfg.ok() ? "" : cfg.error().message);
  auto rs = parse_rules(rules, "test.rules");
  EXPECT_TRUE(rs.ok()) << (rs.ok() ? "" : rs.error().message);
  cfg->rules = std::move(*rs);
  return std::move(*cfg);
}

std::unique_ptr<Engine> make_engine(const std::string& rules, const std::string& conntrack_lines) {
  return std::make_unique<Engine>(engine_config(rules, conntrack_lines));
}

Tuple tuple_of(const char* src, uint16_t sport, const char* dst, uint16_t dport, uint8_t proto) {
  Tuple t;
  t.src = ip_raw(src);
  t.dst = ip_raw(dst);
  t.sport = __builtin_bswap16(sport);
  t.dport = __builtin_bswap16(dport);
  t.proto = proto;
  return t;
}

Packet received(std::vector<uint8_t>* buf, const std::vector<uint8_t>& frame, int in_if) {
  buf->assign(frame.size() + 1024, 0);
  std::copy(frame.begin(), frame.end(), buf->begin());
  Packet p;
  p.data = buf->data();
  p.len = static_cast<uint32_t>(frame.size());
  p.capacity = static_cast<uint32_t>(buf->size());
  p.in_if = static_cast<int16_t>(in_if);
  return p;
}

Output result(const Packet& p) {
  return Output{p.verdict, p.out_if, p.reason, std::vector<uint8_t>(p.data, p.data + p.len)};
}

Output run(Engine& e, const std::vector<uint8_t>& frame, int in_if, uint64_t now_ms) {
  std::vector<uint8_t> buf;
  Packet p = received(&buf, frame, in_if);
  e.process(p, now_ms);
  return result(p);
}

std::string describe(const std::vector<uint8_t>& frame) { return describe_frame(frame); }

std::vector<std::vector<uint8_t>> fragment(const std::vector<uint8_t>& frame, size_t piece) {
  constexpr size_t kEth = 14;
  const size_t ihl = (frame[kEth] & 0x0F) * 4u;
  const size_t payload = frame.size() - kEth - ihl;
  std::vector<std::vector<uint8_t>> out;
  for (size_t off = 0; off < payload; off += piece) {
    const size_t n = std::min(piece, payload - off);
    std::vector<uint8_t> f(frame.begin(), frame.begin() + static_cast<long>(kEth + ihl));
    f.insert(f.end(), frame.begin() + static_cast<long>(kEth + ihl + off),
             frame.begin() + static_cast<long>(kEth + ihl + off + n));
    uint8_t* ip = f.data() + kEth;
    const uint16_t tot = static_cast<uint16_t>(ihl + n);
    const uint16_t fo = static_cast<uint16_t>((off / 8) | (off + n < payload ? 0x2000 : 0));
    ip[2] = static_cast<uint8_t>(tot >> 8), ip[3] = static_cast<uint8_t>(tot);
    ip[6] = static_cast<uint8_t>(fo >> 8), ip[7] = static_cast<uint8_t>(fo);
    ip[10] = ip[11] = 0;
    const uint16_t c = csum_finish(csum_partial(ip, ihl));
    std::memcpy(ip + 10, &c, 2);
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace xnat::test

namespace xnat::test {
// kube-proxy's nat chains (iptables mode) for one Service, 198.51.100.80:80,
// over two endpoints on the inside network, as iptables-save writes them.
const char* const kKubeProxyRules = R"(*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-A - [0:0]
:KUBE-SEP-B - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-WEB - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SEP-A -s 198.18.0.2/32 -m comment --comment "default/web" -j KUBE-MARK-MASQ
-A KUBE-SEP-A -p tcp -m comment --comment "default/web" -m tcp -j DNAT --to-destination 198.18.0.2:8080
-A KUBE-SEP-B -s 198.18.0.3/32 -m comment --comment "default/web" -j KUBE-MARK-MASQ
-A KUBE-SEP-B -p tcp -m comment --comment "default/web" -m tcp -j DNAT --to-destination 198.18.0.3:8080
-A KUBE-SERVICES -d 198.51.100.80/32 -p tcp -m comment --comment "default/web cluster IP" -m tcp --dport 80 -j KUBE-SVC-WEB
-A KUBE-SVC-WEB ! -s 198.18.0.0/16 -d 198.51.100.80/32 -p tcp -m comment --comment "default/web cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-WEB -m comment --comment "default/web -> 198.18.0.2:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-A
-A KUBE-SVC-WEB -m comment --comment "default/web -> 198.18.0.3:8080" -j KUBE-SEP-B
COMMIT
)";

const char* const kDockerHostRules = R"(# Generated by iptables-save v1.8.9 (nf_tables) on Sun Nov 22 10:00:00 2026
*nat
:PREROUTING ACCEPT [12:720]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [3:180]
:POSTROUTING ACCEPT [3:180]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 198.18.0.0/16 ! -o docker0 -j MASQUERADE
-A POSTROUTING -s 198.18.0.2/32 -d 198.18.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.18.0.2:80
COMMIT
# Completed on Sun Nov 22 10:00:00 2026
)";
}  // namespace xnat::test
