// The gateway's kernel-side programs: XDP (AF_XDP backend) and tc ingress
// (AF_PACKET backend), which decide with src/live/steer.h which frames the
// gateway takes, the rest going on to the kernel untouched; and tc egress,
// which takes the host's answers on connections the gateway translated for it
// (REDIRECT) to the gateway's host port.
//
// Maps (filled by the gateway, see src/live/bpf_steer.cc):
//   xsks         (interface, rx queue) -> AF_XDP socket (XDP only)
//   local_addrs  the host's IPv4 addresses
//   claims       per (protocol, port) on those addresses: how many NAT
//                mappings and DNAT rules use it; memory-mapped, so the
//                gateway updates it without a system call
//   frags        fragmented datagrams to a host address the gateway takes
//   host_replies reply tuples of the connections translated for the host
//   host_port    [0]: ifindex of the gateway's host port (a tun device)
//   steer_stats  per CPU: [0] frames to the gateway, [1] frames to the kernel,
//                [2] frames the gateway should have had but no socket was ready,
//                [3] host frames taken to the host port, [4] frames and [5]
//                bytes the fast path forwarded, [6] frames tc dropped (a
//                rewrite failed half-way; AF_XDP: a frame XDP passed on for
//                the fast path that it could not take; AF_PACKET: the
//                gateway's frame whose type could not be changed), [7]
//                VLAN-tagged frames left to the kernel, [8] directions of
//                offloaded connections opened once the gateway had sent what
//                it had of them, [9] opened when the wait for that ran out
//   fastpath     tuple -> struct xnat_fast_entry: offloaded connections (steer.h)
//   fast_seen    per offloaded connection: when the fast path last carried a
//                packet of it (ns, CLOCK_MONOTONIC); memory-mapped
//   fast_sent    per direction of an offloaded connection: the tag of the last
//                segment of it the gateway sent (steer.h); memory-mapped
#include <linux/bpf.h>
#include <linux/if_packet.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

// The decision (live/steer.h), on the lookups defined below.
static __always_inline int is_local(__u32 addr);
static __always_inline int claimed(int idx);
static __always_inline void frag_note(const unsigned char* ip);
static __always_inline int frag_seen(const unsigned char* ip);
#define XNAT_STEER_IS_LOCAL(addr) is_local(addr)
#define XNAT_STEER_CLAIMED(idx) claimed(idx)
#define XNAT_STEER_FRAG_NOTE(ip) frag_note(ip)
#define XNAT_STEER_FRAG_SEEN(ip) frag_seen(ip)
#define XNAT_STEER_INLINE static __always_inline
#include "live/steer.h"

// The interface's place among the gateway's (0-63), set in each interface's
// own copy of the XDP program (live/bpf_steer.cc): the first part of its
// sockets' key in xsks. Not the ifindex: that grows past 64 as devices come
// and go, and two whose low bits are equal would share the sockets' keys.
const volatile __u32 xsk_slot = 0;

struct {
  __uint(type, BPF_MAP_TYPE_XSKMAP);
  __uint(max_entries, 4096);  // key: xsk_slot * 64 + rx queue (< 64)
  __type(key, __u32);
  __type(value, __u32);
} xsks SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);  // kMaxHostAddresses (live/worker.h)
  __type(key, __u32);
  __type(value, __u32);
} local_addrs SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 3 * 65536);
  __uint(map_flags, BPF_F_MMAPABLE);
  __type(key, __u32);
  __type(value, __u64);  // array elements are 8-byte aligned when mapped anyway
} claims SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 10);
  __type(key, __u32);
  __type(value, __u64);
} steer_stats SEC(".maps");

// Fragmented datagrams to a host address whose first fragment the gateway
// took (steer.h).
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 4096);
  __type(key, struct xnat_frag_key);
  __type(value, __u8);
} frags SEC(".maps");

