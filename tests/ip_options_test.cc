// IPv4 options as a Linux router treats a datagram it forwards
// (dataplane/ip_options.h): checked on receipt, the router recorded on the
// way out. The expectations are ip_options_compile's and
// ip_forward_options' (net/ipv4/ip_options.c); tests/live/ip_options_oracle.py
// puts the same datagrams through the kernel.
#include <gtest/gtest.h>

#include <cstring>

#include "dataplane/ip_options.h"
#include "golden_cases.h"
#include "packet/checksum.h"
#include "test_util.h"

namespace xnat::test {
namespace {

constexpr size_t kEth = 14;

// An IPv4 header with these options (padded with end-of-list to a multiple of 4).
std::vector<uint8_t> header(std::vector<uint8_t> opts) {
  while (opts.size() % 4) opts.push_back(0);
  const size_t hlen = 20 + opts.size();
  const std::vector<uint8_t> f = from_client().ip_options(std::move(opts)).udp(5000, 53).build();
  return std::vector<uint8_t>(f.begin() + kEth, f.begin() + static_cast<long>(kEth + hlen));
}

IpOptionsVerdict check(std::vector<uint8_t> opts) { return check_ip_options(header(std::move(opts)).data()); }

void expect_malformed(std::vector<uint8_t> opts, unsigned pointer, const char* what) {
  const IpOptionsVerdict v = check(std::move(opts));
  EXPECT_EQ(v.check, IpOptionsCheck::kMalformed) << what;
  EXPECT_EQ(v.pointer, pointer) << what;
}

TEST(IpOptions, WellFormedListsPass) {
  EXPECT_EQ(check({1, 1, 1, 0}).check, IpOptionsCheck::kOk);                    // no-ops, end
  EXPECT_EQ(check({7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0}).check, IpOptionsCheck::kOk);  // record route, 2 slots
  EXPECT_EQ(check({7, 7, 8, 1, 2, 3, 4}).check, IpOptionsCheck::kOk);              // record route, full
  EXPECT_EQ(check({68, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0}).check, IpOptionsCheck::kOk);  // timestamps only
  EXPECT_EQ(check({68, 12, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0}).check, IpOptionsCheck::kOk);  // with addresses
  EXPECT_EQ(check({68, 8, 9, 0xE0, 0, 0, 0, 0}).check, IpOptionsCheck::kOk);   // full, overflow 14
  EXPECT_EQ(check({148, 4, 0, 0}).check, IpOptionsCheck::kOk);                  // router alert
  EXPECT_EQ(check({130, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0}).check, IpOptionsCheck::kOk);  // security: passes
  EXPECT_EQ(check({0, 7, 3, 4}).check, IpOptionsCheck::kOk);  // junk after the end is not read
}

TEST(IpOptions, MalformedListsPointAtTheOffendingOctet) {
  expect_malformed({7, 1, 0, 0}, 20, "an option shorter than its type and length");
  expect_malformed({7, 9, 4, 0}, 20, "an option longer than the header");
  expect_malformed({1, 1, 1, 7}, 23, "a type without its length octet");
  expect_malformed({7, 7, 3, 0, 0, 0, 0}, 22, "record route pointing into its own header");
  expect_malformed({7, 6, 4, 0, 0, 0}, 22, "record route with room, but not for an address");
  expect_malformed({7, 2}, 21, "record route without a pointer");
  expect_malformed({7, 7, 4, 0, 0, 0, 0, 7, 7, 4, 0, 0, 0, 0}, 27, "a second record route");
  expect_malformed({68, 3, 5}, 21, "timestamp without its flags");
  expect_malformed({68, 8, 4, 0, 0, 0, 0, 0}, 22, "timestamp pointing into its own header");
  expect_malformed({68, 8, 5, 1, 0, 0, 0, 0}, 22, "timestamp with address, room for one word only");
  expect_malformed({68, 8, 9, 0xF0, 0, 0, 0, 0}, 23, "full timestamp whose overflow count would wrap");
  expect_malformed({148, 3, 0}, 21, "router alert shorter than 4");
  expect_malformed({131, 7, 4, 0, 0, 0, 0, 137, 7, 4, 0, 0, 0, 0}, 27, "a second source route");
  expect_malformed({131, 7, 3, 0, 0, 0, 0}, 22, "source route pointing into its own header");
}

TEST(IpOptions, SourceRoutesAreRefused) {
  EXPECT_EQ(check({131, 7, 4, 198, 51, 100, 7}).check, IpOptionsCheck::kSourceRoute);  // loose
  EXPECT_EQ(check({137, 7, 4, 198, 51, 100, 7}).check, IpOptionsCheck::kSourceRoute);  // strict
  EXPECT_EQ(check({1, 137, 7, 8, 198, 51, 100, 7}).check, IpOptionsCheck::kSourceRoute);  // used up, still one
}

struct Forwarded {
  std::vector<uint8_t> ip;
  bool changed;
};
Forwarded forward(std::vector<uint8_t> opts, const Fib& fib, uint32_t now_ms = 0x01020304) {
  Forwarded f{header(std::move(opts)), false};
  IpOptionsStamp s;
  s.out_addr = ip_raw("198.19.0.1");
  s.back_addr = ip_raw("198.18.0.1");
  s.now_ms = now_ms;
  f.changed = forward_ip_options(f.ip.data(), s, fib);
  EXPECT_EQ(csum_finish(csum_partial(f.ip.data(), f.ip.size())), 0) << "header checksum";
  return f;
}
std::vector<uint8_t> options(const Forwarded& f) { return std::vector<uint8_t>(f.ip.begin() + 20, f.ip.end()); }

TEST(IpOptions, ForwardingRecordsTheRouter) {
  const EngineConfig cfg = engine_config(nat_table(""));
  const Fib& fib = cfg.fib;
  // Record route: the output interface's address in the next slot.
  auto f = forward({7, 11, 8, 198, 18, 0, 2, 0, 0, 0, 0, 1}, fib);
  EXPECT_TRUE(f.changed);
  EXPECT_EQ(options(f), (std::vector<uint8_t>{7, 11, 12, 198, 18, 0, 2, 198, 19, 0, 1, 1}));
  // Full: left as it is.
  f = forward({7, 7, 8, 198, 18, 0, 2, 0}, fib);
  EXPECT_FALSE(f.changed);
  EXPECT_EQ(options(f), (std::vector<uint8_t>{7, 7, 8, 198, 18, 0, 2, 0}));
  // Timestamps only: the time (milliseconds since midnight UT, big-endian).
  f = forward({68, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0}, fib);
  EXPECT_EQ(options(f), (std::vector<uint8_t>{68, 12, 9, 0, 1, 2, 3, 4, 0, 0, 0, 0}));
  // With addresses: the one facing the source, then the time.
  f = forward({68, 12, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0}, fib);
  EXPECT_EQ(options(f), (std::vector<uint8_t>{68, 12, 13, 1, 198, 18, 0, 1, 1, 2, 3, 4}));
  // Prespecified: stamped where the address is the gateway's; not where it
  // is routed elsewhere (the pointer stays).
  f = forward({68, 12, 5, 3, 198, 19, 0, 1, 0, 0, 0, 0}, fib);
  EXPECT_EQ(options(f), (std::vector<uint8_t>{68, 12, 13, 3, 198, 19, 0, 1, 1, 2, 3, 4}));
  f = forward({68, 12, 5, 3, 198, 51, 100, 7, 0, 0, 0, 0}, fib);
  EXPECT_FALSE(f.changed);
  // Full: its overflow count goes up (not for prespecified ones).
  f = forward({68, 8, 9, 0x21, 1, 2, 3, 4}, fib);
  EXPECT_EQ(options(f), (std::vector<uint8_t>{68, 8, 9, 0x31, 1, 2, 3, 4}));
  f = forward({68, 12, 13, 3, 1, 2, 3, 4, 5, 6, 7, 8}, fib);
  EXPECT_FALSE(f.changed);
  // After the end of the list: ends.
  f = forward({1, 0, 7, 3, 1, 2, 3, 4}, fib);
  EXPECT_EQ(options(f), (std::vector<uint8_t>{1, 0, 0, 0, 0, 0, 0, 0}));
  f = forward({1, 1, 1, 0}, fib);
  EXPECT_FALSE(f.changed);
}

const std::string kMasquerade = nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n");

TEST(IpOptions, TheEngineRecordsItselfBothWays) {
  auto e = make_engine(kMasquerade);
  const std::vector<uint8_t> rr = {7, 15, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  Output o = run(*e, from_client().ip_options(rr).udp(5000, 53).build(), kIn, 1000);
  ASSERT_EQ(o.verdict, Verdict::kForward) << counter_name(o.reason);
  const uint8_t* ip = o.frame.data() + kEth;
  ASSERT_EQ(ip[0], 0x49);
  EXPECT_EQ(std::vector<uint8_t>(ip + 20, ip + 36),
            (std::vector<uint8_t>{7, 15, 8, 198, 19, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  EXPECT_EQ(csum_finish(csum_partial(ip, 36)), 0);
  EXPECT_EQ(o.frame[kEth + 22], 8);
  // The answer, with the list so far: the inside address goes in next.
  const std::vector<uint8_t> back = {7, 15, 12, 198, 19, 0, 1, 198, 51, 100, 7, 0, 0, 0, 0, 1};
  o = run(*e, FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").ip_options(back).udp(53, 5000).build(),
          kOut, 1001);
  ASSERT_EQ(o.verdict, Verdict::kForward) << counter_name(o.reason);
  ip = o.frame.data() + kEth;
  EXPECT_EQ(std::vector<uint8_t>(ip + 20, ip + 36),
            (std::vector<uint8_t>{7, 15, 16, 198, 19, 0, 1, 198, 51, 100, 7, 198, 18, 0, 1, 1}));
  EXPECT_EQ(csum_finish(csum_partial(ip, 36)), 0);
  EXPECT_EQ(std::memcmp(ip + 16, "\xc6\x12\x00\x02", 4), 0) << "translated back to the client";
}

TEST(IpOptions, TheEngineAnswersMalformedOptionsAndDropsSourceRoutes) {
  auto e = make_engine(kMasquerade);
  // Record route whose pointer is 3: a parameter problem pointing at octet 22.
  Output o = run(*e, from_client().ip_options({7, 7, 3, 0, 0, 0, 0, 0}).udp(5000, 53).build(), kIn, 1000);
  ASSERT_EQ(o.verdict, Verdict::kForward);
  EXPECT_EQ(o.out_if, kIn);
  const uint8_t* ip = o.frame.data() + kEth;
  const uint8_t* icmp = ip + (ip[0] & 0x0F) * 4;
  EXPECT_EQ(icmp[0], kIcmpParamProblem);
  EXPECT_EQ(icmp[1], 0);
  EXPECT_EQ(icmp[4], 22) << "the pointer";
  EXPECT_EQ(std::memcmp(ip + 16, "\xc6\x12\x00\x02", 4), 0) << "to the client";
  EXPECT_EQ(e->counters().get(Counter::drop_bad_ip_options), 1u);
  EXPECT_EQ(e->counters().get(Counter::icmp_errors_sent), 1u);
  // A loose source route: dropped, no answer.
  o = run(*e, from_client().ip_options({131, 7, 4, 198, 51, 100, 7, 0}).udp(5001, 53).build(), kIn, 1000);
  EXPECT_EQ(o.verdict, Verdict::kDrop);
  EXPECT_EQ(o.reason, Counter::drop_source_route);
  EXPECT_EQ(e->counters().get(Counter::icmp_errors_sent), 1u);
  EXPECT_EQ(e->conntrack().count(), 0u) << "neither opened a connection";
  // Without options the same flow opens.
  EXPECT_EQ(run(*e, from_client().udp(5001, 53).build(), kIn, 1000).verdict, Verdict::kForward);
  EXPECT_EQ(e->conntrack().count(), 1u);
}

}  // namespace
}  // namespace xnat::test
