#include "dataplane/ip_options.h"

#include <cstring>
#include <ctime>

#include "packet/checksum.h"

namespace xnat {
namespace {

constexpr uint8_t kOptEnd = 0, kOptNoop = 1;
constexpr uint8_t kOptRecordRoute = 7, kOptTimestamp = 68, kOptLooseRoute = 131, kOptStrictRoute = 137,
                  kOptRouterAlert = 148, kOptCipso = 134;
// A timestamp option's flag (its fourth octet's low nibble).
constexpr uint8_t kTsOnly = 0, kTsAndAddr = 1, kTsPrespec = 3;

unsigned header_len(const uint8_t* ip) { return (ip[0] & 0x0Fu) * 4; }

void put32(uint8_t* at, uint32_t raw) { std::memcpy(at, &raw, 4); }

// The options of the header at ip in order, no-ops skipped: fn(offset, len)
// for each, until fn returns nonzero (returned), an option's length does
// not fit (its offset returned: malformed) or the list ends (0), *end then
// the offset of its end-of-list option, or the header's length.
template <class Fn>
unsigned for_each_option(const uint8_t* ip, unsigned* end, Fn fn) {
  const unsigned hlen = header_len(ip);
  unsigned i = 20;
  for (; i < hlen && ip[i] != kOptEnd;) {
    if (ip[i] == kOptNoop) {
      ++i;
      continue;
    }
    if (hlen - i < 2) return i;
    const unsigned len = ip[i + 1];
    if (len < 2 || len > hlen - i) return i;
    if (const unsigned r = fn(i, len)) return r;
    i += len;
  }
  *end = i;
  return 0;
}

}  // namespace

// In the order ip_options_compile checks, so the pointer is the kernel's.
IpOptionsVerdict check_ip_options(const uint8_t* ip) {
  bool srr = false, rr = false, ts = false, cipso = false;
  unsigned end = 0;
  const unsigned bad = for_each_option(ip, &end, [&](unsigned i, unsigned len) -> unsigned {
    const uint8_t* o = ip + i;
    switch (o[0]) {
      case kOptLooseRoute:
      case kOptStrictRoute:
        if (len < 3) return i + 1;
        if (o[2] < 4) return i + 2;
        if (srr) return i;  // RFC 1812 5.2.4.1: one source route
        srr = true;
        break;
      case kOptRecordRoute:
        if (rr) return i;
        if (len < 3) return i + 1;
        if (o[2] < 4) return i + 2;
        if (const unsigned ptr = o[2]; ptr <= len && ptr + 3 > len) return i + 2;  // room, but not for an address
        rr = true;
        break;
      case kOptTimestamp: {
        if (ts) return i;
        if (len < 4) return i + 1;
        if (o[2] < 5) return i + 2;
        const unsigned flag = o[3] & 0x0Fu, ptr = o[2];
        if (ptr <= len) {
          if (ptr + 3 > len) return i + 2;
          if ((flag == kTsAndAddr || flag == kTsPrespec) && ptr + 7 > len) return i + 2;
        } else if (flag != kTsPrespec && (o[3] >> 4) == 15) {
          return i + 3;  // full, and its overflow count would wrap
        }
        ts = true;
        break;
      }
      case kOptRouterAlert:
        if (len < 4) return i + 1;
        break;
      case kOptCipso:
        if (cipso) return i;
        cipso = true;
        break;
      default:
        break;
    }
    return 0;
  });
  if (bad) return IpOptionsVerdict{IpOptionsCheck::kMalformed, static_cast<uint8_t>(bad)};
  if (srr) return IpOptionsVerdict{IpOptionsCheck::kSourceRoute, 0};
  return {};
}

bool forward_ip_options(uint8_t* ip, const IpOptionsStamp& stamp, const Fib& fib) {
  const unsigned hlen = header_len(ip);
  const uint32_t now = __builtin_bswap32(stamp.now_ms);
  bool changed = false;
  unsigned end = hlen;  // a checked list: ends
  for_each_option(ip, &end, [&](unsigned i, unsigned len) -> unsigned {
    uint8_t* o = ip + i;
    if (o[0] == kOptRecordRoute && o[2] <= len) {
      put32(o + o[2] - 1, stamp.out_addr);
      o[2] += 4;
      changed = true;
    } else if (o[0] == kOptTimestamp) {
      const unsigned flag = o[3] & 0x0Fu;
      if (o[2] > len) {
        if (flag != kTsPrespec) {  // full: counted in its overflow nibble
          o[3] = static_cast<uint8_t>((o[3] & 0x0F) | (((o[3] >> 4) + 1) << 4));
          changed = true;
        }
      } else if (flag == kTsOnly) {
        put32(o + o[2] - 1, now);
        o[2] += 4;
        changed = true;
      } else if (flag == kTsAndAddr) {
        put32(o + o[2] - 1, stamp.back_addr);
        put32(o + o[2] + 3, now);
        o[2] += 8;
        changed = true;
      } else if (flag == kTsPrespec) {
        uint32_t named;
        std::memcpy(&named, o + o[2] - 1, 4);
        if (fib.addr_type(named) != kAddrUnicast) {  // the kernel's test: not routed elsewhere
          put32(o + o[2] + 3, now);
          o[2] += 8;
          changed = true;
        }
      }
    }
    return 0;
  });
  for (unsigned j = end + 1; j < hlen; ++j)  // after an end-of-list: end-of-list
    if (ip[j] != kOptEnd) {
      ip[j] = kOptEnd;
      changed = true;
    }
  if (changed) {
    ip[10] = ip[11] = 0;
    const uint16_t c = csum_finish(csum_partial(ip, hlen));
    std::memcpy(ip + 10, &c, 2);
  }
  return changed;
}

uint32_t ip_timestamp_now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint32_t>(ts.tv_sec % 86400) * 1000 + static_cast<uint32_t>(ts.tv_nsec / 1000000);
}

}  // namespace xnat