// Written by the gateway when it creates or removes such a connection.
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 262144);
  __type(key, struct xnat_tuple_key);
  __type(value, __u8);
} host_replies SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} host_port SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 2 * XNAT_FAST_SLOTS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct xnat_tuple_key);
  __type(value, struct xnat_fast_entry);
} fastpath SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, XNAT_FAST_SLOTS);
  __uint(map_flags, BPF_F_MMAPABLE);
  __type(key, __u32);
  __type(value, __u64);
} fast_seen SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2 * XNAT_FAST_SLOTS);
  __uint(map_flags, BPF_F_MMAPABLE);
  __type(key, __u32);
  __type(value, __u64);
} fast_sent SEC(".maps");

static __always_inline void frag_note(const unsigned char* ip) {
  struct xnat_frag_key k = xnat_frag_key_of(ip);
  __u8 one = 1;
  bpf_map_update_elem(&frags, &k, &one, BPF_ANY);
}

static __always_inline int frag_seen(const unsigned char* ip) {
  struct xnat_frag_key k = xnat_frag_key_of(ip);
  return bpf_map_lookup_elem(&frags, &k) != 0;
}

static __always_inline int is_local(__u32 addr) {
  return bpf_map_lookup_elem(&local_addrs, &addr) != 0;
}

static __always_inline int claimed(int idx) {
  __u32 k = (__u32)idx;
  __u64* v = bpf_map_lookup_elem(&claims, &k);
  return v && *v;
}

static __always_inline void add(__u32 what, __u64 n) {
  __u64* c = bpf_map_lookup_elem(&steer_stats, &what);
  if (c) *c += n;
}

static __always_inline void count(__u32 what) { add(what, 1); }

// The steering decision for a frame, counted in steer_stats[0], [1] or [7]:
// XNAT_STEER_GATEWAY or XNAT_STEER_KERNEL.
static __always_inline int steer_counted(long data, long data_end) {
  const int to = xnat_steer((const unsigned char*)data, (const unsigned char*)data_end);
  count(to == XNAT_STEER_GATEWAY ? 0 : to == XNAT_STEER_VLAN ? 7 : 1);
  return to == XNAT_STEER_GATEWAY ? XNAT_STEER_GATEWAY : XNAT_STEER_KERNEL;
}

// A plain IPv4 TCP segment of an offloaded connection (no IP options or
// fragments, TTL over 1, no SYN, FIN or RST): its entry, with *k its tuple,
// *doff its TCP header's length, *ttl_proto the IPv4 header's TTL and
// protocol word and *tag the segment's (xnat_fast_tag). Null for anything else.
static __always_inline struct xnat_fast_entry* fast_lookup(long d, long e, struct xnat_tuple_key* k, __u32* doff,
                                                           __u16* ttl_proto, __u32* tag) {
  const unsigned char* data = (const unsigned char*)d;
  const unsigned char* end = (const unsigned char*)e;
  if (data + 14 + 20 + 20 > end) return 0;
  const unsigned char* ip = data + 14;
  const unsigned char* tcp = ip + 20;
  if (data[12] != 0x08 || data[13] != 0x00 || ip[0] != 0x45 || ip[9] != 6) return 0;
  if ((xnat_be16(ip + 6) & 0x3fff) || ip[8] <= 1) return 0;
  if (tcp[13] & 0x07) return 0; /* FIN, SYN, RST */
  __builtin_memset(k, 0, sizeof *k);
  __builtin_memcpy(&k->src, ip + 12, 4);
  __builtin_memcpy(&k->dst, ip + 16, 4);
  __builtin_memcpy(&k->sport, tcp, 2);
  __builtin_memcpy(&k->dport, tcp + 2, 2);
  k->proto = 6;
  *doff = (__u32)(tcp[12] >> 4) * 4;
  __builtin_memcpy(ttl_proto, ip + 8, 2);
  *tag = xnat_fast_tag(ip);
  return bpf_map_lookup_elem(&fastpath, k);
}

// A connection's seen time, or null; XNAT_FAST_DRAINING once taken back.
static __always_inline __u64* fast_seen_of(const struct xnat_fast_entry* e) {
  const __u32 slot = e->slot;
  return bpf_map_lookup_elem(&fast_seen, &slot);
}

