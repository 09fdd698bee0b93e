// The engine's side of the fast path (conntrack/flow_offload.h): which
// connections it offers and with which paths, and how it takes them back
// (FIN/RST, idle, routes changed, the entry leaving), as netfilter's
// flowtable does for the flows it offloads.
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "conntrack/conntrack.h"
#include "conntrack/listing.h"
#include "conntrack/tcp_tracker.h"
#include "nat/rules_parser.h"
#include "test_util.h"

namespace xnat::test {
namespace {

struct FakeOffload final : FlowOffload {
  struct Added {
    uint32_t idx;
    OffloadPath dirs[2];
  };
  std::vector<Added> added;
  std::vector<uint32_t> removed;
  std::map<uint32_t, uint64_t> seen;
  bool room = true;

  bool add(uint32_t idx, const OffloadPath (&dirs)[2], uint64_t now_ms) override {
    if (!room) return false;
    added.push_back({idx, {dirs[0], dirs[1]}});
    seen[idx] = now_ms;
    return true;
  }
  void remove(uint32_t idx, const Flow&) override { removed.push_back(idx); }
  uint64_t last_seen_ms(uint32_t idx) const override { return seen.at(idx); }
  struct Segment {
    uint32_t idx;
    int dir;
    std::vector<uint8_t> ip;  // its IPv4 and TCP headers, as reported
  };
  std::vector<Segment> segments;
  void segment(uint32_t idx, int dir, const uint8_t* ip) override {
    segments.push_back({idx, dir, std::vector<uint8_t>(ip, ip + 40)});
  }
};

const std::string kPublish = publish_rules();

constexpr uint32_t C = 7000;
constexpr uint32_t S = 900000;
constexpr uint16_t kPort = 40000;

// The outside client to the published port, and the server's answers; a
// window of 64 KiB, so 1400-byte segments fit in it.
std::vector<uint8_t> client(uint8_t flags, uint32_t seq, uint32_t ack, size_t len = 0) {
  return to_published(kPort, flags, seq, ack, len, 65535);
}
std::vector<uint8_t> server(uint8_t flags, uint32_t seq, uint32_t ack, size_t len = 0) {
  return from_published(kPort, flags, seq, ack, len, 65535);
}

struct Gateway {
  explicit Gateway(const std::string& rules = kPublish, const std::string& ct = "")
      : e(make_engine(rules, ct)) {
    e->set_flow_offload(&fast);
  }
  Output pass(const std::vector<uint8_t>& f, int in_if, uint64_t now) {
    const Output o = run(*e, f, in_if, now);
    EXPECT_EQ(o.verdict, Verdict::kForward) << describe(f);
    return o;
  }
  // The handshake; returns the last frame each way as it left.
  void establish(uint64_t now) {
    to_server = pass(client(kTcpSyn, C, 0), kOut, now);
    to_client = pass(server(kTcpSyn | kTcpAck, S, C + 1), kIn, now);
    to_server = pass(client(kTcpAck, C + 1, S + 1), kOut, now);
    EXPECT_TRUE(fast.added.empty()) << "offered before bulk data";
  }
  // The handshake, a small request and a bulk answer (1400 bytes), which
  // offers the connection. Next sequence numbers: C + 1001, S + 1401.
  void establish_bulk(uint64_t now) {
    establish(now);
    to_server = pass(client(kTcpAck | kTcpPsh, C + 1, S + 1, 1000), kOut, now);
    EXPECT_EQ(fast.added.size(), 0u) << "1000 bytes are not bulk";
    to_client = pass(server(kTcpAck, S + 1, C + 1001, 1400), kIn, now);
  }
  const Flow* flow(uint64_t now = 0) const {
    const Flow* found = nullptr;
    e->conntrack().for_each_live(now, [&](const Flow& f) {
      if (f.tuple[0].sport == __builtin_bswap16(kPort)) found = &f;
    });
    return found;
  }
  uint32_t idx() const { return static_cast<uint32_t>(flow() - &e->conntrack().flow(0)); }
  std::string listing(uint64_t now) const {
    std::string out;
    append_conntrack_entry(&out, *flow(), listing_view(*flow(), now, 0), EntryFormat::kDefault);
    return out;
  }

