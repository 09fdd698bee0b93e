#!/usr/bin/env python3
"""The kernel as the oracle for xnat's rules: nat and filter FORWARD.

  tests/live/rules_oracle.py XNAT_BINARY [ROUNDS [SEED]]

Each round generates an iptables-save ruleset (nat: MASQUERADE or SNAT to a
pool of addresses, and DNAT; filter: FORWARD with a random policy and rules
drawn from what real rulesets hold -- conntrack and state matches, addresses, ports, user chains
with RETURN, REJECT with ICMP errors and TCP resets, -m statistic nth) and
traffic (UDP and TCP from inside and outside: new connections, answers,
unsolicited frames to DNATed ports and inside hosts). The frames go one by
one through a Linux gateway namespace running that ruleset, and then through
`xnat replay` with the same ruleset. Per frame the two must agree: forwarded
with the same addresses and ports, answered with the same ICMP error or TCP
reset, or dropped; and the connections left must be the same. The kernel's
FORWARD chain starts with `--ctstate INVALID -j DROP`, which is what xnat does
before any rule.

Root only; the network is three namespaces named with this process's ID,
removed on exit (../shared/TESTNET.md). Traffic is a few thousand frames.
"""
import os
import random
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tcp_window_oracle import (csum, enter, gateway_ends, libc, mac_of, read_pcap, sh,  # noqa: E402
                               three_namespaces, write_pcap)

ID = os.getpid()
NS_C, NS_G, NS_S = f"xrc{ID}", f"xrg{ID}", f"xrs{ID}"
IF_C, IF_GI, IF_GO, IF_S = f"xrc0{ID}", f"xrgi{ID}", f"xrgo{ID}", f"xrs0{ID}"
GW_IN, GW_OUT = "198.18.0.1", "198.19.0.1"
CLIENTS = ["198.18.0.2", "198.18.0.3", "198.18.0.4"]
SERVERS = ["198.19.0.2", "198.19.0.3"]
SYN, ACK, RST = 0x02, 0x10, 0x04
PROBE_PORT = 9  # the kernel run's marker datagrams: untracked, accepted first
XNAT_MAC = {"in": bytes.fromhex("020000000001"), "out": bytes.fromhex("020000000002"),
            "client": bytes.fromhex("020000000010"), "server": bytes.fromhex("020000000020")}


def ip_frame(dst_mac, src_mac, src, dst, proto, l4, ip_id):
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    if proto in (6, 17):
        off = 16 if proto == 6 else 6
        l4 = l4[:off] + struct.pack("!H", csum(s + d + struct.pack("!BBH", 0, proto, len(l4)) + l4)) + l4[off + 2:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ip_id, 0, 64, proto, 0, s, d)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + l4


def build(f, dst_mac, src_mac):
    """The Ethernet frame of test frame f."""
    if f["proto"] == 17:
        payload = b"q" * 8
        l4 = struct.pack("!HHHH", f["sport"], f["dport"], 8 + len(payload), 0) + payload
    else:
        l4 = struct.pack("!HHIIBBHHH", f["sport"], f["dport"], f["seq"], f["ack"], 5 << 4, f["flags"], 29200, 0, 0)
    return ip_frame(dst_mac, src_mac, f["src"], f["dst"], f["proto"], l4, f["id"])


