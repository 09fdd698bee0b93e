#!/usr/bin/env bash
# The systemd unit as systemd reads it: systemd-analyze verify on a copy that
# runs the binary under test, with the man page where man finds it.
set -euo pipefail
xnat=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
here=$(cd "$(dirname "$0")" && pwd)
sed "s|/usr/bin/xnat|$xnat|" "$here/xnat.service" >"$dir/xnat.service"
out=$(MANPATH="$here/..:" systemd-analyze verify --man=no "$dir/xnat.service" 2>&1) || { echo "$out"; exit 1; }
[ -z "$out" ] || { echo "systemd-analyze verify: $out"; exit 1; }
grep -q '^Type=notify$' "$dir/xnat.service"
echo "ok: systemd-analyze verify accepts xnat.service (Type=notify, watchdog, reload by SIGHUP)"
