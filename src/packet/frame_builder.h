// A fluent builder for test frames with correct lengths and checksums:
//
//   auto f = FrameBuilder().eth(kClientMac, kGwInMac).ip("198.18.0.2", "198.51.100.7")
//                .ttl(64).tcp(40000, 80, kTcpSyn).build();
//
// Used by the tests (expected outputs are built the same way with the
// translated fields, so a golden test compares whole frames byte for byte,
// checksums included), the demo and the benchmarks.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "packet/checksum.h"
#include "packet/headers.h"

namespace xnat {

inline MacAddr mac(uint8_t last) { return MacAddr{{0x02, 0, 0, 0, 0, last}}; }

inline uint32_t ip_raw(const std::string& s) {
  in_addr a{};
  inet_pton(AF_INET, s.c_str(), &a);
  return a.s_addr;
}

class FrameBuilder {
 public:
  FrameBuilder& eth(MacAddr src, MacAddr dst) {
    src_mac_ = src;
    dst_mac_ = dst;
    return *this;
  }
  FrameBuilder& vlan(uint16_t id) {
    vlan_ = id;
    return *this;
  }
  FrameBuilder& ip(const std::string& src, const std::string& dst) {
    src_ = ip_raw(src);
    dst_ = ip_raw(dst);
    return *this;
  }
  FrameBuilder& ttl(uint8_t t) {
    ttl_ = t;
    return *this;
  }
  FrameBuilder& ip_id(uint16_t id) {
    id_ = id;
    return *this;
  }
  FrameBuilder& tos(uint8_t t) {
    tos_ = t;
    return *this;
  }
  FrameBuilder& frag(uint16_t frag_off) {
    frag_ = frag_off;
    return *this;
  }
  FrameBuilder& ip_options(std::vector<uint8_t> opts) {
    opts_ = std::move(opts);
    return *this;
  }
  FrameBuilder& tcp(uint16_t sport, uint16_t dport, uint8_t flags, uint32_t seq = 1000, uint32_t ack = 0) {
    proto_ = kProtoTcp;
    sport_ = sport;
    dport_ = dport;
    tcp_flags_ = flags;
    seq_ = seq;
    ack_ = ack;
    return *this;
  }
  // The advertised window (default 64240, as Linux's first SYN).
  FrameBuilder& window(uint16_t w) {
    tcp_win_ = w;
    return *this;
  }
  // TCP options, raw; padded with NOPs (1) to a multiple of 4 bytes.
  FrameBuilder& tcp_options(std::vector<uint8_t> o) {
    while (o.size() % 4) o.push_back(1);
    tcp_opts_ = std::move(o);
    return *this;
  }
  FrameBuilder& udp(uint16_t sport, uint16_t dport) {
    proto_ = kProtoUdp;
    sport_ = sport;
    dport_ = dport;
    return *this;
  }
  FrameBuilder& udp_no_checksum() {
    udp_zero_csum_ = true;
    return *this;
  }
  FrameBuilder& icmp(uint8_t type, uint8_t code, uint16_t id, uint16_t seq) {
    proto_ = kProtoIcmp;
    icmp_type_ = type;
    icmp_code_ = code;
    sport_ = id;
    dport_ = seq;
    return *this;
  }
  // An ICMP error quoting `inner`, an IP datagram (e.g. ip_part() of another frame).
  FrameBuilder& icmp_error(uint8_t type, uint8_t code, std::vector<uint8_t> inner) {
    proto_ = kProtoIcmp;
    icmp_type_ = type;
    icmp_code_ = code;
    sport_ = 0;
    dport_ = 0;
    payload_ = std::move(inner);
    return *this;
  }
  FrameBuilder& proto(uint8_t p) {
    proto_ = p;
    return *this;
  }
  FrameBuilder& payload(std::vector<uint8_t> p) {
    payload_ = std::move(p);
    return *this;
  }
  FrameBuilder& payload(const std::string& s) {
    payload_.assign(s.begin(), s.end());
    return *this;
  }

