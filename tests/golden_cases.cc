#include "golden_cases.h"

#include "conntrack/conntrack.h"

namespace xnat::test {

std::vector<Case> golden_cases() {
  std::vector<Case> cs;

  {  // MASQUERADE keeps the source port when free (netfilter's first choice).
    Case c{"masquerade_udp", nat_table("-A POSTROUTING -s 198.18.0.0/16 -o eth0 -j MASQUERADE\n"), {}, 1};
    c.steps.push_back({"request leaves with the outside address, port kept", kIn, 1000,
                       FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.51.100.7").udp(5000, 53).payload("q").build(),
                       Verdict::kForward, kOut,
                       FrameBuilder().eth(kOutMac, kRouterMac).ip("198.19.0.1", "198.51.100.7").ttl(63).udp(5000, 53).payload("q").build()});
    c.steps.push_back({"reply is translated back to the client", kOut, 1010,
                       FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").udp(53, 5000).payload("a").build(),
                       Verdict::kForward, kIn,
                       FrameBuilder().eth(kInMac, kClientMac).ip("198.51.100.7", "198.18.0.2").ttl(63).udp(53, 5000).payload("a").build()});
    c.steps.push_back({"a zero UDP checksum stays zero (RFC 768)", kIn, 1020,
                       FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.51.100.7").udp(5000, 53).udp_no_checksum().payload("z").build(),
                       Verdict::kForward, kOut,
                       FrameBuilder().eth(kOutMac, kRouterMac).ip("198.19.0.1", "198.51.100.7").ttl(63).udp(5000, 53).udp_no_checksum().payload("z").build()});
    c.steps.push_back({"unsolicited inbound to the outside address is for the host", kOut, 1030,
                       FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.8", "198.19.0.1").udp(53, 5001).build(),
                       Verdict::kToHost});
    cs.push_back(std::move(c));
  }

  {  // The cases above mostly use 198.18.0.2, whose rewrite to 198.19.0.1 (or
     // back) leaves the one's-complement sum unchanged: a missing IP header or
     // pseudo-header checksum update cannot fail them. 198.18.0.3 does not
     // cancel out, so here every checksum update shows in the output bytes.
    Case c{"checksums_follow_the_addresses",
           nat_table("-A PREROUTING -d 198.19.0.1/32 -i eth0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.18.0.3:80\n"
                     "-A POSTROUTING -o eth0 -j MASQUERADE\n"),
           {}, 4};
    const MacAddr m = kClient2Mac;
    c.steps.push_back({"UDP out", kIn, 1000, from_client("198.18.0.3", m).udp(5000, 53).payload("q").build(), Verdict::kForward, kOut,
                       FrameBuilder().eth(kOutMac, kRouterMac).ip("198.19.0.1", "198.51.100.7").ttl(63).udp(5000, 53).payload("q").build()});
    c.steps.push_back({"UDP back", kOut, 1001,
                       FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").udp(53, 5000).payload("a").build(),
                       Verdict::kForward, kIn,
                       FrameBuilder().eth(kInMac, m).ip("198.51.100.7", "198.18.0.3").ttl(63).udp(53, 5000).payload("a").build()});
    c.steps.push_back({"TCP out", kIn, 1002, from_client("198.18.0.3", m).tcp(41000, 443, kTcpSyn, 5).build(), Verdict::kForward, kOut,
                       FrameBuilder().eth(kOutMac, kRouterMac).ip("198.19.0.1", "198.51.100.7").ttl(63).tcp(41000, 443, kTcpSyn, 5).build()});
    c.steps.push_back({"TCP back", kOut, 1003,
                       FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").tcp(443, 41000, kTcpSyn | kTcpAck, 70, 6).build(),
                       Verdict::kForward, kIn,
                       FrameBuilder().eth(kInMac, m).ip("198.51.100.7", "198.18.0.3").ttl(63).tcp(443, 41000, kTcpSyn | kTcpAck, 70, 6).build()});
    c.steps.push_back({"ICMP echo out", kIn, 1004, from_client("198.18.0.3", m).icmp(kIcmpEcho, 0, 91, 1).build(), Verdict::kForward, kOut,
                       FrameBuilder().eth(kOutMac, kRouterMac).ip("198.19.0.1", "198.51.100.7").ttl(63).icmp(kIcmpEcho, 0, 91, 1).build()});
    c.steps.push_back({"ICMP echo back", kOut, 1005,
                       FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").icmp(kIcmpEchoReply, 0, 91, 1).build(),
                       Verdict::kForward, kIn,
                       FrameBuilder().eth(kInMac, m).ip("198.51.100.7", "198.18.0.3").ttl(63).icmp(kIcmpEchoReply, 0, 91, 1).build()});
    auto quoted_out = FrameBuilder().ip("198.19.0.1", "198.51.100.7").ttl(63).udp(5000, 53).payload("q").ip_part();
    auto quoted_in = FrameBuilder().ip("198.18.0.3", "198.51.100.7").ttl(63).udp(5000, 53).payload("q").ip_part();
    c.steps.push_back({"ICMP error about the UDP flow: outer and quoted headers", kOut, 1006,
                       FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").tos(0xC0).icmp_error(kIcmpDestUnreach, 3, quoted_out).build(),
                       Verdict::kForward, kIn,
                       FrameBuilder().eth(kInMac, m).ip("198.51.100.7", "198.18.0.3").tos(0xC0).ttl(63).icmp_error(kIcmpDestUnreach, 3, quoted_in).build()});
    c.steps.push_back({"DNAT in, to 198.18.0.3:80", kOut, 1007,
                       FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.9", "198.19.0.1").tcp(40000, 8080, kTcpSyn, 7).build(),
                       Verdict::kForward, kIn,
                       FrameBuilder().eth(kInMac, m).ip("198.51.100.9", "198.18.0.3").ttl(63).tcp(40000, 80, kTcpSyn, 7).build()});
    c.steps.push_back({"DNAT reply out, from the published address and port", kIn, 1008,
                       FrameBuilder().eth(m, kInMac).ip("198.18.0.3", "198.51.100.9").tcp(80, 40000, kTcpSyn | kTcpAck, 99, 8).build(),
                       Verdict::kForward, kOut,
                       FrameBuilder().eth(kOutMac, kRouterMac).ip("198.19.0.1", "198.51.100.9").ttl(63).tcp(8080, 40000, kTcpSyn | kTcpAck, 99, 8).build()});
    cs.push_back(std::move(c));
  }

  {  // SNAT to one address and a one-port range: the second client finds no port.
    Case c{"snat_single_port_exhaustion",
           nat_table("-A POSTROUTING -o eth0 -p udp -j SNAT --to-source 198.19.0.10:20000-20000\n"), {}, 1};
    c.steps.push_back({"first client gets the only port", kIn, 1000,
                       from_client().udp(5000, 53).build(), Verdict::kForward, kOut,
                       FrameBuilder().eth(kOutMac, kRouterMac).ip("198.19.0.10", "198.51.100.7").ttl(63).udp(20000, 53).build()});
    c.steps.push_back({"second client to the same server: no free tuple, counted no_port", kIn, 1001,
                       from_client("198.18.0.3", kClient2Mac).udp(5000, 53).build(), Verdict::kDrop, -1, {},
                       Counter::drop_no_port});
    cs.push_back(std::move(c));
  }

  {  // DNAT port forwarding from the outside address to an inside server.
    Case c{"dnat_port_forward",
           nat_table("-A PREROUTING -d 198.19.0.1/32 -i eth0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.18.0.2:80\n"),
           {}, 1};
    c.steps.push_back({"SYN to the published port reaches the inside server", kOut, 1000,
                       FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.9", "198.19.0.1").tcp(40000, 8080, kTcpSyn, 7).build(),
                       Verdict::kForward, kIn,
                       FrameBuilder().eth(kInMac, kClientMac).ip("198.51.100.9", "198.18.0.2").ttl(63).tcp(40000, 80, kTcpSyn, 7).build()});
    c.steps.push_back({"an ACK from the client before any SYN/ACK is invalid (netfilter: sSS -> sIV)", kOut, 1001,
                       FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.9", "198.19.0.1").tcp(40000, 8080, kTcpAck, 8, 1).build(),
                       Verdict::kDrop, -1, {}, Counter::drop_invalid});
    c.steps.push_back({"a lone FIN is never valid (tcp_valid_flags)", kOut, 1001,
                       FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.9", "198.19.0.1").tcp(40000, 8080, kTcpFin, 8).build(),
                       Verdict::kDrop, -1, {}, Counter::drop_invalid});
    c.steps.push_back({"SYN/ACK leaves from the published address and port", kIn, 1002,
                       FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.51.100.9").tcp(80, 40000, kTcpSyn | kTcpAck, 99, 8).build(),
                       Verdict::kForward, kOut,
                       FrameBuilder().eth(kOutMac, kRouterMac).ip("198.19.0.1", "198.51.100.9").ttl(63).tcp(8080, 40000, kTcpSyn | kTcpAck, 99, 8).build()});
    cs.push_back(std::move(c));
  }

  {  // REDIRECT: to the ingress interface's address, for the host's proxy.
    Case c{"redirect_to_local_proxy",
           nat_table("-A PREROUTING -i eth1 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3128\n"), {}, 1};
    c.steps.push_back({"web request is handed to the host, rewritten to 198.18.0.1:3128", kIn, 1000,
                       from_client().tcp(41000, 80, kTcpSyn).build(), Verdict::kToHost, -1,
                       FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.18.0.1").tcp(41000, 3128, kTcpSyn).build()});
    cs.push_back(std::move(c));
  }

  {  // NETMAP: static 1:1 prefix mapping, both ways.
    Case c{"netmap_static_one_to_one",
           nat_table("-A PREROUTING -d 198.19.1.0/24 -i eth0 -j NETMAP --to 198.18.0.0/24\n"
                     "-A POSTROUTING -s 198.18.0.0/24 -o eth0 -j NETMAP --to 198.19.1.0/24\n"),
           {}, 2};
    c.steps.push_back({"outbound: the host part is kept", kIn, 1000, from_client().udp(6000, 123).build(),
                       Verdict::kForward, kOut,
                       FrameBuilder().eth(kOutMac, kRouterMac).ip("198.19.1.2", "198.51.100.7").ttl(63).udp(6000, 123).build()});
    c.steps.push_back({"inbound new connection to the mapped address", kOut, 1001,
                       FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.9", "198.19.1.2").tcp(50000, 22, kTcpSyn).build(),
                       Verdict::kForward, kIn,
                       FrameBuilder().eth(kInMac, kClientMac).ip("198.51.100.9", "198.18.0.2").ttl(63).tcp(50000, 22, kTcpSyn).build()});
    cs.push_back(std::move(c));
  }

  {  // Stateless prefix translation: no conntrack entry at all.
    Case c{"rawnat_stateless",
           "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
           "-A PREROUTING -i eth0 -d 198.19.2.0/24 -j RAWDNAT --to-destination 198.18.0.0/24\nCOMMIT\n"
           "*rawpost\n:POSTROUTING ACCEPT [0:0]\n"
           "-A POSTROUTING -o eth0 -s 198.18.0.0/24 -j RAWSNAT --to-source 198.19.2.0/24\nCOMMIT\n",
           {}, 0};
    c.steps.push_back({"outbound source prefix rewritten", kIn, 1000, from_client().tcp(1234, 443, kTcpSyn).build(),
                       Verdict::kForward, kOut,
                       FrameBuilder().eth(kOutMac, kRouterMac).ip("198.19.2.2", "198.51.100.7").ttl(63).tcp(1234, 443, kTcpSyn).build()});
    c.steps.push_back({"inbound destination prefix rewritten", kOut, 1001,
                       FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.2.2").tcp(443, 1234, kTcpSyn | kTcpAck).build(),
                       Verdict::kForward, kIn,
                       FrameBuilder().eth(kInMac, kClientMac).ip("198.51.100.7", "198.18.0.2").ttl(63).tcp(443, 1234, kTcpSyn | kTcpAck).build()});
    cs.push_back(std::move(c));
  }

  {  // ICMP echo under MASQUERADE: tracked by identifier.
    Case c{"masquerade_icmp_echo", nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"), {}, 1};
    c.steps.push_back({"echo request", kIn, 1000, from_client().icmp(kIcmpEcho, 0, 77, 1).build(), Verdict::kForward, kOut,
                       FrameBuilder().eth(kOutMac, kRouterMac).ip("198.19.0.1", "198.51.100.7").ttl(63).icmp(kIcmpEcho, 0, 77, 1).build()});
    c.steps.push_back({"echo reply", kOut, 1001,
                       FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").icmp(kIcmpEchoReply, 0, 77, 1).build(),
                       Verdict::kForward, kIn,
                       FrameBuilder().eth(kInMac, kClientMac).ip("198.51.100.7", "198.18.0.2").ttl(63).icmp(kIcmpEchoReply, 0, 77, 1).build()});
    c.steps.push_back({"an echo reply nobody asked for is invalid", kOut, 1002,
                       FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").icmp(kIcmpEchoReply, 0, 78, 1).build(),
                       Verdict::kDrop, -1, {}, Counter::drop_invalid});
    cs.push_back(std::move(c));
  }

  {  // ICMP error about a translated flow (RFC 5508): inside and outside fixed.
    Case c{"icmp_error_translated",
           nat_table("-A POSTROUTING -o eth0 -p udp -j SNAT --to-source 198.19.0.1:30000\n"), {}, 1};
    auto sent = FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.51.100.7").udp(5000, 33434).payload("probe");
    c.steps.push_back({"probe leaves with port 30000", kIn, 1000, sent.build(), Verdict::kForward, kOut,
                       FrameBuilder().eth(kOutMac, kRouterMac).ip("198.19.0.1", "198.51.100.7").ttl(63).udp(30000, 33434).payload("probe").build()});
    auto quoted_out = FrameBuilder().ip("198.19.0.1", "198.51.100.7").ttl(63).udp(30000, 33434).payload("probe").ip_part();
    auto quoted_in = FrameBuilder().ip("198.18.0.2", "198.51.100.7").ttl(63).udp(5000, 33434).payload("probe").ip_part();
    c.steps.push_back({"port unreachable comes back to the client with the datagram it sent", kOut, 1001,
                       FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").tos(0xC0).icmp_error(kIcmpDestUnreach, 3, quoted_out).build(),
                       Verdict::kForward, kIn,
                       FrameBuilder().eth(kInMac, kClientMac).ip("198.51.100.7", "198.18.0.2").tos(0xC0).ttl(63).icmp_error(kIcmpDestUnreach, 3, quoted_in).build()});
    auto stray = FrameBuilder().ip("198.19.0.1", "198.51.100.99").udp(1, 2).ip_part();
    c.steps.push_back({"an ICMP error about no tracked flow is dropped", kOut, 1002,
                       FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.99", "198.19.0.5").icmp_error(kIcmpDestUnreach, 3, stray).build(),
                       Verdict::kDrop, -1, {}, Counter::drop_icmp_error_untracked});
    cs.push_back(std::move(c));
  }

  {  // TTL runs out at the gateway: ICMP time exceeded from the ingress address.
    Case c{"ttl_expired", nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"), {}, 0};
    auto probe = from_client().ttl(1).udp(5000, 33434);
    std::vector<uint8_t> quote = probe.ip_part();
    c.steps.push_back({"TTL 1: time exceeded back to the sender, no flow created", kIn, 1000, probe.build(),
                       Verdict::kForward, kIn,
                       FrameBuilder().eth(kInMac, kClientMac).ip("198.18.0.1", "198.18.0.2").tos(0xC0).ip_id(0).frag(0)
                           .icmp_error(kIcmpTimeExceeded, 0, quote).build(),
                       Counter::drop_ttl_expired});
    cs.push_back(std::move(c));
  }

  {  // 802.1Q: a tagged frame is forwarded with its tag.
    Case c{"vlan_tag_kept", nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"), {}, 1};
    c.steps.push_back({"tagged request", kIn, 1000, from_client().vlan(42).udp(7000, 53).build(), Verdict::kForward, kOut,
                       FrameBuilder().eth(kOutMac, kRouterMac).vlan(42).ip("198.19.0.1", "198.51.100.7").ttl(63).udp(7000, 53).build()});
    cs.push_back(std::move(c));
  }

  {  // Docker's published-port chain: DNAT only for traffic not from the bridge.
    Case c{"docker_chain_jump_and_return",
           nat_table(":DOCKER - [0:0]\n"
                     "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n"
                     "-A POSTROUTING -s 198.18.0.0/16 ! -o eth1 -j MASQUERADE\n"
                     "-A DOCKER -i eth1 -j RETURN\n"
                     "-A DOCKER ! -i eth1 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.18.0.2:80\n")
           ,
           {}, 1};
    c.steps.push_back({"outside client to the published port", kOut, 1000,
                       FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.9", "198.19.0.1").tcp(40001, 8080, kTcpSyn).build(),
                       Verdict::kForward, kIn,
                       FrameBuilder().eth(kInMac, kClientMac).ip("198.51.100.9", "198.18.0.2").ttl(63).tcp(40001, 80, kTcpSyn).build()});
    c.steps.push_back({"inside client to the gateway's port 8080 returns early: for the host", kIn, 1001,
                       FrameBuilder().eth(kClient2Mac, kInMac).ip("198.18.0.3", "198.18.0.1").tcp(40002, 8080, kTcpSyn).build(),
                       Verdict::kToHost});
    cs.push_back(std::move(c));
  }
  {  // RFC 5508 in the reply direction: an inside server's error about a DNATed datagram.
    Case c{"icmp_error_from_dnat_server",
           nat_table("-A PREROUTING -d 198.19.0.1/32 -i eth0 -p udp -m udp --dport 5353 -j DNAT --to-destination 198.18.0.2:53\n"),
           {}, 1};
    c.steps.push_back({"query to the published port reaches the inside server", kOut, 1000,
                       FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.9", "198.19.0.1").udp(40000, 5353).payload("q").build(),
                       Verdict::kForward, kIn,
                       FrameBuilder().eth(kInMac, kClientMac).ip("198.51.100.9", "198.18.0.2").ttl(63).udp(40000, 53).payload("q").build()});
    auto as_received = FrameBuilder().ip("198.51.100.9", "198.18.0.2").ttl(63).udp(40000, 53).payload("q").ip_part();
    auto as_sent = FrameBuilder().ip("198.51.100.9", "198.19.0.1").ttl(63).udp(40000, 5353).payload("q").ip_part();
    c.steps.push_back({"the server's port unreachable leaves from the public address, quoting what the client sent", kIn, 1001,
                       FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.51.100.9").tos(0xC0).icmp_error(kIcmpDestUnreach, 3, as_received).build(),
                       Verdict::kForward, kOut,
                       FrameBuilder().eth(kOutMac, kRouterMac).ip("198.19.0.1", "198.51.100.9").tos(0xC0).ttl(63).icmp_error(kIcmpDestUnreach, 3, as_sent).build()});
    cs.push_back(std::move(c));
  }

  {  // netfilter: "If only reply is a RST ... delete the conntrack immediately".
    Case c{"tcp_rst_as_only_reply_deletes", nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"), {}, 0};
    c.steps.push_back({"SYN out", kIn, 1000, from_client().tcp(41000, 25, kTcpSyn, 10).build(), Verdict::kForward, kOut,
                       FrameBuilder().eth(kOutMac, kRouterMac).ip("198.19.0.1", "198.51.100.7").ttl(63).tcp(41000, 25, kTcpSyn, 10).build()});
    c.steps.push_back({"RST/ACK back: translated, and the entry is gone", kOut, 1001,
                       FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").tcp(25, 41000, kTcpRst | kTcpAck, 0, 11).build(),
                       Verdict::kForward, kIn,
                       FrameBuilder().eth(kInMac, kClientMac).ip("198.51.100.7", "198.18.0.2").ttl(63).tcp(25, 41000, kTcpRst | kTcpAck, 0, 11).build()});
    cs.push_back(std::move(c));
  }

  {  // RFC 1122 reopen: a SYN on a TIME_WAIT entry replaces it.
    Case c{"tcp_reopen_from_time_wait", nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"), {}, 1};
    struct Seg {
      int from;  // kIn: client, kOut: server
      uint8_t flags;
    };
    const Seg segs[] = {{kIn, kTcpSyn}, {kOut, kTcpSyn | kTcpAck}, {kIn, kTcpAck}, {kIn, kTcpFin | kTcpAck},
                        {kOut, kTcpFin | kTcpAck}, {kIn, kTcpAck}, {kIn, kTcpSyn}};
    uint64_t t = 1000;
    for (const Seg& g : segs) {
      if (g.from == kIn) {
        c.steps.push_back({"client segment", kIn, t++, from_client().tcp(42000, 80, g.flags).build(), Verdict::kForward, kOut,
                           FrameBuilder().eth(kOutMac, kRouterMac).ip("198.19.0.1", "198.51.100.7").ttl(63).tcp(42000, 80, g.flags).build()});
      } else {
        c.steps.push_back({"server segment", kOut, t++,
                           FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").tcp(80, 42000, g.flags).build(),
                           Verdict::kForward, kIn,
                           FrameBuilder().eth(kInMac, kClientMac).ip("198.51.100.7", "198.18.0.2").ttl(63).tcp(80, 42000, g.flags).build()});
      }
    }
    c.steps.back().what = "new SYN on the TIME_WAIT entry: reopened as a new connection";
    cs.push_back(std::move(c));
  }
  return cs;
}


}  // namespace xnat::test
