#include "nat/pools.h"

#include <algorithm>
#include <map>

namespace xnat {

std::vector<PortPool> source_pools(const RuleSet& rules, const std::vector<uint32_t>& if_addrs, size_t max) {
  std::map<uint32_t, uint32_t> pools;  // host-order address -> ports
  auto offer = [&](uint32_t host_addr, uint32_t ports) {
    if (pools.size() >= max && !pools.count(host_addr)) return;
    uint32_t& p = pools[host_addr];
    p = std::max(p, ports);
  };
  for (const Chain& c : rules.nat.chains)
    for (const Rule& r : c.rules) {
      if (!r.target.is(TargetKind::kSnat, TargetKind::kMasquerade)) continue;
      const NatRange& n = r.target.range;
      // nf_nat's default for a source port >= 1024: 1024-65535.
      const uint32_t ports = n.proto_specified ? uint32_t{n.max_port} - n.min_port + 1 : 65535 - 1024 + 1;
      if (r.target.kind == TargetKind::kSnat) {
        if (!n.map_ips) continue;  // ports only: the address stays
        for (uint64_t a = n.min_ip; a <= n.max_ip && pools.size() < max; ++a) offer(static_cast<uint32_t>(a), ports);
        continue;
      }
      // MASQUERADE: the address of each interface the rule may send from.
      const InterfaceMatch& out = r.match.out;
      for (size_t i = 0; i < if_addrs.size(); ++i) {
        const bool hit = i < 64 && (out.mask >> i) & 1;
        if (if_addrs[i] && (!out.present || hit != out.invert)) offer(__builtin_bswap32(if_addrs[i]), ports);
      }
    }
  std::vector<PortPool> out;
  for (auto [a, p] : pools) out.push_back(PortPool{__builtin_bswap32(a), p});
  return out;
}

}  // namespace xnat
