#!/usr/bin/env python3
"""The kernel as the oracle for IPv4 options in forwarded datagrams.

  tests/live/ip_options_oracle.py XNAT_BINARY

UDP datagrams carrying IPv4 options (record route, timestamps of each kind,
full ones, router alert, security, unknown types, junk after the end of the
list, loose and strict source routes, and malformed lists of each kind the
kernel's ip_options_compile refuses) go one by one from a client through a
Linux gateway namespace doing MASQUERADE, and answers with options come back
from the server; then the same frames through `xnat replay` with the same
rule. Per frame the two must agree: forwarded with the same options (the
router recorded in the same places; timestamps compared as positions, since
the clocks differ by the run's length) and a valid header checksum, answered
with the same ICMP error (type, code, pointer), or dropped.

Not compared: the options the kernel echoes into the ICMP error's own header
(xnat's errors carry none) and the quoted datagram (the kernel quotes it as
far as it had updated the options when it found the fault).

Root only; three namespaces named with this process's ID, removed on exit
(../shared/TESTNET.md). A few dozen frames.
"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tcp_window_oracle import (csum, gateway_ends, libc, mac_of, read_pcap, sh,  # noqa: E402
                               three_namespaces, write_pcap)

ID = os.getpid()
NS_C, NS_G, NS_S = f"xoc{ID}", f"xog{ID}", f"xos{ID}"
IF_C, IF_GI, IF_GO, IF_S = f"xoc0{ID}", f"xogi{ID}", f"xogo{ID}", f"xos0{ID}"
CLIENT, SERVER, GW_IN, GW_OUT = "198.18.0.2", "198.19.0.2", "198.18.0.1", "198.19.0.1"
PROBE_PORT = 9
XNAT_MAC = {"in": bytes.fromhex("020000000001"), "out": bytes.fromhex("020000000002"),
            "client": bytes.fromhex("020000000010"), "server": bytes.fromhex("020000000020")}


def a(addr):
    return list(socket.inet_aton(addr))


# (name, options, and whether the server answers with them too)
CASES = [
    ("record route, 9 empty slots (ping -R)", [7, 39, 4] + [0] * 36 + [0], True),
    ("record route, one slot used", [7, 11, 8] + a(CLIENT) + [0] * 4 + [1], True),
    ("record route, full", [7, 7, 8] + a(CLIENT) + [0], True),
    ("timestamps only", [68, 12, 5, 0] + [0] * 8, True),
    ("timestamps with addresses", [68, 20, 5, 1] + [0] * 16, True),
    ("prespecified: the inside address", [68, 20, 5, 3] + a(GW_IN) + [0] * 4 + a(GW_OUT) + [0] * 4, False),
    ("prespecified: the outside address", [68, 12, 5, 3] + a(GW_OUT) + [0] * 4, False),
    ("prespecified: the server's", [68, 12, 5, 3] + a(SERVER) + [0] * 4, False),
    ("timestamps full, overflow 2", [68, 8, 9, 0x20] + [0, 0, 0, 1], True),
    ("timestamps with addresses full, overflow 14", [68, 12, 13, 0xE1] + [0] * 8, False),
    ("prespecified full", [68, 12, 13, 3] + a(GW_IN) + [0, 0, 0, 1], False),
    ("timestamp flag 2 (undefined)", [68, 8, 5, 2, 0, 0, 0, 0], False),
    ("router alert", [148, 4, 0, 0], True),
    ("security", [130, 11] + [0] * 9 + [0], False),
    ("an unknown option", [25, 4, 1, 2], False),
    ("no-ops, end, junk after it", [1, 1, 0, 7, 3, 1, 2, 3], False),
    ("record route and timestamps", [7, 7, 4, 0, 0, 0, 0, 68, 8, 5, 0, 0, 0, 0, 0, 0], True),
    ("loose source route", [131, 7, 4] + a(SERVER) + [0], False),
    ("strict source route", [137, 7, 4] + a(SERVER) + [0], False),
    ("source route used up", [1, 131, 7, 8] + a(SERVER), False),
    ("malformed: length 1", [7, 1, 0, 0], False),
    ("malformed: longer than the header", [7, 9, 4, 0], False),
    ("malformed: type without length", [1, 1, 1, 7], False),
    ("malformed: record route pointer 3", [7, 7, 3, 0, 0, 0, 0, 0], False),
    ("malformed: record route room for less than an address", [7, 6, 4, 0, 0, 0, 0, 0], False),
    ("malformed: two record routes", [7, 7, 4, 0, 0, 0, 0, 7, 7, 4, 0, 0, 0, 0, 0, 0], False),
    ("malformed: timestamp pointer 4", [68, 8, 4, 0, 0, 0, 0, 0], False),
    ("malformed: timestamp with address, room for one word", [68, 8, 5, 1, 0, 0, 0, 0], False),
    ("malformed: timestamps full, overflow 15", [68, 8, 9, 0xF0, 0, 0, 0, 0], False),
    ("malformed: router alert of 3", [148, 3, 0, 0], False),
    ("malformed: two source routes", [131, 7, 4] + a(SERVER) + [137, 7, 4] + a(SERVER) + [0, 0], False),
    ("malformed: record route before a bad timestamp", [7, 7, 4, 0, 0, 0, 0, 68, 8, 4, 0, 0, 0, 0, 0, 0], False),
]


def ip_frame(dst_mac, src_mac, src, dst, opts, sport, dport, ip_id, payload=b"opts"):
    opts = bytes(opts) + b"\0" * (-len(opts) % 4)
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    l4 = l4[:6] + struct.pack("!H", csum(s + d + struct.pack("!BBH", 0, 17, len(l4)) + l4)) + l4[8:]
    hl = 20 + len(opts)
    ip = struct.pack("!BBHHHBBH4s4s", 0x40 | hl // 4, 0, hl + len(l4), ip_id, 0, 64, 17, 0, s, d) + opts
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + l4


def frames():
    """(id, side, name, build(gw_mac, end_mac)) in sending order: each case from the client, then its answer."""
    out = []
    for k, (name, opts, answered) in enumerate(CASES):
        port = 20000 + k
        fid = 100 + 2 * k
        SENT[fid], SENT[fid + 1] = bytes(opts), bytes(opts if answered else [])
        out.append((fid, "in", name, lambda g, e, o=opts, p=port, i=fid: ip_frame(g, e, CLIENT, SERVER, o, p, 7000, i)))
        # The answer, to the mapping MASQUERADE kept the port of (a plain
        # datagram opened it first where the case is not forwarded).
        out.append((fid + 1, "out", name + ", answered",
                    lambda g, e, o=opts if answered else [], p=port, i=fid + 1: ip_frame(g, e, SERVER, GW_OUT, o, 7000, p, i)))
    return out


def opener(k):
    """A plain datagram that opens case k's mapping (sent before the case)."""
    return lambda g, e, p=20000 + k: ip_frame(g, e, CLIENT, SERVER, [], p, 7000, 60000 + k)


