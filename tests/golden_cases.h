// The golden packet table: {description, input frame, expected verdict,
// expected output frame} per case, shared by the in-process engine test and
// the test that runs the same cases through `xnat replay`.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "test_util.h"

namespace xnat::test {

struct Step {
  std::string what;
  int in_if;
  uint64_t t_ms;
  std::vector<uint8_t> in;
  Verdict verdict;
  int out_if = -1;
  std::vector<uint8_t> out;  // empty: not checked (drops)
  DropReason reason = Counter::kCount;
};

struct Case {
  std::string name;
  std::string rules;
  std::vector<Step> steps;
  uint32_t flows_after = 0;
};

std::vector<Case> golden_cases();

// Test names show the case's name, not its bytes.
inline void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// Frames the client (inside) sends to 198.51.100.7, as a FrameBuilder preset.
inline FrameBuilder from_client(const std::string& src = "198.18.0.2", MacAddr m = kClientMac) {
  return std::move(FrameBuilder().eth(m, kInMac).ip(src, "198.51.100.7"));
}

}  // namespace xnat::test
