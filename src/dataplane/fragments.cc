#include "dataplane/fragments.h"

#include <bit>

namespace xnat {

FragmentTable::FragmentTable(uint32_t entries) {
  const uint32_t buckets = std::bit_ceil(entries < kWays ? 1u : entries / kWays);
  entries_.resize(size_t{buckets} * kWays);
  mask_ = buckets - 1;
}

uint32_t FragmentTable::bucket(const FragmentKey& k) const {
  uint64_t x = (uint64_t{k.src} << 32 | k.dst) ^ (uint64_t{k.id} << 8 | k.proto) * 0x9E3779B97F4A7C15ull;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return static_cast<uint32_t>(x) & mask_;
}

void FragmentTable::record(const FragmentKey& k, const FragmentFate& f, uint64_t now_ms) {
  Entry* b = &entries_[size_t{bucket(k)} * kWays];
  Entry* victim = b;
  for (uint32_t w = 0; w < kWays; ++w) {
    if (b[w].expires_ms > now_ms && same(b[w].key, k)) {  // a first fragment again (retransmitted)
      victim = &b[w];
      break;
    }
    if (b[w].expires_ms < victim->expires_ms) victim = &b[w];  // empty or expired ones expire first
  }
  *victim = Entry{k, f, now_ms + kLifetimeMs};
}

const FragmentFate* FragmentTable::find(const FragmentKey& k, uint64_t now_ms) const {
  const Entry* b = &entries_[size_t{bucket(k)} * kWays];
  for (uint32_t w = 0; w < kWays; ++w)
    if (b[w].expires_ms > now_ms && same(b[w].key, k)) return &b[w].fate;
  return nullptr;
}

}  // namespace xnat