def masked(opts, sent):
    """Options with the time words the router wrote replaced (the two runs' clocks differ)."""
    o = bytearray(opts)
    sent = bytes(sent) + bytes(len(o))
    i = 0
    while i + 3 < len(o) and o[i] != 0:
        if o[i] == 1:
            i += 1
            continue
        n = o[i + 1]
        if n < 2:
            break
        if o[i] == 68:
            first, step = (4, 4) if (o[i + 3] & 0x0F) == 0 else (8, 8)
            for w in range(i + first, min(i + n, len(o)) - 3, step):
                if o[w:w + 4] != sent[w:w + 4]:
                    o[w:w + 4] = b"TTTT"
        i += n
    return bytes(o)


SENT = {}  # frame id -> the options it was sent with


def outcome(data):
    """What came out for a frame: its id and what to compare."""
    if len(data) < 34 or data[12:14] != b"\x08\x00":
        return None, None
    hl = (data[14] & 0x0F) * 4
    ip = data[14:14 + hl]
    ok = csum(ip) == 0
    if ip[9] == 1:
        icmp = data[14 + hl:]
        inner_id = struct.unpack("!H", icmp[12:14])[0] if len(icmp) >= 28 else -1
        return inner_id, ("icmp", icmp[0], icmp[1], icmp[4] if icmp[0] == 12 else 0, socket.inet_ntoa(ip[16:20]))
    ip_id = struct.unpack("!H", ip[4:6])[0]
    sport, dport = struct.unpack("!HH", data[14 + hl:18 + hl])
    if PROBE_PORT in (sport, dport) or ip_id >= 60000:
        return None, None
    return ip_id, ("fwd", socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20]), ip[8], masked(ip[20:], SENT.get(ip_id, b"")).hex(),
                   "checksum ok" if ok else "checksum WRONG")


