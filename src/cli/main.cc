// xnat: a userspace NAT gateway. Subcommands:
//   replay  run the engine over pcap files (offline, exact, testable)
//   check   load a config and its rules, report errors or a summary
//   demo    build a demo gateway and trace, replay it, show the result
#include <fmt/format.h>

#include <CLI/CLI.hpp>

#include "cli/demo.h"
#include "cli/replay.h"
#include "control/config.h"

int main(int argc, char** argv) {
  CLI::App app{"xnat: a userspace NAT gateway with netfilter's semantics"};
  app.require_subcommand(1);

  xnat::ReplayOptions ro;
  std::vector<std::string> ins;
  auto* replay = app.add_subcommand("replay", "Process pcap files through the engine; timestamps are the clock");
  replay->add_option("--config", ro.config_path, "TOML configuration")->required();
  replay->add_option("--in", ins, "IFACE=FILE.pcap: frames received on IFACE (repeatable)")->required();
  replay->add_option("--out", ro.out_dir, "Output directory")->required();

  std::string check_cfg;
  bool live = false;
  auto* check = app.add_subcommand("check", "Validate a configuration and its rules");
  check->add_option("--config", check_cfg, "TOML configuration")->required();
  check->add_flag("--live", live, "Validate for the live gateway (MACs and neighbours optional)");

  std::string demo_dir = "xnat-demo";
  auto* demo = app.add_subcommand("demo", "Build a demo gateway and traffic trace, replay it and show the result");
  demo->add_option("--out", demo_dir, "Where to write the demo files")->capture_default_str();

  CLI11_PARSE(app, argc, argv);
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
    return 0;
  }
  return 0;
}
