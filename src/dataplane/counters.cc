#include "dataplane/counters.h"

namespace xnat {

namespace {
#define XNAT_NAME_DROP(n, d) "drop_" #n,
#define XNAT_NAME(n, d) #n,
constexpr const char* kNames[] = {XNAT_DROP_REASONS(XNAT_NAME_DROP) XNAT_OTHER_COUNTERS(XNAT_NAME)};
#undef XNAT_NAME_DROP
#undef XNAT_NAME
static_assert(std::size(kNames) == kCounterCount);
#define XNAT_DESC(n, d) d,
constexpr const char* kDescriptions[] = {XNAT_DROP_REASONS(XNAT_DESC) XNAT_OTHER_COUNTERS(XNAT_DESC)};
#undef XNAT_DESC
}  // namespace

const char* counter_name(Counter c) { return kNames[static_cast<size_t>(c)]; }
const char* counter_description(Counter c) { return kDescriptions[static_cast<size_t>(c)]; }

uint64_t Counters::total_drops() const {
  uint64_t n = 0;
  for (size_t i = 0; i < kDropReasonCount; ++i) n += v[i];
  return n;
}

}  // namespace xnat
