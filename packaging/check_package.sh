#!/usr/bin/env bash
# Builds the Debian package with CPack and checks what it holds.
set -euo pipefail
build=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$build" && cpack -G DEB -B "$work" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; exit 1; }
deb=$(ls "$work"/xnat_*.deb)
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/xnat ./usr/lib/systemd/system/xnat.service ./usr/share/man/man8/xnat.8 \
         ./usr/share/doc/xnat/examples/xnat.toml.example ./usr/share/doc/xnat/examples/rules.v4.example; do
  grep -q " $f\$" <<<"$contents" || { echo "missing from the package: $f"; echo "$contents"; exit 1; }
done
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libxdp libbpf libfmt; do
  grep -q "$lib" <<<"$depends" || { echo "Depends lacks $lib: $depends"; exit 1; }
done
echo "ok: $(basename "$deb"): binary, unit, man page, examples; Depends: $depends"
