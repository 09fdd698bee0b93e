#include "packet/parse.h"

#include <cstddef>
#include <cstring>

#include "packet/checksum.h"

namespace xnat {
namespace {


// Reads the IPv4 header at `ip` with `avail` bytes present. On success sets
// hlen and tot_len (tot_len may exceed avail only when `allow_truncated`, as
// for the datagram inside an ICMP error, which carries only its first bytes).
ParseStatus check_ipv4(const uint8_t* ip, size_t avail, bool allow_truncated, unsigned* hlen,
                       unsigned* tot_len) {
  if (avail < sizeof(Ipv4Hdr)) return ParseStatus::kTruncated;
  const auto* h = reinterpret_cast<const Ipv4Hdr*>(ip);
  if (h->version() != 4 || h->header_len() < sizeof(Ipv4Hdr)) return ParseStatus::kBadIpHeader;
  *hlen = h->header_len();
  if (*hlen > avail) return ParseStatus::kTruncated;
  *tot_len = h->tot_len.host();
  if (*tot_len < *hlen) return ParseStatus::kBadIpHeader;
  if (*tot_len > avail && !allow_truncated) return ParseStatus::kTruncated;
  return ParseStatus::kOk;
}

// Fills the transport part of `t` from `l4` (`avail` bytes present). Only the
// first 8 bytes are needed for ports and ICMP identifiers.
bool transport_tuple(uint8_t proto, const uint8_t* l4, size_t avail, Tuple* t) {
  switch (proto) {
    case kProtoTcp:
    case kProtoUdp:
      if (avail < 4) return false;
      t->sport = load16(l4);
      t->dport = load16(l4 + 2);
      return true;
    case kProtoIcmp:
      if (avail < 8) return false;
      t->dport = load16(l4);  // {type, code}
      // Only queries carry an identifier (netfilter's icmp_pkt_to_tuple reads it
      // for all types; errors are never looked up by their own tuple).
      t->sport = load16(l4 + 4);
      return true;
    default:
      return true;  // other protocols are tracked by addresses alone
  }
}

// The fields of a TCP header whose length was checked against `l4_len`.
// Options as netfilter's tcp_options and tcp_sack read them: a window scale
// (shift capped at 14) and SACK-permitted of exactly their lengths, the right
// edges of the first SACK option whose length is a whole number of blocks;
// reading stops at the end of the list or at an option that is too short or
// runs past the header.
void parse_tcp_segment(const uint8_t* l4, uint16_t l4_len, bool partial, TcpSegment* s) {
  const auto* th = reinterpret_cast<const TcpHdr*>(l4);
  const unsigned hlen = th->header_len();
  s->seq = th->seq.host();
  s->ack = th->ack_seq.host();
  s->win = th->window.host();
  s->end = s->seq + (l4_len - hlen) + ((th->flags & kTcpSyn) ? 1 : 0) + ((th->flags & kTcpFin) ? 1 : 0);
  s->info = partial ? kTcpSegPartial : 0;
  int length = static_cast<int>(hlen - sizeof(TcpHdr));
  if (length == 0) return;
  s->info |= kTcpSegOptions;
  const uint8_t* ptr = l4 + sizeof(TcpHdr);
  // Most segments carry timestamps only: NOP, NOP, TS.
  if (length == 12 && ptr[0] == 1 && ptr[1] == 1 && ptr[2] == 8 && ptr[3] == 10) return;
  while (length > 0) {
    const uint8_t opcode = *ptr++;
    if (opcode == 0) return;  // end of the list
    if (opcode == 1) {        // NOP
      --length;
      continue;
    }
    if (length < 2) return;
    const int opsize = *ptr++;
    if (opsize < 2 || opsize > length) return;  // silly or partial
    if (opcode == 4 && opsize == 2) {
      s->info |= kTcpSegSackPerm;
    } else if (opcode == 3 && opsize == 3) {
      s->wscale = *ptr > 14 ? 14 : *ptr;
      s->info |= kTcpSegWscale;
    } else if (opcode == 5 && opsize >= 10 && (opsize - 2) % 8 == 0 && !(s->info & kTcpSegSack)) {
      s->sack = reinterpret_cast<const Be32*>(ptr + 4)->host();
      for (int i = 8; i < opsize - 2; i += 8) {
        const uint32_t edge = reinterpret_cast<const Be32*>(ptr + i + 4)->host();
        if (seq_after(edge, s->sack)) s->sack = edge;
      }
      s->info |= kTcpSegSack;
    }
    ptr += opsize - 2;
    length -= opsize;
  }
}

// A TCP/UDP checksum that failed: with L4Csum::kMaybePartial, one holding
// exactly the pseudo-header's sum is a partial one, and its full value is
// the sum of everything but the field. True if the frame may go on: completed,
// or not verified (nf_conntrack_checksum = 0).
[[gnu::noinline]] bool completes_partial(const ParseOptions& opts, const Tuple& t, uint8_t proto, const uint8_t* l4,
                                         size_t len, uint32_t sum, ParsedPacket* out) {
  uint16_t field;
  std::memcpy(&field, l4 + (proto == kProtoTcp ? offsetof(TcpHdr, check) : offsetof(UdpHdr, check)), 2);
  if (opts.l4_csum == L4Csum::kMaybePartial && field == csum_fold(pseudo_sum(t.src, t.dst, proto, len))) {
    uint16_t full = csum_finish(csum_fold64(uint64_t{sum} + static_cast<uint16_t>(~field)));
    if (proto == kProtoUdp && full == 0) full = 0xFFFF;  // RFC 768
    out->l4_csum_completed = true;
    out->l4_csum_full = full;
    return true;
  }
  return !opts.verify_l4_checksum;
}

}  // namespace

ParseStatus parse_frame(const uint8_t* frame, size_t len, const ParseOptions& opts,
                        ParsedPacket* out) {
  *out = ParsedPacket{};
  if (len < sizeof(EthHdr)) return ParseStatus::kTruncated;
  size_t off = sizeof(EthHdr);
  uint16_t type = reinterpret_cast<const EthHdr*>(frame)->type.host();
  if (type == kEtherTypeVlan) {
    if (len < off + sizeof(VlanTag)) return ParseStatus::kTruncated;
    type = reinterpret_cast<const VlanTag*>(frame + off)->type.host();
    off += sizeof(VlanTag);
    out->vlan = true;
  }
  if (type != kEtherTypeIpv4) return ParseStatus::kNotIpv4;

  const uint8_t* ip = frame + off;
  unsigned hlen = 0, tot_len = 0;
  if (auto s = check_ipv4(ip, len - off, false, &hlen, &tot_len); s != ParseStatus::kOk) return s;
  if (csum_fold(ipv4_header_sum(ip, hlen)) != 0xFFFF) return ParseStatus::kBadIpChecksum;
  const auto* iph = reinterpret_cast<const Ipv4Hdr*>(ip);

  out->l3 = static_cast<uint16_t>(off);
  out->l4 = static_cast<uint16_t>(off + hlen);
  out->l4_len = static_cast<uint16_t>(tot_len - hlen);
  out->ip_end = static_cast<uint16_t>(off + tot_len);
  Tuple& t = out->tuple;
  t.src = iph->saddr.raw;
  t.dst = iph->daddr.raw;
  t.proto = iph->proto;
  if (iph->is_fragment()) {
    out->ip_id = iph->id.raw;
    const unsigned offset8 = iph->frag_off.host() & 0x1FFF;
    if (offset8 != 0) {
      // RFC 1858: a fragment at offset 8 could rewrite a TCP header's flags.
      if (iph->proto == kProtoTcp && offset8 * 8 < 16) return ParseStatus::kFragment;
      out->frag = FragKind::kLater;
      return ParseStatus::kOk;
    }
    out->frag = FragKind::kFirst;
  }

  const uint8_t* l4 = frame + out->l4;
  const size_t l4_len = out->l4_len;
  switch (iph->proto) {
    case kProtoTcp: {
      if (l4_len < sizeof(TcpHdr)) return ParseStatus::kTruncated;
      const auto* th = reinterpret_cast<const TcpHdr*>(l4);
      if (th->header_len() < sizeof(TcpHdr) || th->header_len() > l4_len)
        return ParseStatus::kBadL4Header;
      out->tcp_flags = th->flags;
      parse_tcp_segment(l4, static_cast<uint16_t>(l4_len), out->frag == FragKind::kFirst, &out->tcp);
      break;
    }
    case kProtoUdp: {
      if (l4_len < sizeof(UdpHdr)) return ParseStatus::kTruncated;
      const auto* uh = reinterpret_cast<const UdpHdr*>(l4);
      unsigned ulen = uh->len.host();
      // A first fragment holds only the start of the datagram UDP's length covers.
      if (ulen < sizeof(UdpHdr) || (ulen > l4_len && out->frag == FragKind::kNone))
        return ParseStatus::kBadL4Header;
      break;
    }
    case kProtoIcmp:
      if (l4_len < sizeof(IcmpHdr)) return ParseStatus::kTruncated;
      break;
    default:
      break;
  }
  transport_tuple(iph->proto, l4, l4_len, &t);
  if (out->frag == FragKind::kFirst) {
    // The transport header is whole (checked above, RFC 1858); an ICMP error
    // is never worth reassembling.
    if (iph->proto == kProtoIcmp && icmp_is_error(l4[0])) return ParseStatus::kFragment;
    return ParseStatus::kOk;  // no checksum to verify: it covers the whole datagram
  }

  // A partial checksum the backend knows of is trusted, as the kernel trusts
  // CHECKSUM_PARTIAL, and so is one the device verified (CHECKSUM_UNNECESSARY);
  // one it cannot rule out is completed even with verification off, or the
  // receiver would drop the frame.
  if ((opts.verify_l4_checksum && opts.l4_csum == L4Csum::kFull) || opts.l4_csum == L4Csum::kMaybePartial) {
    if (iph->proto == kProtoTcp) {
      const uint32_t s = csum_partial_inline(l4, l4_len, pseudo_sum(t.src, t.dst, kProtoTcp, l4_len));
      if (csum_fold(s) != 0xFFFF && !completes_partial(opts, t, kProtoTcp, l4, l4_len, s, out))
        return ParseStatus::kBadL4Checksum;
    } else if (iph->proto == kProtoUdp) {
      const auto* uh = reinterpret_cast<const UdpHdr*>(l4);
      if (uh->check != 0) {
        const uint32_t s = csum_partial_inline(l4, uh->len.host(), pseudo_sum(t.src, t.dst, kProtoUdp, uh->len.host()));
        if (csum_fold(s) != 0xFFFF && !completes_partial(opts, t, kProtoUdp, l4, uh->len.host(), s, out))
          return ParseStatus::kBadL4Checksum;
      }
    } else if (iph->proto == kProtoIcmp && opts.verify_l4_checksum) {
      if (csum_fold(csum_partial(l4, l4_len)) != 0xFFFF) return ParseStatus::kBadL4Checksum;
    }
  }

  if (iph->proto == kProtoIcmp && icmp_is_error(l4[0])) {
    // RFC 792: the error carries the datagram's IP header and at least its first
    // 8 transport bytes; anything shorter cannot be matched to a connection.
    out->icmp_error = true;
    const uint8_t* in = l4 + sizeof(IcmpHdr);
    size_t in_avail = l4_len - sizeof(IcmpHdr);
    unsigned ihlen = 0, itot = 0;
    if (check_ipv4(in, in_avail, true, &ihlen, &itot) != ParseStatus::kOk)
      return ParseStatus::kBadIcmpError;
    const auto* ih = reinterpret_cast<const Ipv4Hdr*>(in);
    if ((ih->frag_off.host() & 0x1FFF) != 0) return ParseStatus::kBadIcmpError;  // no L4 header
    size_t inner_l4_avail = in_avail - ihlen;
    if (itot > ihlen && itot - ihlen < inner_l4_avail) inner_l4_avail = itot - ihlen;
    Tuple& it = out->inner;
    it.src = ih->saddr.raw;
    it.dst = ih->daddr.raw;
    it.proto = ih->proto;
    if (ih->proto == kProtoTcp || ih->proto == kProtoUdp || ih->proto == kProtoIcmp) {
      if (inner_l4_avail < 8) return ParseStatus::kBadIcmpError;
      if (ih->proto == kProtoIcmp && icmp_is_error(in[ihlen]))
        return ParseStatus::kBadIcmpError;  // RFC 1122: no error about an error
    }
    transport_tuple(ih->proto, in + ihlen, inner_l4_avail, &it);
    out->inner_l3 = static_cast<uint16_t>(out->l4 + sizeof(IcmpHdr));
    out->inner_l4 = static_cast<uint16_t>(out->inner_l3 + ihlen);
    out->inner_l4_avail = static_cast<uint16_t>(inner_l4_avail);
  }
  return ParseStatus::kOk;
}

}  // namespace xnat
