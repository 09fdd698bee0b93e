/* Which frames the gateway takes from the kernel: one decision, compiled twice.
 *
 * The XDP program (bpf/xnat_steer.bpf.c) and the tc program used with the
 * AF_PACKET backend include this file, and so does the C++ side, which must
 * know which frames the tc program kept from the kernel. Plain C, bounds
 * checked the way the BPF verifier wants: every read is preceded by a test
 * against `end`.
 *
 * The gateway takes every IPv4 frame except
 *   - multicast and broadcast destinations, and unknown protocols addressed
 *     to the host, and
 *   - frames to one of the host's own addresses whose port (ICMP: identifier)
 *     no NAT mapping and no DNAT rule claims; for an ICMP error, the port is
 *     the source port of the datagram it quotes.
 * A fragmented datagram to a host address goes where its first fragment went
 * (only that one has the port): the first is noted when the gateway takes it,
 * and a later fragment goes to the gateway only if its datagram was noted. A
 * later fragment ahead of its first goes to the kernel.
 * Everything else (ARP, IPv6, the host's own traffic) stays with the kernel.
 *
 * The caller provides lookups as macros before including this file:
 *   XNAT_STEER_IS_LOCAL(addr)        address in network order -> nonzero if the host's
 *   XNAT_STEER_CLAIMED(index)        claim count for xnat_claim_index(proto, port)
 *   XNAT_STEER_FRAG_NOTE(ip)         the first fragment with IPv4 header `ip` is the gateway's
 *   XNAT_STEER_FRAG_SEEN(ip)         nonzero if the datagram of fragment `ip` was noted
 * (a datagram: source, destination, identification, protocol).
 */
#ifndef XNAT_LIVE_STEER_H_
#define XNAT_LIVE_STEER_H_

#define XNAT_STEER_KERNEL 0
#define XNAT_STEER_GATEWAY 1

#ifndef XNAT_STEER_INLINE
#define XNAT_STEER_INLINE static inline
#endif

#define XNAT_CLAIM_PORTS 65536u
#define XNAT_CLAIM_ENTRIES (3u * XNAT_CLAIM_PORTS) /* TCP, UDP, ICMP */

/* Index of (protocol, host-order port) in the claims array, or -1. */
XNAT_STEER_INLINE int xnat_claim_index(unsigned proto, unsigned port) {
  if (proto == 6) return (int)port;
  if (proto == 17) return (int)(XNAT_CLAIM_PORTS + port);
  if (proto == 1) return (int)(2u * XNAT_CLAIM_PORTS + port);
  return -1;
}

/* A fragmented datagram, as the frags map keys it: from its IPv4 header. */
struct xnat_frag_key {
  unsigned int src, dst; /* network order */
  unsigned short id;     /* raw */
  unsigned char proto, pad;
};
XNAT_STEER_INLINE struct xnat_frag_key xnat_frag_key_of(const unsigned char* ip) {
  struct xnat_frag_key k = {0, 0, 0, 0, 0};
  __builtin_memcpy(&k.src, ip + 12, 4);
  __builtin_memcpy(&k.dst, ip + 16, 4);
  __builtin_memcpy(&k.id, ip + 4, 2);
  k.proto = ip[9];
  return k;
}

#ifdef XNAT_STEER_IS_LOCAL
XNAT_STEER_INLINE unsigned xnat_be16(const unsigned char* p) { return ((unsigned)p[0] << 8) | p[1]; }

XNAT_STEER_INLINE int xnat_steer(const unsigned char* data, const unsigned char* end) {
  const unsigned char* p = data;
  if (p + 14 > end) return XNAT_STEER_GATEWAY; /* runt: the gateway counts it */
  unsigned ethertype = xnat_be16(p + 12);
  p += 14;
  if (ethertype == 0x8100) {
    if (p + 4 > end) return XNAT_STEER_GATEWAY;
    ethertype = xnat_be16(p + 2);
    p += 4;
  }
  if (ethertype != 0x0800) return XNAT_STEER_KERNEL;
  if (p + 20 > end) return XNAT_STEER_GATEWAY;
  const unsigned ihl = (unsigned)(p[0] & 0x0f) * 4;
  if ((p[0] >> 4) != 4 || ihl < 20) return XNAT_STEER_GATEWAY; /* malformed: counted drop */
  const unsigned dst0 = p[16];
  if (dst0 >= 224) return XNAT_STEER_KERNEL; /* multicast, broadcast */
  unsigned int dst;
  __builtin_memcpy(&dst, p + 16, 4);
  if (!XNAT_STEER_IS_LOCAL(dst)) return XNAT_STEER_GATEWAY; /* transit: always ours */
  const unsigned frag = xnat_be16(p + 6) & 0x3fff; /* more fragments, offset */
  if (frag & 0x1fff) return XNAT_STEER_FRAG_SEEN(p) ? XNAT_STEER_GATEWAY : XNAT_STEER_KERNEL;
  const unsigned proto = p[9];
  if (ihl > 60) return XNAT_STEER_GATEWAY;
  const unsigned char* l4 = p + ihl;
  unsigned claim_proto = proto, port;
  if (proto == 6 || proto == 17) {
    if (l4 + 4 > end) return XNAT_STEER_GATEWAY;
    port = xnat_be16(l4 + 2);
  } else if (proto == 1) {
    if (l4 + 8 > end) return XNAT_STEER_GATEWAY;
    const unsigned type = l4[0];
    if (type == 0 || type == 14 || type == 16) { /* echo, timestamp, info reply */
      port = xnat_be16(l4 + 4);
    } else if (type == 3 || type == 4 || type == 5 || type == 11 || type == 12) {
      /* An error about a datagram we sent: its source port is our mapping. */
      const unsigned char* in = l4 + 8;
      if (in + 20 > end) return XNAT_STEER_KERNEL;
      const unsigned in_ihl = (unsigned)(in[0] & 0x0f) * 4;
      if (in_ihl < 20 || in_ihl > 60) return XNAT_STEER_KERNEL;
      claim_proto = in[9];
      const unsigned char* in4 = in + in_ihl;
      if (in4 + 8 > end) return XNAT_STEER_KERNEL;
      if (claim_proto == 6 || claim_proto == 17) port = xnat_be16(in4);
      else if (claim_proto == 1) port = xnat_be16(in4 + 4);
      else return XNAT_STEER_KERNEL;
    } else {
      port = xnat_be16(l4 + 4); /* echo request and the rest: claimed only by DNAT */
    }
  } else {
    return XNAT_STEER_KERNEL;
  }
  const int idx = xnat_claim_index(claim_proto, port);
  if (idx < 0 || !XNAT_STEER_CLAIMED(idx)) return XNAT_STEER_KERNEL;
  if (frag) XNAT_STEER_FRAG_NOTE(p);
  return XNAT_STEER_GATEWAY;
}

#endif /* XNAT_STEER_IS_LOCAL */
#endif /* XNAT_LIVE_STEER_H_ */
