#!/usr/bin/env python3
"""Writes engine_fuzz inputs (fuzz/engine_fuzz.cc: FuzzedDataProvider, frame
bytes from the front, control values from the back).

  make_engine_corpus.py --from-v1 DIR   rewrites DIR's seeds of the first
                                        format (one control byte, then frames
                                        each behind a length byte) in place

encode(bursts) is the format itself: bursts is a list of (clock step in ms,
[(control byte, frame bytes), ...])."""
import os
import sys


def take(value, lo, hi, width):
    """The bytes FuzzedDataProvider.ConsumeIntegralInRange reads (from the
    end of the input, most significant first) to return `value`."""
    v = value - lo
    out = []
    for i in range(width):
        out.append((v >> (8 * (width - 1 - i))) & 0xFF)
    return out


def encode(bursts):
    front, consumed = bytearray(), []
    for step, frames in bursts:
        consumed += take(step, 0, 40000, 2)
        consumed += take(len(frames), 1, 32, 1)
        for ctl, frame in frames:
            frame = frame[:1600]
            consumed += take(ctl, 0, 255, 1)
            consumed += take(len(frame), 0, 1600, 2)
            front += frame
    return bytes(front) + bytes(reversed(consumed))


def from_v1(data):
    if len(data) < 2:
        return None
    ctl, off, frames = data[0], 1, []
    while off < len(data):
        n = data[off]
        off += 1
        if n == 0 or n > len(data) - off:
            n = len(data) - off
        frames.append((ctl & 3, data[off:off + n]))
        off += n
    return encode([(ctl >> 2, frames[i:i + 32]) for i in range(0, len(frames), 32)])


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--from-v1":
        sys.exit(__doc__)
    d = sys.argv[2]
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        with open(path, "rb") as f:
            new = from_v1(f.read())
        if new is None:
            os.remove(path)
            continue
        with open(path, "wb") as f:
            f.write(new)