def rules(rng):
    """A ruleset as iptables-save prints it, and a description of it."""
    fwd = []
    cands = [
        "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A FORWARD -m state --state ESTABLISHED -j ACCEPT",
        "-A FORWARD -i eth1 -o eth0 -j ACCEPT",
        "-A FORWARD -i eth0 -o eth1 -m conntrack --ctstate NEW -j DROP",
        "-A FORWARD -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset",
        "-A FORWARD -p udp -m udp --dport 137 -j REJECT --reject-with icmp-port-unreachable",
        "-A FORWARD -p udp -m udp --dport 138 -j REJECT --reject-with icmp-admin-prohibited",
        "-A FORWARD -s 198.18.0.4/32 -j DROP",
        "-A FORWARD -d 198.18.0.3/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT -j ACCEPT",
        "-A FORWARD -m conntrack --ctstate DNAT -j ACCEPT",
        "-A FORWARD -p udp -m conntrack --ctdir REPLY -j ACCEPT",
        "-A FORWARD -m conntrack --ctorigdstport 8080 -j ACCEPT",
        "-A FORWARD -m conntrack ! --ctstate NEW -p udp -j ACCEPT",
        "-A FORWARD -m conntrack --ctstatus SEEN_REPLY -j ACCEPT",
        "-A FORWARD -p udp -j UDPCHK",
        "-A FORWARD -i eth1 -g OUTCHK",
        "-A FORWARD -m statistic --mode nth --every 3 --packet 1 -j DROP",
        "-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST,ACK,FIN SYN -o eth1 -j DROP",
        "-A FORWARD -p tcp -j REJECT --reject-with icmp-host-prohibited",
        "-A FORWARD -m conntrack --ctreplsrc 198.18.0.3 -j ACCEPT",
        "-A FORWARD -m mark --mark 0x4/0x4 -j DROP",
        "-A FORWARD -m mark ! --mark 0x4/0x4 -p udp -j ACCEPT",
        "-A FORWARD -m connmark --mark 0x8/0x8 -j DROP",
        "-A FORWARD -m mark --mark 0x8/0x8 -p tcp -j REJECT --reject-with tcp-reset",
        "-A FORWARD -m connmark ! --mark 0x0/0x10 -p udp -j ACCEPT",
    ]
    mangle_cands = [
        "-A PREROUTING -i eth0 -p udp -j MARK --set-xmark 0x4/0x4",
        "-A PREROUTING -m conntrack --ctstate NEW -s 198.18.0.2/32 -j CONNMARK --set-xmark 0x8/0x8",
        "-A PREROUTING -m conntrack --ctstate NEW -p tcp -j CONNMARK --set-xmark 0x10/0x10",
        "-A PREROUTING -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff",
        "-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1000",
        "-A FORWARD -p udp -m udp --dport 5000 -j DROP",
        "-A POSTROUTING -o eth0 -m mark --mark 0x8/0x8 -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff",
    ]
    mangle = [rng.choice(mangle_cands) for _ in range(rng.randint(0, 4))]
    for _ in range(rng.randint(1, 7)):
        fwd.append(rng.choice(cands))
    policy = rng.choice(["ACCEPT", "DROP"])
    # A mark set in nat PREROUTING lives on to FORWARD (the first packet's).
    mark = "-A PREROUTING -i eth0 -p udp -j MARK --set-xmark 0x4/0x4\n" if rng.random() < 0.3 else ""
    # The outside address: the interface's, or one of a pool, which the
    # kernel picks by a hash of the client (and the server, unless
    # --persistent): xnat must pick the same.
    source_nat = rng.choice(["-j MASQUERADE", "-j SNAT --to-source 198.19.0.10-198.19.0.20",
                             "-j SNAT --to-source 198.19.0.10-198.19.0.20 --persistent"])
    text = ("*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            ":POSTROUTING ACCEPT [0:0]\n" + "".join(r + "\n" for r in mangle) + "COMMIT\n"
            "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
            + mark +
            "-A PREROUTING -i eth0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.18.0.3:80\n"
            "-A PREROUTING -i eth0 -p udp -m udp --dport 5353 -j DNAT --to-destination 198.18.0.4:53\n"
            f"-A POSTROUTING -o eth0 {source_nat}\nCOMMIT\n"
            # INPUT drops: the kernel gateway must not answer frames for
            # itself (xnat leaves them to the host, which replay does not show).
            f"*filter\n:INPUT DROP [0:0]\n:FORWARD {policy} [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            ":UDPCHK - [0:0]\n:OUTCHK - [0:0]\n"
            "-A UDPCHK -p udp -m udp --dport 53 -j RETURN\n-A UDPCHK -p udp -m udp --sport 53 -j RETURN\n"
            "-A UDPCHK -j DROP\n"
            "-A OUTCHK -s 198.18.0.2/32 -j ACCEPT\n-A OUTCHK -j RETURN\n" +
            "".join(r + "\n" for r in fwd) + "COMMIT\n")
    return text


