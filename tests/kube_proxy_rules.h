// An iptables-save nat table as kube-proxy (iptables mode) writes it for N
// Services, each a ClusterIP 10.96.x.y:80 load-balanced over two endpoints:
// per Service a KUBE-SERVICES rule, a KUBE-SVC chain (KUBE-MARK-MASQ for
// traffic from outside the pod network, -m statistic between the
// endpoints) and a KUBE-SEP chain per endpoint (its own traffic marked,
// then DNAT). For tests and benchmarks of large rulesets.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>

namespace xnat::test {

inline std::string service_ip(uint32_t i) { return fmt::format("10.96.{}.{}", i / 250, 1 + i % 250); }
inline std::string endpoint_ip(uint32_t i, int e) { return fmt::format("10.244.{}.{}", (2 * i + e) / 250, 1 + (2 * i + e) % 250); }

inline std::string kube_proxy_rules(uint32_t services) {
  std::string chains, rules;
  chains += ":KUBE-MARK-MASQ - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-SERVICES - [0:0]\n";
  rules += "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n";
  rules += "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n";
  rules += "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n";
  rules += "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n";
  rules += "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n";
  rules += "-A KUBE-POSTROUTING -j MASQUERADE --random-fully\n";
  for (uint32_t i = 0; i < services; ++i) {
    const std::string svc = fmt::format("KUBE-SVC-{:016X}", i), name = fmt::format("ns{}/svc{}:http", i % 7, i);
    chains += fmt::format(":{} - [0:0]\n", svc);
    rules += fmt::format("-A KUBE-SERVICES -d {}/32 -p tcp -m comment --comment \"{} cluster IP\" -m tcp --dport 80 -j {}\n",
                         service_ip(i), name, svc);
    rules += fmt::format("-A {} ! -s 10.244.0.0/16 -d {}/32 -p tcp -m comment --comment \"{} cluster IP\" -m tcp "
                         "--dport 80 -j KUBE-MARK-MASQ\n",
                         svc, service_ip(i), name);
    for (int e = 0; e < 2; ++e) {
      const std::string sep = fmt::format("KUBE-SEP-{:08X}{:08X}", i, e);
      chains += fmt::format(":{} - [0:0]\n", sep);
      rules += e == 0 ? fmt::format("-A {} -m comment --comment \"{} -> {}:8080\" -m statistic --mode random "
                                    "--probability 0.50000000000 -j {}\n",
                                    svc, name, endpoint_ip(i, e), sep)
                      : fmt::format("-A {} -m comment --comment \"{} -> {}:8080\" -j {}\n", svc, name, endpoint_ip(i, e), sep);
      rules += fmt::format("-A {} -s {}/32 -m comment --comment \"{}\" -j KUBE-MARK-MASQ\n", sep, endpoint_ip(i, e), name);
      rules += fmt::format("-A {} -p tcp -m comment --comment \"{}\" -m tcp -j DNAT --to-destination {}:8080\n", sep,
                           name, endpoint_ip(i, e));
    }
  }
  rules += "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n";
  chains += ":KUBE-NODEPORTS - [0:0]\n";
  return "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n" + chains +
         rules + "COMMIT\n";
}

}  // namespace xnat::test
