// What the NAT targets do to a new connection's tuple, as netfilter's
// nf_nat_setup_info with each target's range: DNAT, REDIRECT and NETMAP on the
// destination before routing; SNAT, MASQUERADE and NETMAP on the source after
// it. The interface addresses REDIRECT and MASQUERADE use come from the
// caller (network order), so this layer needs no routing table.
#pragma once

#include <cstdint>

#include "nat/port_allocator.h"
#include "nat/rules.h"

namespace xnat {

// Maps `t`'s destination by `target` (DNAT, REDIRECT to `in_addr`, NETMAP).
// As in netfilter, a destination mapping that finds no free tuple keeps its
// last choice; the source side resolves clashes. False for another target.
bool apply_dst_target(const Target& target, Tuple* t, uint32_t in_addr, NatContext& ctx);

// Maps `t`'s source by `target` (SNAT, MASQUERADE to `out_addr`, NETMAP) to
// a tuple no other connection uses. False if the target is another, or no
// such tuple is left in its range (drop_no_port).
bool apply_src_target(const Target& target, Tuple* t, uint32_t out_addr, NatContext& ctx);

}  // namespace xnat
