// The two-interface gateway that the demo, the tests, the benchmarks and the
// fuzzer all use, as configuration text: an inside network 198.18.0.0/16
// behind 198.18.0.1 (MAC ..:01), an outside network 198.19.0.0/16 on
// 198.19.0.1 (MAC ..:02), a default route via 198.19.0.254 (MAC ..:fe).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace xnat {

struct ExampleGateway {
  std::string inside = "eth1";
  std::string outside = "eth0";
  std::string rules_file;       // written as `rules = "..."` when not empty
  std::string conntrack_lines;  // extra lines inside [conntrack]
  std::vector<std::pair<std::string, std::string>> neighbors;  // {address, mac}, besides the router
};

std::string example_gateway_toml(const ExampleGateway& g);

}  // namespace xnat
