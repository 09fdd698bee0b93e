// tc egress on a test host: tags UDP datagrams from port 5396 for VLAN 43 the
// way a host's VLAN device or a NIC does, in the frame's metadata rather than
// in its bytes (a veth carries the tag so; XDP on the receiving end sees the
// frame untagged). The machine's kernel has no VLAN devices to make them.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int vlan_push(struct __sk_buff* skb) {
  const unsigned char* d = (const unsigned char*)(long)skb->data;
  const unsigned char* end = (const unsigned char*)(long)skb->data_end;
  if (d + 14 + 20 + 4 > end || d[12] != 0x08 || d[13] != 0x00 || d[23] != 17) return TC_ACT_OK;
  const unsigned ihl = (d[14] & 0x0f) * 4u;
  if (ihl != 20) return TC_ACT_OK;
  if (d[14 + 20] != 5396 >> 8 || d[14 + 20 + 1] != (5396 & 0xff)) return TC_ACT_OK;
  bpf_skb_vlan_push(skb, __builtin_bswap16(0x8100), 43);
  return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
