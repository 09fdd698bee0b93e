#!/usr/bin/env bash
# End-to-end test of `xnat run` with real clients and servers on a three-
# namespace network (tests/live/lib.sh):
#   MASQUERADE: ping (also fragmented), curl to nginx, dig to dnsmasq, iperf3 TCP and UDP
#               (none lost), 64-byte frames of new flows paced well under capacity (none lost),
#               RFC 5780 NAT behaviour discovery (coturn: mapping, collision, a taken
#               port's mapping, filtering),
#               traceroute (the gateway's own time-exceeded, and the server's
#               port-unreachable translated back)
#   DNAT:       curl and ab to the gateway's outside address reach nginx inside
#   REDIRECT:   curl, ab, dig and iperf3 from the client to the server's address
#               reach the gateway's own nginx, dnsmasq and iperf3 (through the host port)
#   the live conntrack listing holds the flows those clients made
#   hosts with their default offloads (partial checksums, TSO/GSO super-frames;
#   HOST_OFFLOADS=off for full checksums and MTU-sized frames): 16 MB each way,
#   byte for byte; a datagram with a wrong checksum is still dropped and counted;
#   a frame tagged for a VLAN the gateway has no device for is not sent on untagged
#   (the tag in the frame or in its metadata, as a veth or NIC takes it out);
#   fragments that come last first arrive as whole datagrams (RFC 4787 REQ-14);
#   jumbo frames (MTU 9000), the first ones held while the next hop resolves;
#   a datagram larger than the output's MTU: fragments, or fragmentation needed (DF);
#   af_packet turns GRO on on its veths for the run (--gro auto; GRO=keep runs
#   it with --gro keep) and off again after; with offloads off, what GRO
#   coalesced passes as super-frames, and what GRO checked is not verified again
#   ab -c 1000 -n 20000 through DNAT with nf_conntrack_max=1000
#   a TCP sender sees no reordering (af_xdp; af_packet with RPS=on, which
#   runs it with --rps-cpus)
# With WORKERS > 1 the veths get that many queues and xnat that many workers;
# flows then spread over the workers and replies are handed to their owner.
# Usage: gateway_test.sh af_xdp|af_packet [WORKERS]   (root; XNAT=path to the binary)
set -u
BACKEND=${1:?usage: gateway_test.sh af_xdp|af_packet [WORKERS]}
WORKERS=${2:-1}
QUEUES=$WORKERS
LABEL=$BACKEND
[ "$WORKERS" -gt 1 ] && LABEL="$BACKEND, $WORKERS workers"
[ "${HOST_OFFLOADS:-on}" = off ] && LABEL="$LABEL, offloads off"
FAST=()  # FAST_PATH=on: established TCP through the tc program's fast path
[ "${FAST_PATH:-off}" = on ] && FAST=(--fast-path) && LABEL="$LABEL, fast path"
[ "${RPS:-off}" = on ] && LABEL="$LABEL, --rps-cpus"
GRO_ARG=()  # GRO=keep: the veths' GRO as found (off)
[ "${GRO:-auto}" = keep ] && GRO_ARG=(--gro keep) && LABEL="$LABEL, --gro keep"
# Whether the gateway turns GRO on on its veths for the run (--gro auto: af_packet).
GRO_SET=no
[ "$BACKEND" = af_packet ] && [ ${#GRO_ARG[@]} -eq 0 ] && GRO_SET=yes
# The plain variants (one worker, no fast path, RPS or --gro keep) also run
# the checks that take seconds and do not depend on those options.
PLAIN=no
[ "$WORKERS" = 1 ] && [ ${#FAST[@]} -eq 0 ] && [ "${RPS:-off}" = off ] && [ ${#GRO_ARG[@]} -eq 0 ] && PLAIN=yes
XNAT=${XNAT:-$(cd "$(dirname "$0")/../.." && pwd)/build/xnat}
if [ "$(id -u)" -ne 0 ]; then
  echo "gateway_test: needs root (network namespaces, XDP)"
  exit 77
fi
. "$(dirname "$0")/lib.sh"
trap net_down EXIT
ulimit -n 20000

passed=0 failed=0
echo_server() {  # echo_server PORT: one TCP connection on the server, echoed until it closes
  ip netns exec "$NS_S" python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.19.0.2", int(sys.argv[1]))); s.listen(1); s.settimeout(30)
c, _ = s.accept(); c.settimeout(30)
while True:
    d = c.recv(100000)
    if not d: break
    c.sendall(d)' "$1" >/dev/null 2>&1 &
  PIDS+=($!)
  sleep 0.3
}
udp_sink() {  # udp_sink PORT OUT PAYLOAD...: UDP on the server's PORT in the background (SINK: its
  # PID) until 1.5 s pass without a datagram; then writes to OUT how many came of each
  # PAYLOAD (a Python bytes expression), in order.
  local port=$1 out=$2
  shift 2
  ip netns exec "$NS_S" timeout 8 python3 -c '
import socket, sys
want = [eval(p) for p in sys.argv[2:]]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("198.19.0.2", int(sys.argv[1]))); s.settimeout(1.5)
got = [0] * len(want)
try:
    while True:
        d = s.recv(65536)
        if d in want: got[want.index(d)] += 1
except socket.timeout:
    print(*got)' "$port" "$@" >"$out" 2>&1 &
  SINK=$!
  sleep 0.3
}
udp_burst() {  # udp_burst PORT COUNT SIZE do|dont: COUNT datagrams of SIZE bytes 0x5a from the client to
  # the server's PORT, with DF (do: never fragmented, as ping -M do) or without (dont)
  in_c python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 2 if sys.argv[4] == "do" else 0)  # IP_MTU_DISCOVER: IP_PMTUDISC_DO or _DONT
for i in range(int(sys.argv[2])): s.sendto(b"\x5a" * int(sys.argv[3]), ("198.19.0.2", int(sys.argv[1])))' "$@"
}
counter() { awk -v k="$1" '$1 == k {print $2}' "$WORK/counters.txt"; }  # counter NAME: its value in the last snapshot
check() {  # check NAME COMMAND...: the command's status decides
  local name=$1
  shift
  if "$@" >"$WORK/check.out" 2>&1; then
    echo "ok   $LABEL: $name"
    passed=$((passed + 1))
  else
    echo "FAIL $LABEL: $name"
    sed 's/^/     | /' "$WORK/check.out" | tail -15
    failed=$((failed + 1))
  fi
}

net_up
start_nginx "$NS_S" 198.19.0.2 server
start_nginx "$NS_C" 198.18.0.2 client
start_nginx "$NS_G" 198.18.0.1 gateway 8081  # the REDIRECT rules' listeners
ip netns exec "$NS_G" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
  --listen-address=198.18.0.1 --port=5300 --address=/gateway.xnat.test/203.0.113.8 \
  --pid-file="$WORK/dnsmasq-g.pid" --user=root 2>"$WORK/dnsmasq-g.err" &
PIDS+=($!)
ip netns exec "$NS_S" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
  --listen-address=198.19.0.2 --port=53 --address=/gateway.xnat.test/203.0.113.7 \
  --pid-file="$WORK/dnsmasq.pid" --user=root 2>"$WORK/dnsmasq.err" &
PIDS+=($!)
write_config
# The workers on the last CPUs, one each, when a CPU is left for the control
# thread (as an operator runs it: --worker-cpus).
PIN=()
CPUS=($(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)))'))
if [ "${#CPUS[@]}" -gt "$WORKERS" ]; then
  WORKER_CPUS=$(IFS=,; echo "${CPUS[*]: -$WORKERS}")
  PIN=(--worker-cpus "$WORKER_CPUS")
fi
# RPS=on: --rps-cpus, the CPUs off the workers' (all of them if none is).
RPS_CPUS=()
if [ "${RPS:-off}" = on ]; then
  for c in "${CPUS[@]}"; do [[ ,${WORKER_CPUS:-}, == *,$c,* ]] || RPS_CPUS+=("$c"); done
  [ ${#RPS_CPUS[@]} -gt 0 ] || RPS_CPUS=("${CPUS[@]}")
  PIN+=(--rps-cpus "$(IFS=,; echo "${RPS_CPUS[*]}")")
fi
start_xnat "$BACKEND" --metrics 127.0.0.1:9510 "${FAST[@]}" "${PIN[@]}" "${GRO_ARG[@]}" || exit 1
sleep 0.5
if [ ${#PIN[@]} -gt 0 ]; then
  cpus_in() { local p; for p in ${1//,/ }; do seq "${p%-*}" "${p#*-}"; done; }  # 0-2,5 -> 0 1 2 5
  pinned() {  # each worker allowed on its CPU alone, the other threads on none of them
    local t comm allowed want
    IFS=, read -ra want <<<"$WORKER_CPUS"
    for t in /proc/$XNAT_PID/task/*; do
      comm=$(cat "$t/comm")
      allowed=$(awk '/^Cpus_allowed_list:/ {print $2}' "$t/status")
      if [[ $comm == "xnat-worker "* ]]; then
        [ "$allowed" = "${want[${comm#xnat-worker }]}" ] || { echo "$comm on $allowed, not ${want[${comm#xnat-worker }]}"; return 1; }
      elif cpus_in "$allowed" | grep -qxF -f <(printf '%s\n' "${want[@]}"); then
        echo "thread $comm may run on the workers' CPUs ($allowed)"
        return 1
      fi
    done
    grep -q "workers on CPU $WORKER_CPUS" "$WORK/xnat.out" || { cat "$WORK/xnat.out"; return 1; }
  }
  check "--worker-cpus $WORKER_CPUS: each worker on its own CPU, the control thread off them" pinned
  # What sharing the CPU costs is counted: a process spinning on worker 0's
  # CPU for 1.5 s while pings keep the worker polling makes it wait for its
  # CPU (unshared: about a millisecond in a whole test).
  worker0_wait() {  # seconds worker 0 waited for its CPU, from the metrics
    in_g curl -sS --max-time 5 http://127.0.0.1:9510/metrics |
      awk '$1 == "xnat_worker_runqueue_wait_seconds_total{worker=\"0\"}" {print $2}'
  }
  shared_cpu_counted() {
    local cpu=${WORKER_CPUS%%,*} before after hog
    before=$(worker0_wait)
    taskset -c "$cpu" timeout 1.5 sh -c 'while :; do :; done' &
    hog=$!
    in_c ping -q -i 0.002 -c 400 -w 5 198.19.0.2 >/dev/null  # 0.8 s: the worker polls throughout
    wait "$hog"
    sleep 0.3  # a publish (every 100 ms) after the hog
    after=$(worker0_wait)
    "$XNAT" status --control "$WORK/xnat.sock" >"$WORK/status.txt"
    echo "runqueue wait before $before s, after $after s"; cat "$WORK/status.txt"
    python3 -c "import sys; sys.exit(0 if float('$after') - float('$before') >= 0.1 else 1)" &&
      grep -Eq "^worker 0 \(CPU $cpu alone\): ran [0-9.]+ s, waited for its CPU [0-9.]+ s$" "$WORK/status.txt"
  }
  check "a process on worker 0's CPU is counted as its wait for the CPU (metrics, xnat status)" shared_cpu_counted
fi

# --- MASQUERADE: the client reaches the server, which sees only the gateway.
check "ping through MASQUERADE" in_c ping -c 3 -i 0.2 -W 2 198.19.0.2
check "ping of 3000 bytes through MASQUERADE (fragments both ways)" \
  bash -c "ip netns exec $NS_C ping -c 2 -i 0.2 -W 2 -s 3000 198.19.0.2 && ip netns exec $NS_C ping -c 1 -W 2 -s 20000 198.19.0.2"
# Record route (ping -R): the gateway writes its outside address into the
# echo on the way out and its inside address into the reply on the way back,
# as the kernel's forwarding does (ip_forward_options).
check "ping -R shows the gateway's outside address out and its inside address back" \
  bash -c "ip netns exec $NS_C ping -R -c 1 -W 2 198.19.0.2 > $WORK/ping_rr.txt; cat $WORK/ping_rr.txt;
           tr -s ' \t' '\n' < $WORK/ping_rr.txt | sed -n '/^RR:/,\$p' | grep -E '^198\.' | tr '\n' ' ' |
           grep -Eq '198\.19\.0\.1 .*198\.19\.0\.2 .*198\.18\.0\.1'"
check "curl to nginx through MASQUERADE" \
  bash -c "ip netns exec $NS_C curl -sS --max-time 5 http://198.19.0.2/ | grep -qx 'hello from server'"
check "dig to dnsmasq through MASQUERADE (UDP)" \
  bash -c "ip netns exec $NS_C dig +time=2 +tries=2 +short @198.19.0.2 gateway.xnat.test | grep -qx 203.0.113.7"
# RFC 5780 NAT behaviour discovery (coturn's STUN server on two server
# addresses, its client inside), as operators of games, VoIP and WebRTC test
# a NAT: netfilter maps a client's port to one outside port for every
# destination (RFC 4787 REQ-1), the client's own when free, and passes in
# only what comes from where the client sent (address and port dependent
# filtering). With several workers too, whichever worker a connection lands on.
natdisc() {  # natdisc OUT OPTIONS...: runs turnutils_natdiscovery from the client against the server
  local out=$1
  shift
  ip netns exec "$NS_C" timeout 30 turnutils_natdiscovery "$@" 198.19.0.2 >"$WORK/$out" 2>&1
  grep -E "NAT with|reflexive|Local addr" "$WORK/$out"
}
ports_of() {  # ports_of FILE WHAT: the ports of FILE's "WHAT addr" lines, in order
  sed -n "s/.*$2 addr: .*:\([0-9][0-9]*\)\$/\1/p" "$WORK/$1" | tr '\n' ' '
}
ip -n "$NS_S" addr add 198.19.0.3/16 dev "$IF_S"
ip -n "$NS_C" addr add 198.18.0.3/16 dev "$IF_C"
ip netns exec "$NS_S" turnserver -n --no-cli --no-tls --no-dtls --no-auth --listening-ip 198.19.0.2 \
  --listening-ip 198.19.0.3 --pidfile "$WORK/turnserver.pid" --log-file stdout --simple-log >"$WORK/turnserver.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do
  ip netns exec "$NS_S" ss -Hln 'sport = :3479' | grep -q 198.19.0.3 && break
  sleep 0.1
done
check "RFC 5780 mapping through MASQUERADE: endpoint-independent, the client's own port" \
  bash -c "$(declare -f natdisc ports_of); WORK=$WORK NS_C=$NS_C; natdisc map.txt -m &&
           grep -q 'NAT with Endpoint Independent Mapping' $WORK/map.txt &&
           read -r -a refl <<<\"\$(ports_of map.txt reflexive)\" && read -r -a loc <<<\"\$(ports_of map.txt Local)\" &&
           [ \${#refl[@]} -ge 2 ] && for p in \"\${refl[@]}\"; do [ \"\$p\" = \"\${loc[0]}\" ] || exit 1; done"
check "RFC 5780 collision: a second client on the same port gets another outside port" \
  bash -c "$(declare -f natdisc ports_of); WORK=$WORK NS_C=$NS_C; natdisc coll.txt -c -A 198.18.0.3 &&
           read -r -a refl <<<\"\$(ports_of coll.txt reflexive)\" && read -r -a loc <<<\"\$(ports_of coll.txt Local)\" &&
           [ \${#refl[@]} -eq 2 ] && [ \"\${loc[0]}\" = \"\${loc[1]}\" ] && [ \"\${refl[0]}\" = \"\${loc[0]}\" ] &&
           [ \"\${refl[0]}\" != \"\${refl[1]}\" ]"
# The second client's changed port is its mapping towards every destination
# while its flows live (find_appropriate_src): the mapping test from its
# address and local port. Against the server's other port: a port sum other
# than the collision's, so with several workers the connections may land on
# another worker than the one that changed the port (one run in two with 2).
check "RFC 5780 mapping of a client whose port was taken: endpoint-independent, its new port" \
  bash -c "$(declare -f natdisc ports_of); WORK=$WORK NS_C=$NS_C;
           read -r -a refl <<<\"\$(ports_of coll.txt reflexive)\" && read -r -a loc <<<\"\$(ports_of coll.txt Local)\" &&
           natdisc map2.txt -m -p 3479 -L 198.18.0.3 -l \${loc[1]} &&
           grep -q 'NAT with Endpoint Independent Mapping' $WORK/map2.txt &&
           read -r -a refl2 <<<\"\$(ports_of map2.txt reflexive)\" &&
           [ \${#refl2[@]} -ge 2 ] && for p in \"\${refl2[@]}\"; do [ \"\$p\" = \"\${refl[1]}\" ] || exit 1; done"
if [ "$WORKERS" -gt 1 ]; then
  snapshot
  check "  ... its changed port shared by the workers while its flows live" \
    test "$(counter live_source_mappings)" -ge 1
  echo "     connections passed to the worker of their client's mapping: $(counter adoptions)"
fi
# Filtering waits out two unanswered requests (6 s): the plain variants only.
if [ "$PLAIN" = yes ]; then
  check "RFC 5780 filtering through MASQUERADE: address and port dependent" \
    bash -c "$(declare -f natdisc); WORK=$WORK NS_C=$NS_C; natdisc filter.txt -f &&
             grep -q 'NAT with Address and Port Dependent Filtering' $WORK/filter.txt"
fi
ip netns exec "$NS_S" iperf3 -s -1 -B 198.19.0.2 -p 5201 >"$WORK/iperf-tcp.srv" 2>&1 &
PIDS+=($!)
sleep 0.3
ip netns exec "$NS_C" nstat -n
check "iperf3 TCP, 20 MB" in_c iperf3 -c 198.19.0.2 -p 5201 -n 20M --connect-timeout 3000
# A veth receives on its sender's CPU, and a TCP sender sends from two: the
# flow's frames stay in one order only through one receive queue (AF_XDP:
# the veth's one XDP queue; AF_PACKET: with --rps-cpus, not by default).
# The sender saw no segment arrive after a later one. Not with --fast-path:
# its hand-over waits until the worker has sent what it had of the
# connection (live/fast_path.h), but on a veth what the worker sent waits
# in its own CPU's backlog for that CPU's softirq, while the fast path
# forwards on the other CPU: about one 20 MB transfer in eight is seen
# reordered (5-85 segments) at the moment of the hand-over. The figure is
# printed; the defect is open (#20).
reorder_seen() {
  local seen
  seen=$(ip netns exec "$NS_C" nstat -a | awk '$1 ~ /^TcpExtTCP(SACK|TS|Reno)Reorder$/ {n += $2} END {print n + 0}')
  echo "reordering seen by the sender: $seen"
  [ "$seen" = 0 ]
}
if [ "$BACKEND" = af_xdp ] || [ ${#RPS_CPUS[@]} -gt 0 ]; then
  if [ ${#FAST[@]} -eq 0 ]; then
    check "  ... its segments arrived in the order they were sent (no reordering at the sender)" reorder_seen
  else
    echo "     with --fast-path, $(reorder_seen)"
  fi
fi
if [ ${#RPS_CPUS[@]} -gt 0 ]; then
  rps_set() {  # the banner names the masks, and the interfaces hold them
    local i want
    want=$(python3 -c 'import sys; print(format(sum(1 << int(c) for c in sys.argv[1:]), "x"))' "${RPS_CPUS[@]}")
    grep -q "RPS on $IF_GI, $IF_GO to CPU" "$WORK/xnat.out" || { cat "$WORK/xnat.out"; return 1; }
    for i in "$IF_GI" "$IF_GO"; do
      echo "$i rps_cpus $(in_g cat /sys/class/net/$i/queues/rx-0/rps_cpus), want $want"
      [ "$(in_g cat /sys/class/net/$i/queues/rx-0/rps_cpus | tr -d ',' | sed 's/^0*//')" = "$want" ] || return 1
    done
  }
  check "  ... --rps-cpus ${RPS_CPUS[*]}: the masks on the gateway's interfaces" rps_set
fi
gro_state() {  # gro_state on|off: GRO on both of the gateway's interfaces is that
  local i st
  for i in "$IF_GI" "$IF_GO"; do
    st=$(in_g ethtool -k "$i" | awk '$1 == "generic-receive-offload:" {print $2}')
    echo "$i generic-receive-offload: $st, want $1"
    [ "$st" = "$1" ] || return 1
  done
}
if [ $GRO_SET = yes ]; then
  gro_set() {  # the banner names the interfaces, and they have GRO on
    grep -q "GRO on $IF_GI, $IF_GO for the run" "$WORK/xnat.out" || { cat "$WORK/xnat.out"; return 1; }
    gro_state on
  }
  check "  ... GRO on on the gateway's veths for the run (--gro auto), the banner says so" gro_set
else
  check "  ... the gateway's veths keep GRO as found (off)" gro_state off
fi
ip netns exec "$NS_S" iperf3 -s -1 -B 198.19.0.2 -p 5202 >"$WORK/iperf-udp.srv" 2>&1 &
PIDS+=($!)
sleep 0.3
check "iperf3 UDP, 2 MB at 20 Mbit/s, none lost" \
  bash -c "ip netns exec $NS_C iperf3 -c 198.19.0.2 -p 5202 -u -b 20M -n 2M --connect-timeout 3000 --json > $WORK/iperf-udp.json &&
           python3 -c 'import json, sys; s = json.load(open(sys.argv[1]))[\"end\"][\"sum\"]; print(s)
sys.exit(0 if s[\"packets\"] > 0 and s[\"lost_packets\"] == 0 else 1)' $WORK/iperf-udp.json"
# Paced traffic well under the gateway's capacity arrives whole (RFC 2544's
# zero loss, at one low rate): 10 000 64-byte UDP frames of 1 024 new flows
# at 20 000 frames/s, counted by the server's firewall and in the gateway's
# receive rings. Timing-bound: XNAT_STRESS=0 (the sanitizer pass) skips it.
if [ "${XNAT_STRESS:-1}" = 1 ]; then
  PACE=${PACE:-$(dirname "$XNAT")/xnat_pace}
  in_s iptables -A INPUT -p udp --dport 9 -j DROP
  ring_drops() { awk '/^live_rx_ring_dropped_/ {s += $2} END {print s + 0}' "$WORK/counters.txt"; }
  paced_whole() {
    local r sent secs rate got d0 d1
    snapshot && d0=$(ring_drops) || return 1
    r=$(in_c "$PACE" "$IF_C" "$(mac_of "$NS_G" "$IF_GI")" "$(mac_of "$NS_C" "$IF_C")" 20000 10000 1024) || return 1
    sleep 0.3
    read -r sent secs rate <<<"$r"
    got=$(in_s iptables -L INPUT -v -x -n | awk '$3 == "DROP" && / dpt:9$/ {print $1}')
    snapshot && d1=$(ring_drops) || return 1
    echo "sent $sent in $secs s ($rate frames/s); the server's firewall counted $got; the gateway's rings dropped $((d1 - d0))"
    [ "$sent" = 10000 ] && [ "$got" = "$sent" ] && [ "$d1" = "$d0" ]
  }
  check "10 000 frames of 1 024 new flows paced at 20 000/s all arrive, no ring drops" paced_whole
fi
failed_before=$failed
check "traceroute shows the gateway hop and reaches the server" \
  bash -c "ip netns exec $NS_C traceroute -n -q 1 -w 2 -m 4 198.19.0.2 > $WORK/traceroute.txt &&
           cat $WORK/traceroute.txt &&
           grep -Eq '^ 1  198\.18\.0\.1 ' $WORK/traceroute.txt && grep -Eq '^ 2  198\.19\.0\.2 ' $WORK/traceroute.txt"
if [ "$failed" -gt "$failed_before" ]; then
  # It failed about once in 20-40 runs with 2 workers, undiagnosed: show where
  # the gateway counted the probes and their answers.
  snapshot && echo "     counters after it: $(grep -E '^(live_)?drop_[a-z_]+ [1-9]|^icmp_|^handoffs|^flows_created' $WORK/counters.txt | tr '\n' ' ')"
fi

# --- Bulk TCP both ways, byte for byte: with the hosts' offloads these are
# super-frames with partial checksums (af_packet keeps them whole, af_xdp
# completes the checksums of the frames XDP gets).
head -c 16M /dev/urandom >"$WORK/nginx-server/files/big.bin"
BIG_MD5=$(md5sum <"$WORK/nginx-server/files/big.bin" | cut -d' ' -f1)
check "curl of 16 MB from the server through MASQUERADE arrives intact" \
  bash -c "ip netns exec $NS_C curl -sS --max-time 20 http://198.19.0.2/files/big.bin | md5sum | grep -q $BIG_MD5"
ip netns exec "$NS_S" python3 -c '
import hashlib, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.19.0.2", 5210)); s.listen(1); s.settimeout(30)
c, _ = s.accept(); c.settimeout(30); h = hashlib.md5()
while True:
    d = c.recv(1 << 20)
    if not d: break
    h.update(d)
print(h.hexdigest())' >"$WORK/upload.md5" 2>&1 &
UPLOAD_PID=$!
PIDS+=($UPLOAD_PID)
sleep 0.3
check "16 MB from the client to a server through MASQUERADE arrives intact" \
  bash -c "ip netns exec $NS_C python3 -c '
import socket, sys
s = socket.create_connection((\"198.19.0.2\", 5210), timeout=20)
s.sendall(open(sys.argv[1], \"rb\").read()); s.close()' $WORK/nginx-server/files/big.bin &&
           for i in \$(seq 50); do [ -s $WORK/upload.md5 ] && break; sleep 0.1; done; grep -qx $BIG_MD5 $WORK/upload.md5"

# --- DNAT: the gateway's outside address, port 8080, is the client's nginx.
check "curl to a DNAT-published port reaches nginx inside" \
  bash -c "ip netns exec $NS_S curl -sS --max-time 5 http://198.19.0.1:8080/ | grep -qx 'hello from client'"
check "ab through DNAT completes every request" \
  bash -c "ip netns exec $NS_S ab -q -n 2000 -c 50 http://198.19.0.1:8080/ > $WORK/ab.txt &&
           grep -Eq '^Complete requests: +2000$' $WORK/ab.txt && grep -Eq '^Failed requests: +0$' $WORK/ab.txt"

# --- REDIRECT: the client's port 81 and 5353 to the server are the gateway's own services.
check "curl through REDIRECT reaches the gateway's own nginx, which sees the client" \
  bash -c "ip netns exec $NS_C curl -sS --max-time 5 http://198.19.0.2:81/ | grep -qx 'hello from gateway' &&
           ip netns exec $NS_C curl -sS --max-time 5 http://198.19.0.2:81/whoami | grep -qx 198.18.0.2"
check "dig through REDIRECT (UDP) reaches the gateway's own dnsmasq" \
  bash -c "ip netns exec $NS_C dig +time=2 +tries=2 +short @198.19.0.2 -p 5353 gateway.xnat.test | grep -qx 203.0.113.8"
check "ab through REDIRECT completes every request" \
  bash -c "ip netns exec $NS_C ab -q -n 2000 -c 50 http://198.19.0.2:81/ > $WORK/ab-redirect.txt &&
           grep -Eq '^Complete requests: +2000$' $WORK/ab-redirect.txt && grep -Eq '^Failed requests: +0$' $WORK/ab-redirect.txt"
ip netns exec "$NS_G" iperf3 -s -1 -B 198.18.0.1 -p 5205 >"$WORK/iperf-redirect.srv" 2>&1 &
PIDS+=($!)
sleep 0.3
check "iperf3 TCP through REDIRECT, 20 MB from the gateway's own server (-R)" \
  in_c iperf3 -c 198.19.0.2 -p 5204 -n 20M -R --connect-timeout 3000

# --- The live table has the flows the clients made (conntrack -L -o extended).
check "live conntrack listing" snapshot
CT=$WORK/conntrack.txt
check "  ... has the curl/iperf3 TCP flows, source-translated" \
  grep -Eq 'tcp +6 .* src=198\.18\.0\.2 dst=198\.19\.0\.2 sport=[0-9]+ dport=80 .*src=198\.19\.0\.2 dst=198\.19\.0\.1 sport=80 ' "$CT"
check "  ... has the DNS query (UDP)" \
  grep -Eq 'udp +17 .* src=198\.18\.0\.2 dst=198\.19\.0\.2 sport=[0-9]+ dport=53 .*src=198\.19\.0\.2 dst=198\.19\.0\.1 sport=53 ' "$CT"
check "  ... has the ping (ICMP)" \
  grep -Eq 'icmp +1 .* src=198\.18\.0\.2 dst=198\.19\.0\.2 type=8 .*src=198\.19\.0\.2 dst=198\.19\.0\.1 type=0 ' "$CT"
check "  ... has the DNAT connections, destination-translated" \
  grep -Eq 'tcp +6 .* src=198\.19\.0\.2 dst=198\.19\.0\.1 sport=[0-9]+ dport=8080 .*src=198\.18\.0\.2 dst=198\.19\.0\.2 sport=80 ' "$CT"
check "  ... has the REDIRECT connections, translated to the gateway's own address and port" \
  grep -Eq 'tcp +6 .* src=198\.18\.0\.2 dst=198\.19\.0\.2 sport=[0-9]+ dport=81 .*src=198\.18\.0\.1 dst=198\.18\.0\.2 sport=8081 ' "$CT"
check "  ... went to the host's stack and back through the host port, none lost" \
  bash -c "grep -Eq '^live_host_port_in [1-9]' $WORK/counters.txt && grep -Eq '^live_host_port_out [1-9]' $WORK/counters.txt &&
           ! grep -Eq '^(live_)?drop_host_(untracked|port_write|port_claimed) [1-9]|^live_host_(replies_failed|port_queue_dropped) [1-9]' $WORK/counters.txt"
check "  ... the fragmented pings' later fragments were translated, none unmatched" \
  bash -c "grep -Eq '^fragments_translated [1-9]' $WORK/counters.txt && grep -Eq '^drop_fragment_unmatched 0$' $WORK/counters.txt"
check "  ... no drops for bad packets" \
  bash -c "! grep -Eq '^drop_(truncated|bad_[a-z_]+|invalid|table_full|no_port|tx_ring_full|neighbor_timeout) [1-9]' $WORK/counters.txt"

# --- The running gateway asked over its control socket, as conntrack and sysctl are.
check "xnat conntrack -L lists the DNAT connections, conntrack's default format" \
  bash -c "'$XNAT' conntrack --control '$WORK/xnat.sock' -L -p tcp --orig-port-dst 8080 >$WORK/xc.out 2>$WORK/xc.err &&
           grep -Eq '^tcp +6 [0-9]+ [A-Z_]+ src=198\.19\.0\.2 dst=198\.19\.0\.1 sport=[0-9]+ dport=8080 ' $WORK/xc.out &&
           grep -Eq '^conntrack v1\.4\.7 \(conntrack-tools\): [1-9][0-9]* flow entries have been shown\.$' $WORK/xc.err"
check "xnat conntrack -C equals the lines of -L" \
  bash -c "[ \"\$('$XNAT' conntrack --control '$WORK/xnat.sock' -C)\" = \"\$('$XNAT' conntrack --control '$WORK/xnat.sock' -L 2>/dev/null | wc -l)\" ]"
check "xnat sysctl reads the live count" \
  bash -c "'$XNAT' sysctl --control '$WORK/xnat.sock' net.netfilter.nf_conntrack_count | grep -Eq '^net\.netfilter\.nf_conntrack_count = [1-9]'"
# A UDP exchange, its entry deleted: the next datagram is a new connection.
in_c dig +short +time=2 +tries=1 @198.19.0.2 -p 53 -b 198.18.0.2#40053 example.test >/dev/null 2>&1 || true
check "xnat conntrack -D removes a live connection, and its next packet opens a new one" \
  bash -c "'$XNAT' conntrack --control '$WORK/xnat.sock' -D -p udp --orig-port-src 40053 >/dev/null 2>&1 &&
           [ \"\$('$XNAT' conntrack --control '$WORK/xnat.sock' -C -p udp --orig-port-src 40053)\" = 0 ] &&
           ip netns exec $NS_C dig +short +time=2 +tries=1 @198.19.0.2 -p 53 -b 198.18.0.2#40053 example.test >/dev/null &&
           [ \"\$('$XNAT' conntrack --control '$WORK/xnat.sock' -C -p udp --orig-port-src 40053)\" = 1 ]"
# A live TCP connection's entry deleted between two of its exchanges: the
# client's next segment opens a new entry (picked up mid-stream, as
# nf_conntrack_tcp_loose lets the kernel). One worker keeps the client's
# port, as the kernel does here, so the server sees the same connection and
# it goes on; several workers gave it a port of one worker's share, and the
# new entry gets another (netfilter's random offset), which the server resets
# as the kernel's would be when it could not keep the port either.
# The client ports these checks bind (30080-30082) lie below the ephemeral
# range (32768-60999): one that ab's connections had used would still be in
# TIME_WAIT there, and the bind would fail.
echo_server 5211
check "xnat conntrack -D of a live TCP connection: its next segment opens a new entry (one worker: it goes on)" \
  bash -c "ip netns exec $NS_C python3 -c '
import os, socket, sys, time
s = socket.socket(); s.bind((\"198.18.0.2\", 30081)); s.settimeout(5)
s.connect((\"198.19.0.2\", 5211))
s.sendall(b\"one\"); assert s.recv(10) == b\"one\"
time.sleep(0.3)  # its delayed ACK out before the entry goes
open(sys.argv[1], \"w\").close()
while not os.path.exists(sys.argv[2]): time.sleep(0.02)
try:
    s.sendall(b\"two\"); print(\"ok\" if s.recv(10) == b\"two\" else \"bad\")
except ConnectionResetError:
    print(\"reset\")' $WORK/tcp-d.ready $WORK/tcp-d.go > $WORK/tcp-d.out 2>&1 & cl=\$!;
           for i in \$(seq 100); do [ -f $WORK/tcp-d.ready ] && break; sleep 0.05; done;
           '$XNAT' conntrack --control '$WORK/xnat.sock' -D -p tcp --orig-port-src 30081 &&
           n=\$('$XNAT' conntrack --control '$WORK/xnat.sock' -C -p tcp --orig-port-src 30081); echo \"after -D: \$n\";
           touch $WORK/tcp-d.go; wait \$cl; cat $WORK/tcp-d.out; [ \"\$n\" = 0 ] &&
           '$XNAT' conntrack --control '$WORK/xnat.sock' -L -p tcp --orig-port-src 30081 > $WORK/tcp-d.list 2>/dev/null;
           cat $WORK/tcp-d.list;
           if grep -qx reset $WORK/tcp-d.out; then
             [ $WORKERS != 1 ]  # the server reset the new port's segment; netfilter kills an entry whose only reply is a RST
           else
             grep -qx ok $WORK/tcp-d.out && if [ $WORKERS = 1 ]; then port=30081; else port='[0-9]+'; fi &&
             grep -Eq \"^tcp +6 [0-9]+ [A-Z_]+ src=198\\.18\\.0\\.2 dst=198\\.19\\.0\\.2 sport=30081 dport=5211 src=198\\.19\\.0\\.2 dst=198\\.19\\.0\\.1 sport=5211 dport=\$port \" $WORK/tcp-d.list
           fi"
# conntrack -E for one curl, TIME_WAIT cut to 1 s so its DESTROY follows:
# the kernel's sequence for the same exchange (events_test.cc has its lines).
check "xnat conntrack -E shows a curl as the kernel does: NEW, UPDATEs, DESTROY" \
  bash -c "'$XNAT' sysctl --control '$WORK/xnat.sock' -qw net.netfilter.nf_conntrack_tcp_timeout_time_wait=1 &&
           { '$XNAT' conntrack --control '$WORK/xnat.sock' -E -p tcp --orig-port-src 30080 >$WORK/ev.out 2>$WORK/ev.err & ep=\$!; } &&
           sleep 0.3 && ip netns exec $NS_C curl -sS --max-time 5 --local-port 30080 -o /dev/null http://198.19.0.2/ &&
           sleep 3; kill -INT \$ep; wait \$ep; r=\$?;
           '$XNAT' sysctl --control '$WORK/xnat.sock' -qw net.netfilter.nf_conntrack_tcp_timeout_time_wait=120;
           [ \$r = 0 ] &&
           [ \"\$(awk '{s=\"\"; for (i = 4; i <= NF; i++) if (\$i ~ /^[A-Z_]+\$/) { s = \$i; break }; printf \"%s %s,\", \$1, s}' $WORK/ev.out)\" = \
             '[NEW] SYN_SENT,[UPDATE] SYN_RECV,[UPDATE] ESTABLISHED,[UPDATE] FIN_WAIT,[UPDATE] LAST_ACK,[UPDATE] TIME_WAIT,[DESTROY] TIME_WAIT,' ] &&
           grep -Eq '^    \[NEW\] tcp      6 120 SYN_SENT src=198\.18\.0\.2 dst=198\.19\.0\.2 sport=30080 dport=80 \[UNREPLIED\] src=198\.19\.0\.2 dst=198\.19\.0\.1 sport=80 dport=[0-9]+\$' $WORK/ev.out &&
           grep -qx 'conntrack v1.4.7 (conntrack-tools): 7 flow events have been shown.' $WORK/ev.err"
# -F while connections come and go: the table empties, forwarding goes on,
# and new connections are tracked again (connections cut mid-stream may
# break, as they do in the kernel's: a server's segment that comes first after
# the flush opens an outbound connection and leaves MASQUERADEd, the client
# answers it with a RST, and ab waits for its timeout, 5 s here).
check "xnat conntrack -F during traffic empties the table; new connections work right after" \
  bash -c "ip netns exec $NS_S ab -q -r -s 5 -n 3000 -c 20 http://198.19.0.1:8080/ > $WORK/ab-flush.txt 2>&1 & ab=\$!;
           sleep 0.3; '$XNAT' conntrack --control '$WORK/xnat.sock' -F 2>$WORK/flush.err; r=\$?; wait \$ab;
           [ \$r = 0 ] && grep -qx 'conntrack v1.4.7 (conntrack-tools): connection tracking table has been emptied.' $WORK/flush.err &&
           ip netns exec $NS_S curl -sS --max-time 5 http://198.19.0.1:8080/ | grep -qx 'hello from client' &&
           ip netns exec $NS_C curl -sS --max-time 5 http://198.19.0.2/ | grep -qx 'hello from server' &&
           [ \$('$XNAT' conntrack --control '$WORK/xnat.sock' -C -p tcp) -ge 2 ]"
check "xnat reload during ab -c 500 through DNAT: every request completes" \
  bash -c "ip netns exec $NS_S ab -q -n 5000 -c 500 http://198.19.0.1:8080/ > $WORK/ab-reload.txt & ab=\$!;
           sleep 0.3; '$XNAT' reload --control '$WORK/xnat.sock' > $WORK/reload.out 2>&1; r=\$?; wait \$ab &&
           [ \$r = 0 ] && grep -q reloaded $WORK/reload.out &&
           grep -Eq '^Complete requests: +5000$' $WORK/ab-reload.txt && grep -Eq '^Failed requests: +0$' $WORK/ab-reload.txt"
check "xnat reload of a broken rules file is refused, the running rules kept" \
  bash -c "cp $WORK/rules.txt $WORK/rules.good && echo '-A POSTROUTING -j SNAT --to-sauce 1.2.3.4' >> $WORK/rules.txt;
           ! '$XNAT' reload --control '$WORK/xnat.sock' > $WORK/reload.out 2>&1; r=\$?; cp $WORK/rules.good $WORK/rules.txt;
           grep -q 'the running configuration is unchanged' $WORK/reload.out &&
           ip netns exec $NS_S curl -sS --max-time 5 http://198.19.0.1:8080/ | grep -qx 'hello from client'"
seen_as() {  # seen_as WANT ADDR PORT: a client's datagram reaches the server's ADDR:PORT from WANT, and the answer comes back
  ip netns exec "$NS_S" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], int(sys.argv[2]))); s.settimeout(5)
d, a = s.recvfrom(100); s.sendto(a[0].encode(), a)
' "$2" "$3" &
  local server=$!
  sleep 0.3
  local seen
  seen=$(ip netns exec "$NS_C" python3 -c '
import socket, sys
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.settimeout(3)
c.sendto(b"?", (sys.argv[1], int(sys.argv[2]))); print(c.recv(100).decode())' "$2" "$3" 2>&1)
  wait "$server"
  echo "the server saw: $seen"
  [ "$seen" = "$1" ]
}
# The host's other addresses: a second one on an interface (an alias, a
# keepalived VIP) and one on lo are the host's, its kernel answers for them;
# and SNAT to an alias the host holds (for its router to find by ARP) works,
# the answers to it taken from the kernel for the connection's port.
in_g ip addr add 198.19.0.7/16 dev "$IF_GO"
in_g ip addr add 10.99.0.1/32 dev lo
cp "$WORK/rules.txt" "$WORK/rules.good"
sed -i "s|^-A POSTROUTING -o $IF_GO -j MASQUERADE|-A POSTROUTING -o $IF_GO -p udp -m udp --dport 5398 -j SNAT --to-source 198.19.0.7\n&|" \
  "$WORK/rules.txt"
"$XNAT" reload --control "$WORK/xnat.sock" >/dev/null 2>&1
sleep 0.3
check "the host's other addresses (an alias on the outside, one on lo) answer ping, not forwarded" \
  bash -c "ip netns exec $NS_C ping -c 2 -i 0.2 -W 2 198.19.0.7 && ip netns exec $NS_C ping -c 2 -i 0.2 -W 2 10.99.0.1"
check "  ... SNAT to the alias: the server sees it, its answer comes back" seen_as 198.19.0.7 198.19.0.2 5398
# An outside with addresses in two prefixes: MASQUERADE takes the one in
# the next hop's prefix, as the kernel's (inet_select_addr).
in_g ip addr add 203.0.113.5/24 dev "$IF_GO"
in_s ip addr add 203.0.113.1/24 dev "$IF_S"
in_s ip addr add 198.51.100.9/32 dev lo
in_g ip route add 198.51.100.9/32 via 203.0.113.1
check "  ... MASQUERADE through an output with two prefixes takes the address in the next hop's" \
  seen_as 203.0.113.5 198.51.100.9 5399
in_g ip route del 198.51.100.9/32
in_s ip addr del 198.51.100.9/32 dev lo
in_s ip addr del 203.0.113.1/24 dev "$IF_S"
in_g ip addr del 203.0.113.5/24 dev "$IF_GO"
cp "$WORK/rules.good" "$WORK/rules.txt"
"$XNAT" reload --control "$WORK/xnat.sock" >/dev/null 2>&1
in_g ip addr del 198.19.0.7/16 dev "$IF_GO"
in_g ip addr del 10.99.0.1/32 dev lo
# ECMP: a route of two next hops (both the server's addresses here) to a
# host behind them. Each source keeps to one hop by the hash of its
# addresses: 198.18.0.2 to 198.19.0.2, 198.18.0.3 to 198.19.0.3 (as
# Fib::multipath_hash spreads them); the gateway asks the kernel for the
# second hop's MAC only if a flow took it.
# (198.19.0.3 and 198.18.0.3 may be there from earlier checks: kept then.)
ecmp_s=no ecmp_c=no
in_s ip addr add 198.19.0.3/16 dev "$IF_S" 2>/dev/null && ecmp_s=yes
in_s ip addr add 198.51.100.1/32 dev lo
in_c ip addr add 198.18.0.3/16 dev "$IF_C" 2>/dev/null && ecmp_c=yes
in_g ip route add 198.51.100.0/24 nexthop via 198.19.0.2 dev "$IF_GO" nexthop via 198.19.0.3 dev "$IF_GO"
sleep 0.3
check "a route of two next hops (ECMP): pings from two sources reach the host behind them, by both hops" \
  bash -c "ip netns exec $NS_C ping -c 2 -i 0.2 -W 2 -I 198.18.0.2 198.51.100.1 &&
           ip netns exec $NS_C ping -c 2 -i 0.2 -W 2 -I 198.18.0.3 198.51.100.1 &&
           ip -n $NS_G neigh show 198.19.0.3 | tee /dev/stderr | grep -q lladdr"
in_g ip route del 198.51.100.0/24
[ $ecmp_c = yes ] && in_c ip addr del 198.18.0.3/16 dev "$IF_C"
in_s ip addr del 198.51.100.1/32 dev lo
[ $ecmp_s = yes ] && in_s ip addr del 198.19.0.3/16 dev "$IF_S"
# The kernel's reject routes (a blackhole for bogons, say): what they cover
# goes nowhere, not out by the default route; unreachable and prohibit
# answer with their ICMP errors, a blackhole with none.
in_g ip route add blackhole 198.51.100.64/26
in_g ip route add unreachable 198.51.100.128/26
in_g ip route add prohibit 198.51.100.192/26
sleep 0.3
for a in 65 129 193; do in_c ping -c 1 -W 1 198.51.100.$a >"$WORK/reject_$a.txt" 2>&1; done
snapshot
check "blackhole, unreachable and prohibit routes: one ping each dropped and counted" \
  bash -c "grep -E '^drop_(blackhole|unreachable|prohibit)_route ' $WORK/counters.txt;
           grep -Eq '^drop_blackhole_route 1$' $WORK/counters.txt &&
           grep -Eq '^drop_unreachable_route 1$' $WORK/counters.txt &&
           grep -Eq '^drop_prohibit_route 1$' $WORK/counters.txt"
check "  ... the client saw host unreachable and administratively prohibited, nothing for the blackhole" \
  bash -c "cat $WORK/reject_*.txt; ! grep -Eq 'Unreachable|Prohibited|filtered' $WORK/reject_65.txt &&
           grep -q 'Destination Host Unreachable' $WORK/reject_129.txt &&
           grep -Eq 'Packet filtered|Prohibited' $WORK/reject_193.txt"
in_g ip route del 198.51.100.64/26
in_g ip route del 198.51.100.128/26
in_g ip route del 198.51.100.192/26
# rp_filter on the gateway's inside: a client's packet from a source the
# gateway has no route back to by that interface (spoofed) opens nothing.
# (The gateway reads the change from rtnetlink a moment later: pinged until.)
in_g sysctl -qw "net.ipv4.conf.$IF_GI.rp_filter=1"
in_c ip addr add 203.0.113.77/32 dev "$IF_C"
for i in $(seq 1 20); do
  in_c ping -c 1 -W 0.3 -I 203.0.113.77 198.19.0.2 >/dev/null 2>&1
  snapshot && [ "$(counter drop_rp_filter)" -ge 1 ] && break
done
in_g sysctl -qw "net.ipv4.conf.$IF_GI.rp_filter=0"
in_c ip addr del 203.0.113.77/32 dev "$IF_C"
check "rp_filter 1 on the inside: a spoofed source's ping is dropped and counted, as the kernel's" \
  bash -c "grep -E '^drop_rp_filter ' $WORK/counters.txt; grep -Eq '^drop_rp_filter [1-9]' $WORK/counters.txt"
# Policy routing rules (ip rule) are not followed: the gateway says so.
in_g ip rule add from 198.18.0.0/16 lookup 100 priority 100
check "a policy routing rule: the gateway says it does not follow it, at once and in its status" \
  bash -c "for i in \$(seq 1 50); do grep -q 'policy routing' $WORK/xnat.err && break; sleep 0.1; done
           grep 'policy routing' $WORK/xnat.err &&
           '$XNAT' status --control '$WORK/xnat.sock' | grep -F 'policy routing rules not followed (the main table alone routes): 100: from 198.18.0.0/16 lookup 100'"
in_g ip rule del priority 100
# --- Metrics: promtool accepts them, and a Prometheus server scrapes them.
check "metrics pass promtool check metrics" \
  bash -c "ip netns exec $NS_G curl -sS --max-time 5 http://127.0.0.1:9510/metrics > $WORK/metrics.txt &&
           grep -Eq '^xnat_flows_created_total [1-9]' $WORK/metrics.txt && promtool check metrics < $WORK/metrics.txt"
check "  ... with the MASQUERADE pool's flows and ports, and bytes per interface" \
  bash -c "grep -Eq '^xnat_nat_pool_ports\{address=\"198\.19\.0\.1\"\} 64512$' $WORK/metrics.txt &&
           grep -Eq '^xnat_nat_translated_flows\{address=\"198\.19\.0\.1\",proto=\"tcp\"\} [1-9]' $WORK/metrics.txt &&
           grep -Eq '^xnat_interface_received_bytes_total\{interface=\"$IF_GI\"\} [1-9]' $WORK/metrics.txt"
# A Prometheus server takes seconds to start: the plain variants only.
if [ "$PLAIN" = yes ]; then
  cat > "$WORK/prometheus.yml" <<PROM
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: xnat
    static_configs: [{targets: ['127.0.0.1:9510']}]
PROM
  ip netns exec "$NS_G" prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prom" \
    --web.listen-address=127.0.0.1:9590 >"$WORK/prometheus.log" 2>&1 &
  PIDS+=($!)
  check "a Prometheus server scrapes them (xnat_conntrack_entries queried back)" \
    bash -c "for i in \$(seq 1 60); do
               ip netns exec $NS_G curl -sS --max-time 2 'http://127.0.0.1:9590/api/v1/query?query=xnat_conntrack_entries' 2>/dev/null |
                 grep -q '\"__name__\":\"xnat_conntrack_entries\"' && exit 0; sleep 0.5; done; exit 1"
fi
check "xnat status names the interfaces and the flows" \
  bash -c "'$XNAT' status --control '$WORK/xnat.sock' | grep -Eq '^uptime [0-9]+ s; flows [1-9][0-9]* of '"

if [ "$WORKERS" -gt 1 ]; then
  for w in $(seq 0 $((WORKERS - 1))); do
    check "  ... worker $w created flows" grep -Eq "^cpu=$w found=[0-9]+ invalid=[0-9]+ insert=[1-9]" "$WORK/counters.txt"
  done
  check "  ... frames reached their flow's worker (handoffs counted, none lost)" \
    bash -c "grep -Eq '^handoffs [1-9]' $WORK/counters.txt && ! grep -Eq '^(live_)?drop_handoff_(full|loop) [1-9]' $WORK/counters.txt"
fi
if [ "${HOST_OFFLOADS:-on}" = on ]; then
  if [ "$BACKEND" = af_packet ]; then
    # Also with several workers: a super-frame handed to the worker that owns
    # its flow passes whole.
    check "  ... super-frames came in and left whole (TSO/GSO kept end to end)" \
      bash -c "grep -E 'gso' $WORK/counters.txt; grep -Eq '^live_rx_gso_$IF_GI [1-9]' $WORK/counters.txt &&
               grep -Eq '^live_tx_gso_$IF_GO [1-9]' $WORK/counters.txt"
  else
    check "  ... the hosts' partial checksums were completed" grep -Eq '^l4_csum_completed [1-9]' "$WORK/counters.txt"
  fi
fi
if [ "${HOST_OFFLOADS:-on}" = off ] && [ $GRO_SET = yes ]; then
  # The hosts sent MTU frames; the veths' GRO coalesced them, and the
  # super-frames passed the gateway whole, both ways.
  check "  ... MTU frames the veths' GRO coalesced passed as super-frames, both ways" \
    bash -c "grep -E 'gso' $WORK/counters.txt; grep -Eq '^live_rx_gso_$IF_GI [1-9]' $WORK/counters.txt &&
             grep -Eq '^live_tx_gso_$IF_GO [1-9]' $WORK/counters.txt && grep -Eq '^live_rx_gso_$IF_GO [1-9]' $WORK/counters.txt &&
             grep -Eq '^live_tx_gso_$IF_GI [1-9]' $WORK/counters.txt"
fi
if [ "${WORKERS:-1}" = 1 ] && { [ "$BACKEND" = af_xdp ] || { [ "${HOST_OFFLOADS:-on}" = off ] && [ $GRO_SET = no ]; }; }; then
  # MTU frames of one connection in a burst leave as one super-frame (GRO at
  # the output; AF_XDP on a veth gets only MTU frames); the transfers above
  # arrived byte for byte.
  check "  ... MTU-sized TCP segments left coalesced into super-frames, both ways" \
    bash -c "grep -E 'coalesced' $WORK/counters.txt; grep -Eq '^live_tx_coalesced_$IF_GO [1-9]' $WORK/counters.txt &&
             grep -Eq '^live_tx_coalesced_$IF_GI [1-9]' $WORK/counters.txt"
fi
if [ ${#FAST[@]} -gt 0 ]; then
  # The bulk transfers above went through the tc program, not the worker;
  # the connections came back to the engine for their FINs. Their directions
  # opened to it behind the segments the worker still had (late: the worker
  # had not sent them within 20 ms; not asserted, a busy machine's delay).
  check "  ... established TCP went through the fast path, none dropped there" \
    bash -c "grep -E 'fast_path|offload' $WORK/counters.txt; grep -Eq '^live_fast_path_frames [1-9]' $WORK/counters.txt &&
             grep -Eq '^live_fast_path_dropped 0$' $WORK/counters.txt && grep -Eq '^conntrack_offloads [1-9]' $WORK/counters.txt &&
             grep -Eq '^conntrack_offload_withdrawn [1-9]' $WORK/counters.txt &&
             grep -Eq '^live_fast_path_opened [1-9]' $WORK/counters.txt &&
             grep -Eq '^xnat_fast_path_frames_total [1-9]' $WORK/metrics.txt &&
             grep -Eq '^xnat_fast_path_opened_total\{order=\"in_order\"\} [1-9]' $WORK/metrics.txt"
  # A connection kept open: listed as offloaded, as conntrack lists a
  # flowtable's; its data still flows both ways; closed, it is the engine's
  # again and ends as the kernel's would (TIME_WAIT).
  echo_server 5212
  check "  ... an open connection is listed [OFFLOAD]; closed, it goes on to TIME_WAIT through the engine" \
    bash -c "ip netns exec $NS_C python3 -c '
import os, socket, sys, time
s = socket.socket(); s.bind((\"198.18.0.2\", 30082)); s.settimeout(5)
s.connect((\"198.19.0.2\", 5212))
for i in range(50):
    s.sendall(b\"x\" * 20000); got = 0
    while got < 20000: got += len(s.recv(100000))
open(sys.argv[1], \"w\").close()
while not os.path.exists(sys.argv[2]): time.sleep(0.02)
s.sendall(b\"y\" * 20000); got = 0
while got < 20000: got += len(s.recv(100000))
s.close(); print(\"ok\")' $WORK/fp.ready $WORK/fp.go > $WORK/fp.out 2>&1 & cl=\$!;
             for i in \$(seq 100); do [ -f $WORK/fp.ready ] && break; sleep 0.05; done;
             '$XNAT' conntrack --control '$WORK/xnat.sock' -L -p tcp --orig-port-src 30082 > $WORK/fp.list 2>/dev/null;
             touch $WORK/fp.go; wait \$cl; cat $WORK/fp.out $WORK/fp.list; grep -qx ok $WORK/fp.out &&
             grep -Eq '^tcp +6 [0-9]+ ESTABLISHED src=198\.18\.0\.2 dst=198\.19\.0\.2 sport=30082 dport=5212 .*\[OFFLOAD\]' $WORK/fp.list &&
             sleep 0.3 && '$XNAT' conntrack --control '$WORK/xnat.sock' -L -p tcp --orig-port-src 30082 2>/dev/null |
               grep -Eq '^tcp +6 [0-9]+ TIME_WAIT .*sport=30082 .*\[ASSURED\]'"
fi
if [ "$BACKEND" = af_packet ] && [ "${HOST_OFFLOADS:-on}" = off ]; then
  # GRO on the inside interface (--gro auto has turned it on; with --gro keep
  # it is turned on here, as a NIC has it): what GRO checked and did not
  # merge (UDP datagrams here) comes CHECKSUM_UNNECESSARY and is not verified
  # again, as netfilter does not; the datagrams with a wrong checksum below
  # fail GRO's check and are still dropped.
  in_g ethtool -K "$IF_GI" gro on >/dev/null
  snapshot
  valid0=$(counter "live_rx_csum_valid_$IF_GI")
  udp_sink 5399 "$WORK/gro_sink.out" 'b"checked by GRO"'
  in_c python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(20): s.sendto(b"checked by GRO", ("198.19.0.2", 5399)); time.sleep(0.005)'
  wait "$SINK"
  snapshot
  valid1=$(counter "live_rx_csum_valid_$IF_GI")
  check "  ... with GRO on, what it checked arrives and is not verified again (live_rx_csum_valid_$IF_GI)" \
    bash -c "echo \"received \$(cat $WORK/gro_sink.out) of 20, live_rx_csum_valid_$IF_GI $valid0 -> $valid1\";
             [ \"\$(cat $WORK/gro_sink.out)\" = 20 ] && [ $((valid1 - valid0)) -ge 20 ]"
fi
# A frame tagged for a VLAN the gateway has no device for is not the inside
# interface's: the kernel drops it, and so must the gateway rather than send
# it on untagged into the outside; both backends leave it to the kernel
# (live_vlan_to_kernel). The tag in the frame (42), and in the frame's
# metadata (43), as a host's VLAN device sends it over a veth, whose receiving
# end takes it out of the frame before XDP; tc on the client puts it there.
# An untagged frame the same way arrives.
clang -O2 -target bpf -I/usr/include/"$(gcc -print-multiarch)" -c "$(dirname "$0")/vlan_push.bpf.c" \
  -o "$WORK/vlan_push.o"
in_c tc qdisc add dev "$IF_C" clsact
in_c tc filter add dev "$IF_C" egress bpf da obj "$WORK/vlan_push.o" sec tc
snapshot
vlan0=$(counter live_vlan_to_kernel)
udp_sink 5398 "$WORK/vlan_sink.out" 'b"tagged 0"' 'b"tagged 42"' 'b"tagged 43"'
GW_MAC=$(mac_of "$NS_G" "$IF_GI")
in_c /usr/bin/python3 "$(dirname "$0")/raw_udp.py" "$IF_C" "$GW_MAC" 198.19.0.2 5398 5 --vlan 42 >/dev/null
in_c /usr/bin/python3 "$(dirname "$0")/raw_udp.py" "$IF_C" "$GW_MAC" 198.19.0.2 5398 5 >/dev/null
in_c python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("198.18.0.2", 5396))
for i in range(5): s.sendto(b"tagged 43", ("198.19.0.2", 5398))'
wait "$SINK"
snapshot
vlan1=$(counter live_vlan_to_kernel)
in_c tc qdisc del dev "$IF_C" clsact
check "a frame tagged for a VLAN the gateway has none of is not forwarded untagged; untagged ones are" \
  bash -c "echo \"untagged, tagged in the frame, tagged in its metadata received: \$(cat $WORK/vlan_sink.out);\"
           echo \"live_vlan_to_kernel $vlan0 -> $vlan1\"; grep -x 'xnat run: warning: .*VLAN.*' $WORK/xnat.err && exit 1;
           [ \"\$(cat $WORK/vlan_sink.out)\" = '5 0 0' ] && [ $((vlan1 - vlan0)) -ge 10 ]"
# RFC 4787 REQ-14: fragments out of order, the last one first. Each 4000-byte
# datagram (three fragments) reaches the server whole; the later fragments
# waited for their first (fragments_held).
snapshot
held0=$(counter fragments_held)
udp_sink 5397 "$WORK/frag_sink.out" 'b"\x5a" * 4000'
# One CPU: the frames reach the gateway in the order sent (a veth receives on
# the sender's CPU, and a sender moved between CPUs fills two backlogs).
in_c taskset -c 0 /usr/bin/python3 "$(dirname "$0")/raw_udp.py" "$IF_C" "$GW_MAC" 198.19.0.2 5397 5 --reversed 4000 >/dev/null
wait "$SINK"
snapshot
held1=$(counter fragments_held)
check "datagrams whose fragments come last first arrive whole (fragments_held)" \
  bash -c "echo \"whole datagrams: \$(cat $WORK/frag_sink.out) of 5, fragments_held $held0 -> $held1\";
           [ \"\$(cat $WORK/frag_sink.out)\" = 5 ] && [ $((held1 - held0)) -eq 10 ]"
in_c /usr/bin/python3 "$(dirname "$0")/bad_checksum.py" 198.18.0.2 198.19.0.2 9 5 >/dev/null
sleep 0.3
snapshot
check "datagrams with a wrong UDP checksum are dropped and counted (nf_conntrack_checksum = 1)" \
  grep -Eq '^drop_bad_l4_checksum 5$' "$WORK/counters.txt"
check "the gateway's own address still answers ping (host traffic passes to the kernel)" \
  in_s ping -c 2 -i 0.2 -W 2 198.19.0.1
check "clean stop" stop_xnat
if [ ${#RPS_CPUS[@]} -gt 0 ]; then
  rps_restored() {
    local i
    for i in "$IF_GI" "$IF_GO"; do
      echo "$i rps_cpus $(in_g cat /sys/class/net/$i/queues/rx-0/rps_cpus)"
      [ -z "$(in_g cat /sys/class/net/$i/queues/rx-0/rps_cpus | tr -d ',0')" ] || return 1
    done
  }
  check "  ... the interfaces' RPS masks as they were" rps_restored
fi
[ $GRO_SET = yes ] && check "  ... GRO off again on the gateway's veths" gro_state off
check "interfaces are the kernel's again after stop" \
  bash -c "! ip -n $NS_G link show $IF_GO | grep -q 'prog/xdp' && ! tc -n $NS_G filter show dev $IF_GO ingress | grep -q xnat &&
           ! ip -n $NS_G link show xnat-host 2>/dev/null"

# --- A full table never refuses a connection: 20 000 requests, 1 000 at a time, 1 000 entries.
# A timing stress test: XNAT_STRESS=0 skips it (scripts/test.sh does for the
# sanitizer build, whose Debug+ASan binary is several times slower).
if [ "${XNAT_STRESS:-1}" = 1 ]; then
  write_config "nf_conntrack_max = 1000"
  start_xnat "$BACKEND" "${FAST[@]}" || exit 1
  check "ab -c 1000 -n 20000 through DNAT at nf_conntrack_max=1000" \
    bash -c "ip netns exec $NS_S ab -q -r -s 10 -n 20000 -c 1000 http://198.19.0.1:8080/ > $WORK/ab1000.txt;
             cat $WORK/ab1000.txt | grep -E -A1 'Complete|Failed|Requests per'
             grep -Eq '^Complete requests: +20000$' $WORK/ab1000.txt && grep -Eq '^Failed requests: +0$' $WORK/ab1000.txt"
  snapshot
  echo "     $(grep -E '^Requests per' $WORK/ab1000.txt); $(grep -E '^conntrack_evicted_' $WORK/counters.txt | tr '\n' ' ')"
  echo "     nonzero drops: $(grep -E '^(live_)?drop_[a-z_]+ [1-9]|^live_rx_ring|^conntrack_borrowed|^handoffs' $WORK/counters.txt | tr '\n' ' ')"
  check "  ... with no table_full drops" bash -c "! grep -Eq '^drop_table_full [1-9]' $WORK/counters.txt"
  check "  ... and the table held at most 1000 entries" \
    bash -c "[ \$(grep -c . $WORK/conntrack.txt) -le 1000 ]"
  stop_xnat
else
  echo "skip $LABEL: ab -c 1000 -n 20000 at nf_conntrack_max=1000 (XNAT_STRESS=0)"
fi

# --- No --backend: auto takes AF_PACKET where the driver has no AF_XDP
# zero-copy (veth has none), and says so.
if [ "$BACKEND" = af_packet ] && [ "$WORKERS" = 1 ] && [ ${#FAST[@]} -eq 0 ]; then
  ip netns exec "$NS_G" "$XNAT" run --config "$WORK/xnat.toml" --control "" >"$WORK/auto.out" 2>"$WORK/auto.err" &
  XNAT_PID=$!
  for i in $(seq 1 50); do grep -q '^xnat: ' "$WORK/auto.out" 2>/dev/null && break; sleep 0.1; done
  check "--backend auto: af_packet on veth (no AF_XDP zero-copy), said at start and in the banner; curl through it" \
    bash -c "cat $WORK/auto.err $WORK/auto.out;
             grep -qx \"xnat: note: --backend auto: af_packet, as $IF_GI's driver has no AF_XDP zero-copy\" $WORK/auto.err &&
             grep -q \"^xnat: af_packet on .*; --backend auto: $IF_GI's driver has no AF_XDP zero-copy\$\" $WORK/auto.out &&
             ! grep -q libbpf $WORK/auto.err &&
             ip netns exec $NS_C curl -sS --max-time 5 http://198.19.0.2/ | grep -qx 'hello from server'"
  stop_xnat
fi

# --- Jumbo frames, MTU 9000 on every link: both backends carry them (af_xdp
# gathers a frame that comes in several descriptors, XDP multi-buffer), the
# first ones too, held while the server's address resolves (the gateway's
# neighbours flushed before it starts).
set_mtu() { in_c ip link set "$IF_C" mtu "$1"; in_g ip link set "$IF_GI" mtu "$1"; in_g ip link set "$IF_GO" mtu "$1"; in_s ip link set "$IF_S" mtu "$1"; }
set_mtu 9000
in_g ip neigh flush all
start_xnat "$BACKEND" "${FAST[@]}" || exit 1
udp_sink 5395 "$WORK/jumbo_sink.out" 'b"\x5a" * 8000'
udp_burst 5395 5 8000 do
wait "$SINK"
in_c ping -c 3 -i 0.2 -W 2 -s 8000 -M do 198.19.0.2 >"$WORK/jumbo_ping.out"
snapshot
check "jumbo frames (MTU 9000): 8000-byte datagrams and pings arrive whole, the first held for the neighbour" \
  bash -c "echo \"received \$(cat $WORK/jumbo_sink.out) of 5\"; grep -E 'transmitted' $WORK/jumbo_ping.out;
           grep -E '^((live_)?drop_neighbor_timeout|neighbor_wait|drop_truncated) ' $WORK/counters.txt;
           [ \"\$(cat $WORK/jumbo_sink.out)\" = 5 ] && grep -q ' 3 received' $WORK/jumbo_ping.out &&
           ! grep -Eq '^(live_)?drop_neighbor_timeout [1-9]' $WORK/counters.txt &&
           grep -Eq '^neighbor_wait [1-9]' $WORK/counters.txt"
stop_xnat
set_mtu 1500

# --- Inside MTU 9000, outside 1500, as a router treats a datagram larger than
# its output's MTU: without DF it leaves in fragments, which the server puts
# back together; with DF (ping -M do) it is refused with "fragmentation
# needed" and the MTU, which the client's kernel records for the path
# (RFC 1191), and pings that fit pass.
in_c ip link set "$IF_C" mtu 9000
in_g ip link set "$IF_GI" mtu 9000
start_xnat "$BACKEND" "${FAST[@]}" || exit 1
udp_sink 5394 "$WORK/pmtu_sink.out" 'b"\x5a" * 8000'
udp_burst 5394 5 8000 dont
wait "$SINK"
in_c ping -c 2 -i 0.3 -W 1 -s 8000 -M do 198.19.0.2 >"$WORK/pmtu_ping.out" 2>&1
in_c ip route get 198.19.0.2 >"$WORK/pmtu_route.out"
in_c ping -c 2 -i 0.2 -W 2 -s 1472 -M do 198.19.0.2 >"$WORK/pmtu_fits.out" 2>&1
snapshot
check "a datagram larger than the output's MTU: in fragments without DF; with DF, fragmentation needed and the MTU" \
  bash -c "echo \"received \$(cat $WORK/pmtu_sink.out) of 5\"; grep -Ei 'mtu' $WORK/pmtu_ping.out | head -2;
           grep -o 'mtu [0-9]*' $WORK/pmtu_route.out; grep transmitted $WORK/pmtu_fits.out;
           grep -E '^(drop_frag_needed|fragmented|fragments_created) ' $WORK/counters.txt;
           [ \"\$(cat $WORK/pmtu_sink.out)\" = 5 ] && grep -q 'mtu = 1500' $WORK/pmtu_ping.out &&
           grep -q 'mtu 1500' $WORK/pmtu_route.out && grep -q ' 2 received' $WORK/pmtu_fits.out &&
           grep -Eq '^drop_frag_needed [1-9]' $WORK/counters.txt && grep -Eq '^fragmented ([5-9]|[1-9][0-9]+)$' $WORK/counters.txt"
stop_xnat
set_mtu 1500

# --- A link going down and up (ifdown, a cable, a peer restarting): traffic
# passes again once it is back, and the idle workers sleep again. AF_PACKET's
# socket reports the interface going down as an error, which poll reports
# until it is read (counted per interface).
start_xnat "$BACKEND" "${FAST[@]}" || exit 1
in_c ping -c 1 -W 1 198.19.0.2 >/dev/null
in_g ip link set "$IF_GO" down
sleep 0.5
in_g ip link set "$IF_GO" up
passes_again() {
  local i
  for i in $(seq 1 50); do in_c ping -c 1 -W 1 198.19.0.2 >/dev/null && return 0; sleep 0.1; done
  return 1
}
workers_asleep() {  # the worker threads, sampled 20 times, seldom running (R), never spinning
  local n=0 i t
  sleep 0.3
  for i in $(seq 1 20); do
    for t in /proc/"$XNAT_PID"/task/*; do
      case "$(cat "$t/comm")" in
        xnat-worker*) [ "$(sed 's/.*) //' "$t/stat" | cut -d' ' -f1)" = R ] && n=$((n + 1)) ;;
      esac
    done
    sleep 0.05
  done
  echo "worker threads seen running in $n samples of 20"
  [ "$n" -le 5 ]
}
check "a link down and up: traffic passes again once it is up" passes_again
check "  ... and the idle workers sleep again" workers_asleep
if [ "$BACKEND" = af_packet ]; then
  snapshot
  check "  ... the socket's error counted on the interface" test "$(counter "live_socket_errors_$IF_GO")" -ge 1
fi
# The outside address changes (a new DHCP lease): as the kernel's MASQUERADE,
# the gateway forgets the connections masqueraded to the old one, and a
# client's next datagram from the same port leaves with the new address
# (kept, it would leave with the old one, whose answers reach no one). The
# interface is left without an address for a second while the client sends:
# what is masqueraded then must not be to the address that left.
ip netns exec "$NS_S" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("198.19.0.2", 5396)); s.settimeout(15)
for _ in range(40):
    try: d, a = s.recvfrom(100)
    except socket.timeout: break
    s.sendto(a[0].encode(), a)
' &
PIDS+=($!)
sleep 0.3
ip netns exec "$NS_C" python3 -c '
import socket, subprocess, sys, time
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.bind(("198.18.0.2", 30090)); c.settimeout(0.3)
def ask():
    for _ in range(10):
        c.sendto(b"?", ("198.19.0.2", 5396))
        try: return c.recv(100).decode()
        except socket.timeout: pass
    return "no answer"
print("before:", ask())
change = subprocess.Popen(sys.argv[1:])
# The gateway reads the change from rtnetlink a moment later: until then a
# datagram still leaves with the old address. Kept, it would keep it.
seen = []
for _ in range(30):
    seen.append(ask())
    if change.poll() is not None and seen[-1] not in ("198.19.0.1", "no answer"): break
    time.sleep(0.1)
change.wait()
print("answers after:", " ".join(seen))
print("after:", seen[-1])
' ip netns exec "$NS_G" sh -c "ip addr del 198.19.0.1/16 dev $IF_GO && sleep 1 && ip addr add 198.19.0.5/16 dev $IF_GO" \
  >"$WORK/masq_addr.out" 2>&1
snapshot
check "the outside address changes: a client's next datagram leaves with the new one (MASQUERADE)" \
  bash -c "cat $WORK/masq_addr.out; grep -E '^live_masquerade_forgotten' $WORK/counters.txt;
           grep -E 'masqueraded|kernel change' $WORK/xnat.err;
           grep -qx 'before: 198.19.0.1' $WORK/masq_addr.out && grep -qx 'after: 198.19.0.5' $WORK/masq_addr.out &&
           grep -Eq '^live_masquerade_forgotten [1-9]' $WORK/counters.txt"
in_g sh -c "ip addr del 198.19.0.5/16 dev $IF_GO && ip addr add 198.19.0.1/16 dev $IF_GO"
# The outside interface deleted and made again under its name (a PPPoE link
# redialled, a container's veth): a new device, which the gateway attaches
# to again, its table kept.
ip -n "$NS_G" link del "$IF_GO"
sleep 0.3
outside_up
check "the outside interface deleted and made again: curl through MASQUERADE works through the new device" \
  bash -c "for i in \$(seq 1 20); do
             ip netns exec $NS_C curl -sS --max-time 2 http://198.19.0.2/ 2>/dev/null | grep -qx 'hello from server' && exit 0
             sleep 0.25
           done
           grep -E 'new device|not applied|cannot' $WORK/xnat.err; exit 1"
snapshot
check "  ... the gateway said so and counted it" \
  bash -c "grep -E 'new device' $WORK/xnat.err && grep -Eq '^live_interface_rebinds 1$' $WORK/counters.txt"
check "  ... and the idle workers sleep again" workers_asleep
stop_xnat

# --- A crash leaves the interfaces to the kernel: the XDP or tc program, the
# host port's egress program and its tun device go with the process.
start_xnat "$BACKEND" || exit 1
kill -KILL "$XNAT_PID"
wait "$XNAT_PID" 2>/dev/null
XNAT_PID=""
in_g sysctl -qw net.ipv4.ip_forward=1
in_g iptables -t nat -A POSTROUTING -o "$IF_GO" -j MASQUERADE
check "after a crash (SIGKILL) the kernel forwards and translates through the interfaces again" \
  bash -c "ip netns exec $NS_C curl -sS --max-time 5 http://198.19.0.2/ | grep -qx 'hello from server' &&
           ! ip -n $NS_G link show xnat-host 2>/dev/null"
in_g iptables -t nat -F
in_g sysctl -qw net.ipv4.ip_forward=0

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
