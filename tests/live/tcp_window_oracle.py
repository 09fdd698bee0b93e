#!/usr/bin/env python3
"""The kernel as the oracle for xnat's TCP window tracking.

  tests/live/tcp_window_oracle.py XNAT_BINARY [CONVERSATIONS [SEED [NAME=VALUE ...]]]

NAME=VALUE sets a conntrack tunable on both sides, e.g.
nf_conntrack_tcp_be_liberal=1 (net.netfilter.NAME in the kernel, [conntrack]
NAME in xnat's config).

Builds random TCP conversations (a handshake with random sequence numbers,
windows, window scale and SACK options, then segments in and out of the
window, retransmissions, FINs, RSTs and SYNs), and sends each, frame by
frame, through a Linux gateway namespace whose conntrack runs with its
defaults (nf_conntrack_tcp_be_liberal = 0) and drops what it finds INVALID
(iptables --ctstate INVALID -j DROP), recording which frames came through and
each connection's state and timeout at the end. Then it replays the same
frames through `xnat replay` and compares: the same frames must be forwarded,
and each connection must end in the same state on the same timeout.

Root only; the network is three namespaces named with this process's ID,
removed on exit (../shared/TESTNET.md). Traffic is a few thousand frames.
"""
import ctypes
import os
import random
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time

ID = os.getpid()
NS_C, NS_G, NS_S = f"xkc{ID}", f"xkg{ID}", f"xks{ID}"
IF_C, IF_GI, IF_GO, IF_S = f"xkc0{ID}", f"xkgi{ID}", f"xkgo{ID}", f"xks0{ID}"
CLIENT, SERVER = "198.18.0.2", "198.19.0.2"
SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08
# Default timeouts and the state they belong to, for comparing what is left.
TIMEOUTS = [10, 30, 60, 120, 300, 432000]

libc = ctypes.CDLL("libc.so.6", use_errno=True)


def sh(*args, check=True):
    return subprocess.run(args, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def enter(ns):
    fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), f"setns {ns}")
    os.close(fd)


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(dst_mac, src_mac, src, dst, sport, dport, seg, ip_id):
    """An Ethernet frame with an IPv4/TCP segment; seg: flags, seq, ack, len, win, opts."""
    opts = bytes(seg["opts"])
    opts += b"\x01" * (-len(opts) % 4)
    payload = b"x" * seg["len"]
    off = (20 + len(opts)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seg["seq"] & 0xFFFFFFFF, seg["ack"] & 0xFFFFFFFF, off << 4,
                      seg["flags"], seg["win"], 0, 0) + opts + payload
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    tcp = tcp[:16] + struct.pack("!H", csum(s + d + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), ip_id, 0x4000, 64, 6, 0, s, d)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + tcp


