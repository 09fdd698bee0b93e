// Wire formats of the headers xnat parses and rewrites.
//
// Every multi-byte field is big-endian on the wire and is declared with a
// type that says so (Be16, Be32): reading one needs .host(), so a missing
// byte swap is a compile error, not a wrong port. The structs are packed
// because an IPv4 header behind a 14-byte Ethernet header is only 2-byte
// aligned; the compiler then emits unaligned-safe loads (and UBSan agrees).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace xnat {

struct [[gnu::packed]] Be16 {
  uint16_t raw;  // network byte order, as on the wire
  constexpr uint16_t host() const { return __builtin_bswap16(raw); }
  constexpr void set(uint16_t v) { raw = __builtin_bswap16(v); }
  static constexpr Be16 of(uint16_t v) { return Be16{__builtin_bswap16(v)}; }
  friend constexpr bool operator==(Be16, Be16) = default;
};

struct [[gnu::packed]] Be32 {
  uint32_t raw;
  constexpr uint32_t host() const { return __builtin_bswap32(raw); }
  constexpr void set(uint32_t v) { raw = __builtin_bswap32(v); }
  static constexpr Be32 of(uint32_t v) { return Be32{__builtin_bswap32(v)}; }
  friend constexpr bool operator==(Be32, Be32) = default;
};

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint16_t kEtherTypeVlan = 0x8100;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86DD;

inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;

struct MacAddr {
  uint8_t b[6];
  friend bool operator==(const MacAddr&, const MacAddr&) = default;
};

struct [[gnu::packed]] EthHdr {
  MacAddr dst;
  MacAddr src;
  Be16 type;
};
static_assert(sizeof(EthHdr) == 14);

struct [[gnu::packed]] VlanTag {
  Be16 tci;
  Be16 type;  // the encapsulated EtherType
};
static_assert(sizeof(VlanTag) == 4);

struct [[gnu::packed]] Ipv4Hdr {
  uint8_t ver_ihl;
  uint8_t tos;
  Be16 tot_len;
  Be16 id;
  Be16 frag_off;  // flags (3 bits) + fragment offset in 8-byte units
  uint8_t ttl;
  uint8_t proto;
  uint16_t check;  // one's complement sum; treated as opaque bytes
  Be32 saddr;
  Be32 daddr;

  unsigned version() const { return ver_ihl >> 4; }
  unsigned header_len() const { return (ver_ihl & 0x0F) * 4u; }
  bool is_fragment() const { return (frag_off.host() & 0x3FFF) != 0; }  // MF or offset
};
static_assert(sizeof(Ipv4Hdr) == 20);

struct [[gnu::packed]] TcpHdr {
  Be16 sport;
  Be16 dport;
  Be32 seq;
  Be32 ack_seq;
  uint8_t doff_res;  // data offset in 32-bit words, high nibble
  uint8_t flags;
  Be16 window;
  uint16_t check;
  Be16 urg_ptr;

  unsigned header_len() const { return (doff_res >> 4) * 4u; }
};
static_assert(sizeof(TcpHdr) == 20);

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;
inline constexpr uint8_t kTcpUrg = 0x20;
inline constexpr uint8_t kTcpEce = 0x40;
inline constexpr uint8_t kTcpCwr = 0x80;

struct [[gnu::packed]] UdpHdr {
  Be16 sport;
  Be16 dport;
  Be16 len;
  uint16_t check;  // RFC 768: zero means "no checksum"
};
static_assert(sizeof(UdpHdr) == 8);

struct [[gnu::packed]] IcmpHdr {
  uint8_t type;
  uint8_t code;
  uint16_t check;
  Be16 id;   // echo, timestamp, information: identifier; errors: unused
  Be16 seq;
};
static_assert(sizeof(IcmpHdr) == 8);

// ICMP types (RFC 792, RFC 950).
inline constexpr uint8_t kIcmpEchoReply = 0;
inline constexpr uint8_t kIcmpDestUnreach = 3;
inline constexpr uint8_t kIcmpSourceQuench = 4;
inline constexpr uint8_t kIcmpRedirect = 5;
inline constexpr uint8_t kIcmpEcho = 8;
inline constexpr uint8_t kIcmpTimeExceeded = 11;
inline constexpr uint8_t kIcmpParamProblem = 12;
inline constexpr uint8_t kIcmpTimestamp = 13;
inline constexpr uint8_t kIcmpTimestampReply = 14;
inline constexpr uint8_t kIcmpInfoRequest = 15;
inline constexpr uint8_t kIcmpInfoReply = 16;
inline constexpr uint8_t kIcmpAddress = 17;
inline constexpr uint8_t kIcmpAddressReply = 18;

// Errors that carry the offending datagram (RFC 5508 section 3.2 lists the ones
// a NAT must translate). Source quench and redirect are obsolete but still
// carry a datagram; netfilter treats them the same way.
constexpr bool icmp_is_error(uint8_t type) {
  return type == kIcmpDestUnreach || type == kIcmpSourceQuench || type == kIcmpRedirect ||
         type == kIcmpTimeExceeded || type == kIcmpParamProblem;
}

// Query types that netfilter tracks by identifier, and the type of their answer.
// Returns 0xFF for a type that opens no connection.
constexpr uint8_t icmp_reply_type(uint8_t request) {
  switch (request) {
    case kIcmpEcho: return kIcmpEchoReply;
    case kIcmpTimestamp: return kIcmpTimestampReply;
    case kIcmpInfoRequest: return kIcmpInfoReply;
    case kIcmpAddress: return kIcmpAddressReply;
    default: return 0xFF;
  }
}
// Inverse of icmp_reply_type over both requests and replies (netfilter's invmap).
constexpr uint8_t icmp_invert_type(uint8_t type) {
  switch (type) {
    case kIcmpEcho: return kIcmpEchoReply;
    case kIcmpEchoReply: return kIcmpEcho;
    case kIcmpTimestamp: return kIcmpTimestampReply;
    case kIcmpTimestampReply: return kIcmpTimestamp;
    case kIcmpInfoRequest: return kIcmpInfoReply;
    case kIcmpInfoReply: return kIcmpInfoRequest;
    case kIcmpAddress: return kIcmpAddressReply;
    case kIcmpAddressReply: return kIcmpAddress;
    default: return 0xFF;
  }
}

// TCP sequence numbers compared modulo 2^32 (RFC 1982; netfilter's before()/after()).
inline bool seq_before(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }
inline bool seq_after(uint32_t a, uint32_t b) { return seq_before(b, a); }

// A 16-bit field in wire order, read or written without alignment assumptions.
inline uint16_t load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline void store16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// Typed views at an offset; callers bounds-check first.
template <typename T>
inline T* header_at(uint8_t* frame, size_t off) {
  return reinterpret_cast<T*>(frame + off);
}

}  // namespace xnat
