// Several workers' engines sharing one FlowDirectory, with every frame
// arriving at worker 0 (a NIC with one queue, as on veth): frames go to the
// worker that owns their flow, replies find it, and the result is what one
// engine would do.
#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <vector>

#include "golden_cases.h"
#include "nat/port_allocator.h"
#include "test_util.h"

namespace xnat::test {
namespace {

constexpr uint64_t kShardSeed = 0x5eed;

struct Workers {
  FlowDirectory dir{1 << 16};
  SourceMap mappings{1 << 16};
  SourceMap flow_counts{1 << 16};
  SharedLimit limit;
  std::vector<std::unique_ptr<Engine>> engines;

  Workers(uint32_t n, const std::string& rules, uint64_t max_flows = 1 << 20, const std::string& conntrack = "") {
    limit.max = max_flows;
    // One parse, copied for each worker, with one set of ICMP error
    // buckets, as the live gateway does.
    EngineConfig parsed = engine_config(rules, conntrack);
    parsed.icmp_limit = std::make_shared<IcmpRateLimit>(parsed.icmp_msgs_per_sec, parsed.icmp_msgs_burst);
    parsed.icmp_peer_limit = std::make_shared<IcmpPeerLimit>(parsed.icmp_ratelimit);
    for (uint32_t w = 0; w < n; ++w) {
      EngineConfig cfg = parsed;
      cfg.seed = 1 + w;
      cfg.shard = Shard{w, n, kShardSeed, &dir, &mappings, &flow_counts, &limit};
      engines.push_back(std::make_unique<Engine>(std::move(cfg)));
    }
  }

