#include "conntrack/source_counter.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace xnat {
namespace {

TEST(SourceCounter, MatchesAReferenceMapUnderChurn) {
  SourceCounter sc(4096);
  std::map<uint32_t, uint32_t> ref;
  std::mt19937 rng(3);
  uint64_t total = 0;
  for (int step = 0; step < 300000; ++step) {
    const uint32_t addr = 1 + rng() % 3000;  // many collisions in a 8192-slot table
    if (total < 4096 && (rng() % 2 == 0 || ref.empty())) {
      sc.add(addr);
      ++ref[addr];
      ++total;
    } else {
      auto it = ref.begin();
      std::advance(it, rng() % ref.size());
      sc.sub(it->first);
      if (--it->second == 0) ref.erase(it);
      --total;
    }
    if (step % 4999 == 0)
      for (uint32_t a = 1; a <= 3000; ++a) {
        auto it = ref.find(a);
        ASSERT_EQ(sc.count(a), it == ref.end() ? 0u : it->second) << "address " << a << " step " << step;
      }
  }
}

}  // namespace
}  // namespace xnat
