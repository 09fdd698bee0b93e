// Choosing the translated tuple of a new connection: netfilter's
// get_unique_tuple / find_best_ips_proto / nf_nat_l4proto_unique_tuple.
//
// For a source mapping without --random/--random-fully, the connection keeps
// its own address and port when they are inside the range and the resulting
// reply tuple is free. Otherwise the address comes from a hash of the client
// (and, without --persistent, of the destination) over the address range, and
// the port from a random offset into the port range (RFC 6056 algorithm 1
// style), trying at most 128 ports, then halving the window with a fresh
// random start while it is at least 16 -- the kernel's bound, which keeps a
// nearly full range from stalling the data plane.
//
// "Free" is checked against the flow table in the same step that inserts the
// flow (the engine is single-writer per worker), so two connections are never
// given the same reply tuple: the kernel's insert_failed clash cannot happen.
//
// Several workers (conntrack/shard.h): worker w hands out only the source
// ports (ICMP identifiers) p for which the reply tuple's owner() is w, one
// residue class modulo the worker count, so return traffic finds its worker
// from the packet alone. find_appropriate_src looks in this worker's table,
// then in the mappings the workers share (SourceMap).
#pragma once

#include <cstdint>

#include "conntrack/conntrack.h"
#include "base/rng.h"
#include "nat/rules.h"

namespace xnat {

enum class Manip : uint8_t { kSrc, kDst };

struct NatContext {
  Conntrack& ct;
  uint64_t now_ms;
  Rng& rng;
  Shard shard;  // several workers: a source mapping picks ports whose reply this worker owns
  // Set by a source mapping that another worker would not find by itself (a
  // changed port, an address from a pool): the flow's mapping is to be
  // shared (Conntrack::share_source).
  bool share = false;
};

// Rewrites the `manip` side of `t` (the original tuple as it will leave the
// gateway) into `range` so that invert(*t) is used by no other flow. Returns
// false when no free tuple was found within the attempt bound.
bool nat_unique_tuple(Tuple* t, const NatRange& range, Manip manip, NatContext& ctx);

// The address find_best_ips_proto gives a connection from src (network
// order) to dst out of the range [min_ip, max_ip] (host order): the kernel's
// own choice, the same on every run and every worker.
uint32_t pool_address(uint32_t src, uint32_t dst, bool persistent, uint32_t min_ip, uint32_t max_ip);

// Whether a translated original tuple would collide: its reply is taken.
bool nat_tuple_used(const Tuple& t, NatContext& ctx);

}  // namespace xnat
