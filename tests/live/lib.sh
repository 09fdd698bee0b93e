# A three-host test network for the live gateway (../shared/TESTNET.md):
#
#   client (198.18.0.2) --- [198.18.0.1  gateway  198.19.0.1] --- server (198.19.0.2)
#      ns xc$ID                      ns xg$ID                          ns xs$ID
#
# The server has no route back to 198.18/16: replies reach the client only if
# the gateway translated. Every name carries ID (the caller's PID); net_down
# removes everything, and callers trap it on EXIT. Source this file.

ID=${ID:-$$}
NS_C=xc$ID NS_G=xg$ID NS_S=xs$ID
IF_GI=xgi$ID IF_GO=xgo$ID   # the gateway's inside and outside
IF_C=xc0$ID IF_S=xs0$ID     # client's and server's ends
WORK=${WORK:-$(mktemp -d /tmp/xnat-live.XXXXXX)}
XNAT_PID=""
PIDS=()

in_c() { ip netns exec "$NS_C" "$@"; }
in_g() { ip netns exec "$NS_G" "$@"; }
in_s() { ip netns exec "$NS_S" "$@"; }
mac_of() { ip -n "$1" -br link show "$2" | awk '{print $3}'; }  # mac_of NS IF

net_up() {
  ip netns add "$NS_C" && ip netns add "$NS_G" && ip netns add "$NS_S"
  # QUEUES: rx/tx queues per veth end (AF_XDP gives each worker its own queue).
  local q="numtxqueues ${QUEUES:-1} numrxqueues ${QUEUES:-1}"
  ip link add "$IF_C" netns "$NS_C" $q type veth peer name "$IF_GI" netns "$NS_G" $q
  for ns in "$NS_C" "$NS_G" "$NS_S"; do ip -n "$ns" link set lo up; done
  ip -n "$NS_C" addr add 198.18.0.2/16 dev "$IF_C"
  ip -n "$NS_G" addr add 198.18.0.1/16 dev "$IF_GI"
  # The server answers every probe: its kernel's per-peer ICMP rate limit
  # (1/s after a burst of 6) would otherwise silence traceroute hops after
  # earlier tests spent the tokens, and every client reaches it as 198.19.0.1.
  ip netns exec "$NS_S" sysctl -qw net.ipv4.icmp_ratelimit=0
  ip -n "$NS_C" link set "$IF_C" up
  ip -n "$NS_G" link set "$IF_GI" up
  ip -n "$NS_C" route add default via 198.18.0.1
  # The gateway's kernel must not forward or answer for what xnat handles.
  in_g sysctl -qw net.ipv4.ip_forward=0
  # Hosts as they come: partial checksums (CHECKSUM_PARTIAL) and TSO/GSO
  # super-frames. HOST_OFFLOADS=off is the other case: full checksums and
  # MTU-sized frames, as a wire delivers them.
  if [ "${HOST_OFFLOADS:-on}" = off ]; then
    in_c ethtool -K "$IF_C" tx off tso off gso off >/dev/null 2>&1 || true
  fi
  outside_up
}

# The link between the gateway and the server, its ends addressed and up;
# also to make it again after a test deleted it.
outside_up() {
  local q="numtxqueues ${QUEUES:-1} numrxqueues ${QUEUES:-1}"
  ip link add "$IF_S" netns "$NS_S" $q type veth peer name "$IF_GO" netns "$NS_G" $q
  ip -n "$NS_G" addr add 198.19.0.1/16 dev "$IF_GO"
  ip -n "$NS_S" addr add 198.19.0.2/16 dev "$IF_S"
  ip -n "$NS_S" link set "$IF_S" up
  ip -n "$NS_G" link set "$IF_GO" up
  if [ "${HOST_OFFLOADS:-on}" = off ]; then
    in_s ethtool -K "$IF_S" tx off tso off gso off >/dev/null 2>&1 || true
  fi
}

net_down() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  [ -n "$XNAT_PID" ] && kill "$XNAT_PID" 2>/dev/null
  for p in "${PIDS[@]}" $XNAT_PID; do wait "$p" 2>/dev/null; done
  ip netns del "$NS_C" 2>/dev/null
  ip netns del "$NS_G" 2>/dev/null
  ip netns del "$NS_S" 2>/dev/null
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}

# write_config [conntrack lines...]: the gateway's config and rules in $WORK.
write_config() {
  cat >"$WORK/rules.txt" <<RULES
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i $IF_GI -p tcp -m tcp --dport 81 -j REDIRECT --to-ports 8081
-A PREROUTING -i $IF_GI -p udp -m udp --dport 5353 -j REDIRECT --to-ports 5300
-A PREROUTING -i $IF_GI -p tcp -m tcp --dport 5204 -j REDIRECT --to-ports 5205
-A PREROUTING -i $IF_GO -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.18.0.2:80
-A POSTROUTING -o $IF_GO -j MASQUERADE
COMMIT
RULES
  {
    echo 'rules = "rules.txt"'
    echo '[conntrack]'
    local l
    for l in "$@"; do echo "$l"; done
    echo '[[interface]]'
    echo "name = \"$IF_GI\""
    echo '[[interface]]'
    echo "name = \"$IF_GO\""
  } >"$WORK/xnat.toml"
}

# start_xnat BACKEND [extra args]: runs xnat in the gateway namespace, waits
# until it reports that it is running.
start_xnat() {
  local backend=$1
  shift
  ip netns exec "$NS_G" ${XNAT_WRAP:-} "$XNAT" run --config "$WORK/xnat.toml" --backend "$backend" --workers "${WORKERS:-1}" \
    --conntrack-out "$WORK/conntrack.txt" --counters-out "$WORK/counters.txt" --control "$WORK/xnat.sock" "$@" \
    >"$WORK/xnat.out" 2>"$WORK/xnat.err" &
  XNAT_PID=$!
  local i
  for i in $(seq 1 100); do
    grep -q "^xnat: " "$WORK/xnat.out" 2>/dev/null && return 0
    kill -0 "$XNAT_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "xnat did not start:" >&2
  cat "$WORK/xnat.err" >&2
  return 1
}

# start_nginx NS ADDR NAME [PORT]: nginx on ADDR:PORT (80) in NS; / answers "hello from NAME",
# /whoami the client address it saw. NGINX_WRAP prefixes the command (taskset).
start_nginx() {
  local dir="$WORK/nginx-$3"
  mkdir -p "$dir/tmp" "$dir/files"
  chmod 755 "$WORK"  # nginx's workers run unprivileged and serve files/
  cat >"$dir/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
  server {
    listen $2:${4:-80} backlog=4096;
    location / { return 200 "hello from $3\n"; }
    location /whoami { return 200 "\$remote_addr\n"; }
    location /files/ { alias $dir/files/; }
  }
}
CONF
  ip netns exec "$1" ${NGINX_WRAP:-} nginx -p "$dir" -c "$dir/nginx.conf" &
  PIDS+=($!)
}

stop_xnat() {
  [ -n "$XNAT_PID" ] || return 0
  kill -INT "$XNAT_PID"
  wait "$XNAT_PID"
  local rc=$?
  XNAT_PID=""
  return $rc
}

# snapshot: asks xnat for its table and counters, waits for the files.
snapshot() {
  rm -f "$WORK/conntrack.txt" "$WORK/counters.txt"
  kill -USR1 "$XNAT_PID"
  local i
  for i in $(seq 1 50); do
    [ -f "$WORK/counters.txt" ] && [ -f "$WORK/conntrack.txt" ] && return 0
    sleep 0.1
  done
  return 1
}
