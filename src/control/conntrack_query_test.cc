#include "control/conntrack_query.h"

#include <gtest/gtest.h>

#include "packet/tuple.h"

namespace xnat {
namespace {

Flow flow(const char* src, uint16_t sport, const char* dst, uint16_t dport, uint8_t proto, const char* nat_src) {
  Flow f;
  Tuple o;
  EXPECT_TRUE(parse_ipv4(src, &o.src));
  EXPECT_TRUE(parse_ipv4(dst, &o.dst));
  o.sport = __builtin_bswap16(sport);
  o.dport = __builtin_bswap16(dport);
  o.proto = proto;
  Tuple r = invert(o);
  EXPECT_TRUE(parse_ipv4(nat_src, &r.dst));
  f.tuple[0] = o;
  f.tuple[1] = r;
  if (r.dst != o.src) f.status |= kStatusSrcNat;
  return f;
}

ConntrackQuery parse(std::vector<std::string> args) {
  auto q = parse_conntrack_args(args);
  EXPECT_TRUE(q.ok()) << (q.ok() ? "" : q.error().message);
  return q.ok() ? *q : ConntrackQuery{};
}

TEST(ConntrackQuery, FiltersAsConntrackDoes) {
  const Flow nat = flow("198.18.0.2", 40000, "198.51.100.7", 53, 17, "198.19.0.1");
  const Flow plain = flow("198.18.0.3", 40001, "198.51.100.7", 80, 6, "198.18.0.3");
  EXPECT_TRUE(parse({"-L"}).matches(nat, 0));
  EXPECT_TRUE(parse({"-L", "-p", "udp", "-s", "198.18.0.2", "--dport", "53"}).matches(nat, 0));
  EXPECT_FALSE(parse({"-L", "-p", "tcp"}).matches(nat, 0));
  EXPECT_TRUE(parse({"-L", "-q", "198.19.0.1"}).matches(nat, 0));  // reply destination: the mapping
  EXPECT_TRUE(parse({"-L", "--reply-port-dst", "40000"}).matches(nat, 0));
  EXPECT_TRUE(parse({"-L", "--src-nat"}).matches(nat, 0));
  EXPECT_FALSE(parse({"-L", "--src-nat"}).matches(plain, 0));
  EXPECT_FALSE(parse({"-L", "--any-nat"}).matches(plain, 0));
  EXPECT_TRUE(parse({"-L", "-m", "0x4/0xf"}).matches(plain, 0x14));
  EXPECT_FALSE(parse({"-L", "--mark", "4"}).matches(plain, 0x14));
  Flow est = plain;
  est.tcp_state = TcpState::kEstablished;
  EXPECT_TRUE(parse({"-L", "--state", "ESTABLISHED"}).matches(est, 0));
  EXPECT_FALSE(parse({"-L", "--state", "TIME_WAIT"}).matches(est, 0));
}

TEST(ConntrackQuery, OutputFormats) {
  Flow nat = flow("198.18.0.2", 40000, "198.51.100.7", 53, 17, "198.19.0.1");
  nat.expires_ms = 30'000;
  EXPECT_EQ(parse({"-L"}).format(nat, 1000, 0),
            "udp      17 29 src=198.18.0.2 dst=198.51.100.7 sport=40000 dport=53 [UNREPLIED] src=198.51.100.7 "
            "dst=198.19.0.1 sport=53 dport=40000 mark=0 use=1");
  EXPECT_EQ(parse({"-L", "-o", "extended,id"}).format(nat, 1000, 3, 7),
            "ipv4     2 udp      17 29 src=198.18.0.2 dst=198.51.100.7 sport=40000 dport=53 [UNREPLIED] "
            "src=198.51.100.7 dst=198.19.0.1 sport=53 dport=40000 mark=3 use=1 id=7");
  EXPECT_EQ(parse({"-L", "-o", "json,id"}).format(nat, 1000, 0, 9),
            "{\"proto\":17,\"timeout\":29,\"original\":{\"src\":\"198.18.0.2\",\"dst\":\"198.51.100.7\","
            "\"sport\":40000,\"dport\":53},\"reply\":{\"src\":\"198.51.100.7\",\"dst\":\"198.19.0.1\","
            "\"sport\":53,\"dport\":40000},\"unreplied\":true,\"assured\":false,\"src_nat\":true,"
            "\"dst_nat\":false,\"mark\":0,\"id\":9}");
}

TEST(ConntrackQuery, EventsAndTheirMask) {
  ConntrackQuery q = parse({"-E"});
  EXPECT_EQ(q.command, ConntrackQuery::Command::kEvents);
  EXPECT_EQ(q.event_mask, kEventAll);
  EXPECT_EQ(parse({"-E", "-e", "NEW,DESTROY"}).event_mask, kEventNew | kEventDestroy);
  EXPECT_EQ(parse({"-E", "--event-mask", "upd"}).event_mask, kEventUpdate);  // conntrack takes a prefix, any case
  EXPECT_EQ(parse({"-E", "-e", "ALL"}).event_mask, kEventAll);
  q = parse({"-E", "-o", "xml,id,timestamp", "-p", "tcp"});
  EXPECT_EQ(q.output, EntryFormat::kXml);
  EXPECT_TRUE(q.with_id && q.with_timestamp);
  EXPECT_EQ(parse({"-L", "-o", "xml,extended"}).output, EntryFormat::kXml);  // xml wins, as in conntrack
  EXPECT_EQ(parse({"-L", "-o", "extended,xml"}).output, EntryFormat::kXml);

  FlowEvent e;
  e.flow = flow("198.18.0.2", 40000, "198.51.100.7", 53, 17, "198.19.0.1");
  e.flow.expires_ms = 31'000;
  e.at_ms = 1'000;
  e.type = kEventNew;
  e.shows = kShowTimeout;
  e.id = 5;
  std::string out;
  parse({"-E", "-o", "id"}).append_event(&out, e, 9'999);
  EXPECT_EQ(out, "    [NEW] udp      17 30 src=198.18.0.2 dst=198.51.100.7 sport=40000 dport=53 [UNREPLIED] "
                 "src=198.51.100.7 dst=198.19.0.1 sport=53 dport=40000 id=5\n");
  out.clear();
  parse({"-E", "-o", "timestamp"}).append_event(&out, e, 9'999);
  EXPECT_EQ(out[0], '[');
  EXPECT_NE(out.find("]\t    [NEW] udp "), std::string::npos) << out;
}

TEST(ConntrackQuery, ErrorsNameTheOption) {
  for (const auto& [args, want] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{}, "no command: give one of -L, -G, -D, -F, -C, -S, -E"},
           {{"-L", "-D"}, "-D: only one command at a time (-L, -G, -D, -F, -C, -S, -E)"},
           {{"-L", "-s"}, "option -s needs a value"},
           {{"-L", "-s", "10.0.0"}, "-s 10.0.0: expected an IPv4 address"},
           {{"-L", "--sport", "70000"}, "--sport 70000: expected a port"},
           {{"-L", "--state", "OPEN"}, "--state OPEN: expected a TCP state such as ESTABLISHED or TIME_WAIT"},
           {{"-L", "-o", "ktimestamp"}, "-o ktimestamp: xnat prints extended, xml, id, timestamp and json (not ktimestamp)"},
           {{"-E", "-e", "NEW,BOGUS"}, "Bad parameter `NEW,BOGUS' (-e takes ALL, NEW, UPDATES, DESTROY)"},
           {{"-E", "-e", ""}, "Bad parameter `' (-e takes ALL, NEW, UPDATES, DESTROY)"},
           {{"-L", "-f", "ipv6"}, "-f ipv6: xnat tracks IPv4 only"},
           {{"-L", "--bogus"}, "unknown option '--bogus'"}}) {
    auto q = parse_conntrack_args(args);
    ASSERT_FALSE(q.ok());
    EXPECT_EQ(q.error().message, want);
  }
}

}  // namespace
}  // namespace xnat
