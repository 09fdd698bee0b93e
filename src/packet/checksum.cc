#include "packet/checksum.h"

namespace xnat {

uint32_t csum_partial(const void* data, size_t len, uint32_t sum) { return csum_partial_inline(data, len, sum); }

uint16_t l4_checksum(uint32_t saddr_raw, uint32_t daddr_raw, uint8_t proto, const uint8_t* l4,
                     size_t len) {
  uint16_t c = csum_finish(csum_partial(l4, len, pseudo_sum(saddr_raw, daddr_raw, proto, len)));
  if (proto == 17 && c == 0) c = 0xFFFF;  // RFC 768: a computed zero is sent as all ones
  return c;
}

}  // namespace xnat
