#include "dataplane/fragments.h"

#include <algorithm>
#include <bit>
#include <cstring>

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
    if (b[w].expires_ms > now_ms && same_datagram(b[w].key, k)) {  // a first fragment again (retransmitted)
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
    if (b[w].expires_ms > now_ms && same_datagram(b[w].key, k)) return &b[w].fate;
  return nullptr;
}

FragmentHold::FragmentHold(uint32_t slots) : slots_(slots), bytes_(new uint8_t[size_t{slots} * kSlotBytes]) {}

FragmentHold::Held FragmentHold::hold(const FragmentKey& k, const Packet& p, uint64_t now_ms) {
  if (p.len > kSlotBytes || slots_.empty()) return Held::kNo;
  Slot* at = nullptr;
  Slot* oldest = nullptr;
  for (Slot& s : slots_) {
    if (s.state == State::kFree) {
      at = &s;
      break;
    }
    if (s.state == State::kWaiting && (!oldest || s.held_ms < oldest->held_ms)) oldest = &s;
  }
  Held r = Held::kYes;
  if (!at) {
    if (!oldest) return Held::kNo;  // all ready or taken: released this very burst
    at = oldest;
    --waiting_;
    r = Held::kYesEvicting;
  }
  std::memcpy(&bytes_[static_cast<size_t>(at - slots_.data()) * kSlotBytes], p.data, p.len);
  *at = Slot{State::kWaiting, k, p.in_if, p.len, now_ms};
  ++waiting_;
  next_expiry_ms_ = std::min(next_expiry_ms_, now_ms + kLifetimeMs);
  return r;
}

void FragmentHold::release(const FragmentKey& k) {
  for (Slot& s : slots_)
    if (s.state == State::kWaiting && same_datagram(s.key, k)) {
      s.state = State::kReady;
      --waiting_;
      ++ready_;
    }
}

size_t FragmentHold::take(Packet* out, size_t max) {
  size_t n = 0;
  for (size_t i = 0; i < slots_.size() && n < max && ready_; ++i) {
    Slot& s = slots_[i];
    if (s.state != State::kReady) continue;
    s.state = State::kTaken;
    --ready_;
    Packet& p = out[n++];
    p = Packet{};
    p.data = &bytes_[i * kSlotBytes];
    p.len = s.len;
    p.capacity = kSlotBytes;
    p.in_if = s.in_if;
    p.released = true;
  }
  return n;
}

void FragmentHold::done() {
  for (Slot& s : slots_)
    if (s.state == State::kTaken) s.state = State::kFree;
}

uint32_t FragmentHold::expire(uint64_t now_ms) {
  if (!waiting_ || now_ms < next_expiry_ms_) return 0;
  uint32_t n = 0;
  next_expiry_ms_ = UINT64_MAX;
  for (Slot& s : slots_) {
    if (s.state != State::kWaiting) continue;
    if (now_ms >= s.held_ms + kLifetimeMs) {
      s.state = State::kFree;
      --waiting_;
      ++n;
    } else {
      next_expiry_ms_ = std::min(next_expiry_ms_, s.held_ms + kLifetimeMs);
    }
  }
  return n;
}

uint32_t FragmentHold::clear() {
  uint32_t n = 0;
  for (Slot& s : slots_)
    if (s.state == State::kWaiting) {
      s.state = State::kFree;
      ++n;
    }
  waiting_ = 0;
  return n;
}

}  // namespace xnat
