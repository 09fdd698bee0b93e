// A connection tuple: what netfilter calls nf_conntrack_tuple, for IPv4.
//
// Fields are kept in network byte order exactly as they sit in the packet, so
// building a tuple is plain loads and comparing two is two 64-bit compares.
// For ICMP, `sport` holds the identifier and `dport` the bytes {type, code}
// (netfilter keys ICMP queries the same way: src.u.icmp.id, dst.u.icmp.type
// and .code), so an echo request and the echo reply it expects are distinct
// keys, as in the kernel.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "packet/headers.h"

namespace xnat {

struct Tuple {
  uint32_t src = 0;    // network order
  uint32_t dst = 0;    // network order
  uint16_t sport = 0;  // network order; ICMP: identifier
  uint16_t dport = 0;  // network order; ICMP: {type, code} bytes
  uint8_t proto = 0;
  uint8_t pad[3] = {0, 0, 0};  // always zero, so the key is 16 plain bytes

  uint64_t word0() const {
    uint64_t w;
    std::memcpy(&w, this, 8);
    return w;
  }
  uint64_t word1() const {
    uint64_t w;
    std::memcpy(&w, reinterpret_cast<const uint8_t*>(this) + 8, 8);
    return w;
  }
  friend bool operator==(const Tuple& a, const Tuple& b) {
    return a.word0() == b.word0() && a.word1() == b.word1();
  }

  uint8_t icmp_type() const { return reinterpret_cast<const uint8_t*>(&dport)[0]; }
  uint8_t icmp_code() const { return reinterpret_cast<const uint8_t*>(&dport)[1]; }
  void set_icmp_type_code(uint8_t type, uint8_t code) {
    auto* b = reinterpret_cast<uint8_t*>(&dport);
    b[0] = type;
    b[1] = code;
  }
  bool has_ports() const { return proto == kProtoTcp || proto == kProtoUdp; }
};
static_assert(sizeof(Tuple) == 16, "a tuple is two 64-bit words; the flow table relies on it");

// The tuple of the packets travelling the other way (nf_ct_invert_tuple).
inline Tuple invert(const Tuple& t) {
  Tuple r;
  r.src = t.dst;
  r.dst = t.src;
  r.proto = t.proto;
  if (t.proto == kProtoIcmp) {
    r.sport = t.sport;  // the identifier is the same both ways
    r.set_icmp_type_code(icmp_invert_type(t.icmp_type()), t.icmp_code());
  } else {
    r.sport = t.dport;
    r.dport = t.sport;
  }
  return r;
}

// Seeded 64-bit hash of a tuple: two multiplies and a fold. The seed is
// random per process in live mode (hash flooding) and fixed in replay.
inline uint64_t tuple_hash(const Tuple& t, uint64_t seed) {
  uint64_t a = (t.word0() ^ seed) * 0x9E3779B97F4A7C15ull;
  uint64_t b = (t.word1() + seed) * 0xC2B2AE3D27D4EB4Full;
  uint64_t h = a ^ (b >> 29) ^ (b << 35);
  h ^= h >> 32;
  h *= 0xD6E8FEB86659FD93ull;
  return h ^ (h >> 32);
}

std::string ip_to_string(uint32_t raw_network_order);
// Parses dotted quad; returns false on anything else.
bool parse_ipv4(const std::string& s, uint32_t* raw_network_order);

}  // namespace xnat
