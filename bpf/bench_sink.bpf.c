// bench/e2e's receiver: drops IPv4 UDP at XDP (counted by the veth), passes
// everything else (ARP) to the kernel.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int sink(struct xdp_md* ctx) {
  const unsigned char* d = (const unsigned char*)(long)ctx->data;
  const unsigned char* end = (const unsigned char*)(long)ctx->data_end;
  if (d + 34 > end) return XDP_PASS;
  if (d[12] == 0x08 && d[13] == 0x00 && d[23] == 17) return XDP_DROP;
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
