#include "conntrack/shard.h"

#include <algorithm>
#include <bit>

namespace xnat {

FlowDirectory::FlowDirectory(uint64_t max_flows) {
  // Buckets of 8 slots, at least 2 slots per flow; the last window runs past
  // the last bucket into kWindow - 8 extra slots instead of wrapping.
  const uint64_t buckets = std::bit_ceil(std::max<uint64_t>(max_flows / 4, 8));
  mask_ = buckets - 1;
  const size_t nslots = static_cast<size_t>(buckets * 8 + kWindow - 8);
  slot_ = std::make_unique<std::atomic<uint64_t>[]>(nslots);
  for (size_t i = 0; i < nslots; ++i) slot_[i].store(0, std::memory_order_relaxed);
}

uint64_t FlowDirectory::fingerprint(const Tuple& t, uint64_t seed) {
  uint64_t x = seed ^ 0x6a09e667f3bcc909ull;
  auto mix = [&](uint64_t v) {
    x ^= v;
    x *= 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
  };
  mix(uint64_t{t.src} << 32 | t.dst);
  mix(uint64_t{t.sport} << 32 | uint64_t{t.dport} << 16 | t.proto);
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 31;
  x &= ~uint64_t{0xff};
  return x ? x : 0x100;  // never 0: an empty slot
}

bool FlowDirectory::insert(uint64_t fp, uint32_t worker) {
  const uint64_t v = (fp & ~uint64_t{0xff}) | (worker + 1);
  const size_t s = window_start(fp);
  for (size_t i = s; i < s + kWindow; ++i) {
    uint64_t cur = slot_[i].load(std::memory_order_relaxed);
    if (cur == 0 && slot_[i].compare_exchange_strong(cur, v, std::memory_order_release, std::memory_order_relaxed)) {
      size_.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
  }
  return false;
}

void FlowDirectory::erase(uint64_t fp, uint32_t worker) {
  const uint64_t v = (fp & ~uint64_t{0xff}) | (worker + 1);
  const size_t s = window_start(fp);
  for (size_t i = s; i < s + kWindow; ++i) {
    uint64_t cur = v;
    if (slot_[i].load(std::memory_order_relaxed) == v &&
        slot_[i].compare_exchange_strong(cur, 0, std::memory_order_release, std::memory_order_relaxed)) {
      size_.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
  }
}

int FlowDirectory::find(uint64_t fp) const {
  const uint64_t key = fp & ~uint64_t{0xff};
  const size_t s = window_start(fp);
  for (size_t i = s; i < s + kWindow; ++i) {
    const uint64_t cur = slot_[i].load(std::memory_order_acquire);
    if (cur && (cur & ~uint64_t{0xff}) == key) return static_cast<int>((cur & 0xff) - 1);
  }
  return -1;
}

SourceMap::SourceMap(uint64_t max_flows) {
  // Buckets of 4 slots, at least two slots per flow, as the directory: a
  // source holds one per worker however many flows it has, and a pool's
  // flows may all be entered.
  const uint64_t buckets = std::bit_ceil(std::max<uint64_t>(max_flows / 2, 8));
  mask_ = buckets - 1;
  const size_t nslots = static_cast<size_t>(buckets * 4 + kWindow - 4);
  key_ = std::make_unique<std::atomic<uint64_t>[]>(nslots);
  value_ = std::make_unique<std::atomic<uint64_t>[]>(nslots);
  for (size_t i = 0; i < nslots; ++i) {
    key_[i].store(0, std::memory_order_relaxed);
    value_[i].store(0, std::memory_order_relaxed);
  }
  const uint64_t counts = std::min<uint64_t>(buckets, 1 << 18);
  count_mask_ = counts - 1;
  count_ = std::make_unique<std::atomic<uint8_t>[]>(counts);
  for (uint64_t i = 0; i < counts; ++i) count_[i].store(0, std::memory_order_relaxed);
}

namespace {
// Saturating: a count that reached 255 may have lost track, and stays.
void count_step(std::atomic<uint8_t>& c, int by) {
  uint8_t cur = c.load(std::memory_order_relaxed);
  while (cur != 255 && !c.compare_exchange_weak(cur, static_cast<uint8_t>(cur + by), std::memory_order_relaxed)) {
  }
}
}  // namespace

uint64_t SourceMap::fingerprint(uint8_t proto, uint32_t src, uint16_t sport, uint64_t seed) {
  uint64_t x = (seed ^ 0xbb67ae8584caa73bull) + (uint64_t{src} << 24 | uint64_t{sport} << 8 | proto);
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  x &= ~uint64_t{0xff};
  return x ? x : 0x100;
}

bool SourceMap::enter(uint64_t fp, uint32_t worker, uint64_t value) {
  const uint64_t key = (fp & ~uint64_t{0xff}) | (worker + 1);
  const size_t s = window_start(fp);
  for (size_t i = s; i < s + kWindow; ++i) {
    uint64_t cur = key_[i].load(std::memory_order_relaxed);
    if (cur == 0 && key_[i].compare_exchange_strong(cur, kBusy, std::memory_order_acquire, std::memory_order_relaxed)) {
      count_step(count_of(fp), +1);
      value_[i].store(value, std::memory_order_relaxed);
      key_[i].store(key, std::memory_order_release);
      size_.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
  }
  return false;
}

size_t SourceMap::own(uint64_t fp, uint32_t worker) const {
  const uint64_t key = (fp & ~uint64_t{0xff}) | (worker + 1);
  const size_t s = window_start(fp);
  for (size_t i = s; i < s + kWindow; ++i)
    if (key_[i].load(std::memory_order_relaxed) == key) return i;
  return SIZE_MAX;
}

bool SourceMap::update(uint64_t fp, uint32_t worker, uint64_t value) {
  const size_t i = own(fp, worker);
  if (i == SIZE_MAX) return false;
  value_[i].store(value, std::memory_order_release);
  return true;
}

void SourceMap::erase(uint64_t fp, uint32_t worker) {
  if (const size_t i = own(fp, worker); i != SIZE_MAX) {
    key_[i].store(0, std::memory_order_release);
    count_step(count_of(fp), -1);
    size_.fetch_sub(1, std::memory_order_relaxed);
  }
}

bool SourceMap::find(uint64_t fp, uint64_t* value) const {
  if (count_of(fp).load(std::memory_order_relaxed) == 0) return false;
  const uint64_t want = fp & ~uint64_t{0xff};
  const size_t s = window_start(fp);
  for (size_t i = s; i < s + kWindow; ++i) {
    const uint64_t k = key_[i].load(std::memory_order_acquire);
    if (k == 0 || k == kBusy || (k & ~uint64_t{0xff}) != want) continue;
    const uint64_t v = value_[i].load(std::memory_order_acquire);
    if (key_[i].load(std::memory_order_acquire) != k) continue;
    *value = v;
    return true;
  }
  return false;
}

uint64_t SourceMap::sum_others(uint64_t fp, uint32_t worker) const {
  if (count_of(fp).load(std::memory_order_relaxed) == 0) return 0;
  const uint64_t want = fp & ~uint64_t{0xff}, mine = want | (worker + 1);
  const size_t s = window_start(fp);
  uint64_t sum = 0;
  for (size_t i = s; i < s + kWindow; ++i) {
    const uint64_t k = key_[i].load(std::memory_order_acquire);
    if (k == 0 || k == kBusy || k == mine || (k & ~uint64_t{0xff}) != want) continue;
    const uint64_t v = value_[i].load(std::memory_order_acquire);
    if (key_[i].load(std::memory_order_acquire) == k) sum += v;
  }
  return sum;
}

}  // namespace xnat
