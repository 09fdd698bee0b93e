// The gateway's TOML configuration (documented in README.md, "Configuration").
// Every key is checked: an unknown key or table is an error, never ignored.
#pragma once

#include <string>

#include "base/result.h"
#include "dataplane/engine.h"

namespace xnat {

enum class ConfigMode : uint8_t {
  kReplay,  // interface MACs and neighbours must be given
  kLive,    // MACs, addresses, routes and neighbours may come from the kernel
};

Result<EngineConfig> load_config(const std::string& path, ConfigMode mode);
// RuleSet::notices for the configuration's interfaces.
std::vector<std::string> config_notices(const EngineConfig& cfg);
Result<EngineConfig> parse_config(const std::string& text, const std::string& path, ConfigMode mode);

bool parse_mac(const std::string& s, MacAddr* out);

}  // namespace xnat