  FakeOffload fast;
  std::unique_ptr<Engine> e;
  Output to_server, to_client;
};

MacAddr dst_mac(const Output& o) {
  MacAddr m;
  std::memcpy(m.b, o.frame.data(), 6);
  return m;
}

TEST(FlowOffload, OfferedOnceEstablishedWithBothDirectionsPaths) {
  Gateway g;
  g.establish_bulk(1000);
  ASSERT_EQ(g.fast.added.size(), 1u);
  const FakeOffload::Added& a = g.fast.added[0];
  const Flow& f = *g.flow();
  EXPECT_EQ(a.idx, g.idx());
  // Client to server: arrives as the original tuple, leaves to the DNAT target on eth1.
  EXPECT_EQ(a.dirs[0].match, tuple_of("198.19.0.20", kPort, "198.19.0.1", 8080, kProtoTcp));
  EXPECT_EQ(a.dirs[0].out, tuple_of("198.19.0.20", kPort, "198.18.0.2", 80, kProtoTcp));
  EXPECT_EQ(a.dirs[0].out_if, kIn);
  EXPECT_EQ(a.dirs[0].src, kInMac);
  EXPECT_EQ(a.dirs[0].dst, kClientMac);
  EXPECT_EQ(a.dirs[0].dst, dst_mac(g.to_server));  // what the engine itself sent to
  // Server to client: arrives as the reply tuple, leaves from the published port on eth0.
  EXPECT_EQ(a.dirs[1].match, f.tuple[1]);
  EXPECT_EQ(a.dirs[1].out, tuple_of("198.19.0.1", 8080, "198.19.0.20", kPort, kProtoTcp));
  EXPECT_EQ(a.dirs[1].out_if, kOut);
  EXPECT_EQ(a.dirs[1].src, kOutMac);
  EXPECT_EQ(a.dirs[1].dst, dst_mac(g.to_client));
  EXPECT_TRUE(f.status & kStatusOffload);
  EXPECT_EQ(g.e->conntrack().stats().offloads, 1u);
  EXPECT_EQ(g.e->conntrack().offloaded(), 1u);
  // Listed as conntrack lists a flowtable's flow: [OFFLOAD], a day's timeout.
  const std::string line = g.listing(1000);
  EXPECT_NE(line.find("[OFFLOAD]"), std::string::npos) << line;
  EXPECT_EQ(line.find("[ASSURED]"), std::string::npos) << line;
  EXPECT_EQ(line.rfind("tcp      6 86400 ESTABLISHED ", 0), 0u) << line;
  // Its window tracking turned liberal both ways.
  const TcpWindow* w = g.e->conntrack().window(g.idx());
  ASSERT_NE(w, nullptr);
  EXPECT_TRUE(w->seen[0].flags & kPeerLiberal);
  EXPECT_TRUE(w->seen[1].flags & kPeerLiberal);
  // Offered once: a packet through the engine while offloaded adds nothing.
  g.pass(server(kTcpAck, S + 1401, C + 1001, 1400), kIn, 1001);
  EXPECT_EQ(g.fast.added.size(), 1u);
}

const std::string kForwardRules = kPublish +
                                  "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                                  "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\nCOMMIT\n";

TEST(FlowOffload, NotOfferedWhileFilterRulesMustSeeEveryPacket) {
  Gateway g(kForwardRules);
  g.establish_bulk(1000);
  g.pass(server(kTcpAck, S + 1401, C + 1001, 1400), kIn, 1001);
  EXPECT_TRUE(g.fast.added.empty());
  EXPECT_FALSE(g.flow()->status & kStatusOffload);
}

TEST(FlowOffload, ReloadedRulesThatMustSeeEveryPacketTakeItBack) {
  Gateway g;
  g.establish_bulk(1000);
  ASSERT_EQ(g.fast.added.size(), 1u);
  auto rs = parse_rules(kForwardRules, "reload.rules");
  ASSERT_TRUE(rs.ok()) << rs.error().message;
  std::vector<std::string> names;
  for (const Interface& i : g.e->fib().interfaces()) names.push_back(i.name);
  rs->bind_interfaces(names);
  g.e->swap_rules(*rs);  // xnat reload
  EXPECT_EQ(g.fast.removed.size(), 1u);
  EXPECT_FALSE(g.flow()->status & kStatusOffload);
  g.pass(server(kTcpAck, S + 1401, C + 1001, 1400), kIn, 1001);
  EXPECT_EQ(g.fast.added.size(), 1u);  // and not offered again
}

TEST(FlowOffload, NoRoomLeavesTheConnectionWithTheEngine) {
  Gateway g;
  g.fast.room = false;
  g.establish_bulk(1000);
  EXPECT_FALSE(g.flow()->status & kStatusOffload);
  EXPECT_EQ(g.e->conntrack().stats().offload_full, 1u);
  g.pass(server(kTcpAck, S + 1401, C + 1001, 1400), kIn, 1001);  // still forwarded, and offered again
  EXPECT_EQ(g.e->conntrack().stats().offload_full, 2u);
  g.pass(client(kTcpAck, C + 1001, S + 2801), kOut, 1001);  // an ACK is not bulk: not offered
  EXPECT_EQ(g.e->conntrack().stats().offload_full, 2u);
  g.fast.room = true;
  g.pass(server(kTcpAck, S + 2801, C + 1001, 1400), kIn, 1002);
  EXPECT_EQ(g.fast.added.size(), 1u);
}

TEST(FlowOffload, FinTakesItBackAndTheEngineTracksTheEnd) {
  Gateway g;
  g.establish_bulk(1000);
  ASSERT_EQ(g.fast.added.size(), 1u);
  // The fast path carried 5 MB each way meanwhile (windows of 64 KiB as
  // the engine last saw them): the FIN lies far beyond them.
  const uint32_t c_end = C + 1001 + 5'000'000, s_end = S + 1401 + 5'000'000;
  g.pass(client(kTcpFin | kTcpAck, c_end, s_end), kOut, 60'000);
  ASSERT_EQ(g.fast.removed.size(), 1u);
  EXPECT_EQ(g.fast.removed[0], g.idx());
  const Flow& f = *g.flow();
  EXPECT_FALSE(f.status & kStatusOffload);
  EXPECT_EQ(f.tcp_state, TcpState::kFinWait);
  EXPECT_EQ(g.e->conntrack().stats().offload_withdrawn, 1u);
  EXPECT_EQ(g.e->conntrack().offloaded(), 0u);
  const TcpWindow* w = g.e->conntrack().window(g.idx());
  EXPECT_FALSE(w->seen[0].flags & kPeerMaxackSet);
  // The rest of the close passes, and the connection ends as the kernel's.
  g.pass(server(kTcpFin | kTcpAck, s_end, c_end + 1), kIn, 60'001);
  g.pass(client(kTcpAck, c_end + 1, s_end + 1), kOut, 60'002);
  EXPECT_EQ(g.flow()->tcp_state, TcpState::kTimeWait);
  EXPECT_EQ(g.e->counters().get(Counter::drop_invalid), 0u);
  EXPECT_NE(g.listing(60'002).find("[ASSURED]"), std::string::npos);
  EXPECT_EQ(g.fast.added.size(), 1u);  // not offered again once closing
}

// Segments of an offloaded connection still in the engine's way (on their
// way before the hand-over, or passed on by the fast path) are reported as
// they arrived, untranslated: the fast path knows them by those headers
// and holds their direction back until they have left.
TEST(FlowOffload, ItsSegmentsThroughTheEngineAreReportedAsTheyArrived) {
  Gateway g;
  g.establish(1000);
  g.pass(client(kTcpAck | kTcpPsh, C + 1, S + 1, 1000), kOut, 1000);
  EXPECT_TRUE(g.fast.segments.empty()) << "not offloaded yet";
  const std::vector<uint8_t> bulk = server(kTcpAck, S + 1, C + 1001, 1400);
  g.pass(bulk, kIn, 1000);  // offers it
  ASSERT_EQ(g.fast.added.size(), 1u);
  EXPECT_TRUE(g.fast.segments.empty()) << "the offering segment went before the offload";
  const std::vector<uint8_t> late = server(kTcpAck, S + 1401, C + 1001, 1400);
  const std::vector<uint8_t> ack = client(kTcpAck, C + 1001, S + 2801);
  const Output out = g.pass(late, kIn, 1001);
  g.pass(ack, kOut, 1001);
  ASSERT_EQ(g.fast.segments.size(), 2u);
  EXPECT_EQ(g.fast.segments[0].idx, g.idx());
  EXPECT_EQ(g.fast.segments[0].dir, 1);
  EXPECT_EQ(g.fast.segments[0].ip, std::vector<uint8_t>(late.begin() + 14, late.begin() + 54));
  EXPECT_NE(g.fast.segments[0].ip, std::vector<uint8_t>(out.frame.begin() + 14, out.frame.begin() + 54))
      << "reported after translation";
  EXPECT_EQ(g.fast.segments[1].dir, 0);
  EXPECT_EQ(g.fast.segments[1].ip, std::vector<uint8_t>(ack.begin() + 14, ack.begin() + 54));
  // One the engine drops (a corrupted checksum) is not reported.
  g.fast.segments.clear();
  std::vector<uint8_t> bad = server(kTcpAck, S + 2801, C + 1001, 1400);
  bad.back() ^= 0xff;
  EXPECT_EQ(run(*g.e, bad, kIn, 1002).verdict, Verdict::kDrop);
  EXPECT_TRUE(g.fast.segments.empty());
}

TEST(FlowOffload, RstTakesItBack) {
  Gateway g;
  g.establish_bulk(1000);
  g.pass(server(kTcpRst | kTcpAck, S + 1401 + 5'000'000, C + 1001), kIn, 2000);
  EXPECT_EQ(g.fast.removed.size(), 1u);
  EXPECT_EQ(g.flow()->tcp_state, TcpState::kClose);
}

TEST(FlowOffload, KeptWhileTheFastPathCarriesItTakenBackWhenIdle) {
  Gateway g(kPublish, "nf_conntrack_tcp_timeout_established = 300");
  g.establish_bulk(1000);
  const uint32_t idx = g.idx();
  // The fast path carried a packet at 250 s; at 400 s the engine's own
  // timeout (300 s from the handshake) has passed, the fast path's has not.
  g.fast.seen[idx] = 250'000;
  g.e->offload_tick(400'000);
  ASSERT_TRUE(g.flow(400'000));
  EXPECT_TRUE(g.flow(400'000)->status & kStatusOffload);
  EXPECT_GE(g.flow(400'000)->expires_ms, 400'000u + 43'200'000u);
  EXPECT_TRUE(g.fast.removed.empty());
  // Nothing since: at 550 s it is 300 s idle, comes back and expires.
  g.e->offload_tick(550'000);
  ASSERT_EQ(g.fast.removed.size(), 1u);
  EXPECT_EQ(g.flow(550'000), nullptr) << "still live after its timeout";
  g.e->conntrack().expire(551'000);
  EXPECT_EQ(g.e->conntrack().count(), 0u);
  EXPECT_EQ(g.fast.removed.size(), 1u);  // removed once
}

TEST(FlowOffload, RemovedWithItsEntry) {
  Gateway g;
  g.establish_bulk(1000);
  g.e->conntrack().remove(g.idx());  // conntrack -D
  EXPECT_EQ(g.fast.removed.size(), 1u);
  EXPECT_EQ(g.e->conntrack().offloaded(), 0u);
  // The next segment is picked up mid-stream (nf_conntrack_tcp_loose) and
  // offered again by bulk data once established.
  g.pass(client(kTcpAck, C + 1001, S + 1401, 10), kOut, 2000);
  g.pass(server(kTcpAck, S + 1401, C + 1011, 10), kIn, 2001);
  g.pass(client(kTcpAck, C + 1011, S + 1411, 10), kOut, 2002);
  EXPECT_EQ(g.fast.added.size(), 1u);
  g.pass(server(kTcpAck, S + 1411, C + 1021, 1400), kIn, 2003);
  EXPECT_EQ(g.fast.added.size(), 2u);
}

TEST(FlowOffload, ANeighbourChangingTakesBackTheConnectionsThroughIt) {
  Gateway g;
  g.establish_bulk(1000);
  // The same routes and neighbours again (a neighbour's state changed, its
  // MAC did not): the connection stays offloaded.
  g.e->replace_fib(g.e->fib());
  EXPECT_TRUE(g.fast.removed.empty());
  EXPECT_TRUE(g.flow()->status & kStatusOffload);
  // The server's MAC changes: back to the engine, on its own timeout again
  // from the fast path's last packet (ESTABLISHED's: the client ACKed all),
  // and offered again by its next bulk segment with the new MAC.
  g.pass(client(kTcpAck, C + 1001, S + 1401), kOut, 1000);
  g.fast.seen[g.idx()] = 5000;
  Fib fib = g.e->fib();
  const MacAddr moved = mac(0x33);
  fib.add_neighbor(tuple_of("198.18.0.2", 0, "0.0.0.0", 0, 0).src, moved);
  g.e->replace_fib(fib);
  EXPECT_EQ(g.fast.removed.size(), 1u);
  EXPECT_FALSE(g.flow()->status & kStatusOffload);
  EXPECT_EQ(g.flow()->expires_ms, 5000u + 432000u * 1000);  // nf_conntrack_tcp_timeout_established
  g.pass(server(kTcpAck, S + 1401, C + 1001, 1400), kIn, 6000);
  ASSERT_EQ(g.fast.added.size(), 2u);
  EXPECT_EQ(g.fast.added[1].dirs[0].dst, moved);
}

// `fib` with interface `ifindex`'s MTU `mtu`.
Fib with_mtu(const Fib& fib, int ifindex, uint32_t mtu) {
  Fib out;
  for (size_t i = 0; i < fib.interfaces().size(); ++i) {
    Interface itf = fib.interfaces()[i];
    if (static_cast<int>(i) == ifindex) itf.mtu = mtu;
    out.add_interface(itf);  // and its connected route
  }
  for (const RouteEntry& r : fib.routes()) {
    if (r.gateway) {
      EXPECT_TRUE(out.add_route(r.prefix, r.gateway, r.ifindex).ok());
    }
  }
  fib.for_each_neighbor([&](uint32_t addr, const MacAddr& m) { out.add_neighbor(addr, m); });
  return out;
}

// The fast path sends on only what fits the output: a smaller MTU must
// reach it, and a connection offloaded with the old one comes back.
TEST(FlowOffload, AnOutputsMtuChangingTakesBackTheConnectionsThroughIt) {
  Gateway g;
  g.establish_bulk(1000);
  ASSERT_EQ(g.fast.added.size(), 1u);
  for (const OffloadPath& p : g.fast.added[0].dirs) EXPECT_EQ(p.mtu, g.e->fib().interface(p.out_if).mtu);
  const int to_client = g.fast.added[0].dirs[1].out_if;
  g.e->replace_fib(with_mtu(g.e->fib(), 1 - to_client, g.e->fib().interface(1 - to_client).mtu));
  EXPECT_TRUE(g.fast.removed.empty()) << "the same MTUs";
  g.e->replace_fib(with_mtu(g.e->fib(), to_client, 1400));
  ASSERT_EQ(g.fast.removed.size(), 1u);
  EXPECT_FALSE(g.flow()->status & kStatusOffload);
  g.pass(server(kTcpAck, S + 1401, C + 1001, 1300), kIn, 2000);
  ASSERT_EQ(g.fast.added.size(), 2u);
  EXPECT_EQ(g.fast.added[1].dirs[1].mtu, 1400u);
}

}  // namespace
}  // namespace xnat::test
