// Shared fixtures for the engine benchmarks: a gateway built in code (no TOML
// on the hot setup path), and fast generation of 64-byte frames.
//
// Addressing (TESTNET.md ranges): flow i has client 198.18.(c+2) where
// c = i % 65000, source port 1024 + i / 65000, and server
// 198.51.100.(c % 256) port 1 + c / 256. Flows sharing a source port have
// distinct servers, so MASQUERADE keeps every port and the reply tuples are
// unique up to 4e9 flows without a port search.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/engine.h"

namespace xnat::bench {

inline constexpr size_t kFrameStride = 64;  // trace slot; frames are 60 bytes + 4 FCS on the wire = 64
inline constexpr size_t kFrameLen = 60;
inline constexpr int kIn = 0, kOut = 1;

struct FlowAddr {
  uint32_t client, server;  // host order
  uint16_t cport, sport;
};
FlowAddr flow_addr(uint64_t i);

// Writes a 60-byte frame. dir 0: client -> server arriving on the inside;
// dir 1: server -> the gateway's outside address (the MASQUERADEd reply).
// `nat` false: replies are addressed to the client itself (no translation).
void write_udp(uint8_t* out, const FlowAddr& a, int dir, bool nat = true);
void write_tcp(uint8_t* out, const FlowAddr& a, int dir, uint8_t flags, bool nat = true);

// The reference gateway (inside eth1 198.18.0.1/16, outside eth0
// 198.19.0.1/16, default via 198.19.0.254) with `rules`, and a neighbour entry
// for every client address the flow numbering uses.
std::unique_ptr<Engine> make_engine(const std::string& rules, uint64_t max_flows,
                                     const std::string& extra_settings = "");
std::string masquerade_rules();

// Processes n frames from `trace` (stride kFrameStride) in bursts of `batch`,
// copying each into a packet buffer first, as a NIC would have written it.
class Runner {
 public:
  explicit Runner(size_t batch);
  // Returns the number of frames forwarded.
  size_t run(Engine& e, const uint8_t* trace, const int16_t* in_if, size_t first, size_t count,
             size_t trace_len, uint64_t now_ms);

 private:
  size_t batch_;
  std::vector<uint8_t> bufs_;
  std::vector<Packet> pkts_;
};

uint64_t rss_bytes();

}  // namespace xnat::bench