def traffic(rng, first_id):
    """Frames: dicts with side ('in': sent from inside, 'out': from outside),
    proto, src, dst, sport, dport, flags, seq, ack, id."""
    frames = []
    fid = [first_id]
    used_ports = set()

    def add(side, proto, src, dst, sport, dport, flags=0, seq=0, ack=0):
        frames.append(dict(side=side, proto=proto, src=src, dst=dst, sport=sport, dport=dport, flags=flags,
                           seq=seq & 0xFFFFFFFF, ack=ack & 0xFFFFFFFF, id=fid[0]))
        fid[0] += 1

    def port():
        while True:
            p = rng.randint(20000, 60000)
            if p not in used_ports:
                used_ports.add(p)
                return p

    for _ in range(rng.randint(4, 10)):
        r = rng.random()
        c, s = rng.choice(CLIENTS), rng.choice(SERVERS)
        if r < 0.35:  # a UDP exchange from inside, masqueraded; answers to the gateway
            cp, dp = port(), rng.choice([53, 53, 123, 137, 138, 5000])
            for _ in range(rng.randint(1, 3)):
                add("in", 17, c, s, cp, dp)
                if rng.random() < 0.7:
                    add("out", 17, s, GW_OUT, dp, cp)
        elif r < 0.6:  # a TCP handshake from inside
            cp, dp = port(), rng.choice([80, 443, 23, 23])
            isn_c, isn_s = rng.getrandbits(32), rng.getrandbits(32)
            add("in", 6, c, s, cp, dp, SYN, isn_c, 0)
            if rng.random() < 0.8:
                add("out", 6, s, GW_OUT, dp, cp, SYN | ACK, isn_s, isn_c + 1)
                add("in", 6, c, s, cp, dp, ACK, isn_c + 1, isn_s + 1)
        elif r < 0.75:  # to the forwarded TCP port from outside, and the answer
            sp = port()
            isn_c, isn_s = rng.getrandbits(32), rng.getrandbits(32)
            add("out", 6, s, GW_OUT, sp, 8080, SYN, isn_c, 0)
            if rng.random() < 0.8:
                add("in", 6, "198.18.0.3", s, 80, sp, SYN | ACK, isn_s, isn_c + 1)
        elif r < 0.85:  # to the forwarded UDP port from outside
            sp = port()
            add("out", 17, s, GW_OUT, sp, 5353)
            if rng.random() < 0.7:
                add("in", 17, "198.18.0.4", s, 53, sp)
        else:  # unsolicited, straight at an inside host
            if rng.random() < 0.5:
                add("out", 17, s, c, port(), rng.choice([53, 137]))
            else:
                add("out", 6, s, c, port(), rng.choice([22, 23, 80]), SYN, rng.getrandbits(32), 0)
    return frames


def parse(data):
    """What a frame that came out says: (kind, fields), or None if not IPv4."""
    if len(data) < 34 or data[12:14] != b"\x08\x00":
        return None
    ihl = (data[14] & 0x0F) * 4
    proto = data[23]
    ip_id = struct.unpack("!H", data[18:20])[0]
    src, dst = socket.inet_ntoa(data[26:30]), socket.inet_ntoa(data[30:34])
    l4 = data[14 + ihl:]
    if proto == 1:
        typ, code = l4[0], l4[1]
        inner = l4[8:]
        inner_id = struct.unpack("!H", inner[4:6])[0] if len(inner) >= 20 else -1
        return ("icmp", (typ, code, src, dst), inner_id)
    sport, dport = struct.unpack("!HH", l4[:4])
    if proto == 6:
        seq, ack, _, flags = struct.unpack("!IIBB", l4[4:14])
        if flags & RST:
            return ("rst", (src, dst, sport, dport, flags, seq, ack), None)
        return ("fwd", (proto, src, dst, sport, dport, mss_option(l4)), ip_id)
    return ("fwd", (proto, src, dst, sport, dport), ip_id)


def mss_option(tcp):
    """A segment's MSS option, or 0."""
    end = min(len(tcp), (tcp[12] >> 4) * 4)
    i = 20
    while i < end:
        if tcp[i] == 0:
            break
        if tcp[i] == 1:
            i += 1
            continue
        if i + 1 >= end or tcp[i + 1] < 2:
            break
        if tcp[i] == 2 and tcp[i + 1] == 4:
            return struct.unpack("!H", tcp[i + 2:i + 4])[0]
        i += tcp[i + 1]
    return 0


