// xnat: a userspace NAT gateway. Subcommands:
//   replay  run the engine over pcap files (offline, exact, testable)
//   check   load a config and its rules, report errors or a summary
//   run     the live gateway on the host's interfaces (AF_XDP or AF_PACKET)
//   demo    build a demo gateway and trace, replay it, show the result
//   conntrack, sysctl, status, reload, restore   ask a running gateway (its control socket)
#include <fmt/format.h>

#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "cli/demo.h"
#include "cli/replay.h"
#include "control/config.h"
#include "conntrack/listing.h"
#include "live/control_server.h"
#include "live/gateway.h"

namespace {

volatile sig_atomic_t g_interrupted = 0;

// `xnat conntrack|sysctl|status [--control PATH] ARGS...`: the arguments go
// to the running gateway as they are (conntrack's and sysctl's own syntax).
int ask_gateway(int argc, char** argv) {
  std::string path = xnat::RunOptions{}.control;
  std::vector<std::string> args{argv[1]};
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--control" && i + 1 < argc) path = argv[++i];
    else if (a.starts_with("--control=")) path = a.substr(10);
    else args.push_back(a);
  }
  if (args[0] == "restore") {
    // As iptables-restore: the rules on standard input.
    std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    args = {"restore", text};
  }
  // conntrack -E: events until interrupted, then its summary line; an XML
  // document is opened at the first event and closed at the end.
  bool events = false, xml = false;
  if (args[0] == "conntrack")
    for (size_t i = 1; i < args.size(); ++i) {
      events |= args[i] == "-E" || args[i] == "--event";
      if ((args[i] == "-o" || args[i] == "--output") && i + 1 < args.size())
        xml |= ("," + args[i + 1] + ",").find(",xml,") != std::string::npos;
    }
  struct sigaction sa{};
  sa.sa_handler = [](int) { g_interrupted = 1; };
  sigaction(SIGINT, &sa, nullptr);  // no SA_RESTART: the wait returns
  sigaction(SIGTERM, &sa, nullptr);
  uint64_t shown = 0;
  bool xml_open = false;
  auto r = xnat::control_follow(
      path, args,
      [&](char kind, std::string_view text) {
        if (kind == 'e') {
          std::fwrite(text.data(), 1, text.size(), stderr);
          return;
        }
        if (events && xml && !xml_open && !text.empty()) {
          std::fputs(xnat::kXmlHead, stdout);
          xml_open = true;
        }
        std::fwrite(text.data(), 1, text.size(), stdout);
        if (events) shown += static_cast<uint64_t>(std::count(text.begin(), text.end(), '\n'));
        std::fflush(stdout);
      },
      [] { return g_interrupted != 0; });
  if (!r) {
    fmt::print(stderr, "xnat {}: {}\n", argv[1], r.error().message);
    return 1;
  }
  if (events && (g_interrupted || *r == 0)) {
    if (xml_open) std::fputs(xnat::kXmlTail, stdout);
    std::fflush(stdout);
    fmt::print(stderr, "conntrack v1.4.7 (conntrack-tools): {} flow events have been shown.\n", shown);
  }
  return *r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2) {
    const std::string sub = argv[1];
    if (sub == "conntrack" || sub == "sysctl" || sub == "status" || sub == "reload" || sub == "restore")
      return ask_gateway(argc, argv);
  }
  CLI::App app{"xnat: a userspace NAT gateway with netfilter's semantics"};
  app.require_subcommand(1);

  xnat::ReplayOptions ro;
  std::vector<std::string> ins;
  auto* replay = app.add_subcommand("replay", "Process pcap files through the engine; timestamps are the clock");
  replay->add_option("--config", ro.config_path, "TOML configuration")->required();
  replay->add_option("--in", ins, "IFACE=FILE.pcap: frames received on IFACE (repeatable)")->required();
  replay->add_option("--out", ro.out_dir, "Output directory")->required();
  replay->add_flag("--events", ro.events, "Also write events.txt (conntrack -E -o extended)");

  std::string check_cfg;
  bool live = false;
  auto* check = app.add_subcommand("check", "Validate a configuration and its rules");
  check->add_option("--config", check_cfg, "TOML configuration")->required();
  check->add_flag("--live", live, "Validate for the live gateway (MACs and neighbours optional)");

  std::string demo_dir = "xnat-demo";
  auto* demo = app.add_subcommand("demo", "Build a demo gateway and traffic trace, replay it and show the result");
  demo->add_option("--out", demo_dir, "Where to write the demo files")->capture_default_str();

  xnat::RunOptions run_opts;
  auto* run = app.add_subcommand("run", "Run the gateway on live interfaces until SIGINT/SIGTERM");
  run->add_option("--config", run_opts.config, "TOML configuration (live: addresses, MACs, routes and "
                                               "neighbours not given are read from the kernel)")->required();
  run->add_option("--backend", run_opts.backend,
                  "af_xdp, af_packet, or auto: af_xdp where every interface's driver has AF_XDP zero-copy "
                  "(and an rx queue per worker), else af_packet")
      ->check(CLI::IsMember({"auto", "af_xdp", "af_packet"}))->capture_default_str();
  run->add_option("--workers", run_opts.workers, "Worker threads, each with its own flow table, ports and queues (af_xdp: each interface needs as many rx queues)")->capture_default_str();
  run->add_option("--stats", run_opts.stats_interval, "Print per-interface rates and drops every N seconds");
  run->add_option("--conntrack-out", run_opts.conntrack_out,
                  "Write the conntrack table here (conntrack -L -o extended) on SIGUSR1 and at exit");
  run->add_option("--counters-out", run_opts.counters_out, "Write the counters here on SIGUSR1 and at exit");
  run->add_flag("--busy-poll", run_opts.busy_poll, "Never sleep: poll the rings continuously");
  run->add_flag("--fast-path", run_opts.fast_path,
                "Forward established TCP connections in the kernel's tc layer, as nft's flow offload does "
                "(filter FORWARD and mangle rules empty)");
  run->add_option("--worker-cpus", run_opts.worker_cpus,
                  "CPU list (as taskset -c: 1,3-4), one CPU per worker, each worker pinned to its own; the "
                  "control thread runs on the CPUs left");
  run->add_option("--rps-cpus", run_opts.rps_cpus,
                  "CPU list: RPS on the gateway's interfaces over these CPUs for the run (af_packet on a veth: "
                  "keeps a TCP sender's frames in order; costs a hop between CPUs)");
  run->add_option("--gro", run_opts.gro,
                  "GRO on the gateway's interfaces for the run, where it is off: auto (af_packet: each veth, "
                  "whose default is off), on (every interface), keep (as found)")
      ->check(CLI::IsMember({"auto", "on", "keep"}))->capture_default_str();
  run->add_option("--ring-size", run_opts.ring_size, "Descriptors per ring")->capture_default_str();
  run->add_option("--metrics", run_opts.metrics, "ADDRESS:PORT to serve Prometheus metrics on (GET /metrics)");
  run->add_option("--control", run_opts.control,
                  "Control socket for `xnat conntrack`, `xnat sysctl`, `xnat status` (empty: none)")
      ->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  if (*run) return xnat::run_gateway(run_opts);
  if (*demo) return xnat::run_demo(demo_dir);

  if (*replay) {
    for (const std::string& s : ins) {
      const size_t eq = s.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == s.size()) {
        fmt::print(stderr, "xnat replay: --in {}: expected IFACE=FILE.pcap\n", s);
        return 2;
      }
      ro.inputs.emplace_back(s.substr(0, eq), s.substr(eq + 1));
    }
    auto r = xnat::run_replay(ro);
    if (!r) {
      fmt::print(stderr, "xnat replay: {}\n", r.error().message);
      return 1;
    }
    fmt::print("replayed {} frames: {} forwarded, {} to host, {} dropped; {} connections tracked\n",
               r->frames, r->forwarded, r->to_host, r->dropped, r->flows);
    return 0;
  }
  if (*check) {
    auto cfg = xnat::load_config(check_cfg, live ? xnat::ConfigMode::kLive : xnat::ConfigMode::kReplay);
    if (!cfg) {
      fmt::print(stderr, "xnat check: {}\n", cfg.error().message);
      return 1;
    }
    fmt::print("{}: ok: {} interfaces, {} rules, nf_conntrack_max {}\n", check_cfg,
               cfg->fib.interfaces().size(), cfg->rules.rule_count(), cfg->conntrack.nf_conntrack_max);
    for (const std::string& n : xnat::config_notices(*cfg)) fmt::print("note: {}\n", n);
    return 0;
  }
  return 0;
}
