// Reads rules in the format `iptables-save` prints, for the tables nat, raw and
// rawpost (xtables-addons' RAWNAT). Anything not understood is an error that
// names the file, the line and the token; no rule or option is ever skipped.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"
#include "nat/rules.h"

namespace xnat {

Result<RuleSet> parse_rules(std::string_view text, const std::string& file_name);
// a.b.c.d, a.b.c.d/len or a.b.c.d/dotted-mask.
bool parse_prefix_text(const std::string& s, Prefix* p);

Result<RuleSet> load_rules_file(const std::string& path);

}  // namespace xnat
