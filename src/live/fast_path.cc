#include "live/fast_path.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <cstring>
#include <iterator>

#include "live/steer.h"

namespace xnat {

static_assert(sizeof(xnat_tuple_key) == sizeof(Tuple), "the fastpath map is keyed by a tuple's bytes");

FastPath::FastPath(int map_fd, uint64_t* seen, uint64_t* sent, uint32_t first, uint32_t count,
                   std::vector<int> ifindexes, uint32_t flow_capacity)
    : fd_(map_fd),
      seen_(seen),
      sent_(sent),
      slot_of_(flow_capacity, 0),
      ifindexes_(std::move(ifindexes)) {
  free_.reserve(count);
  for (uint32_t i = count; i > 0; --i) free_.push_back(first + i - 1);
  draining_.reserve(count);  // a slot drains once: never more than these
}

bool FastPath::add(uint32_t idx, const OffloadPath (&dirs)[2], uint64_t now_ms) {
  now_ms_ = now_ms;
  if (free_.empty() || idx >= slot_of_.size()) return false;
  const uint32_t slot = free_.back();
  xnat_fast_entry e[2] = {};
  for (int d = 0; d < 2; ++d) {
    const OffloadPath& p = dirs[d];
    if (p.out_if < 0 || static_cast<size_t>(p.out_if) >= ifindexes_.size()) return false;
    e[d].saddr = p.out.src;
    e[d].daddr = p.out.dst;
    e[d].sport = p.out.sport;
    e[d].dport = p.out.dport;
    e[d].ifindex = static_cast<unsigned>(ifindexes_[static_cast<size_t>(p.out_if)]);
    std::memcpy(e[d].dst_mac, p.dst.b, 6);
    std::memcpy(e[d].src_mac, p.src.b, 6);
    e[d].mtu = static_cast<unsigned short>(std::min<uint32_t>(p.mtu, 65535));
    e[d].slot = slot;
    e[d].dir = static_cast<unsigned short>(d);
    e[d].until_ns = now_ms * 1'000'000 + XNAT_FAST_HANDOVER_NS;
  }
  // Stamped before the program can find the entries; no segment sent yet.
  __atomic_store_n(&seen_[slot], now_ms * 1'000'000, __ATOMIC_RELAXED);
  __atomic_store_n(&sent_[slot * 2], 0, __ATOMIC_RELAXED);
  __atomic_store_n(&sent_[slot * 2 + 1], 0, __ATOMIC_RELAXED);
  for (int d = 0; d < 2; ++d)
    if (bpf_map_update_elem(fd_, &dirs[d].match, &e[d], BPF_ANY) != 0) {
      ++failed_;
      if (d == 1) (void)bpf_map_delete_elem(fd_, &dirs[0].match);
      return false;
    }
  free_.pop_back();
  slot_of_[idx] = slot;
  return true;
}

void FastPath::remove(uint32_t idx, const Flow& f) {
  const uint32_t slot = slot_of_[idx];
  __atomic_store_n(&seen_[slot], XNAT_FAST_DRAINING, __ATOMIC_RELEASE);
  if (draining_head_ > 0 && draining_.size() == draining_.capacity()) {
    draining_.erase(draining_.begin(), draining_.begin() + static_cast<std::ptrdiff_t>(draining_head_));
    draining_head_ = 0;
  }
  draining_.push_back(Draining{{f.tuple[0], f.tuple[1]}, slot, now_ms_ + kDrainMs});
}

void FastPath::flush(uint64_t now_ms) {
  now_ms_ = now_ms;
  while (draining_head_ < draining_.size() && draining_[draining_head_].due_ms <= now_ms) {
    const Draining& d = draining_[draining_head_++];
    // The same connection may have been offloaded again meanwhile (deleted
    // by conntrack -D, picked up again): its new entries have another slot.
    for (const Tuple& k : d.keys) {
      xnat_fast_entry e;
      if (bpf_map_lookup_elem(fd_, &k, &e) == 0 && e.slot == d.slot) (void)bpf_map_delete_elem(fd_, &k);
    }
    free_.push_back(d.slot);
  }
  if (draining_head_ == draining_.size()) {
    draining_.clear();
    draining_head_ = 0;
  }
}

void FastPath::segment(uint32_t idx, int dir, const uint8_t* ip) {
  // One with IPv4 options the program never passes on by its tag.
  if (ip[0] != 0x45 || nnoted_ == std::size(noted_)) return;
  noted_[nnoted_++] = Sent{slot_of_[idx] * 2 + static_cast<uint32_t>(dir & 1), xnat_fast_tag(ip)};
}

void FastPath::publish() {
  for (size_t i = 0; i < nnoted_; ++i) __atomic_store_n(&sent_[noted_[i].key], noted_[i].tag, __ATOMIC_RELEASE);
  nnoted_ = 0;
}

uint64_t FastPath::last_seen_ms(uint32_t idx) const {
  return __atomic_load_n(&seen_[slot_of_[idx]], __ATOMIC_RELAXED) / 1'000'000;
}

}  // namespace xnat
