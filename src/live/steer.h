/* Which frames the gateway takes from the kernel: one decision, for the XDP and the tc program.
 *
 * The XDP program (bpf/xnat_steer.bpf.c) and the tc program used with the
 * AF_PACKET backend include this file; the C++ side takes its layouts (keys,
 * claims, the fast path's entries) and header parsing. Plain C, bounds
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
/* A VLAN-tagged frame is its VLAN's, as on a Linux router: the kernel hands
 * it to the VLAN's device or drops it. The kernel's, counted apart. */
#define XNAT_STEER_VLAN 2

/* skb->mark of a frame the tc ingress program took for the gateway
 * (AF_PACKET): its socket's filter lets only these through ("xnat"). */
#define XNAT_TAKEN_MARK 0x786e6174u

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

XNAT_STEER_INLINE unsigned xnat_be16(const unsigned char* p) { return ((unsigned)p[0] << 8) | p[1]; }

/* The host's own packets leaving through a gateway interface.
 *
 * A connection the gateway translated for the host's stack (REDIRECT, or DNAT
 * to one of the host's addresses) is answered by the host; those answers must
 * come back through the gateway to be translated back. The egress program
 * keys each IPv4 frame the host sends by the connection it belongs to and
 * looks the key up in the gateway's host_replies map:
 *   - a TCP, UDP or ICMP query/reply frame by its own tuple;
 *   - an ICMP error by the inverse of the datagram it quotes, the connection
 *     the error is about.
 * The key is a connection tuple exactly as src/conntrack/tuple.h lays it out
 * (16 bytes, fields in network order; ICMP: identifier, then {type, code}),
 * so the map's key is the flow's reply tuple.
 * Returns 1 with *k set; 0 for frames no such connection can have: not IPv4,
 * later fragments (they carry no ports: the egress program sends them where
 * their first fragment went, as steering does on ingress), other protocols,
 * truncated headers.
 */
struct xnat_tuple_key {
  unsigned int src, dst;       /* network order */
  unsigned short sport, dport; /* network order; ICMP: identifier, {type, code} */
  unsigned char proto, pad[3];
};

/* icmp_invert_type of src/packet/headers.h: a query's reply type and back. */
XNAT_STEER_INLINE unsigned xnat_icmp_invert_type(unsigned t) {
  switch (t) {
    case 8: return 0;
    case 0: return 8;
    case 13: return 14;
    case 14: return 13;
    case 15: return 16;
    case 16: return 15;
    case 17: return 18;
    case 18: return 17;
    default: return 0xff;
  }
}

/* Reads the tuple of the IPv4 datagram at p: TCP and UDP with their ports,
 * ICMP with its identifier and {type, code}. 0 if it cannot. Only the first 8
 * bytes of the payload need be there, as in the datagram an ICMP error quotes. */
XNAT_STEER_INLINE int xnat_tuple_at(const unsigned char* p, const unsigned char* end, struct xnat_tuple_key* k) {
  if (p + 20 > end) return 0;
  const unsigned ihl = (unsigned)(p[0] & 0x0f) * 4;
  if ((p[0] >> 4) != 4 || ihl < 20 || ihl > 60) return 0;
  if (xnat_be16(p + 6) & 0x1fff) return 0; /* a later fragment */
  const unsigned char* l4 = p + ihl;
  if (l4 + 8 > end) return 0;
  k->proto = p[9];
  k->pad[0] = k->pad[1] = k->pad[2] = 0;
  __builtin_memcpy(&k->src, p + 12, 4);
  __builtin_memcpy(&k->dst, p + 16, 4);
  if (k->proto == 6 || k->proto == 17) {
    __builtin_memcpy(&k->sport, l4, 2);
    __builtin_memcpy(&k->dport, l4 + 2, 2);
    return 1;
  }
  if (k->proto == 1) {
    __builtin_memcpy(&k->sport, l4 + 4, 2); /* identifier */
    __builtin_memcpy(&k->dport, l4, 2);     /* type, code */
    return 1;
  }
  return 0;
}

/* The IPv4 header of an Ethernet frame (after one VLAN tag), with its 20
 * fixed bytes inside the frame; null for anything else. */
XNAT_STEER_INLINE const unsigned char* xnat_ipv4_header(const unsigned char* data, const unsigned char* end) {
  const unsigned char* p = data;
  if (p + 14 > end) return 0;
  unsigned ethertype = xnat_be16(p + 12);
  p += 14;
  if (ethertype == 0x8100) {
    if (p + 4 > end) return 0;
    ethertype = xnat_be16(p + 2);
    p += 4;
  }
  if (ethertype != 0x0800 || p + 20 > end) return 0;
  return p;
}

