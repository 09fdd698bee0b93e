// The gateway's kernel-side programs: XDP (AF_XDP backend) and tc ingress
// (AF_PACKET backend), which decide with src/live/steer.h which frames the
// gateway takes, the rest going on to the kernel untouched; and tc egress,
// which takes the host's answers on connections the gateway translated for it
// (REDIRECT) to the gateway's host port.
//
// Maps (filled by the gateway, see src/live/bpf_steer.cc):
//   xsks         (interface, rx queue) -> AF_XDP socket (XDP only)
//   local_addrs  the host's IPv4 addresses on the gateway's interfaces
//   claims       per (protocol, port) on those addresses: how many NAT
//                mappings and DNAT rules use it; memory-mapped, so the
//                gateway updates it without a system call
//   frags        fragmented datagrams to a host address the gateway takes
//   host_replies reply tuples of the connections translated for the host
//   host_port    [0]: ifindex of the gateway's host port (a tun device)
//   steer_stats  per CPU: [0] frames to the gateway, [1] frames to the kernel,
//                [2] frames the gateway should have had but no socket was ready,
//                [3] host frames taken to the host port
#include <linux/bpf.h>
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

struct {
  __uint(type, BPF_MAP_TYPE_XSKMAP);
  __uint(max_entries, 4096);  // key: (ifindex % 64) * 64 + rx queue (< 64)
  __type(key, __u32);
  __type(value, __u32);
} xsks SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 256);
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
  __uint(max_entries, 4);
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

static __always_inline void count(__u32 what) {
  __u64* c = bpf_map_lookup_elem(&steer_stats, &what);
  if (c) *c += 1;
}

// The steering decision for a frame, counted in steer_stats[0] or [1].
static __always_inline int steer_counted(long data, long data_end) {
  const int to = xnat_steer((const unsigned char*)data, (const unsigned char*)data_end);
  count(to == XNAT_STEER_KERNEL ? 1 : 0);
  return to;
}

SEC("xdp")
int xnat_xdp(struct xdp_md* ctx) {
  if (steer_counted(ctx->data, ctx->data_end) == XNAT_STEER_KERNEL) return XDP_PASS;
  // No socket on this queue yet (starting, or a queue the gateway does not
  // poll): XDP_DROP as the fallback keeps the kernel from answering for
  // connections it does not own; counted in steer_stats[2].
  const __u32 key = ((ctx->ingress_ifindex & 63) << 6) | (ctx->rx_queue_index & 63);
  int r = bpf_redirect_map(&xsks, key, XDP_DROP);
  if (r != XDP_REDIRECT) count(2);
  return r;
}

// tc ingress runs after AF_PACKET's taps: the gateway has its copy already,
// so what it takes is dropped here, before the kernel's IP stack.
SEC("tc")
int xnat_tc(struct __sk_buff* skb) {
  return steer_counted(skb->data, skb->data_end) == XNAT_STEER_KERNEL ? TC_ACT_OK : TC_ACT_SHOT;
}

// tc egress, attached (as a tcx link) only when the gateway has a host port:
// a frame the host sends on a connection in host_replies goes to the host
// port, where the gateway reads it and translates it back; the rest leaves
// as it would have.
SEC("tc")
int xnat_tc_egress(struct __sk_buff* skb) {
  // Headers the key reads (VLAN, two IPv4 headers, an ICMP header, 8 bytes of
  // the quoted payload) are normally in the linear part already.
  const __u32 want = 14 + 4 + 60 + 8 + 60 + 8;
  if ((long)skb->data + want > (long)skb->data_end) bpf_skb_pull_data(skb, skb->len < want ? skb->len : want);
  const unsigned char* data = (const unsigned char*)(long)skb->data;
  const unsigned char* end = (const unsigned char*)(long)skb->data_end;
  const unsigned char* ip = xnat_ipv4_header(data, end);
  if (!ip) return TC_ACT_OK;
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
