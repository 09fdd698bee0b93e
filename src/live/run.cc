// `xnat run`: the live gateway on this machine's kernel, until SIGINT or
// SIGTERM; SIGUSR1 writes the listing and the counters.
#include <fmt/format.h>
#include <signal.h>
#include <time.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <optional>

#include "live/backend_choice.h"
#include "live/cpus.h"
#include "live/gateway.h"
#include "live/metrics_server.h"
#include "live/sd_notify.h"

namespace xnat {
namespace {

volatile sig_atomic_t g_stop = 0;
volatile sig_atomic_t g_dump = 0;
volatile sig_atomic_t g_reload = 0;

void on_stop(int) { g_stop = 1; }
void on_dump(int) { g_dump = 1; }
void on_reload(int) { g_reload = 1; }

void write_file(const std::string& path, const std::string& text) {
  if (path.empty()) return;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
  }
  std::rename(tmp.c_str(), path.c_str());
}

std::string clock_text() {
  const std::time_t t = std::time(nullptr);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", std::localtime(&t));
  return buf;
}

}  // namespace

int run_gateway(const RunOptions& o) {
  auto fail = [](const std::string& msg) {
    std::fprintf(stderr, "xnat run: %s\n", msg.c_str());
    return 1;
  };
  auto cfg = load_config(o.config, ConfigMode::kLive);
  if (!cfg) return fail(cfg.error().message);
  for (const std::string& n : config_notices(*cfg)) fmt::print(stderr, "xnat: note: {}\n", n);
  RunOptions ro = o;
  if (ro.backend == "auto") {
    std::vector<std::string> names;
    for (const Interface& i : cfg->fib.interfaces()) names.push_back(i.name);
    const BackendChoice c = choose_backend(describe_interfaces(names), o.workers);
    fmt::print(stderr, "xnat: note: --backend auto: {}, as {}\n", c.backend, c.reason);
    ro.backend = c.backend;
    ro.backend_reason = c.reason;
  }
  auto platform = open_live_platform(ro.backend);
  if (!platform) return fail(platform.error().message);
  auto gw = Gateway::start(std::move(*cfg), ro, *platform);
  if (!gw) return fail(gw.error().message);
  Gateway& g = **gw;
  if (!o.worker_cpus.empty()) {
    // This thread (the control loop, metrics, the control socket) off the
    // workers' CPUs.
    if (g.control_cpus().empty())
      fmt::print(stderr, "xnat run: note: --worker-cpus takes every CPU this process may use; the control "
                         "thread shares them\n");
    else if (auto r = pin_thread(pthread_self(), g.control_cpus()); !r)
      return fail(r.error().message);
  }
  std::optional<MetricsServer> metrics;
  if (!o.metrics.empty()) {
    auto ms = MetricsServer::open(o.metrics, [&] { return g.metrics_text(); });
    if (!ms) return fail(ms.error().message);
    metrics.emplace(std::move(*ms));
  }
  std::optional<ControlServer> control;
  if (!o.control.empty()) {
    auto cs = ControlServer::open(o.control, [&](const std::vector<std::string>& args) { return g.control(args); });
    if (!cs) return fail(cs.error().message);
    control.emplace(std::move(*cs));
  }

  struct sigaction sa{};
  sa.sa_handler = on_stop;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sa.sa_handler = on_dump;
  sigaction(SIGUSR1, &sa, nullptr);
  sa.sa_handler = on_reload;
  sigaction(SIGHUP, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  fmt::print("{}\n", g.banner());
  std::fflush(stdout);
  (void)sd_notify("READY=1\nSTATUS=" + g.banner());
  // systemd's watchdog, pinged from this loop at half its interval: a loop
  // that stops turning (a stuck control request) gets the service restarted.
  const uint64_t watchdog_ms = sd_watchdog_ms();
  uint64_t next_watchdog = 0;

  auto write_dump = [&](bool with_table) {
    GatewayReport r = g.report(with_table);
    write_file(o.conntrack_out, r.table);
    write_file(o.counters_out, g.counters_text(r));
  };
  uint64_t next_stats = 0;
  while (!g_stop) {
    struct timespec ts{0, 10 * 1000 * 1000};
    nanosleep(&ts, nullptr);
    g.poll();
    if (!g.broken().empty()) {
      fmt::print(stderr, "xnat run: {}; stopping\n", g.broken());
      break;
    }
    if (control) control->poll();
    if (metrics) metrics->poll();
    if (g_reload) {
      g_reload = 0;
      const ControlReply r = g.control({"reload"});
      fmt::print(stderr, "{}{}", r.out, r.err);
    }
    if (g_dump) {
      g_dump = 0;
      g.collect_listing();
      write_dump(true);
    }
    const uint64_t now = now_ms();
    if (watchdog_ms && now >= next_watchdog) {
      (void)sd_notify("WATCHDOG=1");
      next_watchdog = now + watchdog_ms / 2;
    }
    if (o.stats_interval > 0 && now >= next_stats) {
      if (next_stats) {
        fmt::print("{}", g.stats_text(o.stats_interval, clock_text()));
        std::fflush(stdout);
      }
      next_stats = now + uint64_t(o.stats_interval) * 1000;
    }
  }

  (void)sd_notify("STOPPING=1");
  g.stop();
  GatewayReport r = g.report(true);
  write_file(o.conntrack_out, r.table);
  write_file(o.counters_out, g.counters_text(r));
  uint64_t frames = 0, dropped = 0;
  uint32_t flows = 0;
  for (uint32_t w = 0; w < g.workers(); ++w) {
    const Engine& e = g.engine(w);
    frames += e.counters().get(Counter::rx_frames);
    dropped += e.counters().total_drops();
    flows += e.conntrack().count();
  }
  dropped += r.live.total_drops();
  fmt::print("xnat: stopping; {} flows in the table, {} frames in, {} dropped\n", flows, frames, dropped);
  return g.broken().empty() ? 0 : 1;
}

}  // namespace xnat