// Whether a direction of an offloaded connection is open (steer.h): the
// first segment to find the gateway done with what it had opens it. One not
// yet open passes this segment (`tag`) on to the gateway.
static __always_inline int fast_open(struct xnat_fast_entry* e, __u32 tag) {
  if (e->open) return 1;
  const __u32 key = e->slot * 2 + (e->dir & 1);
  const __u64* sent = bpf_map_lookup_elem(&fast_sent, &key);
  if (!sent) return 1;
  const __u32 passed = e->passed;
  const __u64 done = *sent;
  if (!xnat_fast_may_open(passed, done, bpf_ktime_get_ns(), e->until_ns)) {
    e->passed = tag;
    return 0;
  }
  // Counted once, by the CPU that opens it.
  if (__sync_val_compare_and_swap(&e->open, 0, 1) == 0) count(passed && done == passed ? 8 : 9);
  return 1;
}

// The fast path: a segment of an offloaded connection leaves at once,
// translated, as netfilter's flowtable forwards (nf_flow_offload_ip_hook).
// Returns the redirect, or -1 for the gateway's slow path: anything not a
// plain IPv4 TCP segment of such a connection, SYN/FIN/RST (the engine
// tracks the connection's end), TTL 1 (the engine sends the ICMP error), too
// big for the output (the same). The checksum helpers keep a partial
// checksum partial and a super-frame whole (GSO cuts it at the output).
// from_xdp: what the XDP program passed on (AF_XDP), which it found open,
// or being taken back and still to be forwarded; otherwise (AF_PACKET) a
// segment goes to the gateway while its direction is not open or the
// connection is being taken back.
static __always_inline long fast_path(struct __sk_buff* skb, int from_xdp) {
  if (skb->vlan_present) return -1;
  struct xnat_tuple_key k;
  __u32 doff, tag;
  __u16 ttl_proto;
  struct xnat_fast_entry* e = fast_lookup(skb->data, skb->data_end, &k, &doff, &ttl_proto, &tag);
  if (!e) return -1;
  __u64* seen = fast_seen_of(e);
  if (!seen) return -1;
  const __u64 was = *seen;
  if (!from_xdp && (was == XNAT_FAST_DRAINING || !fast_open(e, tag))) return -1;
  if (skb->gso_size ? skb->gso_size + 20 + doff > e->mtu : skb->len - 14 > e->mtu) return -1;
  __u16 new_ttl_proto = ttl_proto;
  ((unsigned char*)&new_ttl_proto)[0] -= 1;
  const __u32 len = skb->len;
  // Offsets in the frame: IPv4 checksum 24, addresses 26 and 30, TTL 22;
  // TCP checksum 50, ports 34 and 36. The helpers invalidate the packet
  // pointers: everything read above is in k and e.
  long err = 0;
  if (k.src != e->saddr) {
    err |= bpf_l4_csum_replace(skb, 50, k.src, e->saddr, BPF_F_PSEUDO_HDR | 4);
    err |= bpf_l3_csum_replace(skb, 24, k.src, e->saddr, 4);
    err |= bpf_skb_store_bytes(skb, 26, &e->saddr, 4, 0);
  }
  if (k.dst != e->daddr) {
    err |= bpf_l4_csum_replace(skb, 50, k.dst, e->daddr, BPF_F_PSEUDO_HDR | 4);
    err |= bpf_l3_csum_replace(skb, 24, k.dst, e->daddr, 4);
    err |= bpf_skb_store_bytes(skb, 30, &e->daddr, 4, 0);
  }
  if (k.sport != e->sport) {
    err |= bpf_l4_csum_replace(skb, 50, k.sport, e->sport, 2);
    err |= bpf_skb_store_bytes(skb, 34, &e->sport, 2, 0);
  }
  if (k.dport != e->dport) {
    err |= bpf_l4_csum_replace(skb, 50, k.dport, e->dport, 2);
    err |= bpf_skb_store_bytes(skb, 36, &e->dport, 2, 0);
  }
  err |= bpf_l3_csum_replace(skb, 24, ttl_proto, new_ttl_proto, 2);
  err |= bpf_skb_store_bytes(skb, 22, &new_ttl_proto, 2, 0);
  err |= bpf_skb_store_bytes(skb, 0, e->dst_mac, 12, 0);
  if (err) {
    // Half rewritten (no memory to make the frame writable): it cannot go
    // back to the gateway as it came. Counted, as every drop is.
    count(6);
    return TC_ACT_SHOT;
  }
  // A millisecond is fine enough for timeouts, and fewer writes keep the
  // line from bouncing between CPUs carrying the same connection. Never
  // over the gateway's XNAT_FAST_DRAINING, written meanwhile.
  const __u64 now = bpf_ktime_get_ns();
  if (was != XNAT_FAST_DRAINING && now - was > 1000000) (void)__sync_val_compare_and_swap(seen, was, now);
  add(4, 1);
  add(5, len);
  return bpf_redirect(e->ifindex, 0);
}