def net_up():
    three_namespaces(NS_C, NS_G, NS_S, IF_C, IF_GI, IF_GO, IF_S)
    sh("ip", "-n", NS_G, "addr", "add", GW_IN + "/16", "dev", IF_GI)
    sh("ip", "-n", NS_G, "addr", "add", GW_OUT + "/16", "dev", IF_GO)
    sh("ip", "-n", NS_G, "neigh", "add", CLIENT, "lladdr", mac_of(NS_C, IF_C).hex(":"), "dev", IF_GI, "nud", "permanent")
    sh("ip", "-n", NS_G, "neigh", "add", SERVER, "lladdr", mac_of(NS_S, IF_S).hex(":"), "dev", IF_GO, "nud", "permanent")
    g = ("ip", "netns", "exec", NS_G)
    sh(*g, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    sh(*g, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
    sh(*g, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0")
    sh(*g, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", IF_GO, "-j", "MASQUERADE")
    # Nothing for the gateway itself is answered (xnat leaves those to the host).
    sh(*g, "iptables", "-P", "INPUT", "DROP")


def net_down():
    for ns in (NS_C, NS_G, NS_S):
        sh("ip", "netns", "del", ns, check=False)


def sequence():
    """Every frame to send, openers first where a case's answer needs a mapping."""
    seq = []
    fr = frames()
    for k in range(len(CASES)):
        seq.append((60000 + k, "in", opener(k)))
        seq.append((fr[2 * k][0], "in", fr[2 * k][3]))
        seq.append((fr[2 * k + 1][0], "out", fr[2 * k + 1][3]))
    return seq


def run_kernel():
    root = os.open("/proc/self/ns/net", os.O_RDONLY)
    socks, gw, ends = gateway_ends(NS_C, IF_C, NS_G, IF_GI, IF_GO, NS_S, IF_S)
    other = {"in": "out", "out": "in"}
    outs = []

    def is_probe(data):
        if len(data) < 42 or data[12:14] != b"\x08\x00" or data[23] != 17:
            return False
        l4 = 14 + (data[14] & 0x0F) * 4
        return PROBE_PORT in struct.unpack("!HH", data[l4:l4 + 4])

    def probe(side):
        """A plain datagram on the probe's connection (opened by the first
        from the inside), behind the frame just sent on the same path: once it
        is through, so is the frame, or it was dropped; answers come first."""
        if side == "in":
            socks[side].send(ip_frame(gw[side], ends[side], CLIENT, SERVER, [], 40000, PROBE_PORT, 0))
        else:
            socks[side].send(ip_frame(gw[side], ends[side], SERVER, GW_OUT, [], PROBE_PORT, 40000, 0))
        deadline, done = time.monotonic() + 2.0, False
        while not done and time.monotonic() < deadline:
            for name in ("in", "out"):
                try:
                    while True:
                        data = socks[name].recv(4096)
                        if is_probe(data):
                            done = done or name == other[side]
                            continue
                        outs.append(data)
                except BlockingIOError:
                    pass
            time.sleep(0.0005)
        return done

    if not probe("in"):
        raise RuntimeError("the first probe never came through")
    for fid, side, build in sequence():
        socks[side].send(build(gw[side], ends[side]))
        done = probe(side)
        if not done:
            raise RuntimeError(f"the probe behind frame {fid} never came through")
    for s in socks.values():
        s.close()
    libc.setns(root, 0x40000000)
    os.close(root)
    return outs


def run_xnat(xnat, work):
    ins = {"in": [], "out": []}
    t = 1_000_000_000
    for _, side, build in sequence():
        ins[side].append((t, build(XNAT_MAC[side], XNAT_MAC["client" if side == "in" else "server"])))
        t += 1000
    write_pcap(os.path.join(work, "eth1.in.pcap"), ins["in"])
    write_pcap(os.path.join(work, "eth0.in.pcap"), ins["out"])
    with open(os.path.join(work, "rules.txt"), "w") as fh:
        fh.write("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                 ":POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o eth0 -j MASQUERADE\nCOMMIT\n")
    with open(os.path.join(work, "xnat.toml"), "w") as fh:
        fh.write('rules = "rules.txt"\n[ipv4]\nicmp_msgs_per_sec = 100000\nicmp_msgs_burst = 100000\nicmp_ratelimit = 0\n'
                 '[[interface]]\nname = "eth1"\naddress = "198.18.0.1/16"\nmac = "02:00:00:00:00:01"\n'
                 '[[interface]]\nname = "eth0"\naddress = "198.19.0.1/16"\nmac = "02:00:00:00:00:02"\n'
                 f'[[neighbor]]\naddress = "{CLIENT}"\nmac = "02:00:00:00:00:10"\n'
                 f'[[neighbor]]\naddress = "{SERVER}"\nmac = "02:00:00:00:00:20"\n')
    out = os.path.join(work, "out")
    sh(xnat, "replay", "--config", os.path.join(work, "xnat.toml"), "--in", "eth1=" + os.path.join(work, "eth1.in.pcap"),
       "--in", "eth0=" + os.path.join(work, "eth0.in.pcap"), "--out", out)
    return read_pcap(os.path.join(out, "eth1.pcap")) + read_pcap(os.path.join(out, "eth0.pcap"))


def by_frame(outs):
    res = {}
    for data in outs:
        fid, what = outcome(data)
        if fid is not None:
            res.setdefault(fid, []).append(what)
    return res


def main():
    if os.geteuid() != 0 or not os.path.isdir("/proc/sys/net"):
        print("skipped: needs root to build network namespaces")
        return 77
    xnat = sys.argv[1]
    work = tempfile.mkdtemp(prefix="xnat-options-oracle.")
    try:
        net_up()
        kernel = by_frame(run_kernel())
    finally:
        net_down()
    try:
        ours = by_frame(run_xnat(xnat, work))
    finally:
        subprocess.run(["rm", "-rf", work])
    bad = 0
    kinds = {}
    for fid, side, name, _ in frames():
        k, x = kernel.get(fid, ["dropped"]), ours.get(fid, ["dropped"])
        kinds[k[0][0] if k != ["dropped"] else "dropped"] = kinds.get(k[0][0] if k != ["dropped"] else "dropped", 0) + 1
        if k != x:
            bad += 1
            print(f"#{fid} {name}:\n  kernel {k}\n  xnat   {x}")
        elif os.environ.get("VERBOSE"):
            print(f"#{fid} {name}: {k}")
    print(f"{len(frames())} frames ({', '.join(f'{v} {n}' for n, v in sorted(kinds.items()))} in the kernel); "
          f"{len(frames()) - bad} alike, {bad} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
