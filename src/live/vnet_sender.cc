#include "live/vnet_sender.h"

#include <fmt/format.h>
#include <linux/if_packet.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include "packet/headers.h"
#include "packet/offload.h"

namespace xnat {
namespace {

// A burst of super-frames is up to 2 MiB in flight until the device has
// sent them: more than a socket's default buffer.
constexpr int kSendBufferBytes = 8 << 20;

}  // namespace

void read_vnet(const VnetHdr& v, Packet* p) {
  if (v.flags & kVnetNeedsCsum) p->l4_csum = L4Csum::kPartial;
  else if (v.flags & kVnetDataValid) p->l4_csum = L4Csum::kVerified;
  switch (v.gso_type & ~kVnetGsoEcn) {
    case kVnetGsoTcpV4: p->gso = Gso::kTcp; break;
    case kVnetGsoUdpL4: p->gso = Gso::kUdp; break;
    default: return;
  }
  p->gso_size = v.gso_size;
}

VnetHdr vnet_of(const Packet& p) {
  VnetHdr v{};
  L4Field at;
  if (p.l4_csum != L4Csum::kPartial || !locate_l4_checksum(p.data, p.len, &at)) return v;
  v.flags = kVnetNeedsCsum;
  v.csum_start = static_cast<uint16_t>(at.l4);
  v.csum_offset = static_cast<uint16_t>(at.field - at.l4);
  if (p.gso != Gso::kNone && p.gso_size) {
    v.gso_type = p.gso == Gso::kTcp ? kVnetGsoTcpV4 : kVnetGsoUdpL4;
    v.gso_size = p.gso_size;
    const uint32_t l4_hdr = p.gso == Gso::kTcp ? (p.data[at.l4 + 12] >> 4) * 4u : 8u;
    v.hdr_len = static_cast<uint16_t>(at.l4 + l4_hdr);
  }
  return v;
}

VnetSender::~VnetSender() {
  if (fd_ >= 0) ::close(fd_);
}

Status VnetSender::open(int ifindex, const std::string& ifname) {
  auto fail = [&](const char* what) { return Error{fmt::format("{} ({}): {}", what, ifname, std::strerror(errno))}; };
  fd_ = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return fail("AF_PACKET socket (needs root or CAP_NET_RAW)");
  int v = 1;
  if (setsockopt(fd_, SOL_PACKET, PACKET_VNET_HDR, &v, sizeof v) < 0) return fail("PACKET_VNET_HDR");
  v = kSendBufferBytes;
  if (setsockopt(fd_, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) < 0)
    (void)setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
  v = 1;
  (void)setsockopt(fd_, SOL_PACKET, PACKET_QDISC_BYPASS, &v, sizeof v);
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_ifindex = ifindex;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0) return fail("bind AF_PACKET");
  return {};
}

void VnetSender::send_burst(const Packet* pkts, size_t n, int port, PortStats& st) {
  for (size_t at = 0; at < n; at += kBurst) {
    prepare(pkts + at, std::min(n - at, kBurst), port);
    transmit(st);
  }
}

bool VnetSender::prepare(const Packet* pkts, size_t n, int port) {
  size_t k = 0, v = 0;
  bool coalesced = false;
  TcpRun run;
  auto end_run = [&] {
    if (run.segments > 1) {
      run.finish();
      VnetHdr& h = vnets_[k - 1];
      h.flags = kVnetNeedsCsum;
      h.csum_start = run.head.l4;
      h.csum_offset = offsetof(TcpHdr, check);
      h.gso_type = kVnetGsoTcpV4;
      h.gso_size = run.head.payload;
      h.hdr_len = run.head.payload_at;
      mmsgs_[k - 1].msg_hdr.msg_iov[1].iov_len = run.head.ip_end;  // no link padding inside
      coalesced = true;
    }
    run.segments = 0;
  };
  for (size_t i = 0; i < n; ++i) {
    const Packet& pk = pkts[i];
    if (pk.verdict != Verdict::kForward || pk.out_if != port) continue;
    TcpSegmentView s;
    // Only a checksum the engine verified, or one the sender left partial,
    // may be replaced by the super-frame's.
    const bool seg = (pk.l4_csum == L4Csum::kVerified || pk.l4_csum == L4Csum::kPartial) && pk.gso == Gso::kNone &&
                     tcp_segment_view(pk.data, pk.len, &s);
    if (seg && run.segments && run.accepts(pk.data, s)) {
      iovs_[v++] = {pk.data + s.payload_at, s.payload};
      ++mmsgs_[k - 1].msg_hdr.msg_iovlen;
      run.add(s);
      continue;
    }
    end_run();
    vnets_[k] = vnet_of(pk);
    iovs_[v] = {&vnets_[k], kVnet};
    iovs_[v + 1] = {pk.data, pk.len};
    mmsgs_[k] = {};
    mmsgs_[k].msg_hdr.msg_iov = &iovs_[v];
    mmsgs_[k].msg_hdr.msg_iovlen = 2;
    v += 2;
    ++k;
    // The run's first frame is rewritten by finish(): its Packet is done with.
    if (seg) run.open(pk.data, s);
  }
  end_run();
  messages_ = k;
  return coalesced;
}

void VnetSender::transmit(PortStats& st) {
  const size_t k = messages_;
  messages_ = 0;
  size_t sent = 0;
  while (sent < k) {
    const int r = ::sendmmsg(fd_, &mmsgs_[sent], static_cast<unsigned>(k - sent), MSG_DONTWAIT);
    if (r <= 0) {
      // This frame was refused (the socket's buffer or the device's queue
      // full): its segments are counted, and the rest go on.
      st.tx_ring_full += mmsgs_[sent].msg_hdr.msg_iovlen - 1;
      ++sent;
      continue;
    }
    for (size_t j = sent; j < sent + static_cast<size_t>(r); ++j) {
      const size_t segments = mmsgs_[j].msg_hdr.msg_iovlen - 1;
      ++st.tx;
      st.tx_bytes += mmsgs_[j].msg_len - kVnet;
      st.tx_coalesced += segments - 1;
      if (vnets_[j].gso_type) ++st.tx_gso;
    }
    sent += static_cast<size_t>(r);
  }
}

bool VnetSender::send_one(const Packet& p, PortStats& st) {
  const VnetHdr vnet = vnet_of(p);
  iovec iov[2] = {{const_cast<VnetHdr*>(&vnet), kVnet}, {p.data, p.len}};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  if (::sendmsg(fd_, &msg, MSG_DONTWAIT) < 0) {
    ++st.tx_ring_full;
    return false;
  }
  ++st.tx;
  st.tx_bytes += p.len;
  if (vnet.gso_type) ++st.tx_gso;
  return true;
}

}  // namespace xnat