// A VLAN-tagged frame is the kernel's (XNAT_STEER_VLAN). A tag in the frame
// the decision sees; one the device took out before XDP (veth's and most
// NICs' rx-vlan-offload) only bpf_xdp_metadata_rx_vlan_tag, in xnat_xdp_bound.
static __always_inline int xnat_xdp_steer(struct xdp_md* ctx, int tag_taken_out) {
  if (tag_taken_out) {
    count(7);
    return XDP_PASS;
  }
  // An offloaded connection's segment goes on to the kernel, where tc
  // ingress (xnat_tc_xdp) forwards it; an skb is made of it on the way.
  struct xnat_tuple_key k;
  __u32 doff, tag;
  __u16 ttl_proto;
  struct xnat_fast_entry* e = fast_lookup(ctx->data, ctx->data_end, &k, &doff, &ttl_proto, &tag);
  if (e) {
    const __u64* seen = fast_seen_of(e);
    if (seen && *seen != XNAT_FAST_DRAINING && fast_open(e, tag)) return XDP_PASS;
  }
  if (steer_counted(ctx->data, ctx->data_end) == XNAT_STEER_KERNEL) return XDP_PASS;
  // No socket on this queue yet (starting, or a queue the gateway does not
  // poll): XDP_DROP as the fallback keeps the kernel from answering for
  // connections it does not own; counted in steer_stats[2].
  const __u32 key = ((xsk_slot & 63) << 6) | (ctx->rx_queue_index & 63);
  int r = bpf_redirect_map(&xsks, key, XDP_DROP);
  if (r != XDP_REDIRECT) count(2);
  return r;
}

// Where it cannot be bound to its interface (generic XDP, a kernel before
// 6.8): tags taken out of the frame go unseen.
SEC("xdp.frags")
int xnat_xdp(struct xdp_md* ctx) { return xnat_xdp_steer(ctx, 0); }

// The tag the device took out: 0 and the tag, -ENODATA for an untagged
// frame (Linux 6.8). Only a program bound to one device may ask, so the
// gateway loads this one for each interface (live/bpf_steer.cc).
extern int bpf_xdp_metadata_rx_vlan_tag(const struct xdp_md* ctx, __u16* vlan_proto, __u16* vlan_tci) __ksym __weak;

SEC("xdp.frags")
int xnat_xdp_bound(struct xdp_md* ctx) {
  __u16 proto, tci;
  return xnat_xdp_steer(ctx, bpf_xdp_metadata_rx_vlan_tag(ctx, &proto, &tci) == 0);
}

// tc ingress beside the XDP program (AF_XDP with --fast-path): the fast
// path for what XDP passed on for it. XDP passes on only the kernel's frames
// and these, and a connection the gateway takes back keeps its entries a
// moment for those still on their way here (XNAT_FAST_DRAINING). One the
// fast path cannot take after all must not reach the kernel's IP stack,
// which would answer for a connection it does not have: dropped and counted.
SEC("tc")
int xnat_tc_xdp(struct __sk_buff* skb) {
  if (skb->vlan_present) return TC_ACT_OK;  // XDP left it to the kernel, counted
  const long fast = fast_path(skb, 1);
  if (fast >= 0) return (int)fast;
  if (xnat_steer((const unsigned char*)(long)skb->data, (const unsigned char*)(long)skb->data_end) ==
      XNAT_STEER_GATEWAY) {
    count(6);
    return TC_ACT_SHOT;
  }
  return TC_ACT_OK;
}