def rst_key(f):
    """The (seq, ack) of the reset nf_send_reset answers frame f with."""
    if f["flags"] & ACK:
        return (f["ack"], 0)
    return (0, (f["seq"] + (1 if f["flags"] & SYN else 0)) & 0xFFFFFFFF)


def attribute(outs, frames):
    """Frame id -> outcome, from the frames that came out (either side)."""
    by_rst = {rst_key(f): f["id"] for f in frames if f["proto"] == 6}
    result = {}
    for side, data in outs:
        p = parse(data)
        if not p:
            continue
        kind, fields, key = p
        if kind == "fwd" and fields[0] == 17 and (fields[3] == PROBE_PORT or fields[4] == PROBE_PORT):
            continue
        if kind == "rst":
            key = by_rst.get((fields[5], fields[6]), -1)
        result.setdefault(key, []).append((side, kind, fields))
    return result


def entries(text):
    """The lines of a `conntrack -L -o extended` listing, its timeouts left out
    (the two runs' clocks differ): state, tuples, flags, mark, as printed."""
    out = set()
    for line in text.splitlines():
        f = line.split()
        if len(f) < 6 or f[0] != "ipv4":
            continue
        out.add(" ".join(f[:4] + f[5:]))
    return out


def event_key(line):
    """An event line of `conntrack -E -o extended`, its timeout left out (the
    two runs' clocks differ): type, protocol, state, tuples, flags, mark."""
    f = line.split()
    if len(f) > 5 and f[5].isdigit():
        del f[5]
    return " ".join(f)


