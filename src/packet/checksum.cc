#include "packet/checksum.h"

#include <cstring>

namespace xnat {

uint32_t csum_partial(const void* data, size_t len, uint32_t sum) {
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
static uint32_t pseudo_sum(uint32_t saddr_raw, uint32_t daddr_raw, uint8_t proto, size_t len) {
  uint64_t s = uint64_t{saddr_raw} + daddr_raw;
  s += __builtin_bswap16(static_cast<uint16_t>(proto));
  s += __builtin_bswap16(static_cast<uint16_t>(len));
  s = (s & 0xFFFFFFFF) + (s >> 32);
  return static_cast<uint32_t>(s);
}

bool l4_checksum_ok(uint32_t saddr_raw, uint32_t daddr_raw, uint8_t proto, const uint8_t* l4,
                    size_t len) {
  uint32_t s = csum_partial(l4, len, pseudo_sum(saddr_raw, daddr_raw, proto, len));
  return csum_fold(s) == 0xFFFF;
}

uint16_t l4_checksum(uint32_t saddr_raw, uint32_t daddr_raw, uint8_t proto, const uint8_t* l4,
                     size_t len) {
  uint16_t c = csum_finish(csum_partial(l4, len, pseudo_sum(saddr_raw, daddr_raw, proto, len)));
  if (proto == 17 && c == 0) c = 0xFFFF;  // RFC 768: a computed zero is sent as all ones
  return c;
}

}  // namespace xnat
