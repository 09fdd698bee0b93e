// How conntrack-tools prints an entry.
#pragma once

#include <cstdint>
#include <string>

#include "conntrack/flow.h"

namespace xnat {

// One line of `conntrack -L -o extended` for a flow (without the newline).
// `mark`: the connection's mark (CONNMARK).
std::string format_conntrack_extended(const Flow& f, uint64_t now_ms, uint32_t mark = 0);
// The same without the layer-3 columns (`ipv4     2 `): conntrack -L's default.
std::string format_conntrack_default(const Flow& f, uint64_t now_ms, uint32_t mark = 0);

}  // namespace xnat
