#pragma once

#include <string>

namespace xnat {

// `xnat demo`: writes a small gateway (inside client, outside servers, a
// published port), a trace of real-looking traffic through it, replays it and
// prints what the gateway did. Returns the process exit code.
int run_demo(const std::string& out_dir);

}  // namespace xnat