  struct Delivery {
    Output out;
    int worker = -1;  // the one that produced the verdict
    int hops = 0;
  };
  // Receives the frame at worker `at`, following handoffs as the live rings do.
  Delivery deliver(const std::vector<uint8_t>& frame, int in_if, uint64_t now, int at = 0) {
    std::vector<uint8_t> buf;
    Packet p = received(&buf, frame, in_if);
    Delivery d;
    for (int w = at;;) {
      engines[static_cast<size_t>(w)]->process(p, now);
      if (p.verdict != Verdict::kHandoff) {
        d.worker = w;
        break;
      }
      ++d.hops;
      EXPECT_LE(d.hops, 2);
      w = p.out_if;
    }
    d.out = result(p);
    return d;
  }
  // Frames make(0) .. make(count - 1) from the inside, all at `now`: how
  // many were forwarded (a translation, or an ICMP error sent back) and
  // dropped, and which workers gave the verdicts.
  struct Spread {
    int forwarded = 0, dropped = 0;
    std::set<int> workers;
  };
  template <typename Make>
  Spread spread(uint16_t count, uint64_t now, Make&& make) {
    Spread s;
    for (uint16_t i = 0; i < count; ++i) {
      const Delivery d = deliver(make(i), kIn, now);
      s.workers.insert(d.worker);
      s.forwarded += d.out.verdict == Verdict::kForward;
      s.dropped += d.out.verdict == Verdict::kDrop;
    }
    return s;
  }
  uint64_t sum(Counter c) const {
    uint64_t s = 0;
    for (auto& e : engines) s += e->counters().get(c);
    return s;
  }
  uint32_t flows() const {
    uint32_t s = 0;
    for (auto& e : engines) s += e->conntrack().count();
    return s;
  }
};

ParsedPacket parsed(const Output& o) {
  ParsedPacket p;
  EXPECT_EQ(parse_frame(o.frame.data(), o.frame.size(), {}, &p), ParseStatus::kOk) << describe(o.frame);
  return p;
}

TEST(ShardedEngine, MasqueradeRepliesReachTheOwnerWithoutDirectoryEntries) {
  Workers ws(2, nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"));
  int owned[2] = {0, 0};
  for (uint16_t i = 0; i < 200; ++i) {
    const uint16_t cport = static_cast<uint16_t>(20000 + i);
    auto q = ws.deliver(from_client().udp(cport, 53).build(), kIn, 1000);
    ASSERT_EQ(q.out.verdict, Verdict::kForward);
    ++owned[q.worker];
    ParsedPacket out = parsed(q.out);
    EXPECT_EQ(out.tuple.src, ip_raw("198.19.0.1"));
    // The reply arrives at worker 0 too and is translated back by the owner.
    auto r = ws.deliver(FrameBuilder()
                            .eth(kRouterMac, kOutMac)
                            .ip("198.51.100.7", "198.19.0.1")
                            .udp(53, __builtin_bswap16(out.tuple.sport))
                            .build(),
                        kOut, 1001);
    ASSERT_EQ(r.out.verdict, Verdict::kForward) << describe(r.out.frame);
    EXPECT_EQ(r.worker, q.worker);
    ParsedPacket back = parsed(r.out);
    EXPECT_EQ(back.tuple.dst, ip_raw("198.18.0.2"));
    EXPECT_EQ(__builtin_bswap16(back.tuple.dport), cport);
  }
  EXPECT_GT(owned[0], 50);  // both workers own flows
  EXPECT_GT(owned[1], 50);
  EXPECT_EQ(ws.flows(), 200u);
  EXPECT_EQ(ws.dir.size(), 0u);  // source mappings choose ports their worker owns
  EXPECT_EQ(ws.sum(Counter::rx_frames), 400u);  // counted once, by the receiving worker
  EXPECT_EQ(ws.sum(Counter::handoffs), static_cast<uint64_t>(2 * owned[1]));
  EXPECT_EQ(ws.sum(Counter::tx_frames), 400u);
  EXPECT_EQ(ws.engines[0]->counters().total_drops() + ws.engines[1]->counters().total_drops(), 0u);
}

// One client port to many servers, the connections on every worker: one
// mapping, the client's own port (RFC 4787 REQ-1, endpoint-independent), as
// a STUN client sees it through the kernel.
TEST(ShardedEngine, AClientPortKeepsOneMappingOnEveryWorker) {
  Workers ws(4, nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"));
  std::set<int> workers;
  for (uint16_t i = 0; i < 32; ++i) {
    const std::string server = "198.51.100." + std::to_string(1 + i);
    const uint16_t sport = static_cast<uint16_t>(3478 + 7 * i);
    auto q = ws.deliver(FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", server).udp(40000, sport).build(),
                        kIn, 1000);
    ASSERT_EQ(q.out.verdict, Verdict::kForward);
    workers.insert(q.worker);
    ParsedPacket out = parsed(q.out);
    EXPECT_EQ(out.tuple.src, ip_raw("198.19.0.1"));
    EXPECT_EQ(__builtin_bswap16(out.tuple.sport), 40000) << "to " << server;
    // Its answer comes back to the client's port, through the same worker.
    auto r = ws.deliver(FrameBuilder().eth(kRouterMac, kOutMac).ip(server, "198.19.0.1").udp(sport, 40000).build(),
                        kOut, 1001);
    ASSERT_EQ(r.out.verdict, Verdict::kForward) << describe(r.out.frame);
    EXPECT_EQ(r.worker, q.worker);
    EXPECT_EQ(parsed(r.out).tuple.dst, ip_raw("198.18.0.2"));
  }
  EXPECT_GE(workers.size(), 3u);  // the connections spread over the workers
  EXPECT_EQ(ws.flows(), 32u);
  EXPECT_EQ(ws.dir.size(), 0u);  // every reply owned by the worker that took its connection
}

// Two clients on one port to one server: the connections meet in one
// worker, which gives the second another port, as the kernel would; each
// answer reaches its own client.
TEST(ShardedEngine, ClientsOnOnePortToOneServerGetTwoMappings) {
  Workers ws(4, nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"));
  for (uint16_t i = 0; i < 16; ++i) {
    const uint16_t cport = static_cast<uint16_t>(41000 + 13 * i);
    Tuple outs[2];
    int worker[2];
    for (int c = 0; c < 2; ++c) {
      auto q = ws.deliver(from_client(c ? "198.18.0.3" : "198.18.0.2").udp(cport, 3478).build(), kIn, 1000);
      ASSERT_EQ(q.out.verdict, Verdict::kForward);
      outs[c] = parsed(q.out).tuple;
      worker[c] = q.worker;
    }
    EXPECT_EQ(worker[0], worker[1]);
    EXPECT_EQ(__builtin_bswap16(outs[0].sport), cport);
    EXPECT_NE(outs[1].sport, outs[0].sport);
    for (int c = 0; c < 2; ++c) {
      auto r = ws.deliver(FrameBuilder()
                              .eth(kRouterMac, kOutMac)
                              .ip("198.51.100.7", "198.19.0.1")
                              .udp(3478, __builtin_bswap16(outs[c].sport))
                              .build(),
                          kOut, 1001);
      ASSERT_EQ(r.out.verdict, Verdict::kForward);
      EXPECT_EQ(parsed(r.out).tuple.dst, ip_raw(c ? "198.18.0.3" : "198.18.0.2"));
      EXPECT_EQ(__builtin_bswap16(parsed(r.out).tuple.dport), cport);
    }
  }
}

// An address pool hands a client the same address whichever worker its
// connection lands on: the choice is the kernel's hash, with no secret of the
// worker's in it.
TEST(ShardedEngine, PoolAddressIsTheSameOnEveryWorker) {
  const uint32_t lo = __builtin_bswap32(ip_raw("198.19.0.10")), hi = __builtin_bswap32(ip_raw("198.19.0.20"));
  for (const bool persistent : {true, false}) {
    Workers ws(4, nat_table(std::string("-A POSTROUTING -o eth0 -j SNAT --to-source 198.19.0.10-198.19.0.20") +
                            (persistent ? " --persistent\n" : "\n")));
    std::set<int> workers;
    std::set<uint32_t> addresses;
    for (uint16_t i = 0; i < 64; ++i) {
      const std::string client = "198.18.0." + std::to_string(2 + i % 4);
      const std::string server = persistent ? "198.51.100." + std::to_string(1 + i) : "198.51.100.7";
      auto q = ws.deliver(FrameBuilder()
                              .eth(kClientMac, kInMac)
                              .ip(client, server)
                              .udp(static_cast<uint16_t>(20000 + i), 53)
                              .build(),
                          kIn, 1000);
      ASSERT_EQ(q.out.verdict, Verdict::kForward);
      workers.insert(q.worker);
      const uint32_t want =
          pool_address(ip_raw(client.c_str()), ip_raw(server.c_str()), persistent, lo, hi);
      EXPECT_EQ(parsed(q.out).tuple.src, __builtin_bswap32(want)) << client << " to " << server;
      addresses.insert(want);
    }
    EXPECT_GE(workers.size(), 3u);    // the connections spread over the workers
    EXPECT_GE(addresses.size(), 2u);  // and the four clients over the pool
  }
}

TEST(ShardedEngine, DnatRepliesFindTheirOwnerThroughTheDirectory) {
  Workers ws(2, nat_table("-A PREROUTING -d 198.19.0.1/32 -p tcp --dport 8080 -j DNAT --to-destination 198.18.0.2:80\n"));
  int listed = 0;
  for (uint16_t i = 0; i < 100; ++i) {
    // Clients of many addresses, as on the Internet.
    const uint16_t cport = static_cast<uint16_t>(30000 + i);
    const std::string client = "198.51.100." + std::to_string(1 + i);
    auto syn = ws.deliver(FrameBuilder()
                              .eth(kRouterMac, kOutMac)
                              .ip(client, "198.19.0.1")
                              .tcp(cport, 8080, kTcpSyn)
                              .build(),
                          kOut, 1000);
    ASSERT_EQ(syn.out.verdict, Verdict::kForward);
    ParsedPacket in = parsed(syn.out);
    EXPECT_EQ(in.tuple.dst, ip_raw("198.18.0.2"));
    EXPECT_EQ(__builtin_bswap16(in.tuple.dport), 80);
    // The server's answer: its tuple hashes wherever it hashes, and must
    // still reach the worker holding the flow.
    Tuple reply;
    reply.src = ip_raw("198.18.0.2");
    reply.dst = ip_raw(client.c_str());
    reply.sport = __builtin_bswap16(80);
    reply.dport = __builtin_bswap16(cport);
    reply.proto = kProtoTcp;
    if (shard_owner(reply, 2, kShardSeed) != static_cast<uint32_t>(syn.worker)) ++listed;
    auto sa = ws.deliver(
        FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", client).tcp(80, cport, kTcpSyn | kTcpAck).build(), kIn,
        1001);
    ASSERT_EQ(sa.out.verdict, Verdict::kForward) << describe(sa.out.frame);
    EXPECT_EQ(sa.worker, syn.worker);
    ParsedPacket out = parsed(sa.out);
    EXPECT_EQ(out.tuple.src, ip_raw("198.19.0.1"));
    EXPECT_EQ(__builtin_bswap16(out.tuple.sport), 8080);
  }
  EXPECT_GT(listed, 20);
  EXPECT_EQ(ws.dir.size(), static_cast<uint64_t>(listed));  // exactly the replies that hash elsewhere
  EXPECT_EQ(ws.flows(), 100u);
  // Expiry removes the directory entries with the flows (SYN_RECV: 60 s).
  for (auto& e : ws.engines) e->conntrack().expire(1000 + 200'000);
  EXPECT_EQ(ws.flows(), 0u);
  EXPECT_EQ(ws.dir.size(), 0u);
}

TEST(ShardedEngine, IcmpErrorAboutAFlowReachesItsOwner) {
  Workers ws(2, nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"));
  int other = 0;
  for (uint16_t i = 0; i < 40; ++i) {
    auto q = ws.deliver(from_client().udp(static_cast<uint16_t>(40000 + i), 33434).build(), kIn, 1000);
    ASSERT_EQ(q.out.verdict, Verdict::kForward);
    other += q.worker != 0;
    // A router reports the datagram as it left the gateway.
    auto err = ws.deliver(FrameBuilder()
                              .eth(kRouterMac, kOutMac)
                              .ip("198.19.0.254", "198.19.0.1")
                              .icmp_error(kIcmpTimeExceeded, 0, std::vector<uint8_t>(q.out.frame.begin() + 14, q.out.frame.end()))
                              .build(),
                          kOut, 1001);
    ASSERT_EQ(err.out.verdict, Verdict::kForward) << describe(err.out.frame);
    EXPECT_EQ(err.worker, q.worker);
    EXPECT_EQ(parsed(err.out).tuple.dst, ip_raw("198.18.0.2"));
  }
  EXPECT_GT(other, 5);
  EXPECT_EQ(ws.sum(Counter::icmp_errors_translated), 40u);
}

TEST(ShardedEngine, ExpiredFlowOnTheWayIsRecreatedByTheHashOwner) {
  Workers ws(2, nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"));
  // A flow owned by worker 1, then expired: its next packet, handed to
  // worker 1 by hash, opens a new flow there and nowhere else.
  uint16_t cport = 50000;
  Workers::Delivery q;
  for (;; ++cport) {
    q = ws.deliver(from_client().udp(cport, 53).build(), kIn, 1000);
    if (q.worker == 1) break;
  }
  for (auto& e : ws.engines) e->conntrack().expire(1000 + 60'000);
  ASSERT_EQ(ws.flows(), 0u);
  auto again = ws.deliver(from_client().udp(cport, 53).build(), kIn, 62'000);
  ASSERT_EQ(again.out.verdict, Verdict::kForward);
  EXPECT_EQ(again.worker, 1);
  EXPECT_EQ(ws.engines[1]->conntrack().count(), 1u);
  EXPECT_EQ(ws.engines[0]->conntrack().count(), 0u);
  EXPECT_EQ(ws.sum(Counter::drop_handoff_loop), 0u);
}

// nf_conntrack_max holds for the gateway, not per worker: with a limit of
// 50 the two tables together never hold more, whichever worker the flows hash to.
TEST(ShardedEngine, ConntrackMaxIsTheWholeGatewaysLimit) {
  Workers ws(2, nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"), 50);
  int forwarded = 0;
  for (uint16_t i = 0; i < 80; ++i) {
    // Replied UDP flows: neither closing nor unreplied, so nothing to evict.
    auto q = ws.deliver(from_client().udp(static_cast<uint16_t>(10000 + i), 53).build(), kIn, 1000);
    if (q.out.verdict != Verdict::kForward) continue;
    ++forwarded;
    ParsedPacket out = parsed(q.out);
    ws.deliver(FrameBuilder()
                   .eth(kRouterMac, kOutMac)
                   .ip("198.51.100.7", "198.19.0.1")
                   .udp(53, __builtin_bswap16(out.tuple.sport))
                   .build(),
               kOut, 1001);
  }
  EXPECT_EQ(forwarded, 50);
  EXPECT_EQ(ws.flows(), 50u);
  EXPECT_EQ(ws.limit.count.load(), 50u);
  EXPECT_EQ(ws.sum(Counter::drop_table_full), 30u);
  EXPECT_GT(ws.engines[0]->conntrack().count(), 10u);
  EXPECT_GT(ws.engines[1]->conntrack().count(), 10u);
  // Expiry gives the entries back to the shared count.
  for (auto& e : ws.engines) e->conntrack().expire(1000 + 400'000);
  EXPECT_EQ(ws.limit.count.load(), 0u);
}

// A worker at the limit with nothing to evict borrows an entry; another
// worker, which has one to spare, pays it back on its next burst.
TEST(ShardedEngine, AWorkerWithNothingToEvictBorrowsAndAnotherRepays) {
  Workers ws(2, nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"), 20);
  ws.limit.overdraft = 4;
  int replied0 = 0, unreplied1 = 0;
  uint16_t port = 10000;
  uint16_t next0 = 0;  // a client port whose flow worker 0 will own
  while (replied0 < 10 || unreplied1 < 10 || !next0) {
    const uint16_t p = port++;
    Tuple t;  // the flow's original tuple decides its worker
    t.src = ip_raw("198.18.0.2");
    t.dst = ip_raw("198.51.100.7");
    t.sport = __builtin_bswap16(p);
    t.dport = __builtin_bswap16(53);
    t.proto = kProtoUdp;
    const uint32_t owner = shard_owner(t, 2, kShardSeed);
    if (owner == 0 && replied0 == 10) {
      if (!next0) next0 = p;
      continue;
    }
    if (owner == 1 && unreplied1 == 10) continue;
    auto q = ws.deliver(from_client().udp(p, 53).build(), kIn, 1000);
    ASSERT_EQ(q.out.verdict, Verdict::kForward);
    ASSERT_EQ(static_cast<uint32_t>(q.worker), owner);
    if (owner == 1) {
      ++unreplied1;
      continue;
    }
    ++replied0;
    ws.deliver(FrameBuilder()
                   .eth(kRouterMac, kOutMac)
                   .ip("198.51.100.7", "198.19.0.1")
                   .udp(53, __builtin_bswap16(parsed(q.out).tuple.sport))
                   .build(),
               kOut, 1001);
  }
  ASSERT_EQ(ws.flows(), 20u);
  // Worker 0 holds only answered flows: nothing it may evict. It borrows.
  auto q = ws.deliver(from_client().udp(next0, 53).build(), kIn, 2000);
  ASSERT_EQ(q.out.verdict, Verdict::kForward);
  EXPECT_EQ(q.worker, 0);
  EXPECT_EQ(ws.engines[0]->conntrack().stats().borrowed, 1u);
  EXPECT_EQ(ws.limit.count.load(), 21u);
  EXPECT_EQ(ws.limit.debt.load(), 1u);
  // Worker 1's next burst evicts its oldest unreplied flow to pay.
  ws.engines[1]->conntrack().repay();
  EXPECT_EQ(ws.limit.debt.load(), 0u);
  EXPECT_EQ(ws.limit.count.load(), 20u);
  EXPECT_EQ(ws.flows(), 20u);
  EXPECT_EQ(ws.engines[1]->conntrack().stats().evicted_unreplied, 1u);
  EXPECT_EQ(ws.sum(Counter::drop_table_full), 0u);
}

// A client whose port another client took (two clients on one port to one
// server): its new port is its mapping towards every destination, whichever
// worker its next connections land on -- find_appropriate_src, as the kernel
// and one worker give it (RFC 4787 REQ-1). Each connection's later frames
// and its answers reach the worker that took it.
TEST(ShardedEngine, AClientsChangedPortIsItsMappingOnEveryWorker) {
  Workers ws(4, nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"));
  auto send = [&](const char* client, const std::string& server, uint16_t sport, uint16_t dport, uint64_t now) {
    return ws.deliver(FrameBuilder().eth(kClientMac, kInMac).ip(client, server).udp(sport, dport).build(), kIn, now);
  };
  ASSERT_EQ(send("198.18.0.2", "198.51.100.7", 40000, 3478, 1000).out.verdict, Verdict::kForward);
  auto second = send("198.18.0.3", "198.51.100.7", 40000, 3478, 1000);
  ASSERT_EQ(second.out.verdict, Verdict::kForward);
  const uint16_t mapped = __builtin_bswap16(parsed(second.out).tuple.sport);
  ASSERT_NE(mapped, 40000);
  EXPECT_EQ(ws.mappings.size(), 1u);  // the changed port is shared; the kept one needs not be

  std::set<int> workers;
  for (uint16_t i = 0; i < 32; ++i) {
    const std::string server = "198.51.100." + std::to_string(20 + i);
    const uint16_t dport = static_cast<uint16_t>(3478 + 7 * i);
    for (int k = 0; k < 2; ++k) {  // the connection's first frame, then its next
      auto q = send("198.18.0.3", server, 40000, dport, 1001 + k);
      ASSERT_EQ(q.out.verdict, Verdict::kForward) << describe(q.out.frame);
      const ParsedPacket out = parsed(q.out);
      EXPECT_EQ(out.tuple.src, ip_raw("198.19.0.1"));
      EXPECT_EQ(__builtin_bswap16(out.tuple.sport), mapped) << "to " << server << ":" << dport;
      workers.insert(q.worker);
      auto r = ws.deliver(FrameBuilder().eth(kRouterMac, kOutMac).ip(server, "198.19.0.1").udp(dport, mapped).build(),
                          kOut, 1001 + k);
      ASSERT_EQ(r.out.verdict, Verdict::kForward) << describe(r.out.frame);
      EXPECT_EQ(r.worker, q.worker);
      EXPECT_EQ(parsed(r.out).tuple.dst, ip_raw("198.18.0.3"));
      EXPECT_EQ(__builtin_bswap16(parsed(r.out).tuple.dport), 40000);
    }
  }
  EXPECT_GE(workers.size(), 3u);
  EXPECT_GT(ws.sum(Counter::adoptions), 8u);  // about 3 in 4 land elsewhere first
  EXPECT_EQ(ws.sum(Counter::flows_created), 34u);
  EXPECT_EQ(ws.flows(), 34u);
  // An adopted connection's original tuple is in the directory, nothing else is.
  EXPECT_EQ(ws.dir.size(), ws.sum(Counter::adoptions));
  EXPECT_EQ(ws.mappings.size(), workers.size());  // one entry per worker that holds the client's flows
  uint64_t drops = 0;
  for (auto& e : ws.engines) drops += e->counters().total_drops();
  EXPECT_EQ(drops, 0u);

  // The entries go with the flows (UDP, answered: 120 s).
  for (auto& e : ws.engines) e->conntrack().expire(1000 + 200'000);
  EXPECT_EQ(ws.flows(), 0u);
  EXPECT_EQ(ws.dir.size(), 0u);
  EXPECT_EQ(ws.mappings.size(), 0u);
}

// The shared mapping is reused only where its reply is free: another client
// already leaves from that port to a server, so the remapped client gets
// another port there (as the kernel's get_unique_tuple falls back), and each
// answer reaches its own client.
TEST(ShardedEngine, ASharedMappingWhoseReplyIsTakenIsNotReused) {
  Workers ws(4, nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"));
  auto send = [&](const char* client, const char* server, uint16_t sport, uint16_t dport) {
    return ws.deliver(FrameBuilder().eth(kClientMac, kInMac).ip(client, server).udp(sport, dport).build(), kIn, 1000);
  };
  ASSERT_EQ(send("198.18.0.2", "198.51.100.7", 40000, 3478).out.verdict, Verdict::kForward);
  auto second = send("198.18.0.3", "198.51.100.7", 40000, 3478);
  const uint16_t mapped = __builtin_bswap16(parsed(second.out).tuple.sport);
  ASSERT_NE(mapped, 40000);
  // The first client's next connection, from the port that is the second's
  // mapping: kept, to a second server.
  auto third = send("198.18.0.2", "198.51.100.8", mapped, 53);
  ASSERT_EQ(__builtin_bswap16(parsed(third.out).tuple.sport), mapped);
  auto again = send("198.18.0.3", "198.51.100.8", 40000, 53);
  ASSERT_EQ(again.out.verdict, Verdict::kForward);
  const uint16_t other = __builtin_bswap16(parsed(again.out).tuple.sport);
  EXPECT_NE(other, mapped);
  for (const auto& [port, client] : {std::pair{mapped, "198.18.0.2"}, std::pair{other, "198.18.0.3"}}) {
    auto r = ws.deliver(
        FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.8", "198.19.0.1").udp(53, port).build(), kOut, 1001);
    ASSERT_EQ(r.out.verdict, Verdict::kForward) << client << " " << port << " " << counter_name(r.out.reason);
    EXPECT_EQ(parsed(r.out).tuple.dst, ip_raw(client));
  }
  EXPECT_EQ(ws.flows(), 4u);
}

// An address pool without --persistent hashes the destination in: a
// client's first connection picks its address, the next ones reuse it on
// every worker (find_appropriate_src), as the kernel's do.
TEST(ShardedEngine, APoolAddressOnceChosenIsTheClientsOnEveryWorker) {
  Workers ws(4, nat_table("-A POSTROUTING -o eth0 -j SNAT --to-source 198.19.0.10-198.19.0.20\n"));
  std::set<uint32_t> addresses;
  std::set<int> workers;
  for (uint16_t i = 0; i < 32; ++i) {
    const std::string server = "198.51.100." + std::to_string(1 + i);
    auto q = ws.deliver(FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", server).udp(40000, 53 + i).build(),
                        kIn, 1000);
    ASSERT_EQ(q.out.verdict, Verdict::kForward);
    EXPECT_EQ(__builtin_bswap16(parsed(q.out).tuple.sport), 40000);
    addresses.insert(parsed(q.out).tuple.src);
    workers.insert(q.worker);
  }
  EXPECT_GE(workers.size(), 3u);
  EXPECT_EQ(addresses.size(), 1u);
  EXPECT_EQ(ws.sum(Counter::adoptions), 0u);  // the port kept: its reply is the receiving worker's
}

// -m limit and -m statistic --mode nth are the rule's, not a worker's: with
// four workers a burst of 4 passes 4 new connections in all (the kernel's
// one xt_limit_priv per rule), and every second new connection is dropped.
TEST(ShardedEngine, ALimitAndAnNthCounterAreTheRulesOnEveryWorker) {
  Workers ws(4, nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n") +
                    "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                    "-A FORWARD -p udp -m udp --dport 53 -m limit --limit 10/sec --limit-burst 4 -j ACCEPT\n"
                    "-A FORWARD -p udp -m udp --dport 53 -j DROP\n"
                    "-A FORWARD -p udp -m udp --dport 123 -m conntrack --ctstate NEW -m statistic --mode nth "
                    "--every 2 --packet 1 -j DROP\n"
                    "COMMIT\n");
  auto dns = [](uint16_t i) { return from_client().udp(static_cast<uint16_t>(20000 + i), 53).build(); };
  const auto first = ws.spread(32, 1000, dns);
  EXPECT_GE(first.workers.size(), 3u);
  EXPECT_EQ(first.forwarded, 4);
  // 10 a second: one token in 100 ms, for whichever worker asks first.
  EXPECT_EQ(ws.spread(8, 1100, [&](uint16_t i) { return dns(100 + i); }).forwarded, 1);

  const auto ntp =
      ws.spread(40, 2000, [](uint16_t i) { return from_client().udp(static_cast<uint16_t>(22000 + i), 123).build(); });
  EXPECT_GE(ntp.workers.size(), 3u);
  EXPECT_EQ(ntp.dropped, 20);
}

// net.ipv4.icmp_msgs_burst is the gateway's: 50 errors at once in all,
// whichever workers the datagrams that cause them land on (from 200
// clients: each destination's own limit, 6 at once, plays no part).
TEST(ShardedEngine, TheIcmpErrorLimitIsTheGatewaysOnEveryWorker) {
  Workers ws(4, nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"));
  const auto probes = ws.spread(200, 1000, [](uint16_t i) {
    const std::string client = "198.18.1." + std::to_string(2 + i);
    return from_client(client.c_str()).ttl(1).udp(static_cast<uint16_t>(30000 + i), 33434).build();
  });
  EXPECT_GE(probes.workers.size(), 3u);
  EXPECT_EQ(probes.forwarded, 50);  // time-exceeded errors, back to the clients
  EXPECT_EQ(ws.sum(Counter::icmp_errors_sent), 50u);
  EXPECT_EQ(ws.sum(Counter::icmp_errors_ratelimited), 150u);
  EXPECT_EQ(ws.sum(Counter::icmp_errors_ratelimited_host), 0u);
}

// net.ipv4.icmp_ratelimit: one client gets 6 time-exceeded errors at once
// and then one a second, whichever workers its datagrams land on; a
// "fragmentation needed" is never limited (icmp_send exempts it).
TEST(ShardedEngine, OneDestinationGetsSixErrorsThenOneASecond) {
  Workers ws(4, nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"));
  auto frame = [](uint16_t i) { return from_client().ttl(1).udp(static_cast<uint16_t>(30000 + i), 33434).build(); };
  auto probe = [&](uint16_t i, uint64_t now) { return ws.deliver(frame(i), kIn, now); };
  const auto burst = ws.spread(20, 1000, frame);
  EXPECT_GE(burst.workers.size(), 3u);
  EXPECT_EQ(burst.forwarded, 6);
  EXPECT_EQ(ws.sum(Counter::icmp_errors_ratelimited_host), 14u);
  EXPECT_EQ(probe(100, 1999).out.verdict, Verdict::kDrop);  // not a second yet
  EXPECT_EQ(probe(101, 2000).out.verdict, Verdict::kForward);
  EXPECT_EQ(probe(102, 2001).out.verdict, Verdict::kDrop);
  // Another client has its own share.
  EXPECT_EQ(ws.deliver(from_client("198.18.0.3").ttl(1).udp(30000, 33434).build(), kIn, 2001).out.verdict,
            Verdict::kForward);
  const auto too_big = ws.spread(60, 2001, [](uint16_t i) {
    return from_client().udp(static_cast<uint16_t>(31000 + i), 53).payload(std::vector<uint8_t>(3000, 7)).build();
  });
  EXPECT_EQ(too_big.forwarded, 60);  // each answered with "fragmentation needed"
  EXPECT_EQ(ws.sum(Counter::drop_frag_needed), 60u);
  EXPECT_EQ(ws.sum(Counter::icmp_errors_ratelimited), 0u);  // the gateway's bucket: 8 of 50 taken
}

// xnat_max_flows_per_source is the gateway's limit (RFC 6888 REQ-4), not a
// worker's: a subscriber's connections spread over the workers, and the
// others' counts are shared.
TEST(ShardedEngine, TheFlowsPerSourceLimitIsTheGatewaysOnEveryWorker) {
  Workers ws(4, nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"), 1 << 20,
             "xnat_max_flows_per_source = 10\n");
  for (const char* client : {"198.18.0.2", "198.18.0.3"}) {
    const auto flows = ws.spread(
        40, 1000, [&](uint16_t i) { return from_client(client).udp(static_cast<uint16_t>(20000 + i), 53).build(); });
    EXPECT_GE(flows.workers.size(), 3u);
    EXPECT_EQ(flows.forwarded, 10) << client;
  }
  EXPECT_EQ(ws.sum(Counter::drop_source_limit), 60u);
  EXPECT_EQ(ws.flows(), 20u);
  // Room again once they expire; the counts went with them.
  for (auto& e : ws.engines) e->conntrack().expire(1000 + 200'000);
  EXPECT_EQ(ws.flow_counts.size(), 0u);
  EXPECT_EQ(
      ws.spread(40, 201'001, [](uint16_t i) { return from_client().udp(static_cast<uint16_t>(21000 + i), 53).build(); })
          .forwarded,
      10);
}

TEST(SourceMap, EnterFindUpdateEraseAcrossWorkers) {
  SourceMap m(2000);  // room for 2 000 flows; as many entries would fill a few windows
  std::vector<uint64_t> fps;
  for (uint32_t i = 0; i < 1000; ++i) {
    fps.push_back(SourceMap::fingerprint(kProtoUdp, i, 40000, 3));
    ASSERT_TRUE(m.enter(fps.back(), i % 4, SourceMap::mapping(i + 1, static_cast<uint16_t>(i)))) << i;
  }
  EXPECT_EQ(m.size(), 1000u);
  // A second worker's entry for the same source; either is an answer.
  ASSERT_TRUE(m.enter(fps[7], 0, SourceMap::mapping(8, 7)));
  uint64_t v;
  for (uint32_t i = 0; i < 1000; ++i) {
    ASSERT_TRUE(m.find(fps[i], &v));
    EXPECT_EQ(SourceMap::mapped_addr(v), i + 1);
    EXPECT_EQ(SourceMap::mapped_port(v), i);
  }
  // The other workers' values summed: worker 3's for source 7, seen from 0 and from 1.
  EXPECT_EQ(m.sum_others(fps[7], 0), SourceMap::mapping(8, 7));
  EXPECT_EQ(m.sum_others(fps[7], 1), 2 * SourceMap::mapping(8, 7));
  m.update(fps[9], 1, SourceMap::mapping(99, 9999));
  ASSERT_TRUE(m.find(fps[9], &v));
  EXPECT_EQ(SourceMap::mapped_port(v), 9999);
  m.update(fps[9], 2, SourceMap::mapping(1, 1));  // not its worker's entry: nothing happens
  ASSERT_TRUE(m.find(fps[9], &v));
  EXPECT_EQ(SourceMap::mapped_port(v), 9999);
  m.erase(fps[7], 0);
  EXPECT_TRUE(m.find(fps[7], &v));  // worker 3's stays
  m.erase(fps[7], 3);
  EXPECT_FALSE(m.find(fps[7], &v));
  EXPECT_EQ(m.sum_others(fps[7], 1), 0u);
  EXPECT_EQ(m.size(), 999u);
  EXPECT_FALSE(m.find(SourceMap::fingerprint(kProtoTcp, 7, 40000, 3), &v));
}

TEST(FlowDirectory, InsertFindEraseAcrossWorkers) {
  FlowDirectory d(1000);
  std::vector<uint64_t> fps;
  for (uint32_t i = 0; i < 1000; ++i) {
    Tuple t;
    t.src = i;
    t.dst = ~i;
    t.sport = 7;
    t.proto = kProtoTcp;
    fps.push_back(FlowDirectory::fingerprint(t, 3));
    ASSERT_TRUE(d.insert(fps.back(), i % 16));
  }
  EXPECT_EQ(d.size(), 1000u);
  for (uint32_t i = 0; i < 1000; ++i) EXPECT_EQ(d.find(fps[i]), static_cast<int>(i % 16));
  for (uint32_t i = 0; i < 1000; i += 2) d.erase(fps[i], i % 16);
  d.erase(fps[1], 5);  // not its worker: nothing happens
  EXPECT_EQ(d.size(), 500u);
  for (uint32_t i = 0; i < 1000; ++i) EXPECT_EQ(d.find(fps[i]), i % 2 ? static_cast<int>(i % 16) : -1);
}

}  // namespace
}  // namespace xnat::test
