#!/usr/bin/env bash
# Installs everything xnat needs to build and test, from Debian's packages.
# Idempotent: packages already present are skipped quickly.
set -euo pipefail
pkgs=(cmake g++ make pkg-config libgtest-dev libbenchmark-dev libfmt-dev
      libtomlplusplus-dev libcli11-dev clang libclang-rt-14-dev
      # live gateway: AF_XDP/BPF, and the tools the network tests drive through it
      libxdp-dev libbpf-dev llvm iproute2 ethtool netsniff-ng iperf3 nginx-light
      dnsmasq-base apache2-utils conntrack iptables traceroute bind9-dnsutils curl
      iputils-ping tcpdump coturn
      # metrics: promtool and a Prometheus server for the live test's scrape
      prometheus)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