def scenario(rng):
    """A list of segments {dir, flags, seq, ack, len, win, opts}: a plausible
    conversation with random faults."""
    isn = [rng.getrandbits(32), rng.getrandbits(32)]
    nxt = [isn[0] + 1, isn[1] + 1]  # next sequence number each side would send
    wscale = [rng.choice([None, None, 0, 2, 7, 14]), rng.choice([None, None, 0, 3, 7])]
    sack = [rng.random() < 0.5, rng.random() < 0.5]

    def syn_opts(d):
        o = [2, 4, 5, 0xB4]  # MSS
        if sack[d]:
            o += [4, 2]
        if wscale[d] is not None:
            o += [1, 3, 3, wscale[d]]
        return o

    segs = []
    r = rng.random()
    if r < 0.1:  # simultaneous open: both send a SYN, then both a SYN-ACK
        segs.append(dict(dir=0, flags=SYN, seq=isn[0], ack=0, len=0, win=64240, opts=syn_opts(0)))
        segs.append(dict(dir=1, flags=SYN, seq=isn[1], ack=0, len=0, win=65160, opts=syn_opts(1)))
        segs.append(dict(dir=0, flags=SYN | ACK, seq=isn[0], ack=nxt[1], len=0, win=64240, opts=syn_opts(0)))
        if rng.random() < 0.5:  # a SYN again, ignored in SYN_RECV
            segs.append(dict(dir=0, flags=SYN, seq=isn[0], ack=0, len=0, win=64240, opts=syn_opts(0)))
        segs.append(dict(dir=1, flags=rng.choice([ACK, SYN | ACK]), seq=isn[1], ack=nxt[0], len=0, win=65160,
                         opts=[]))
    elif r < 0.9:  # a handshake, or a connection picked up mid-stream
        segs.append(dict(dir=0, flags=SYN, seq=isn[0], ack=0, len=0, win=rng.choice([64240, 29200, 1000]),
                         opts=syn_opts(0)))
        if rng.random() < 0.15:  # the SYN retransmitted
            segs.append(dict(segs[-1]))
        segs.append(dict(dir=1, flags=SYN | ACK, seq=isn[1], ack=nxt[0], len=0, win=rng.choice([65160, 28960, 1000]),
                         opts=syn_opts(1)))
        segs.append(dict(dir=0, flags=ACK, seq=nxt[0], ack=nxt[1], len=0, win=rng.choice([502, 1000, 65535]),
                         opts=[]))
    for _ in range(rng.randint(3, 14)):
        d = rng.randrange(2)
        r = rng.random()
        flags = ACK if r < 0.45 else ACK | PSH if r < 0.75 else FIN | ACK if r < 0.85 else \
            RST if r < 0.9 else RST | ACK if r < 0.94 else SYN if r < 0.97 else SYN | ACK
        length = 0 if flags & (SYN | RST) else rng.choice([0, 0, 1, 100, 1000, 1400])
        seq = nxt[d] + rng.choice([0, 0, 0, 0, -1, -length, -rng.randint(1, 300000), rng.randint(1, 70000),
                                   rng.randint(70000, 3000000)])
        ack = nxt[1 - d] + rng.choice([0, 0, 0, 0, -1, 1, -rng.randint(1, 200000), rng.randint(2, 200000)])
        if rng.random() < 0.05:
            ack = 0
        opts = []
        if flags & SYN:
            opts = syn_opts(d)
        elif sack[1 - d] and rng.random() < 0.2:
            left = nxt[1 - d] + rng.randint(-3000, 1000)
            right = left + rng.choice([1, 100, 1000, 5000])
            opts = [1, 1, 5, 10] + list(struct.pack("!II", left & 0xFFFFFFFF, right & 0xFFFFFFFF))
        win = rng.choice([0, 100, 1000, 29200, 65535])
        segs.append(dict(dir=d, flags=flags, seq=seq, ack=ack, len=length, win=win, opts=opts))
        if rng.random() < 0.15:  # the same segment again
            segs.append(dict(segs[-1]))
        end = seq + length + (1 if flags & (SYN | FIN) else 0)
        if 0 <= ((end - nxt[d]) & 0xFFFFFFFF) < 0x80000000:
            nxt[d] = end & 0xFFFFFFFF
    return segs


def bucket(seconds):
    return next((t for t in TIMEOUTS if seconds <= t), TIMEOUTS[-1])


def entries(text):
    """sport -> (state, timeout bucket) of the client's TCP entries in a conntrack listing."""
    out = {}
    for m in re.finditer(r"tcp +6 (\d+) (\w+) src=198\.18\.0\.2 dst=198\.19\.0\.2 sport=(\d+) dport=80 ", text):
        out[int(m.group(3))] = (m.group(2), bucket(int(m.group(1))))
    return out


def mac_of(ns, ifname):
    return bytes.fromhex(sh("ip", "-n", ns, "-br", "link", "show", ifname).stdout.split()[2].replace(":", ""))


