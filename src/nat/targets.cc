#include "nat/targets.h"

namespace xnat {
namespace {

uint32_t host32(uint32_t raw) { return __builtin_bswap32(raw); }

}  // namespace

bool apply_dst_target(const Target& target, Tuple* t, uint32_t in_addr, NatContext& ctx) {
  NatRange range = target.range;
  switch (target.kind) {
    case TargetKind::kDnat:
      if (!range.map_ips) {
        range.map_ips = true;
        range.min_ip = range.max_ip = host32(t->dst);
      }
      break;
    case TargetKind::kRedirect: {
      // The address of the interface the packet came in on (nf_nat_redirect_ipv4).
      range.map_ips = true;
      range.min_ip = range.max_ip = host32(in_addr);
      break;
    }
    case TargetKind::kNetmap: {
      const Prefix& to = target.prefix;
      const uint32_t h = (host32(t->dst) & ~to.mask()) | to.addr;
      range = NatRange{};
      range.map_ips = true;
      range.min_ip = range.max_ip = h;
      break;
    }
    default:
      return false;
  }
  // As in netfilter, a destination mapping that finds no free tuple keeps its
  // last choice; the source side (SNAT or the null binding) resolves clashes.
  (void)nat_unique_tuple(t, range, Manip::kDst, ctx);
  return true;
}

bool apply_src_target(const Target& target, Tuple* t, uint32_t out_addr, NatContext& ctx) {
  NatRange range = target.range;
  switch (target.kind) {
    case TargetKind::kSnat:
      if (!range.map_ips) {
        range.map_ips = true;
        range.min_ip = range.max_ip = host32(t->src);
      }
      break;
    case TargetKind::kMasquerade:
      range.map_ips = true;
      range.min_ip = range.max_ip = host32(out_addr);
      break;
    case TargetKind::kNetmap: {
      const Prefix& to = target.prefix;
      range = NatRange{};
      range.map_ips = true;
      range.min_ip = range.max_ip = (host32(t->src) & ~to.mask()) | to.addr;
      break;
    }
    default:
      return false;
  }
  return nat_unique_tuple(t, range, Manip::kSrc, ctx);
}

}  // namespace xnat