class EventTap:
    """`conntrack -E -o extended` in the gateway namespace for one round. A
    marker entry made with `conntrack -I` before and after the round brackets
    its events: the first shows the reader is subscribed, the second that
    every event before it has arrived."""

    MARK = "192.0.2.1"

    def __init__(self, g):
        self.g = g
        self.proc = subprocess.Popen([*g, "conntrack", "-E", "-o", "extended"], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self.buf = b""
        self.lines = []
        # Until the first marker shows, conntrack may not be subscribed yet:
        # make it again until it does.
        for attempt in range(50):
            self.marker(1 + attempt)
            if self.wait_for(1 + attempt, 0.1):
                break
        else:
            raise RuntimeError("conntrack -E never showed its marker")
        self.start = len(self.lines)

    def marker(self, port):
        sh(*self.g, "conntrack", "-I", "-p", "udp", "-s", self.MARK, "-d", "192.0.2.2", "--sport", str(port),
           "--dport", "9", "-t", "30")

    def wait_for(self, port, timeout):
        want = f"src={self.MARK} dst=192.0.2.2 sport={port} "
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(want in l for l in self.lines):
                return True
            r, _, _ = select.select([self.proc.stdout], [], [], 0.01)
            if r:
                data = os.read(self.proc.stdout.fileno(), 65536)
                self.buf += data
                *done, self.buf = self.buf.split(b"\n")
                self.lines += [l.decode() for l in done]
        return False

    def finish(self):
        """The round's events, in order, markers left out."""
        self.marker(60000)
        if not self.wait_for(60000, 5.0):
            raise RuntimeError("conntrack -E never showed the closing marker")
        self.proc.kill()
        self.proc.wait()
        sh(*self.g, "conntrack", "-D", "-s", self.MARK, check=False)
        return [event_key(l) for l in self.lines[self.start:] if self.MARK not in l]


def net_up():
    three_namespaces(NS_C, NS_G, NS_S, IF_C, IF_GI, IF_GO, IF_S)
    sh("ip", "-n", NS_G, "addr", "add", GW_IN + "/16", "dev", IF_GI)
    sh("ip", "-n", NS_G, "addr", "add", GW_OUT + "/16", "dev", IF_GO)
    for a in CLIENTS:
        sh("ip", "-n", NS_G, "neigh", "add", a, "lladdr", mac_of(NS_C, IF_C).hex(":"), "dev", IF_GI, "nud", "permanent")
    for a in SERVERS:
        sh("ip", "-n", NS_G, "neigh", "add", a, "lladdr", mac_of(NS_S, IF_S).hex(":"), "dev", IF_GO, "nud", "permanent")
    g = ("ip", "netns", "exec", NS_G)
    sh(*g, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    sh(*g, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
    # ICMP errors unlimited per destination and in all, on both sides.
    sh(*g, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0")
    sh(*g, "sysctl", "-qw", "net.ipv4.icmp_msgs_per_sec=100000", check=False)
    sh(*g, "sysctl", "-qw", "net.ipv4.icmp_msgs_burst=100000", check=False)


def net_down():
    for ns in (NS_C, NS_G, NS_S):
        sh("ip", "netns", "del", ns, check=False)


def kernel_names(text):
    return text.replace("eth1", IF_GI).replace("eth0", IF_GO)


def run_kernel(rounds):
    """Each round's frames through the kernel gateway: (outs, entries) per round."""
    root = os.open("/proc/self/ns/net", os.O_RDONLY)
    socks, gw, ends = gateway_ends(NS_C, IF_C, NS_G, IF_GI, IF_GO, NS_S, IF_S)
    other = {"in": "out", "out": "in"}
    results = []
    for text, frames in rounds:
        libc.setns(root, 0x40000000)
        g = ("ip", "netns", "exec", NS_G)
        subprocess.run([*g, "conntrack", "-F"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([*g, "iptables-restore"], input=kernel_names(text), text=True, check=True)
        # The probe: untracked, accepted before any rule of the round.
        sh(*g, "iptables", "-t", "raw", "-I", "PREROUTING", "-p", "udp", "--dport", str(PROBE_PORT), "-j", "NOTRACK")
        # xnat drops what conntrack finds INVALID before any rule (netfilter
        # would pass it on untranslated unless a rule drops it).
        sh(*g, "iptables", "-I", "FORWARD", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
        sh(*g, "iptables", "-I", "FORWARD", "-p", "udp", "--dport", str(PROBE_PORT), "-j", "ACCEPT")
        tap = EventTap(g)
        enter(NS_G)
        outs = []
        for f in frames:
            side = f["side"]
            socks[side].send(build(f, gw[side], ends[side]))
            # A datagram behind it on the same path: once it is through, so
            # is the frame, or it was dropped; answers come back before it.
            probe_dst = SERVERS[0] if side == "in" else CLIENTS[0]
            probe_src = CLIENTS[0] if side == "in" else SERVERS[0]
            l4 = struct.pack("!HHHH", 40000, PROBE_PORT, 8, 0)
            socks[side].send(ip_frame(gw[side], ends[side], probe_src, probe_dst, 17, l4, 0))
            deadline = time.monotonic() + 2.0
            done = False
            while not done and time.monotonic() < deadline:
                for s_name in ("in", "out"):
                    try:
                        while True:
                            data = socks[s_name].recv(4096)
                            p = parse(data)
                            if p and p[0] == "fwd" and p[1][0] == 17 and p[1][4] == PROBE_PORT:
                                if s_name == other[side]:
                                    done = True
                                continue
                            outs.append((s_name, data))
                    except BlockingIOError:
                        pass
                if not done:
                    time.sleep(0.0005)
            if not done:
                raise RuntimeError(f"the probe behind frame {f['id']} never came through")
        libc.setns(root, 0x40000000)
        events = tap.finish()
        enter(NS_G)
        listing = subprocess.run(["conntrack", "-L", "-o", "extended"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True).stdout
        results.append((outs, entries(listing), events))
    for s in socks.values():
        s.close()
    libc.setns(root, 0x40000000)
    os.close(root)
    return results


def run_xnat(xnat, text, frames, work):
    ins = {"in": [], "out": []}
    t = 1_000_000_000
    for f in frames:
        side = f["side"]
        ins[side].append((t, build(f, XNAT_MAC[side], XNAT_MAC["client" if side == "in" else "server"])))
        t += 1000
    write_pcap(os.path.join(work, "eth1.in.pcap"), ins["in"])
    write_pcap(os.path.join(work, "eth0.in.pcap"), ins["out"])
    with open(os.path.join(work, "rules.txt"), "w") as fh:
        fh.write(text)
    cfg = ('rules = "rules.txt"\n[conntrack]\nnf_conntrack_max = 65536\n'
           '[ipv4]\nicmp_msgs_per_sec = 100000\nicmp_msgs_burst = 100000\nicmp_ratelimit = 0\n'
           '[[interface]]\nname = "eth1"\naddress = "198.18.0.1/16"\nmac = "02:00:00:00:00:01"\n'
           '[[interface]]\nname = "eth0"\naddress = "198.19.0.1/16"\nmac = "02:00:00:00:00:02"\n')
    for a in CLIENTS:
        cfg += f'[[neighbor]]\naddress = "{a}"\nmac = "02:00:00:00:00:10"\n'
    for a in SERVERS:
        cfg += f'[[neighbor]]\naddress = "{a}"\nmac = "02:00:00:00:00:20"\n'
    with open(os.path.join(work, "xnat.toml"), "w") as fh:
        fh.write(cfg)
    out = os.path.join(work, "out")
    sh(xnat, "replay", "--events", "--config", os.path.join(work, "xnat.toml"), "--in", "eth1=" + os.path.join(work, "eth1.in.pcap"),
       "--in", "eth0=" + os.path.join(work, "eth0.in.pcap"), "--out", out)
    outs = [(side, fr) for side, name in (("in", "eth1"), ("out", "eth0"))
            for fr in read_pcap(os.path.join(out, name + ".pcap"))]
    with open(os.path.join(out, "conntrack.txt")) as fh:
        listing = fh.read()
    with open(os.path.join(out, "events.txt")) as fh:
        events = [event_key(l) for l in fh.read().splitlines()]
    subprocess.run(["rm", "-rf", out])
    return outs, entries(listing), events


def describe(f):
    flags = "".join(n for b, n in ((SYN, "S"), (RST, "R"), (ACK, ".")) if f["flags"] & b)
    p = "udp" if f["proto"] == 17 else f"tcp [{flags}]"
    return f"#{f['id']} from {f['side']}side {p} {f['src']}:{f['sport']} -> {f['dst']}:{f['dport']}"


def main():
    if os.geteuid() != 0 or not os.path.isdir("/proc/sys/net"):
        print("skipped: needs root to build network namespaces")
        return 77
    xnat = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    rng = random.Random(seed)
    rounds, next_id = [], 1
    for _ in range(n):
        text = rules(rng)
        frames = traffic(rng, next_id)
        next_id += len(frames)
        rounds.append((text, frames))
    work = tempfile.mkdtemp(prefix="xnat-rules-oracle.")
    try:
        net_up()
        kernel = run_kernel(rounds)
    finally:
        net_down()
    bad, totals, n_entries, n_events = 0, {}, 0, 0
    for k, ((text, frames), (k_outs, k_entries, k_events)) in enumerate(zip(rounds, kernel)):
        x_outs, x_entries, x_events = run_xnat(xnat, text, frames, work)
        n_entries += len(k_entries)
        n_events += len(k_events)
        k_res, x_res = attribute(k_outs, frames), attribute(x_outs, frames)
        diffs = [f for f in frames if sorted(k_res.get(f["id"], [])) != sorted(x_res.get(f["id"], []))]
        for f in frames:
            kinds = ",".join(sorted({o[1] for o in k_res.get(f["id"], [])})) or "drop"
            totals[kinds] = totals.get(kinds, 0) + 1
        if diffs or k_entries != x_entries or k_events != x_events:
            bad += 1
            if bad <= 5:
                print(f"round {k}: ruleset\n" + "".join("    " + l + "\n" for l in text.splitlines() if l.startswith("-A ") or l.startswith(":FORWARD") or l.startswith("*")))
                for f in frames:
                    mark = ""
                    if f in diffs:
                        mark = f"\n      kernel {k_res.get(f['id'], 'drop')}\n      xnat   {x_res.get(f['id'], 'drop')}"
                    print(f"  {describe(f)}{mark}")
                if k_entries != x_entries:
                    print(f"  entries only in the kernel: {sorted(k_entries - x_entries)}")
                    print(f"  entries only in xnat: {sorted(x_entries - k_entries)}")
                if k_events != x_events:
                    print("  events, kernel:\n" + "".join(f"    {e}\n" for e in k_events))
                    print("  events, xnat:\n" + "".join(f"    {e}\n" for e in x_events))
    frames_n = next_id - 1
    print(f"{n} rulesets, {frames_n} frames ({', '.join(f'{v} {k}' for k, v in sorted(totals.items()))} "
          f"in the kernel), {n_entries} connections left, {n_events} events; {n - bad} rounds alike, {bad} differ")
    subprocess.run(["rm", "-rf", work])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