def three_namespaces(ns_c, ns_g, ns_s, if_c, if_gi, if_go, if_s):
    """Client, gateway and server namespaces, joined by two veth pairs, up, without IPv6."""
    for ns in (ns_c, ns_g, ns_s):
        sh("ip", "netns", "add", ns)
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "link", "add", if_c, "netns", ns_c, "type", "veth", "peer", "name", if_gi, "netns", ns_g)
    sh("ip", "link", "add", if_s, "netns", ns_s, "type", "veth", "peer", "name", if_go, "netns", ns_g)
    for ns, i in ((ns_c, if_c), (ns_g, if_gi), (ns_g, if_go), (ns_s, if_s)):
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{i}.disable_ipv6=1", check=False)
        sh("ip", "-n", ns, "link", "set", i, "up")


def net_up():
    three_namespaces(NS_C, NS_G, NS_S, IF_C, IF_GI, IF_GO, IF_S)
    # The gateway routes with conntrack and drops INVALID; the ends have no
    # addresses, so they neither answer nor reset what they receive.
    sh("ip", "-n", NS_G, "addr", "add", "198.18.0.1/16", "dev", IF_GI)
    sh("ip", "-n", NS_G, "addr", "add", "198.19.0.1/16", "dev", IF_GO)
    sh("ip", "-n", NS_G, "neigh", "add", CLIENT, "lladdr", mac_of(NS_C, IF_C).hex(":"), "dev", IF_GI, "nud", "permanent")
    sh("ip", "-n", NS_G, "neigh", "add", SERVER, "lladdr", mac_of(NS_S, IF_S).hex(":"), "dev", IF_GO, "nud", "permanent")
    g = ("ip", "netns", "exec", NS_G)
    sh(*g, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    sh(*g, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
    sh(*g, "iptables", "-A", "FORWARD", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
    sh(*g, "sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_be_liberal=0")
    for name, value in TUNABLES:
        sh(*g, "sysctl", "-qw", f"net.netfilter.{name}={value}")


TUNABLES = []


def net_down():
    for ns in (NS_C, NS_G, NS_S):
        sh("ip", "netns", "del", ns, check=False)


def invalid_count():
    with open("/proc/self/net/stat/nf_conntrack") as f:
        lines = f.read().split("\n")[1:]
    return sum(int(l.split()[4], 16) for l in lines if l.strip())


def run_kernel(convs):
    """Sends every conversation through the kernel gateway. Returns the IP IDs
    forwarded and the final entries."""
    root = os.open("/proc/self/ns/net", os.O_RDONLY)
    socks = []
    for ns, i in ((NS_C, IF_C), (NS_S, IF_S)):
        enter(ns)
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        s.setsockopt(263, 23, 1)  # SOL_PACKET, PACKET_IGNORE_OUTGOING: only what arrives
        s.bind((i, 0))
        s.settimeout(0.002)
        socks.append(s)
    enter(NS_G)
    gw = [mac_of(NS_G, IF_GI), mac_of(NS_G, IF_GO)]
    ends = [mac_of(NS_C, IF_C), mac_of(NS_S, IF_S)]
    forwarded, final = set(), {}
    for port, segs, ids in convs:
        for seg, ip_id in zip(segs, ids):
            d = seg["dir"]
            src, dst, sp, dp = (CLIENT, SERVER, port, 80) if d == 0 else (SERVER, CLIENT, 80, port)
            socks[1 - d].setblocking(False)
            try:
                while socks[1 - d].recv(4096):
                    pass
            except BlockingIOError:
                pass
            socks[1 - d].settimeout(0.002)
            before = invalid_count()
            socks[d].send(frame(gw[d], ends[d], src, dst, sp, dp, seg, ip_id))
            deadline = time.monotonic() + 2.0
            seen = False
            while time.monotonic() < deadline and not seen:
                try:
                    data, addr = socks[1 - d].recvfrom(4096)
                    if len(data) >= 34 and data[12:14] == b"\x08\x00" and \
                            struct.unpack("!H", data[18:20])[0] == ip_id and data[23] == 6:
                        seen = True
                except socket.timeout:
                    pass
                if not seen and invalid_count() > before:
                    break
            if seen:
                forwarded.add(ip_id)
            elif invalid_count() == before:
                raise RuntimeError(f"frame {ip_id} neither came through nor was counted INVALID")
        with open("/proc/self/net/nf_conntrack") as f:
            e = entries(f.read())
        final[port] = e.get(port, ("gone", 0))
    for s in socks:
        s.close()
    libc.setns(root, 0x40000000)
    os.close(root)
    return forwarded, final


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for t_us, data in frames:
            f.write(struct.pack("<IIII", t_us // 1000000, t_us % 1000000, len(data), len(data)))
            f.write(data)


def read_pcap(path):
    """The frames of a pcap file (none if there is no file)."""
    frames = []
    if not os.path.exists(path):
        return frames
    with open(path, "rb") as f:
        data = f.read()
    pos = 24
    while pos + 16 <= len(data):
        incl = struct.unpack("<I", data[pos + 8:pos + 12])[0]
        frames.append(data[pos + 16:pos + 16 + incl])
        pos += 16 + incl
    return frames


def end_sockets(ends):
    """Raw sockets on the ends' interfaces, {side: socket}, for ends {side: (ns, ifname)}:
    non-blocking, seeing only what arrives. Leaves this thread in the last namespace."""
    socks = {}
    for side, (ns, ifname) in ends.items():
        enter(ns)
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        s.setsockopt(263, 23, 1)  # PACKET_IGNORE_OUTGOING: only what arrives
        s.bind((ifname, 0))
        s.setblocking(False)
        socks[side] = s
    return socks


def gateway_ends(ns_c, if_c, ns_g, if_gi, if_go, ns_s, if_s):
    """For frames sent through a gateway namespace from both sides: end_sockets on the
    client's ("in") and server's ("out") interfaces, the gateway's MAC facing each side,
    and each end's own MAC, as three {side: ...} dicts."""
    socks = end_sockets({"in": (ns_c, if_c), "out": (ns_s, if_s)})
    gw = {"in": mac_of(ns_g, if_gi), "out": mac_of(ns_g, if_go)}
    ends = {"in": mac_of(ns_c, if_c), "out": mac_of(ns_s, if_s)}
    return socks, gw, ends


def read_ids(path):
    ids = set()
    for fr in read_pcap(path):
        if len(fr) >= 34 and fr[12:14] == b"\x08\x00" and fr[23] == 6:
            ids.add(struct.unpack("!H", fr[18:20])[0])
    return ids


def run_xnat(xnat, convs, work, extra=""):
    gw = [bytes.fromhex("020000000001"), bytes.fromhex("020000000002")]
    ends = [bytes.fromhex("020000000010"), bytes.fromhex("020000000020")]
    # A microsecond apart: the whole replay takes a few milliseconds of its
    # clock, as each conversation took in the kernel before its entry was read.
    ins = [[], []]
    t = 1_000_000_000
    for port, segs, ids in convs:
        for seg, ip_id in zip(segs, ids):
            d = seg["dir"]
            src, dst, sp, dp = (CLIENT, SERVER, port, 80) if d == 0 else (SERVER, CLIENT, 80, port)
            ins[d].append((t, frame(gw[d], ends[d], src, dst, sp, dp, seg, ip_id)))
            t += 1
    write_pcap(os.path.join(work, "eth1.in.pcap"), ins[0])
    write_pcap(os.path.join(work, "eth0.in.pcap"), ins[1])
    with open(os.path.join(work, "rules.txt"), "w") as f:
        f.write("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                ":POSTROUTING ACCEPT [0:0]\nCOMMIT\n")
    with open(os.path.join(work, "xnat.toml"), "w") as f:
        f.write('rules = "rules.txt"\n[conntrack]\nnf_conntrack_max = 65536\n' + extra + '\n'
                '[[interface]]\nname = "eth1"\naddress = "198.18.0.1/16"\nmac = "02:00:00:00:00:01"\n'
                '[[interface]]\nname = "eth0"\naddress = "198.19.0.1/16"\nmac = "02:00:00:00:00:02"\n'
                '[[neighbor]]\naddress = "198.18.0.2"\nmac = "02:00:00:00:00:10"\n'
                '[[neighbor]]\naddress = "198.19.0.2"\nmac = "02:00:00:00:00:20"\n')
    out = os.path.join(work, "out")
    sh(xnat, "replay", "--config", os.path.join(work, "xnat.toml"), "--in", "eth1=" + os.path.join(work, "eth1.in.pcap"),
       "--in", "eth0=" + os.path.join(work, "eth0.in.pcap"), "--out", out)
    forwarded = read_ids(os.path.join(out, "eth0.pcap")) | read_ids(os.path.join(out, "eth1.pcap"))
    with open(os.path.join(out, "conntrack.txt")) as f:
        e = entries(f.read())
    return forwarded, {port: e.get(port, ("gone", 0)) for port, _, _ in convs}


def describe(seg):
    names = "".join(n for b, n in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, ".")) if seg["flags"] & b)
    return (f"{'c>s' if seg['dir'] == 0 else 's>c'} [{names}] seq={seg['seq'] & 0xFFFFFFFF} "
            f"ack={seg['ack'] & 0xFFFFFFFF} len={seg['len']} win={seg['win']} opts={seg['opts']}")


def main():
    if os.geteuid() != 0 or not os.path.isdir("/proc/sys/net"):
        print("skipped: needs root to build network namespaces")
        return 77
    xnat = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 150
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    TUNABLES.extend(tuple(a.split("=", 1)) for a in sys.argv[4:])
    # XNAT_CONNTRACK: [conntrack] lines for xnat alone (to see the check fail).
    extra = "".join(f"{k} = {v}\n" for k, v in TUNABLES) + os.environ.get("XNAT_CONNTRACK", "")
    rng = random.Random(seed)
    convs, ip_id = [], 1
    for k in range(n):
        segs = scenario(rng)
        ids = list(range(ip_id, ip_id + len(segs)))
        ip_id += len(segs)
        convs.append((20000 + k, segs, ids))
    frames = ip_id - 1
    work = tempfile.mkdtemp(prefix="xnat-oracle.")
    try:
        net_up()
        k_fwd, k_final = run_kernel(convs)
    finally:
        net_down()
    x_fwd, x_final = run_xnat(xnat, convs, work, extra)
    bad = 0
    for port, segs, ids in convs:
        diffs = [i for i, ip in enumerate(ids) if (ip in k_fwd) != (ip in x_fwd)]
        if diffs or k_final[port] != x_final[port]:
            bad += 1
            if bad <= 10:
                print(f"conversation {port}: kernel ends {k_final[port]}, xnat {x_final[port]}")
                for i, (seg, ip) in enumerate(zip(segs, ids)):
                    mark = "  <-- kernel " + ("forwards" if ip in k_fwd else "drops") + ", xnat " + \
                        ("forwards" if ip in x_fwd else "drops") if i in diffs else ""
                    print(f"  {i:2} {describe(seg)}{mark}")
    dropped = frames - len(k_fwd)
    states = {}
    for st in k_final.values():
        states[f"{st[0]}/{st[1]}"] = states.get(f"{st[0]}/{st[1]}", 0) + 1
    print(f"{n} conversations, {frames} frames, {dropped} INVALID in the kernel, {frames - len(x_fwd)} dropped by "
          f"xnat; {n - bad} conversations alike, {bad} differ")
    print("kernel's final states/timeouts: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    subprocess.run(["rm", "-rf", work])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
