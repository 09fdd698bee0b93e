#include "nat/port_allocator.h"

#include <bit>

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

// The kernel's jhash2 (Bob Jenkins' lookup3 over 32-bit words, as
// include/linux/jhash.h has it), so a pool hands a client the address the
// kernel would.
uint32_t jhash2(const uint32_t* k, uint32_t length, uint32_t initval) {
  uint32_t a, b, c;
  a = b = c = 0xdeadbeef + (length << 2) + initval;
  while (length > 3) {
    a += k[0];
    b += k[1];
    c += k[2];
    a -= c; a ^= std::rotl(c, 4);  c += b;
    b -= a; b ^= std::rotl(a, 6);  a += c;
    c -= b; c ^= std::rotl(b, 8);  b += a;
    a -= c; a ^= std::rotl(c, 16); c += b;
    b -= a; b ^= std::rotl(a, 19); a += c;
    c -= b; c ^= std::rotl(b, 4);  b += a;
    length -= 3;
    k += 3;
  }
  switch (length) {
    case 3: c += k[2]; [[fallthrough]];
    case 2: b += k[1]; [[fallthrough]];
    case 1:
      a += k[0];
      c ^= b; c -= std::rotl(b, 14);
      a ^= c; a -= std::rotl(c, 11);
      b ^= a; b -= std::rotl(a, 25);
      c ^= b; c -= std::rotl(b, 16);
      a ^= c; a -= std::rotl(c, 4);
      b ^= a; b -= std::rotl(a, 14);
      c ^= b; c -= std::rotl(b, 24);
      break;
    default:
      break;
  }
  return c;
}

}  // namespace

// find_best_ips_proto: the client's address (the kernel's 16-byte address
// union, an IPv4 address followed by zeros) hashed with the destination as it
// was (unless --persistent) and scaled over the range. No secret in it, as in
// the kernel: a client keeps its address across restarts and across workers,
// which servers that pin a session to an address rely on.
uint32_t pool_address(uint32_t src, uint32_t dst, bool persistent, uint32_t min_ip, uint32_t max_ip) {
  const uint32_t words[4] = {src, 0, 0, 0};
  const uint32_t j = jhash2(words, 4, persistent ? 0 : dst);
  const uint32_t dist = max_ip - min_ip + 1;  // 32 bits, as the kernel's: the whole space scales to 0
  return min_ip + static_cast<uint32_t>((uint64_t{j} * dist) >> 32);
}

namespace {

void pick_ip(Tuple* t, const NatRange& r, Manip m) {
  if (!r.map_ips) return;
  if (r.min_ip == r.max_ip) {
    set_ip(t, m, r.min_ip);
    return;
  }
  set_ip(t, m, pool_address(t->src, t->dst, r.persistent, r.min_ip, r.max_ip));
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

namespace {

bool unique_tuple(Tuple* t, const NatRange& r, Manip m, NatContext& ctx) {
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
      // Several workers: another worker's connection from this source. (The
      // engine handed this one to the worker that owns the mapping's reply,
      // Engine::adopt_elsewhere, unless a DNAT changed the ports since.)
      uint64_t v;
      const SourceMap* shared = ctx.shard.mappings;
      if (shared && shared->find(ctx.ct.source_key(orig), &v)) {
        t->src = SourceMap::mapped_addr(v);
        t->sport = SourceMap::mapped_port(v);
        if (in_range(*t, r, m) && keeps_port() && !nat_tuple_used(*t, ctx)) return true;
      }
      *t = orig;
    }
  }
  // 2) Address from the range.
  pick_ip(t, r, m);
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

}  // namespace

bool nat_unique_tuple(Tuple* t, const NatRange& r, Manip m, NatContext& ctx) {
  const uint16_t sport = t->sport;
  if (!unique_tuple(t, r, m, ctx)) return false;
  if (m == Manip::kSrc && ctx.shard.mappings && !r.random && !r.random_fully &&
      (t->has_ports() || t->proto == kProtoIcmp))
    ctx.share = t->sport != sport || (r.map_ips && r.min_ip != r.max_ip && !r.persistent);
  return true;
}

}  // namespace xnat
