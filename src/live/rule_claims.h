// What the rules ask of the host's interfaces before any packet: the ports a
// destination translation may claim on the host's addresses (the steering
// program takes their frames from the kernel), and whether any rule can
// translate a connection for the host's own stack (the host port).
#pragma once

#include <cstdint>
#include <vector>

#include "nat/rules.h"
#include "packet/headers.h"

namespace xnat {

// The nat rules that translate destinations (DNAT, NETMAP, REDIRECT), in
// every chain but POSTROUTING's.
template <class F>
void for_each_destination_rule(const RuleSet& rules, F&& f) {
  const Table& nat = rules.nat;
  const int post = nat.hook_chain(Hook::kPostrouting);
  for (size_t ci = 0; ci < nat.chains.size(); ++ci) {
    if (static_cast<int>(ci) == post) continue;
    for (const Rule& r : nat.chains[ci].rules) {
      const TargetKind k = r.target.kind;
      if (k == TargetKind::kDnat || k == TargetKind::kNetmap || k == TargetKind::kRedirect) f(r);
    }
  }
}

// Ports the destination rules may claim on the host's addresses: a rule's
// --dport / multiport list, or every port of its protocol (all protocols when
// it names none); `claim(proto, port)` once per port the ruleset claims,
// however many of its rules do (kube-proxy's 10 000 DNAT rules each name no
// port: their jump rules do). A ruleset's claims are held while it runs.
template <class F>
void claim_dnat_ports(const RuleSet& rules, F&& claim) {
  constexpr uint8_t kProtos[] = {kProtoTcp, kProtoUdp, kProtoIcmp};
  std::vector<bool> claimed(3 * 65536);
  bool every[3] = {};
  auto slot = [&](uint8_t proto) { return proto == kProtoTcp ? 0 : proto == kProtoUdp ? 1 : 2; };
  for_each_destination_rule(rules, [&](const Rule& r) {
    const Match& m = r.match;
    std::vector<uint8_t> protos;
    if (m.proto && !m.proto_invert) protos = {m.proto};
    else protos = {kProtoTcp, kProtoUdp, kProtoIcmp};
    for (uint8_t proto : protos) {
      if (proto != kProtoTcp && proto != kProtoUdp && proto != kProtoIcmp) continue;  // the steering's three
      std::vector<PortRange> ranges;
      if (proto != kProtoIcmp && m.has_dport && !m.dport_invert) ranges = {m.dport};
      else if (proto != kProtoIcmp && !m.multi_invert &&
               (m.multi == Match::Multi::kDest || m.multi == Match::Multi::kEither))
        ranges = m.multi_ports;
      else ranges = {PortRange{0, 65535}};
      if (every[slot(proto)]) continue;  // all its ports are claimed already
      for (const PortRange& pr : ranges) {
        if (pr.lo == 0 && pr.hi == 65535) every[slot(proto)] = true;
        else
          for (uint32_t port = pr.lo; port <= pr.hi; ++port) claimed[size_t(slot(proto)) * 65536 + port] = true;
      }
    }
  });
  for (uint8_t proto : kProtos)
    for (uint32_t port = 0; port < 65536; ++port)
      if (every[slot(proto)] || claimed[size_t(slot(proto)) * 65536 + port]) claim(proto, static_cast<uint16_t>(port));
}

// Whether a rule can translate a connection for the host's own stack, which
// then needs the host port: REDIRECT, and DNAT or NETMAP before routing
// (their address may be one of the host's, now or after a change).
inline bool translates_for_host(const RuleSet& rules) {
  bool any = false;
  for_each_destination_rule(rules, [&](const Rule&) { any = true; });
  return any;
}

}  // namespace xnat
