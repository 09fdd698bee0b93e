#!/usr/bin/python3
"""Sends COUNT UDP datagrams from 198.18.0.2 to DST:PORT as Ethernet frames
written on IFNAME to DST_MAC, the way no socket would send them:
  --vlan VID       with an 802.1Q tag in the frame (payload "tagged VID")
  --reversed SIZE  a SIZE-byte payload cut into IPv4 fragments of at most
                   1480 bytes, sent last fragment first (payload bytes 0x5a)
Usage: raw_udp.py IFNAME DST_MAC DST PORT COUNT [--vlan VID | --reversed SIZE]"""
import socket
import struct
import sys

from bad_checksum import fold, words


def checksum(b):
    return ~fold(words(b)) & 0xFFFF


def ipv4(src, dst, ident, frag, body):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), ident, frag, 64, 17, 0, src, dst)
    return h[:10] + struct.pack("!H", checksum(h)) + h[12:] + body


ifname, dst_mac, dst, port, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
mode, arg = (sys.argv[6], int(sys.argv[7])) if len(sys.argv) > 7 else ("", 0)
src_ip, dst_ip = socket.inet_aton("198.18.0.2"), socket.inet_aton(dst)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
link = bytes.fromhex(dst_mac.replace(":", "")) + s.getsockname()[4]
tag = struct.pack("!HH", 0x8100, arg) if mode == "--vlan" else b""
payload = b"\x5a" * arg if mode == "--reversed" else b"tagged %d" % (arg if mode == "--vlan" else 0)
for i in range(count):
    udp = struct.pack("!HHHH", 41000 + i, port, 8 + len(payload), 0) + payload
    csum = checksum(src_ip + dst_ip + struct.pack("!BBH", 0, 17, len(udp)) + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    if mode != "--reversed":
        s.send(link + tag + b"\x08\x00" + ipv4(src_ip, dst_ip, 1, 0x4000, udp))
        continue
    pieces = [udp[o:o + 1480] for o in range(0, len(udp), 1480)]
    frames = [link + b"\x08\x00" + ipv4(src_ip, dst_ip, 7000 + i, (k * 185) | (0x2000 if k < len(pieces) - 1 else 0), p)
              for k, p in enumerate(pieces)]
    for f in reversed(frames):
        s.send(f)
print(count)
