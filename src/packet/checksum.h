// Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//
// A NAT rewrites a few 16-bit words of a header; recomputing a whole checksum
// would read the payload. RFC 1624 eqn. 3 updates it from the old and new
// words alone: HC' = ~(~HC + ~m + m'). We carry the sum of (~m + m') over all
// rewritten words as a 32-bit "delta", fold it once, and apply it to each
// checksum it concerns (the IP header's, and the TCP/UDP one through the
// pseudo-header). A flow's deltas are constant, so they are computed once per
// flow and stored (see conntrack/flow.h).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace xnat {

// Sum of 16-bit words in network order, not folded, not inverted.
uint32_t csum_partial(const void* data, size_t len, uint32_t sum = 0);

// Ones' complement addition of 64-bit quantities (the carry out wraps around).
inline uint64_t csum_add64(uint64_t a, uint64_t b) {
  uint64_t r;
  const bool carry = __builtin_add_overflow(a, b, &r);
  return r + carry;
}
// Folds a 64-bit ones' complement sum to 32 bits, keeping its value modulo 0xFFFF.
inline uint32_t csum_fold64(uint64_t acc) {
  acc = (acc & 0xFFFFFFFF) + (acc >> 32);
  acc = (acc & 0xFFFFFFFF) + (acc >> 32);
  return static_cast<uint32_t>(acc);
}
// The partial sum of an IPv4 header of `hlen` bytes (a multiple of 4, at
// least 20): the usual 20 bytes in three loads, inline; options through
// csum_partial.
inline uint32_t ipv4_header_sum(const uint8_t* ip, size_t hlen) {
  if (hlen != 20) return csum_partial(ip, hlen);
  uint64_t a, b;
  uint32_t c;
  __builtin_memcpy(&a, ip, 8);
  __builtin_memcpy(&b, ip + 8, 8);
  __builtin_memcpy(&c, ip + 16, 4);
  return csum_fold64(csum_add64(csum_add64(a, b), c));
}

// Folds a 32-bit sum to 16 bits with end-around carry: the high half of
// sum + (sum rotated by 16) is high + low plus the carry out of low + high
// (the kernel's csum_fold, without the inversion).
constexpr uint16_t csum_fold(uint32_t sum) { return static_cast<uint16_t>((sum + std::rotr(sum, 16)) >> 16); }

// The checksum field value for data whose partial sum is `sum`.
constexpr uint16_t csum_finish(uint32_t sum) { return static_cast<uint16_t>(~csum_fold(sum)); }

// Delta contribution of replacing 32-bit value `from` with `to` (both in
// network order as stored in memory; the sum is byte-order independent as long
// as both are in the same order, RFC 1071 section 2(B)).
constexpr uint32_t csum_delta32(uint32_t from, uint32_t to) {
  return (~from & 0xFFFF) + (~from >> 16) + (to & 0xFFFF) + (to >> 16);
}
constexpr uint32_t csum_delta16(uint16_t from, uint16_t to) {
  return static_cast<uint16_t>(~from) + static_cast<uint32_t>(to);
}

// Applies a folded delta to a stored checksum field (RFC 1624 eqn. 3).
constexpr uint16_t csum_apply(uint16_t check, uint16_t folded_delta) {
  uint32_t sum = static_cast<uint16_t>(~check) + static_cast<uint32_t>(folded_delta);
  return static_cast<uint16_t>(~csum_fold(sum));
}

// The IPv4 header checksum field after the TTL (the low-order byte, in memory
// order, of the word {ttl, protocol}) fell by one: the stored complement rises
// by one, with end-around carry (RFC 1141; the kernel's ip_decrease_ttl).
// Equal to csum_apply(check, csum_fold(csum_delta16(old, old - 1))).
constexpr uint16_t csum_ttl_decremented(uint16_t check) {
  const uint32_t c = uint32_t{check} + 1;
  return static_cast<uint16_t>(c + (c >= 0xFFFF));
}

// Same for UDP, where a zero checksum means "none" (RFC 768) and must stay zero,
// and a computed zero is sent as 0xFFFF.
constexpr uint16_t csum_apply_udp(uint16_t check, uint16_t folded_delta) {
  if (check == 0) return 0;
  uint16_t r = csum_apply(check, folded_delta);
  return r == 0 ? 0xFFFF : r;
}

// csum_partial's body, for callers that want it inline (per-packet checks).
inline uint32_t csum_partial_inline(const void* data, size_t len, uint32_t sum) {
  const auto* p = static_cast<const uint8_t*>(data);
  // Each 8-byte load is added as its two 32-bit halves into 64-bit
  // accumulators: no carry is lost below 16 GiB, and unlike an add-with-carry
  // chain the additions do not wait on each other's carries. The sum of the
  // 16-bit words is kept modulo 0xFFFF, as 2^32 is 1 modulo 0xFFFF.
  // (Parsing sums the usual 20-byte IPv4 header with ipv4_header_sum instead.)
  uint64_t a = sum, b = 0;
  while (len >= 16) {
    uint64_t w[2];
    std::memcpy(w, p, 16);
    a += (w[0] & 0xFFFFFFFF) + (w[0] >> 32);
    b += (w[1] & 0xFFFFFFFF) + (w[1] >> 32);
    p += 16;
    len -= 16;
  }
  if (len >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    a += (w & 0xFFFFFFFF) + (w >> 32);
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    b += w;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    a += w;
    p += 2;
    len -= 2;
  }
  // An odd trailing byte is the high-order byte of a word padded with zero
  // (RFC 1071); in memory order that is the low byte of a little-endian load.
  if (len) b += *p;
  return csum_fold64(csum_add64(a, b));
}

// The IPv4 pseudo-header's sum (RFC 793 / 768), without a call per field.
// Words are summed in memory order like csum_partial, so proto and length
// go in as their network-order 16-bit values.
inline uint32_t pseudo_sum(uint32_t saddr_raw, uint32_t daddr_raw, uint8_t proto, size_t len) {
  uint64_t s = uint64_t{saddr_raw} + daddr_raw;
  s += __builtin_bswap16(static_cast<uint16_t>(proto));
  s += __builtin_bswap16(static_cast<uint16_t>(len));
  s = (s & 0xFFFFFFFF) + (s >> 32);
  return static_cast<uint32_t>(s);
}

// Verifies an L4 checksum over the IPv4 pseudo-header (RFC 793/768).
// `l4` points at the transport header, `len` is the transport length.
inline bool l4_checksum_ok(uint32_t saddr_raw, uint32_t daddr_raw, uint8_t proto, const uint8_t* l4,
                           size_t len) {
  uint32_t s = csum_partial_inline(l4, len, pseudo_sum(saddr_raw, daddr_raw, proto, len));
  return csum_fold(s) == 0xFFFF;
}

// Computes the L4 checksum field value (the field itself must be zero in the data).
uint16_t l4_checksum(uint32_t saddr_raw, uint32_t daddr_raw, uint8_t proto, const uint8_t* l4,
                     size_t len);

}  // namespace xnat
