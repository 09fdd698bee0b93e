// One-line, tcpdump-like rendering of a frame, for the demo and test messages.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xnat {

std::string describe_frame(const uint8_t* frame, size_t len);
inline std::string describe_frame(const std::vector<uint8_t>& f) { return describe_frame(f.data(), f.size()); }

}  // namespace xnat
