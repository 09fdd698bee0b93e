// FragmentTable: what became of each fragmented datagram's first fragment, so
// that its later fragments (which carry no transport header, so no ports to
// find a connection by) go the same way.
//
// netfilter reassembles a datagram before conntrack sees it (nf_defrag_ipv4)
// and fragments it again on output. xnat translates fragments one by one, as
// VPP's shallow virtual reassembly does: the first fragment is tracked and
// translated as any packet (its transport checksum, which covers the whole
// datagram, is updated incrementally, which stays correct); the engine then
// records here, under the datagram's key as received (source, destination,
// protocol, IP identification), what it did: forwarded with these addresses,
// handed to that worker, given to the host, or dropped for that reason. Each
// later fragment with the same key gets the same, its addresses rewritten
// and its header checksum fixed. A later fragment that arrives before its
// first fragment waits in FragmentHold (below) until the first's fate is
// known, as VPP's reassembly keeps such fragments and as RFC 4787 REQ-14
// requires of a NAT.
//
// Fixed capacity, no allocation after construction: 4-way buckets, an entry
// lives net.ipv4.ipfrag_time (30 s) from its first fragment, and a full bucket
// gives up its entry that expires first.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/counters.h"
#include "dataplane/packet.h"

namespace xnat {

struct FragmentKey {
  uint32_t src = 0, dst = 0;  // network order, as received
  uint16_t id = 0;            // IPv4 identification, raw
  uint8_t proto = 0;
};

inline bool same_datagram(const FragmentKey& a, const FragmentKey& b) {
  return a.src == b.src && a.dst == b.dst && a.id == b.id && a.proto == b.proto;
}

struct FragmentFate {
  enum Kind : uint8_t { kForward, kHandoff, kToHost, kDrop };
  Kind kind = kDrop;
  uint32_t out_src = 0, out_dst = 0;  // kForward: the addresses it left with
  uint16_t worker = 0;                // kHandoff
  DropReason reason = Counter::kCount;  // kDrop
};

class FragmentTable {
 public:
  static constexpr uint64_t kLifetimeMs = 30'000;  // net.ipv4.ipfrag_time

  explicit FragmentTable(uint32_t entries = 4096);

  void record(const FragmentKey& k, const FragmentFate& f, uint64_t now_ms);
  // The fate recorded for k, or nullptr (none, or expired).
  const FragmentFate* find(const FragmentKey& k, uint64_t now_ms) const;

 private:
  static constexpr uint32_t kWays = 4;
  struct Entry {
    FragmentKey key;
    FragmentFate fate;
    uint64_t expires_ms = 0;  // 0: empty
  };
  uint32_t bucket(const FragmentKey& k) const;

  std::vector<Entry> entries_;
  uint32_t mask_ = 0;  // buckets - 1
};

// FragmentHold: later fragments that came ahead of their first fragment, each
// copied into a slot of its own until the first's fate is recorded; then
// released, to be handled again as the later fragments that follow their
// first are. A fragment waits at most net.ipv4.ipfrag_time (30 s), as the
// kernel keeps an incomplete datagram; with every slot taken, the one held
// longest gives way (the kernel, too, evicts under its memory limit). Slots
// are allocated at construction: nothing per packet.
class FragmentHold {
 public:
  static constexpr uint32_t kSlotBytes = 9216;  // a jumbo frame's fragment
  static constexpr uint64_t kLifetimeMs = FragmentTable::kLifetimeMs;

  explicit FragmentHold(uint32_t slots = 128);

  enum class Held { kNo, kYes, kYesEvicting };  // kYesEvicting: the oldest made room
  // Keeps a copy of the frame under k; kNo if it is larger than a slot.
  Held hold(const FragmentKey& k, const Packet& p, uint64_t now_ms);
  // k's first fragment was handled: its waiting fragments are ready.
  void release(const FragmentKey& k);
  // Up to max ready fragments as packets over their slots' bytes (marked
  // released), which stay theirs until done().
  size_t take(Packet* out, size_t max);
  void done();
  // Gives up fragments held kLifetimeMs; returns how many.
  uint32_t expire(uint64_t now_ms);
  // Gives up every fragment still waiting; returns how many.
  uint32_t clear();
  uint32_t waiting() const { return waiting_; }
  uint32_t ready() const { return ready_; }

 private:
  enum class State : uint8_t { kFree, kWaiting, kReady, kTaken };
  struct Slot {
    State state = State::kFree;
    FragmentKey key;
    int16_t in_if = 0;
    uint32_t len = 0;
    uint64_t held_ms = 0;
  };
  std::vector<Slot> slots_;
  // slots_.size() * kSlotBytes, left uninitialised: a slot's pages are
  // touched only by what it holds.
  std::unique_ptr<uint8_t[]> bytes_;
  uint32_t waiting_ = 0, ready_ = 0;
  uint64_t next_expiry_ms_ = UINT64_MAX;  // no waiting fragment expires before
};

}  // namespace xnat
