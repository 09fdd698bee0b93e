#!/usr/bin/env bash
# Sets up, builds, and runs xnat's demo: a gateway with an inside LAN, an outside
# network and a published port, fed a trace of DNS, HTTP, ping, traceroute and
# port-forwarded traffic; prints what the gateway sent, its connection table and
# its counters. Offline (pcap replay): needs no privileges and no network.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target xnat >/dev/null
out=$(mktemp -d /tmp/xnat-demo.XXXXXX)
./build/xnat demo --out "$out"
