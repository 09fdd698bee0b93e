#include "nat/port_allocator.h"

#include <gtest/gtest.h>

#include <set>

#include "packet/frame_builder.h"

namespace xnat {
namespace {

struct Fixture {
  ConntrackSettings s;
  std::unique_ptr<Conntrack> ct;
  Rng rng{5};
  explicit Fixture(uint64_t max = 70000) {
    (void)s.set("nf_conntrack_max", static_cast<int64_t>(max));
    ct = std::make_unique<Conntrack>(s, 1);
  }
  NatContext ctx(Shard shard = {}) { return NatContext{*ct, 1000, rng, shard}; }
  // Allocates a source mapping for client:port -> server:53 and inserts the flow.
  bool take(uint32_t client, uint16_t port, const NatRange& r, Tuple* out, Shard shard = {}) {
    Tuple t;
    t.src = client;
    t.dst = ip_raw("198.51.100.7");
    t.sport = __builtin_bswap16(port);
    t.dport = __builtin_bswap16(53);
    t.proto = kProtoUdp;
    Tuple orig = t;
    auto c = ctx(shard);
    if (!nat_unique_tuple(&t, r, Manip::kSrc, c)) return false;
    EXPECT_NE(ct->insert(orig, invert(t), 1000).idx, kNoRef);
    *out = t;
    return true;
  }
};

NatRange to(const char* ip, uint16_t lo = 0, uint16_t hi = 0) {
  NatRange r;
  r.map_ips = true;
  r.min_ip = r.max_ip = __builtin_bswap32(ip_raw(ip));
  if (lo) {
    r.proto_specified = true;
    r.min_port = lo;
    r.max_port = hi;
  }
  return r;
}

TEST(PortAllocator, KeepsSourcePortWhenFree) {
  Fixture f;
  Tuple t;
  ASSERT_TRUE(f.take(ip_raw("198.18.0.2"), 40000, to("198.19.0.1"), &t));
  EXPECT_EQ(__builtin_bswap16(t.sport), 40000);
  EXPECT_EQ(t.src, ip_raw("198.19.0.1"));
}

TEST(PortAllocator, NeverHandsOutTheSameReplyTupleTwice) {
  Fixture f;
  std::set<uint16_t> ports;
  for (uint32_t c = 0; c < 3000; ++c) {
    Tuple t;
    ASSERT_TRUE(f.take(ip_raw("198.18.0.2") + (c << 24), 40000, to("198.19.0.1"), &t));
    EXPECT_TRUE(ports.insert(__builtin_bswap16(t.sport)).second) << "port reused";
  }
}

TEST(PortAllocator, RandomFullyNeverPreserves) {
  Fixture f;
  NatRange r = to("198.19.0.1", 1024, 65535);
  r.random_fully = true;
  int kept = 0;
  for (uint32_t c = 0; c < 200; ++c) {
    Tuple t;
    ASSERT_TRUE(f.take(ip_raw("198.18.0.2") + (c << 24), 40000, r, &t));
    kept += __builtin_bswap16(t.sport) == 40000;
  }
  EXPECT_LE(kept, 1);  // only by chance, at most once in 200
}

TEST(PortAllocator, LowPortsStayLow) {
  Fixture f;
  Tuple a, b;
  ASSERT_TRUE(f.take(ip_raw("198.18.0.2"), 123, to("198.19.0.1"), &a));
  ASSERT_TRUE(f.take(ip_raw("198.18.0.3"), 123, to("198.19.0.1"), &b));
  EXPECT_EQ(__builtin_bswap16(a.sport), 123);
  EXPECT_GE(__builtin_bswap16(b.sport), 1);
  EXPECT_LE(__builtin_bswap16(b.sport), 511);
}

TEST(PortAllocator, ExhaustedRangeFailsWithinBound) {
  Fixture f;
  NatRange r = to("198.19.0.1", 20000, 20063);  // 64 ports
  int ok = 0;
  for (uint32_t c = 0; c < 100; ++c) {
    Tuple t;
    ok += f.take(ip_raw("198.18.0.2") + (c << 24), 5000, r, &t);
  }
  // The bounded search (128 tries, then halving windows) finds nearly all of a
  // small range; it never hands out more than the range holds.
  EXPECT_LE(ok, 64);
  EXPECT_GE(ok, 60);
}

// Several workers: each hands out only ports whose reply tuple it owns, so
// the reply reaches it by hash alone; the ports differ per server too.
TEST(PortAllocator, WorkersPickPortsWhoseReplyTheyOwn) {
  for (uint32_t workers : {2u, 3u, 16u}) {
    Fixture f;
    std::set<uint16_t> ports;
    for (uint32_t w = 0; w < workers; ++w) {
      Shard shard{w, workers, 99, nullptr};
      for (uint32_t c = 0; c < 100; ++c) {
        Tuple t;
        ASSERT_TRUE(f.take(ip_raw("198.18.0.2") + ((c + 1000 * w) << 24), 40000, to("198.19.0.1"), &t, shard));
        EXPECT_EQ(shard_owner(invert(t), workers, 99), w) << "workers " << workers;
        EXPECT_EQ(shard_owner(t, workers, 99), w);  // symmetric
        ports.insert(__builtin_bswap16(t.sport));
      }
    }
    EXPECT_GT(ports.size(), 50u);  // not all the same residue or the same port
  }
}

TEST(PortAllocator, WorkersKeepThePortWhenTheyOwnIt) {
  Fixture f;
  // Find a client port whose reply worker 1 of 2 owns and one it does not.
  Tuple probe;
  probe.src = ip_raw("198.19.0.1");
  probe.dst = ip_raw("198.51.100.7");
  probe.dport = __builtin_bswap16(53);
  probe.proto = kProtoUdp;
  uint16_t mine = 0, other = 0;
  for (uint16_t p = 40000; !mine || !other; ++p) {
    probe.sport = __builtin_bswap16(p);
    (shard_owner(probe, 2, 99) == 1 ? mine : other) = p;
  }
  Shard shard{1, 2, 99, nullptr};
  Tuple t;
  ASSERT_TRUE(f.take(ip_raw("198.18.0.2"), mine, to("198.19.0.1"), &t, shard));
  EXPECT_EQ(__builtin_bswap16(t.sport), mine);
  ASSERT_TRUE(f.take(ip_raw("198.18.0.3"), other, to("198.19.0.1"), &t, shard));
  EXPECT_NE(__builtin_bswap16(t.sport), other);
  EXPECT_EQ(shard_owner(t, 2, 99), 1u);
}

TEST(PortAllocator, AddressRangeSpreadIsStablePerClient) {
  Fixture f;
  NatRange r;
  r.map_ips = true;
  r.min_ip = 0xC6130000 + 10;
  r.max_ip = 0xC6130000 + 19;
  r.persistent = true;
  std::set<uint32_t> used;
  uint32_t first = 0;
  for (int i = 0; i < 50; ++i) {
    Tuple t;
    ASSERT_TRUE(f.take(ip_raw("198.18.0.2"), static_cast<uint16_t>(30000 + i), r, &t));
    if (i == 0) first = t.src;
    EXPECT_EQ(t.src, first);  // --persistent: one address per client
  }
  for (uint32_t c = 0; c < 200; ++c) {
    Tuple t;
    ASSERT_TRUE(f.take(ip_raw("198.18.0.2") + (c << 24), 30000, r, &t));
    used.insert(__builtin_bswap32(t.src));
  }
  EXPECT_GE(used.size(), 8u);  // clients spread over the range
  for (uint32_t a : used) {
    EXPECT_GE(a, r.min_ip);
    EXPECT_LE(a, r.max_ip);
  }
}

}  // namespace
}  // namespace xnat