/* p: the frame's IPv4 header (xnat_ipv4_header). */
XNAT_STEER_INLINE int xnat_host_reply_key(const unsigned char* p, const unsigned char* end, struct xnat_tuple_key* k) {
  if (!xnat_tuple_at(p, end, k)) return 0;
  if (k->proto != 1) return 1;
  const unsigned type = ((const unsigned char*)&k->dport)[0];
  if (type != 3 && type != 4 && type != 5 && type != 11 && type != 12) return 1;
  /* An error: key it by the connection of the datagram it quotes. */
  struct xnat_tuple_key in;
  if (!xnat_tuple_at(p + (unsigned)(p[0] & 0x0f) * 4 + 8, end, &in)) return 0;
  k->src = in.dst;
  k->dst = in.src;
  k->proto = in.proto;
  if (in.proto == 1) {
    const unsigned char* tc = (const unsigned char*)&in.dport;
    unsigned char* out = (unsigned char*)&k->dport;
    k->sport = in.sport;
    out[0] = (unsigned char)xnat_icmp_invert_type(tc[0]);
    out[1] = tc[1];
  } else {
    k->sport = in.dport;
    k->dport = in.sport;
  }
  return 1;
}

/* The fast path (tc ingress; AF_XDP: XDP passes its segments on): one direction of a TCP
 * connection the gateway offloaded (conntrack/flow_offload.h), keyed by the
 * tuple its packets arrive with (struct xnat_tuple_key). A segment without
 * SYN, FIN or RST, TTL over 1, within the output's MTU, leaves rewritten to
 * the addresses and ports here on interface `ifindex`, from src_mac to
 * dst_mac, its TTL decremented; it stamps fast_seen[slot] with the time.
 *
 * A direction opens only once the gateway has sent the segments it still
 * had: until then (open 0) its segments go on to the gateway, each one's
 * tag (xnat_fast_tag) noted in `passed`, and the gateway writes the tag of
 * each it sends into fast_sent[slot * 2 + dir]. When the next segment finds
 * the two equal, none is left behind to be overtaken, and the direction
 * opens; it opens anyway at until_ns (CLOCK_MONOTONIC), so a gateway falling
 * behind does not keep the connection from the fast path. */
struct xnat_fast_entry {
  unsigned int saddr, daddr;   /* network order, as the packet leaves */
  unsigned short sport, dport; /* network order */
  unsigned int ifindex;
  unsigned char dst_mac[6], src_mac[6];
  unsigned short mtu;
  unsigned short dir; /* 0: the original direction, 1: the reply */
  unsigned int slot;
  unsigned int open;
  unsigned int passed;
  unsigned int pad;
  unsigned long long until_ns;
};
#define XNAT_FAST_SLOTS 262144u /* offloaded connections at once */
/* How long a direction waits for the gateway to send what it had. */
#define XNAT_FAST_HANDOVER_NS 20000000ull

/* What tells a segment from the others of its direction: sequence and
 * acknowledgement numbers, IPv4 identification and length. Never 0 (no
 * segment passed yet). `ip`: an IPv4 header of 20 bytes and the first 12 of
 * a TCP header, bounds checked by the caller. */
XNAT_STEER_INLINE unsigned int xnat_fast_tag(const unsigned char* ip) {
  unsigned int seq, ack, id_len;
  __builtin_memcpy(&seq, ip + 24, 4);
  __builtin_memcpy(&ack, ip + 28, 4);
  __builtin_memcpy(&id_len, ip + 2, 4);
  const unsigned int t = seq ^ (ack * 2654435761u) ^ id_len;
  return t ? t : 1;
}

/* Whether a direction still held back opens: the gateway sent the last
 * segment passed to it (`sent` its tag), or the wait ran out. */
XNAT_STEER_INLINE int xnat_fast_may_open(unsigned int passed, unsigned long long sent, unsigned long long now_ns,
                                         unsigned long long until_ns) {
  return (passed != 0 && sent == passed) || now_ns >= until_ns;
}

/* fast_seen[slot] of a connection the gateway took back: its entries stay a
 * moment longer (live/fast_path.h), for the segments XDP passed on before. */
#define XNAT_FAST_DRAINING (~0ull)

#ifdef XNAT_STEER_IS_LOCAL

XNAT_STEER_INLINE int xnat_steer(const unsigned char* data, const unsigned char* end) {
  const unsigned char* p = data;
  if (p + 14 > end) return XNAT_STEER_GATEWAY; /* runt: the gateway counts it */
  const unsigned ethertype = xnat_be16(p + 12);
  p += 14;
  if (ethertype == 0x8100 || ethertype == 0x88a8) return XNAT_STEER_VLAN;
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
