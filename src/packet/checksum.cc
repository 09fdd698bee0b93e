#include "packet/checksum.h"

#include <cstring>

namespace xnat {

uint32_t csum_partial(const void* data, size_t len, uint32_t sum) {
  const auto* p = static_cast<const uint8_t*>(data);
  // 64-bit accumulator over 32-bit loads: no carries are lost for any frame
  // size xnat handles, and the loop is 4 bytes a step.
  uint64_t acc = sum;
  while (len >= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    acc += w;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    acc += w;
    p += 2;
    len -= 2;
  }
  if (len) {
    // An odd trailing byte is the high-order byte of a word padded with zero
    // (RFC 1071); in memory order that is the first byte of a little-endian load.
    uint16_t w = 0;
    std::memcpy(&w, p, 1);
    acc += w;
  }
  acc = (acc & 0xFFFFFFFF) + (acc >> 32);
  acc = (acc & 0xFFFFFFFF) + (acc >> 32);
  return static_cast<uint32_t>(acc);
}

static uint32_t pseudo_sum(uint32_t saddr_raw, uint32_t daddr_raw, uint8_t proto, size_t len) {
  uint32_t s = 0;
  s = csum_partial(&saddr_raw, 4, s);
  s = csum_partial(&daddr_raw, 4, s);
  uint8_t tail[4] = {0, proto, static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)};
  return csum_partial(tail, 4, s);
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
