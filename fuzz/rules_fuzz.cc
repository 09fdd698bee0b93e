// Fuzzes the iptables-save parser and the TOML config loader: any text must
// give a rule set or an error message, never a crash or a hang.
#include <cstddef>
#include <cstdint>
#include <string>

#include "control/config.h"
#include "nat/rules_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto r = xnat::parse_rules(text, "fuzz.rules");
  if (!r && r.error().message.empty()) __builtin_trap();
  auto c = xnat::parse_config(text, "fuzz.toml", xnat::ConfigMode::kLive);
  if (!c && c.error().message.empty()) __builtin_trap();
  return 0;
}