  std::vector<uint8_t> build() const {
    std::vector<uint8_t> l4 = l4_bytes();
    const size_t ihl = 20 + opts_.size();
    std::vector<uint8_t> ip(ihl);
    ip[0] = static_cast<uint8_t>(0x40 | (ihl / 4));
    ip[1] = tos_;
    put16(&ip[2], static_cast<uint16_t>(ihl + l4.size()));
    put16(&ip[4], id_);
    put16(&ip[6], frag_);
    ip[8] = ttl_;
    ip[9] = proto_;
    std::memcpy(&ip[12], &src_, 4);
    std::memcpy(&ip[16], &dst_, 4);
    if (!opts_.empty()) std::memcpy(&ip[20], opts_.data(), opts_.size());
    const uint16_t c = csum_finish(csum_partial(ip.data(), ihl));
    std::memcpy(&ip[10], &c, 2);

    std::vector<uint8_t> f(12);
    std::memcpy(&f[0], dst_mac_.b, 6);
    std::memcpy(&f[6], src_mac_.b, 6);
    if (vlan_) {
      f.push_back(0x81);
      f.push_back(0x00);
      f.push_back(static_cast<uint8_t>(vlan_ >> 8));
      f.push_back(static_cast<uint8_t>(vlan_));
    }
    f.push_back(0x08);
    f.push_back(0x00);
    f.insert(f.end(), ip.begin(), ip.end());
    f.insert(f.end(), l4.begin(), l4.end());
    return f;
  }

  // The IP datagram alone (for quoting inside ICMP errors).
  std::vector<uint8_t> ip_part() const {
    std::vector<uint8_t> f = build();
    return std::vector<uint8_t>(f.begin() + (vlan_ ? 18 : 14), f.end());
  }

 private:
  static void put16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
  }
  static void put32(uint8_t* p, uint32_t v) {
    put16(p, static_cast<uint16_t>(v >> 16));
    put16(p + 2, static_cast<uint16_t>(v));
  }

  std::vector<uint8_t> l4_bytes() const {
    std::vector<uint8_t> l4;
    switch (proto_) {
      case kProtoTcp: {
        l4.assign(20, 0);
        put16(&l4[0], sport_);
        put16(&l4[2], dport_);
        put32(&l4[4], seq_);
        put32(&l4[8], ack_);
        l4[12] = static_cast<uint8_t>((5 + tcp_opts_.size() / 4) << 4);
        l4[13] = tcp_flags_;
        put16(&l4[14], tcp_win_);
        l4.insert(l4.end(), tcp_opts_.begin(), tcp_opts_.end());
        l4.insert(l4.end(), payload_.begin(), payload_.end());
        const uint16_t c = l4_checksum(src_, dst_, kProtoTcp, l4.data(), l4.size());
        std::memcpy(&l4[16], &c, 2);
        break;
      }
      case kProtoUdp: {
        l4.assign(8, 0);
        put16(&l4[0], sport_);
        put16(&l4[2], dport_);
        put16(&l4[4], static_cast<uint16_t>(8 + payload_.size()));
        l4.insert(l4.end(), payload_.begin(), payload_.end());
        if (!udp_zero_csum_) {
          const uint16_t c = l4_checksum(src_, dst_, kProtoUdp, l4.data(), l4.size());
          std::memcpy(&l4[6], &c, 2);
        }
        break;
      }
      case kProtoIcmp: {
        l4.assign(8, 0);
        l4[0] = icmp_type_;
        l4[1] = icmp_code_;
        put16(&l4[4], sport_);
        put16(&l4[6], dport_);
        l4.insert(l4.end(), payload_.begin(), payload_.end());
        const uint16_t c = csum_finish(csum_partial(l4.data(), l4.size()));
        std::memcpy(&l4[2], &c, 2);
        break;
      }
      default:
        l4 = payload_;
        break;
    }
    return l4;
  }

  MacAddr src_mac_ = mac(0x10), dst_mac_ = mac(0x01);
  uint16_t vlan_ = 0;
  uint32_t src_ = 0, dst_ = 0;
  uint8_t ttl_ = 64, tos_ = 0;
  uint16_t id_ = 1, frag_ = 0x4000;
  std::vector<uint8_t> opts_;
  uint8_t proto_ = kProtoUdp;
  uint16_t sport_ = 0, dport_ = 0;
  uint8_t tcp_flags_ = 0;
  uint32_t seq_ = 0, ack_ = 0;
  uint16_t tcp_win_ = 64240;
  std::vector<uint8_t> tcp_opts_;
  uint8_t icmp_type_ = 0, icmp_code_ = 0;
  bool udp_zero_csum_ = false;
  std::vector<uint8_t> payload_;
};


}  // namespace xnat
