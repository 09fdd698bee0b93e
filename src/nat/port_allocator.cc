#include "nat/port_allocator.h"

namespace xnat {
namespace {

uint16_t get_port(const Tuple& t, Manip m) {
  return __builtin_bswap16(m == Manip::kSrc ? t.sport : t.dport);
}
uint32_t get_ip(const Tuple& t, Manip m) { return __builtin_bswap32(m == Manip::kSrc ? t.src : t.dst); }
void set_ip(Tuple* t, Manip m, uint32_t host_ip) {
  (m == Manip::kSrc ? t->src : t->dst) = __builtin_bswap32(host_ip);
}

bool in_range(const Tuple& t, const NatRange& r, Manip m) {
  if (r.map_ips) {
    uint32_t ip = get_ip(t, m);
    if (ip < r.min_ip || ip > r.max_ip) return false;
  }
  if (r.proto_specified && t.has_ports()) {
    uint16_t p = get_port(t, m);
    if (p < r.min_port || p > r.max_port) return false;
  }
  return true;
}

// find_best_ips_proto: a stable hash of the client (and the destination unless
// --persistent) spread over the address range.
void pick_ip(Tuple* t, const NatRange& r, Manip m, uint64_t seed) {
  if (!r.map_ips) return;
  if (r.min_ip == r.max_ip) {
    set_ip(t, m, r.min_ip);
    return;
  }
  Tuple key;
  key.src = t->src;
  key.dst = r.persistent ? 0 : t->dst;
  const uint32_t j = static_cast<uint32_t>(tuple_hash(key, seed));
  const uint64_t dist = uint64_t{r.max_ip} - r.min_ip + 1;
  set_ip(t, m, r.min_ip + static_cast<uint32_t>((uint64_t{j} * dist) >> 32));
}

// nf_nat_l4proto_unique_tuple.
bool l4_unique(Tuple* t, const NatRange& r, Manip m, NatContext& ctx) {
  uint32_t min, size;
  uint16_t* key;
  if (t->proto == kProtoIcmp) {
    key = &t->sport;  // the identifier, the same field both ways
    if (r.proto_specified) {
      min = r.min_port;
      size = uint32_t{r.max_port} - r.min_port + 1;
    } else {
      min = 0;
      size = 65536;
    }
  } else if (t->has_ports()) {
    key = m == Manip::kSrc ? &t->sport : &t->dport;
    if (!r.proto_specified) {
      if (m == Manip::kDst) return false;  // a destination port is never changed unasked
      const uint16_t p = __builtin_bswap16(*key);
      if (p < 1024) {
        // Low ports map to low ports: below 512 stays below 512 (credential
        // passing convention), 512-1023 maps into 600-1023.
        if (p < 512) { min = 1; size = 511; }
        else { min = 600; size = 1023 - 600 + 1; }
      } else {
        min = 1024;
        size = 65535 - 1024 + 1;
      }
    } else {
      min = r.min_port;
      size = uint32_t{r.max_port} - r.min_port + 1;
    }
  } else {
    return false;  // nothing to vary: protocols without ports or identifiers
  }

  // Several workers: only ports whose reply this worker owns (owner() is
  // symmetric, so the translated tuple's owner is the reply's). About one
  // candidate in W qualifies; the others are skipped without a table lookup
  // and without counting as attempts, up to W times the attempt bound.
  const bool sharded = m == Manip::kSrc && ctx.shard.active();
  const uint32_t n = size;
  uint32_t off = (r.random || r.random_fully || m != Manip::kDst) ? ctx.rng.next() : 0;
  uint32_t attempts = n < 128 ? n : 128;
  for (;;) {
    uint64_t budget = uint64_t{attempts} * (sharded ? ctx.shard.count : 1);
    for (uint32_t i = 0; i < attempts && budget > 0; ++off, --budget) {
      *key = __builtin_bswap16(static_cast<uint16_t>(min + off % n));
      if (sharded && ctx.shard.owner_by_hash(*t) != ctx.shard.index) continue;
      ++i;
      if (!nat_tuple_used(*t, ctx)) return true;
    }
    if (attempts >= n || attempts < 16) return false;
    attempts /= 2;
    off = ctx.rng.next();
  }
}

}  // namespace

bool nat_tuple_used(const Tuple& t, NatContext& ctx) {
  return ctx.ct.tuple_in_use(invert(t), ctx.now_ms);
}

bool nat_unique_tuple(Tuple* t, const NatRange& r, Manip m, NatContext& ctx) {
  const bool random_all = r.random || r.random_fully;
  // Several workers: a source mapping keeps the port only if this worker owns the reply.
  auto keeps_port = [&] {
    if (m != Manip::kSrc || !ctx.shard.active() || (!t->has_ports() && t->proto != kProtoIcmp)) return true;
    return ctx.shard.owner_by_hash(*t) == ctx.shard.index;  // owner() is symmetric: the reply's too
  };
  // 1) A source mapping keeps the tuple when it is already in range and free;
  //    else (find_appropriate_src) it reuses the translated source of
  //    another connection from the same address and port, if that is in
  //    range and free for this destination: the endpoint-independent
  //    mapping of RFC 4787 REQ-1, as netfilter gives it.
  if (m == Manip::kSrc && !random_all) {
    if (in_range(*t, r, m)) {
      if (keeps_port() && !nat_tuple_used(*t, ctx)) return true;
    } else {
      const Tuple orig = *t;
      const bool reused = ctx.ct.for_each_same_source(orig, ctx.now_ms, [&](const Flow& f) {
        Tuple c = invert(f.tuple[1]);  // the source this connection leaves with
        c.dst = orig.dst;
        c.dport = orig.dport;
        if (!in_range(c, r, m)) return false;
        *t = c;
        return keeps_port() && !nat_tuple_used(*t, ctx);
      });
      if (reused) return true;
      *t = orig;
    }
  }
  // 2) Address from the range.
  pick_ip(t, r, m, ctx.hash_seed);
  // 3) Keep the port if it is in range and free.
  if (!random_all && keeps_port()) {
    if (r.proto_specified && t->has_ports()) {
      const uint16_t p = get_port(*t, m);
      if (p >= r.min_port && p <= r.max_port && !nat_tuple_used(*t, ctx)) return true;
    } else if (!nat_tuple_used(*t, ctx)) {
      return true;
    }
  }
  // 4) Search the port range.
  return l4_unique(t, r, m, ctx);
}

}  // namespace xnat
