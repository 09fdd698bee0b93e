// xnat_pace: 64-byte UDP frames at an exact average rate, for RFC 2544's
// throughput search (the highest offered rate with no loss). trafgen's -b
// paces in whole microseconds, which at 600 000 frames/s requested sends
// 1.1 million; this one keeps a deadline per frame in nanoseconds and sends
// when it is due, spinning in between, so the offered rate is the one asked
// for up to what one CPU can send (it prints the rate it achieved).
//
//   xnat_pace IFACE DST_MAC SRC_MAC RATE COUNT FLOWS
//
// Frames go from 198.18.4.0/22 to 198.19.0.2: FLOWS 1 is one tuple; up to
// 65 536 vary the source port from 1024; more vary the source address
// (1 023 of them) and the destination port (1 024 up), as bench/e2e's
// trafgen configurations do. Prints "sent SECONDS RATE_ACHIEVED".
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

uint64_t now_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return uint64_t(t.tv_sec) * 1'000'000'000 + uint64_t(t.tv_nsec);
}

bool parse_mac(const char* s, uint8_t* m) {
  unsigned v[6];
  if (std::sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return false;
  for (int i = 0; i < 6; ++i) m[i] = static_cast<uint8_t>(v[i]);
  return true;
}

uint16_t ip_checksum(const uint8_t* h) {
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += uint32_t(h[i]) << 8 | h[i + 1];
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: xnat_pace IFACE DST_MAC SRC_MAC RATE COUNT FLOWS\n");
    return 2;
  }
  uint8_t dst[6], src[6];
  const double rate = std::atof(argv[4]);
  const uint64_t count = std::strtoull(argv[5], nullptr, 10);
  const uint64_t flows = std::strtoull(argv[6], nullptr, 10);
  if (!parse_mac(argv[2], dst) || !parse_mac(argv[3], src) || rate <= 0 || flows == 0) {
    std::fprintf(stderr, "xnat_pace: bad MAC, rate or flow count\n");
    return 2;
  }
  const int fd = ::socket(AF_PACKET, SOCK_RAW, htons(ETH_P_IP));
  if (fd < 0) {
    std::perror("xnat_pace: socket (needs root)");
    return 1;
  }
  const int one = 1;
  (void)::setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_IP);
  sll.sll_ifindex = static_cast<int>(if_nametoindex(argv[1]));
  if (!sll.sll_ifindex || ::bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) {
    std::fprintf(stderr, "xnat_pace: interface %s: %s\n", argv[1], std::strerror(errno));
    return 1;
  }
  // Ethernet, IPv4 (20), UDP (8), 18 bytes of payload: 64 with the FCS.
  uint8_t f[60] = {};
  std::memcpy(f, dst, 6);
  std::memcpy(f + 6, src, 6);
  f[12] = 0x08;
  uint8_t* ip = f + 14;
  ip[0] = 0x45;
  ip[3] = 46;  // total length
  ip[6] = 0x40;  // DF
  ip[8] = 64;
  ip[9] = 17;
  const uint32_t saddr0 = 198u << 24 | 18u << 16 | 4u << 8, daddr = 198u << 24 | 19u << 16 | 2;
  uint8_t* udp = ip + 20;
  udp[5] = 26;  // UDP length; checksum 0: none (IPv4)
  auto put32 = [](uint8_t* p, uint32_t v) { p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = uint8_t(v); };
  auto put16 = [](uint8_t* p, uint32_t v) { p[0] = uint8_t(v >> 8), p[1] = uint8_t(v); };
  put32(ip + 16, daddr);

  const uint64_t period = static_cast<uint64_t>(1e9 / rate);
  const uint64_t frac = static_cast<uint64_t>(1e9 * 1024 / rate) - period * 1024;  // 1/1024 ns carried
  uint64_t sent = 0, acc = 0;
  const uint64_t start = now_ns();
  uint64_t due = start;
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t k = i % flows;
    uint32_t saddr = saddr0, sport = 1024, dport = 9;
    if (flows <= 65536 - 1024) sport = 1024 + static_cast<uint32_t>(k);
    else saddr = saddr0 + static_cast<uint32_t>(k % 1023), dport = 1024 + static_cast<uint32_t>(k / 1023 % 1025);
    put32(ip + 12, saddr);
    put16(udp, sport);
    put16(udp + 2, dport);
    ip[10] = ip[11] = 0;
    put16(ip + 10, ip_checksum(ip));
    while (now_ns() < due) {
    }
    if (::send(fd, f, sizeof f, 0) == sizeof f) ++sent;
    due += period;
    acc += frac;
    if (acc >= 1024) due += acc / 1024, acc %= 1024;
  }
  const double secs = double(now_ns() - start) / 1e9;
  std::printf("%llu %.6f %.0f\n", static_cast<unsigned long long>(sent), secs, double(sent) / secs);
  return 0;
}
