#!/usr/bin/python3
"""Sends COUNT UDP datagrams (payload "tagged VID") from 198.18.0.2 to DST:PORT
as Ethernet frames written on IFNAME, to DST_MAC, with an 802.1Q tag VID (0:
none). A packet socket: the frame leaves as given, the tag in its bytes.
Usage: tagged_frame.py IFNAME DST_MAC VID DST PORT COUNT"""
import socket
import struct
import sys


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


ifname, dst_mac, vid, dst, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
src_ip, dst_ip = socket.inet_aton("198.18.0.2"), socket.inet_aton(dst)
payload = b"tagged %d" % vid
length = 8 + len(payload)
udp = struct.pack("!HHHH", 41000 + vid, port, length, 0) + payload
csum = checksum(src_ip + dst_ip + struct.pack("!BBH", 0, 17, length) + udp) or 0xFFFF
udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 1, 0x4000, 64, 17, 0, src_ip, dst_ip)
ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
src_mac = s.getsockname()[4]
tag = struct.pack("!HH", 0x8100, vid) if vid else b""
frame = bytes.fromhex(dst_mac.replace(":", "")) + src_mac + tag + b"\x08\x00" + ip + udp
for _ in range(count):
    s.send(frame)
print(count)
