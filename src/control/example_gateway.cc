#include "control/example_gateway.h"

#include <fmt/format.h>

namespace xnat {

std::string example_gateway_toml(const ExampleGateway& g) {
  std::string out;
  if (!g.rules_file.empty()) out += fmt::format("rules = \"{}\"\n", g.rules_file);
  out += fmt::format(R"([conntrack]
{}
[[interface]]
name = "{}"
address = "198.18.0.1/16"
mac = "02:00:00:00:00:01"
[[interface]]
name = "{}"
address = "198.19.0.1/16"
mac = "02:00:00:00:00:02"
[[route]]
prefix = "0.0.0.0/0"
via = "198.19.0.254"
[[neighbor]]
address = "198.19.0.254"
mac = "02:00:00:00:00:fe"
)",
                     g.conntrack_lines, g.inside, g.outside);
  for (const auto& [addr, mac] : g.neighbors)
    out += fmt::format("[[neighbor]]\naddress = \"{}\"\nmac = \"{}\"\n", addr, mac);
  return out;
}

}  // namespace xnat
