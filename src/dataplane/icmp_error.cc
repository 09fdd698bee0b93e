#include "dataplane/icmp_error.h"

#include <algorithm>
#include <cstring>

#include "packet/checksum.h"

namespace xnat {

namespace {
constexpr uint32_t kHdrs = sizeof(Ipv4Hdr) + sizeof(IcmpHdr);
}  // namespace

void put_ipv4_header(Ipv4Hdr* ip, uint16_t tot_len, uint8_t tos, uint16_t frag_off, uint8_t proto, uint32_t src,
                     uint32_t dst) {
  ip->ver_ihl = 0x45;
  ip->tos = tos;
  ip->tot_len.set(tot_len);
  ip->id.set(0);
  ip->frag_off.set(frag_off);
  ip->ttl = 64;
  ip->proto = proto;
  ip->check = 0;
  ip->saddr.raw = src;
  ip->daddr.raw = dst;
  ip->check = csum_finish(csum_partial(ip, sizeof(Ipv4Hdr)));
}

uint32_t icmp_error_quote(const uint8_t* frame, uint32_t capacity, uint32_t l3, uint32_t ip_end) {
  if (capacity < l3 + kHdrs) return 0;
  const uint32_t quote = std::min({ip_end - l3, 576 - kHdrs, capacity - l3 - kHdrs});
  const uint32_t min_quote = reinterpret_cast<const Ipv4Hdr*>(frame + l3)->header_len() + 8;
  return quote < min_quote ? 0 : quote;
}

uint32_t build_icmp_error(uint8_t* frame, uint32_t l3, uint32_t quote, uint32_t src, uint32_t dst,
                          const MacAddr& src_mac, uint8_t type, uint8_t code, uint32_t rest) {
  uint8_t* at = frame + l3;
  std::memmove(at + kHdrs, at, quote);
  // TOS IPTOS_PREC_INTERNETCONTROL, as Linux sends its ICMP errors.
  put_ipv4_header(reinterpret_cast<Ipv4Hdr*>(at), static_cast<uint16_t>(kHdrs + quote), 0xC0, 0, kProtoIcmp, src, dst);
  auto* icmp = reinterpret_cast<IcmpHdr*>(at + sizeof(Ipv4Hdr));
  icmp->type = type;
  icmp->code = code;
  icmp->check = 0;
  icmp->id.set(static_cast<uint16_t>(rest >> 16));
  icmp->seq.set(static_cast<uint16_t>(rest));
  icmp->check = csum_finish(csum_partial(icmp, sizeof(IcmpHdr) + quote));
  auto* eth = reinterpret_cast<EthHdr*>(frame);
  eth->dst = eth->src;
  eth->src = src_mac;
  return l3 + kHdrs + quote;
}

IcmpPeerLimit::IcmpPeerLimit(uint32_t interval_ms)
    : cost_(interval_ms / 4), cap_(6 * (interval_ms / 4)), slot_(std::make_unique<std::atomic<uint64_t>[]>(kSlots)) {
  for (uint32_t i = 0; i < kSlots; ++i) slot_[i].store(0, std::memory_order_relaxed);
}

bool IcmpPeerLimit::allow(uint32_t dst, uint64_t now_ms) {
  if (cost_ == 0) return true;  // net.ipv4.icmp_ratelimit = 0 (or under 4 ms): no limit
  const uint64_t now = (now_ms / 4) & kTimeMask;
  uint64_t h = uint64_t{dst} * 0x9E3779B97F4A7C15ull;
  std::atomic<uint64_t>* s[2] = {&slot_[(h >> 32) % kSlots], &slot_[(h >> 45) % kSlots]};
  auto addr = [](uint64_t w) { return static_cast<uint32_t>(w >> 32); };
  auto tokens = [](uint64_t w) { return static_cast<uint32_t>(w >> 21) & 0x7ff; };
  auto age = [&](uint64_t w) { return (now - (w & kTimeMask)) & kTimeMask; };
  for (;;) {
    uint64_t w[2] = {s[0]->load(std::memory_order_relaxed), s[1]->load(std::memory_order_relaxed)};
    int k = w[0] && addr(w[0]) == dst ? 0 : w[1] && addr(w[1]) == dst ? 1 : -1;
    uint64_t next;
    bool ok;
    if (k < 0) {
      // A new destination: a full bucket, less this error's token.
      k = !w[0] ? 0 : !w[1] ? 1 : age(w[0]) >= age(w[1]) ? 0 : 1;
      next = uint64_t{dst} << 32 | uint64_t{cap_ - cost_} << 21 | now;
      ok = true;
    } else {
      const uint64_t d = age(w[k]);
      uint64_t t = tokens(w[k]) + d;
      if (t > cap_) t = cap_;
      ok = t >= cost_;
      if (ok) t -= cost_;
      next = uint64_t{dst} << 32 | t << 21 | (d ? now : (w[k] & kTimeMask));
    }
    if (next == w[k] || s[k]->compare_exchange_weak(w[k], next, std::memory_order_relaxed)) return ok;
  }
}

}  // namespace xnat