// AF_PACKET's socket is bound to IPv4 (ETH_P_IP), so it sees a frame after
// this program and only if the program lets it on: the fast path's frames
// never reach it. What the gateway takes goes on marked for another host
// (PACKET_OTHERHOST), which the socket receives and the kernel's IP stack
// drops (ip_rcv), so the kernel never answers for the gateway's connections,
// and with XNAT_TAKEN_MARK, the only frames the socket's filter accepts.
//
// A VLAN-tagged frame is its VLAN's, as on a Linux router: the kernel hands
// it to the VLAN's device (a gateway may run on that one) or, with none,
// drops it. The socket cannot tell it from an untagged frame (the kernel
// clears the tag before, and marks one without a device for another host
// too), so it is left to the kernel and counted in steer_stats[7].
SEC("tc")
int xnat_tc(struct __sk_buff* skb) {
  const long fast = fast_path(skb, 0);
  if (fast >= 0) return (int)fast;
  if (skb->vlan_present) {
    count(7);
    return TC_ACT_OK;
  }
  if (steer_counted(skb->data, skb->data_end) == XNAT_STEER_KERNEL) return TC_ACT_OK;
  if (bpf_skb_change_type(skb, PACKET_OTHERHOST)) {
    count(6);
    return TC_ACT_SHOT;
  }
  skb->mark = XNAT_TAKEN_MARK;
  return TC_ACT_OK;
}

// tc egress, attached (as a tcx link) only when the gateway has a host port:
// a frame the host sends on a connection in host_replies goes to the host
// port, where the gateway reads it and translates it back; the rest leaves
// as it would have.
SEC("tc")
int xnat_tc_egress(struct __sk_buff* skb) {
  // The key reads the IPv4 header and 8 bytes after it; an ICMP error's,
  // the datagram it quotes too (VLAN, two IPv4 headers, an ICMP header, 8
  // bytes). A frame whose payload lies outside the linear part (a TCP
  // sender's, a super-frame) is pulled only as far as its own key needs:
  // pulling reallocates the head, a copy and a free for every frame leaving,
  // forwarded ones too.
  const unsigned char* data = (const unsigned char*)(long)skb->data;
  const unsigned char* end = (const unsigned char*)(long)skb->data_end;
  if (data + 14 + 4 + 20 > end && skb->len >= 14 + 4 + 20) {
    (void)bpf_skb_pull_data(skb, 14 + 4 + 20);  // not even the IPv4 header linear: rare
    data = (const unsigned char*)(long)skb->data;
    end = (const unsigned char*)(long)skb->data_end;
  }
  const unsigned char* ip = xnat_ipv4_header(data, end);
  if (!ip) return TC_ACT_OK;
  {
    const __u32 ihl = (__u32)(ip[0] & 0x0f) * 4;
    __u32 want = (__u32)(ip - data) + ihl + 8;
    if (ip[9] == 1) want += 60 + 8;  // ICMP: perhaps an error, with its quote
    const __u32 linear = (__u32)((long)end - (long)data);
    if (want > skb->len) want = skb->len;
    if (want > linear) {
      if (bpf_skb_pull_data(skb, want)) return TC_ACT_OK;
      data = (const unsigned char*)(long)skb->data;
      end = (const unsigned char*)(long)skb->data_end;
      ip = xnat_ipv4_header(data, end);
      if (!ip) return TC_ACT_OK;
    }
  }
  const unsigned frag = xnat_be16(ip + 6) & 0x3fff; /* more fragments, offset */
  if (frag & 0x1fff) {
    // A later fragment follows its first (noted below); it has no ports.
    if (!frag_seen(ip)) return TC_ACT_OK;
  } else {
    struct xnat_tuple_key k;
    if (!xnat_host_reply_key(ip, end, &k) || !bpf_map_lookup_elem(&host_replies, &k)) return TC_ACT_OK;
    if (frag) frag_note(ip);
  }
  const __u32 zero = 0;
  const __u32* ifindex = bpf_map_lookup_elem(&host_port, &zero);
  if (!ifindex || !*ifindex) return TC_ACT_OK;
  count(3);
  return bpf_redirect(*ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
