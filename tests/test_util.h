// Shared fixtures: the reference two-interface gateway of the config
// example, engines built from inline rules, and frame rendering.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "control/config.h"
#include "dataplane/engine.h"
#include "nat/rules_parser.h"
#include "packet/frame_builder.h"

namespace xnat::test {

// Addresses of the reference network (TESTNET.md ranges only).
// inside:  eth1 198.18.0.1/16 mac ..:01, clients 198.18.0.2.. mac ..:10..
// outside: eth0 198.19.0.1/16 mac ..:02, router 198.19.0.254 mac ..:fe,
//          servers 198.19.0.x (connected) and 198.51.100.x / 203.0.113.x (via router)
inline const MacAddr kInMac = mac(0x01);
inline const MacAddr kOutMac = mac(0x02);
inline const MacAddr kRouterMac = mac(0xfe);
inline const MacAddr kClientMac = mac(0x10);
inline const MacAddr kClient2Mac = mac(0x11);
inline const MacAddr kServerMac = mac(0x20);
inline constexpr int kIn = 0;   // eth1
inline constexpr int kOut = 1;  // eth0

std::string reference_config(const std::string& conntrack_lines = "");
EngineConfig engine_config(const std::string& rules, const std::string& conntrack_lines = "");
std::unique_ptr<Engine> make_engine(const std::string& rules, const std::string& conntrack_lines = "");

struct Output {
  Verdict verdict;
  int out_if;
  DropReason reason;
  std::vector<uint8_t> frame;
};
// A copy of `frame` in *buf, with room to grow, as a Packet received on `in_if`.
Packet received(std::vector<uint8_t>* buf, const std::vector<uint8_t>& frame, int in_if);
Output result(const Packet& p);
// Runs one frame received on interface `in_if` at time `now_ms`.
Output run(Engine& e, const std::vector<uint8_t>& frame, int in_if, uint64_t now_ms);

// A tuple from readable parts (ports in host order).
Tuple tuple_of(const char* src, uint16_t sport, const char* dst, uint16_t dport, uint8_t proto);

// Cuts an untagged frame's IP datagram into fragments of `piece` payload
// bytes (a multiple of 8), each a frame with the same Ethernet header.
std::vector<std::vector<uint8_t>> fragment(const std::vector<uint8_t>& frame, size_t piece);

// A readable one-line rendering of a frame, for failure messages.
std::string describe(const std::vector<uint8_t>& frame);

// What `iptables-save -t nat` prints on a Docker host with one container
// publishing port 8080 -> 80 (bridge subnet moved into the RFC 2544 range).
extern const char* const kDockerHostRules;
// kube-proxy's nat chains for one Service over two endpoints (198.18.0.2-3:8080).
extern const char* const kKubeProxyRules;

// Rules header/footer for a nat table.
std::string nat_table(const std::string& body);

// A port published by DNAT on the reference gateway: outside 198.19.0.1:8080
// is the inside server 198.18.0.2:80; eth0 is masqueraded.
std::string publish_rules();
// A TCP segment from the outside client 198.19.0.20:port to the published
// port, and one from the server back to it: `len` bytes of payload, the
// window as given.
std::vector<uint8_t> to_published(uint16_t port, uint8_t flags, uint32_t seq, uint32_t ack, size_t len = 0,
                                  uint16_t window = 1000);
std::vector<uint8_t> from_published(uint16_t port, uint8_t flags, uint32_t seq, uint32_t ack, size_t len = 0,
                                    uint16_t window = 1000);

}  // namespace xnat::test
