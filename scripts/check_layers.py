#!/usr/bin/env python3
"""Holds src/'s includes to the layer graph of CMakeLists.txt: a folder may
include its own headers and those of the folders it is allowed to use (and
theirs, transitively). Tests of a folder (*_test.cc) may use anything below
the top. Prints every violation with its file and line; exit 1 if any.

Usage: check_layers.py SRC_DIR"""
import os
import re
import sys

# Each folder and the folders it uses directly.
USES = {
    "base": [],
    "packet": ["base"],
    "conntrack": ["packet"],
    "route": ["packet"],
    "nat": ["conntrack"],
    "dataplane": ["nat", "route"],
    "control": ["dataplane"],
    "io": ["base"],
    "cli": ["control", "io", "live"],
    "live": ["control"],
}


def below(folder):
    seen, todo = set(), list(USES[folder])
    while todo:
        f = todo.pop()
        if f not in seen:
            seen.add(f)
            todo.extend(USES[f])
    return seen


def main():
    src = sys.argv[1]
    include = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/[^"]+"')
    bad = []
    folders = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)))
    for folder in folders:
        if folder not in USES:
            bad.append(f"src/{folder}/: a folder the layer graph does not know (add it to USES and CMakeLists.txt)")
            continue
        allowed = below(folder) | {folder}
        for name in sorted(os.listdir(os.path.join(src, folder))):
            if not name.endswith((".h", ".cc")):
                continue
            ok = allowed | (set(USES) - {"cli", "live"} if name.endswith("_test.cc") else set())
            path = os.path.join(src, folder, name)
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    m = include.match(line)
                    if m and m.group(1) not in ok:
                        bad.append(f"src/{folder}/{name}:{lineno}: includes {m.group(1)}/, "
                                   f"which {folder}/ may not use (it uses: {', '.join(sorted(below(folder))) or 'nothing'})")
    for b in bad:
        print(b)
    print(f"layering: {len(folders)} folders, {len(bad)} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
