#!/usr/bin/python3
"""Sends COUNT UDP datagrams to DST:PORT whose checksum is wrong: neither the
full checksum nor the pseudo-header sum a partial one would hold. A raw
socket: the kernel adds the IPv4 header and leaves the UDP header as given.
Usage: bad_checksum.py SRC DST PORT COUNT"""
import socket
import struct
import sys


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def words(b):
    if len(b) % 2:
        b += b"\0"
    return sum(struct.unpack("!%dH" % (len(b) // 2), b))


def main():
    src, dst, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    payload = b"xnat bad checksum probe"
    length = 8 + len(payload)
    pseudo = words(socket.inet_aton(src) + socket.inet_aton(dst)) + 17 + length
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    s.bind((src, 0))
    for i in range(count):
        sport = 40000 + i
        hdr = struct.pack("!HHHH", sport, port, length, 0)
        good = (~fold(pseudo + words(hdr + payload))) & 0xFFFF or 0xFFFF
        partial = fold(pseudo)
        bad = good ^ 0x0F0F
        assert bad not in (good, partial, 0)
        s.sendto(struct.pack("!HHHH", sport, port, length, bad) + payload, (dst, 0))
    print(count)


if __name__ == "__main__":
    main()
