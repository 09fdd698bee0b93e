#include "test_util.h"

#include <fmt/format.h>

#include "control/example_gateway.h"
#include "conntrack/tuple.h"
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

std::string describe(const std::vector<uint8_t>& frame) { return describe_frame(frame); }

}  // namespace xnat::test
