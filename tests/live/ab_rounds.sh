#!/bin/bash
# Diagnosis, not a test: the full-table stress of gateway_test.sh in rounds on
# one gateway, with the counters that matter after each round, optionally
# with tcpdump on the client's and the server's ends (kept in the printed
# work directory when a round fails).
#
#   tests/live/ab_rounds.sh af_xdp|af_packet ROUNDS [1: tcpdump]   (root)
#   WORKERS=2 for two workers; EXTRA="xnat_evicted_hold = 0" adds conntrack lines.
#
# Each round: ab -q -r -s 10 -n 20000 -c 1000 from the server's side to the
# DNAT-published port, at nf_conntrack_max = 1000. Stops at the first round
# with an incomplete or failed request.
set -u
BACKEND=${1:?usage: ab_rounds.sh af_xdp|af_packet ROUNDS [1]}
ROUNDS=${2:?usage: ab_rounds.sh af_xdp|af_packet ROUNDS [1]}
DUMP=${3:-0}
WORKERS=${WORKERS:-1}
QUEUES=$WORKERS
XNAT=${XNAT:-$(cd "$(dirname "$0")/../.." && pwd)/build/xnat}
[ "$(id -u)" -eq 0 ] || { echo "ab_rounds: needs root" >&2; exit 2; }
. "$(dirname "$0")/lib.sh"
trap net_down EXIT
ulimit -n 20000
net_up
start_nginx "$NS_C" 198.18.0.2 client
# shellcheck disable=SC2086
write_config "nf_conntrack_max = 1000" ${EXTRA:+"$EXTRA"}
start_xnat "$BACKEND" || exit 1
sleep 0.5
rc=0
for r in $(seq 1 "$ROUNDS"); do
  if [ "$DUMP" = 1 ]; then
    rm -f "$WORK/s.pcap" "$WORK/c.pcap"
    in_s tcpdump -s 80 -B 65536 -i "$IF_S" -w "$WORK/s.pcap" 2>/dev/null & D1=$!
    in_c tcpdump -s 80 -B 65536 -i "$IF_C" -w "$WORK/c.pcap" 2>/dev/null & D2=$!
    sleep 1
  fi
  in_s ab -q -r -s 10 -n 20000 -c 1000 http://198.19.0.1:8080/ >"$WORK/ab.txt" 2>&1
  ok=0
  grep -Eq '^Complete requests: +20000$' "$WORK/ab.txt" && grep -Eq '^Failed requests: +0$' "$WORK/ab.txt" && ok=1
  [ "$DUMP" = 1 ] && { kill "$D1" "$D2"; wait "$D1" "$D2" 2>/dev/null; }
  snapshot
  echo "round $r ok=$ok $(grep -E '^Requests per' "$WORK/ab.txt")"
  echo "   (cumulative) $(grep -E '^(drop_[a-z_]+|conntrack_evicted_[a-z_]+|conntrack_readmitted|held_frames|live_rx_ring_dropped[a-z_0-9]*) [1-9]' "$WORK/counters.txt" | tr '\n' ' ')"
  if [ $ok = 0 ]; then
    tail -3 "$WORK/ab.txt"
    echo "kept: $WORK"
    KEEP_WORK=1
    rc=1
    break
  fi
  sleep 2
done
stop_xnat
exit $rc
