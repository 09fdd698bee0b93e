// The port pools source translation draws from: each address a SNAT or
// MASQUERADE rule can give a connection, with the ports it offers it. With
// the flows translated to each address (conntrack/translated_counts.h) this
// is how full a pool is, before new connections find it exhausted.
#pragma once

#include <cstdint>
#include <vector>

#include "nat/rules.h"

namespace xnat {

struct PortPool {
  uint32_t addr = 0;   // network order
  uint32_t ports = 0;  // ports a connection from a port >= 1024 may get
};

// In address order; an address several rules give has the largest of their
// pools. `if_addrs`: the interfaces' addresses (network order, 0 for none) in
// the order the rules were bound to. At most `max` addresses (a SNAT range
// of a /16 would be 65 536).
std::vector<PortPool> source_pools(const RuleSet& rules, const std::vector<uint32_t>& if_addrs, size_t max = 4096);

}  // namespace xnat
