#include "test_util.h"

#include <fmt/format.h>

#include "conntrack/tuple.h"
#include "packet/parse.h"

namespace xnat::test {

std::string reference_config(const std::string& conntrack_lines) {
  return fmt::format(R"(seed = 1
[conntrack]
{}
[[interface]]
name = "eth1"
address = "198.18.0.1/16"
mac = "02:00:00:00:00:01"
[[interface]]
name = "eth0"
address = "198.19.0.1/16"
mac = "02:00:00:00:00:02"
[[route]]
prefix = "0.0.0.0/0"
via = "198.19.0.254"
[[neighbor]]
address = "198.19.0.254"
mac = "02:00:00:00:00:fe"
[[neighbor]]
address = "198.18.0.2"
mac = "02:00:00:00:00:10"
[[neighbor]]
address = "198.18.0.3"
mac = "02:00:00:00:00:11"
[[neighbor]]
address = "198.19.0.20"
mac = "02:00:00:00:00:20"
)",
                     conntrack_lines);
}

std::string nat_table(const std::string& body) {
  return "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
         ":POSTROUTING ACCEPT [0:0]\n" +
         body + "COMMIT\n";
}

std::unique_ptr<Engine> make_engine(const std::string& rules, const std::string& conntrack_lines) {
  auto cfg = parse_config(reference_config(conntrack_lines), "test.toml", ConfigMode::kReplay);
  EXPECT_TRUE(cfg.ok()) << (cfg.ok() ? "" : cfg.error().message);
  auto rs = parse_rules(rules, "test.rules");
  EXPECT_TRUE(rs.ok()) << (rs.ok() ? "" : rs.error().message);
  cfg->rules = std::move(*rs);
  return std::make_unique<Engine>(std::move(*cfg));
}

Output run(Engine& e, const std::vector<uint8_t>& frame, int in_if, uint64_t now_ms) {
  std::vector<uint8_t> buf(frame);
  buf.resize(frame.size() + 1024);
  Packet p;
  p.data = buf.data();
  p.len = static_cast<uint32_t>(frame.size());
  p.capacity = static_cast<uint32_t>(buf.size());
  p.in_if = static_cast<int16_t>(in_if);
  e.process(p, now_ms);
  buf.resize(p.len);
  return Output{p.verdict, p.out_if, p.reason, buf};
}

std::string describe(const std::vector<uint8_t>& frame) {
  ParsedPacket p;
  ParseStatus st = parse_frame(frame.data(), frame.size(), ParseOptions{}, &p);
  if (st != ParseStatus::kOk) return fmt::format("<unparsed frame, {} bytes, status {}>", frame.size(), static_cast<int>(st));
  const auto* ip = reinterpret_cast<const Ipv4Hdr*>(frame.data() + p.l3);
  std::string s = fmt::format("{} > {} proto {} ttl {}", ip_to_string(p.tuple.src), ip_to_string(p.tuple.dst),
                              p.tuple.proto, ip->ttl);
  if (p.tuple.has_ports())
    s += fmt::format(" ports {} > {}", __builtin_bswap16(p.tuple.sport), __builtin_bswap16(p.tuple.dport));
  if (p.tuple.proto == kProtoIcmp)
    s += fmt::format(" icmp type {} code {} id {}", p.tuple.icmp_type(), p.tuple.icmp_code(), __builtin_bswap16(p.tuple.sport));
  if (p.icmp_error)
    s += fmt::format(" [inner {} > {} ports {} > {}]", ip_to_string(p.inner.src), ip_to_string(p.inner.dst),
                     __builtin_bswap16(p.inner.sport), __builtin_bswap16(p.inner.dport));
  return s;
}

}  // namespace xnat::test
