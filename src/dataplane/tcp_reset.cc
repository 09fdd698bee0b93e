#include "dataplane/tcp_reset.h"

#include <cstring>

#include "dataplane/icmp_error.h"
#include "packet/checksum.h"

namespace xnat {

uint32_t build_tcp_reset(uint8_t* frame, const ParsedPacket& p, const MacAddr& src_mac) {
  uint8_t* at = frame + p.l3;
  const auto* oip = reinterpret_cast<const Ipv4Hdr*>(at);
  const auto* oth = reinterpret_cast<const TcpHdr*>(frame + p.l4);
  const uint32_t saddr = oip->daddr.raw, daddr = oip->saddr.raw;
  const Be16 sport = oth->dport, dport = oth->sport;
  const bool ack = p.tcp_flags & kTcpAck;
  const uint32_t seq = oth->ack_seq.host();
  // What the segment occupied of the sequence space: payload, SYN, FIN.
  const uint32_t ack_seq = p.tcp.end;

  // DF set, as nf_reject_iphdr_put does.
  put_ipv4_header(reinterpret_cast<Ipv4Hdr*>(at), sizeof(Ipv4Hdr) + sizeof(TcpHdr), 0, 0x4000, kProtoTcp, saddr, daddr);

  auto* th = reinterpret_cast<TcpHdr*>(at + sizeof(Ipv4Hdr));
  std::memset(th, 0, sizeof(TcpHdr));
  th->sport = sport;
  th->dport = dport;
  th->doff_res = 5 << 4;
  if (ack) {
    th->seq.set(seq);
    th->flags = kTcpRst;
  } else {
    th->ack_seq.set(ack_seq);
    th->flags = kTcpRst | kTcpAck;
  }
  th->check = csum_finish(csum_partial(th, sizeof(TcpHdr), pseudo_sum(saddr, daddr, kProtoTcp, sizeof(TcpHdr))));

  auto* eth = reinterpret_cast<EthHdr*>(frame);
  eth->dst = eth->src;
  eth->src = src_mac;
  return p.l3 + sizeof(Ipv4Hdr) + sizeof(TcpHdr);
}

}  // namespace xnat
