#!/usr/bin/env bash
# Sets up, builds, and runs xnat's demo on a self-contained network: three
# network namespaces (client 198.18.0.2 -- gateway -- server 198.19.0.2, see
# tests/live/lib.sh), xnat running as the gateway with MASQUERADE for the
# inside and port 8080 published to a web server inside. Through it: curl,
# ping, ab (and ab through the published port); then the live conntrack table
# and counters, and everything is removed. Needs root.
#   scripts/demo.sh [--backend auto|af_xdp|af_packet] [--offline]
# --offline runs the pcap replay demo instead (no privileges, no network).
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND=auto  # af_xdp where the driver has zero-copy, else af_packet (veth: af_packet)
OFFLINE=0
while [ $# -gt 0 ]; do
  case $1 in
    --backend) BACKEND=$2; shift 2 ;;
    --offline) OFFLINE=1; shift ;;
    *) echo "usage: scripts/demo.sh [--backend auto|af_xdp|af_packet] [--offline]" >&2; exit 2 ;;
  esac
done
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target xnat >/dev/null
if [ "$OFFLINE" = 1 ] || [ "$(id -u)" -ne 0 ]; then
  [ "$OFFLINE" = 1 ] || echo "demo: not root, so no live network; running the offline replay demo"
  out=$(mktemp -d /tmp/xnat-demo.XXXXXX)
  exec ./build/xnat demo --out "$out"
fi

set +e
XNAT=$PWD/build/xnat
. tests/live/lib.sh
trap net_down EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "network: client $NS_C (198.18.0.2) -- gateway $NS_G ($IF_GI 198.18.0.1, $IF_GO 198.19.0.1) -- server $NS_S (198.19.0.2)"
net_up
start_nginx "$NS_S" 198.19.0.2 server
start_nginx "$NS_C" 198.18.0.2 client
write_config
say "config ($WORK/xnat.toml) and rules (iptables-save syntax)"
cat "$WORK/xnat.toml" "$WORK/rules.txt"
say "xnat run --backend $BACKEND --stats 1"
start_xnat "$BACKEND" --stats 1 || exit 1
head -1 "$WORK/xnat.out"
sleep 0.5
say "client: curl http://198.19.0.2/ (MASQUERADE: the server sees the gateway's address)"
in_c curl -sS --max-time 5 http://198.19.0.2/
printf 'the server saw the client as: '
in_c curl -sS --max-time 5 http://198.19.0.2/whoami
say "client: ping -c 3 198.19.0.2"
in_c ping -c 3 -i 0.2 198.19.0.2
say "client: traceroute -n 198.19.0.2 (hop 1 is the gateway's own ICMP time exceeded)"
in_c traceroute -n -q 1 -w 2 -m 4 198.19.0.2
say "client: ab -n 2000 -c 50 http://198.19.0.2/"
in_c ab -q -n 2000 -c 50 http://198.19.0.2/ | grep -E "Complete|Failed|Requests per"
say "xnat conntrack -L -p tcp --dport 80 | head -3 (the running gateway's table, as conntrack lists it)"
"$XNAT" conntrack --control "$WORK/xnat.sock" -L -p tcp --dport 80 2>&1 | head -3
"$XNAT" conntrack --control "$WORK/xnat.sock" -C
say "server: curl http://198.19.0.1:8080/ (DNAT: the published port reaches the client's web server)"
in_s curl -sS --max-time 5 http://198.19.0.1:8080/
printf 'the client saw the server as: '
in_s curl -sS --max-time 5 http://198.19.0.1:8080/whoami
say "server: ab -n 2000 -c 50 http://198.19.0.1:8080/"
in_s ab -q -n 2000 -c 50 http://198.19.0.1:8080/ | grep -E "Complete|Failed|Requests per"
sleep 1.2
snapshot
say "live conntrack table (conntrack -L -o extended format; first 12 of $(grep -c . "$WORK/conntrack.txt"))"
head -12 "$WORK/conntrack.txt"
say "counters (non-zero)"
grep -v ' 0$' "$WORK/counters.txt"
say "xnat --stats 1 (last report)"
tail -4 "$WORK/xnat.out"
stop_xnat
# Whichever backend ran (XDP for af_xdp, tc for af_packet), nothing stays.
left=$( { ip -n "$NS_G" link show "$IF_GO" | grep -o 'prog/xdp'; tc -n "$NS_G" filter show dev "$IF_GO" ingress | grep -o xnat; } | sort -u | tr '\n' ' ')
say "stopped; $IF_GO's steering programs (XDP, tc): ${left:+still attached: }${left:-detached}"
