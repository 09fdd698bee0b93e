// The README's counter table is the counters' own descriptions
// (dataplane/counters.h): a counter added, renamed or redescribed without the
// README fails here, and the failure prints the table to paste.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dataplane/counters.h"

namespace xnat::test {
namespace {

std::vector<std::string> expected_rows() {
  std::vector<std::string> rows;
#define XNAT_ROW_DROP(n, d) rows.push_back("| `drop_" #n "` | " d " |");
#define XNAT_ROW(n, d) rows.push_back("| `" #n "` | " d " |");
  XNAT_DROP_REASONS(XNAT_ROW_DROP)
  XNAT_OTHER_COUNTERS(XNAT_ROW)
#undef XNAT_ROW_DROP
#undef XNAT_ROW
  return rows;
}

// The rows of the first table under "## Counters".
std::vector<std::string> readme_rows() {
  std::ifstream in(XNAT_SOURCE_DIR "/README.md");
  std::vector<std::string> rows;
  std::string line;
  bool in_section = false;
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) {
      if (in_section) break;
      in_section = line == "## Counters";
      continue;
    }
    if (in_section && line.rfind("| `", 0) == 0) rows.push_back(line);
  }
  return rows;
}

TEST(Docs, ReadmeCounterTableIsTheCountersDescriptions) {
  const std::vector<std::string> want = expected_rows();
  ASSERT_EQ(want.size(), kCounterCount);
  const std::vector<std::string> got = readme_rows();
  std::ostringstream table;
  for (const std::string& r : want) table << r << "\n";
  EXPECT_EQ(got, want) << "README.md's table under \"## Counters\" should read:\n| counter | meaning |\n|---|---|\n"
                       << table.str();
}

}  // namespace
}  // namespace xnat::test
