// The live gateway's start-up and control loop (live/gateway.h) on a fake
// Platform: a kernel view, steering and frame I/O without root, sockets or
// BPF. Start-up attaches steering only once every worker's sockets exist,
// frames are translated through the workers, a next hop the kernel has not
// resolved is asked of it and the frame leaves once the answer is read, a
// failure at start names its cause and leaves nothing attached, and stop()
// detaches.
#include "live/gateway.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <tuple>

#include "fake_backend.h"
#include "control/example_gateway.h"
#include "golden_cases.h"
#include "live/cpus.h"
#include "live/metrics_server.h"
#include "live/receive_order.h"
#include "live/steer.h"
#include "packet/parse.h"
#include "test_util.h"

namespace xnat::test {
namespace {

struct FakeKernel final : KernelView {
  std::mutex mu;
  KernelState state;
  bool change = false;
  std::vector<std::pair<int, uint32_t>> resolved;  // what was asked

  int failing_dumps = 0;  // dumps still to fail

  Result<KernelState> dump() override {
    std::lock_guard<std::mutex> lock(mu);
    if (failing_dumps > 0) {
      --failing_dumps;
      return Error{"rtnetlink recv: No buffer space available"};
    }
    return state;
  }
  // A change to the kernel's state, which the gateway's next poll reads.
  template <typename Fn>
  void edit(Fn&& fn) {
    std::lock_guard<std::mutex> lock(mu);
    fn(state);
    change = true;
  }
  bool changed() override {
    std::lock_guard<std::mutex> lock(mu);
    return std::exchange(change, false);
  }
  Status resolve(int ifindex, uint32_t addr) override {
    std::lock_guard<std::mutex> lock(mu);
    resolved.emplace_back(ifindex, addr);
    return {};
  }
};

struct FakeSteering final : Steering {
  std::vector<std::string> calls;  // in order
  std::vector<uint64_t> counts = std::vector<uint64_t>(XNAT_CLAIM_ENTRIES, 7);  // not zeroed until start
  std::vector<uint32_t> local;
  std::string fail_attach;  // interface whose attach fails
  size_t backends_open = 0;

  Status attach(SteerHook, int ifindex, const std::string& name) override {
    calls.push_back(fmt::format("attach {} {} after {} backends", name, ifindex, backends_open));
    if (name == fail_attach) return Error{fmt::format("attach {}: Operation not permitted", name)};
    return {};
  }
  void detach(int ifindex) override { calls.push_back(fmt::format("detach {}", ifindex)); }
  void detach_all() override { calls.push_back("detach_all"); }
  Status set_local_addrs(const std::vector<uint32_t>& a) override {
    local = a;
    return {};
  }
  uint64_t* claims() override { return counts.data(); }
  Status set_xsk(int, uint32_t, int) override { return {}; }
  Status set_host_port(int) override { return {}; }
  Status attach_egress(int, const std::string&) override { return {}; }
  bool set_host_reply(const Tuple&, bool) override { return true; }
  uint64_t host_port_steered() const override { return 0; }
};

struct Fixture {
  Platform platform;
  FakeKernel* kernel;
  FakeSteering* steering;
  std::vector<FakeBackend*> backends;
  size_t first_open = 0;  // backends before it were closed (Gateway::rebind)
  EngineConfig cfg;

  explicit Fixture(const std::string& rules) : cfg(engine_config(rules)) {
    auto k = std::make_unique<FakeKernel>();
    kernel = k.get();
    int ifindex = 11;
    for (const Interface& i : cfg.fib.interfaces())
      kernel->state.links.push_back(KernelLink{ifindex++, i.name, i.mac, 1500, true});
    platform.kernel = std::move(k);
    auto s = std::make_unique<FakeSteering>();
    steering = s.get();
    platform.steering = std::move(s);
    platform.open_backend = [this](const BackendOptions& o, Steering&) -> Result<std::unique_ptr<Backend>> {
      auto b = std::make_unique<FakeBackend>(o.ifnames.size());
      backends.push_back(b.get());
      ++steering->backends_open;
      return std::unique_ptr<Backend>(std::move(b));
    };
  }
  // Waits (bounded) until the workers have sent n frames in all.
  std::vector<std::pair<int, std::vector<uint8_t>>> sent(size_t n) {
    std::vector<std::pair<int, std::vector<uint8_t>>> all;
    for (int i = 0; i < 2000; ++i) {
      all.clear();
      for (size_t b = first_open; b < backends.size(); ++b)
        for (auto& f : backends[b]->sent()) all.push_back(f);
      if (all.size() >= n) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return all;
  }
};

const std::string kMasq = nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n");

RunOptions workers(int n) {
  RunOptions o;
  o.workers = n;
  return o;
}

TEST(GatewayPlatform, StartsWorkersThenSteersAndTranslates) {
  Fixture f(kMasq);
  auto g = Gateway::start(f.cfg, workers(2), f.platform);
  ASSERT_TRUE(g.ok()) << g.error().message;
  // Steering attached to both interfaces, each only after both workers' sockets.
  ASSERT_EQ(f.steering->calls.size(), 2u);
  EXPECT_EQ(f.steering->calls[0], "attach eth1 11 after 2 backends");
  EXPECT_EQ(f.steering->calls[1], "attach eth0 12 after 2 backends");
  EXPECT_EQ(f.steering->local, std::vector<uint32_t>({ip_raw("198.18.0.1"), ip_raw("198.19.0.1")}));
  EXPECT_EQ(f.steering->counts[0], 0u);  // claims start from the rules alone
  EXPECT_NE((*g)->banner().find("2 workers"), std::string::npos) << (*g)->banner();

  // A flow through whichever worker gets it; its reply through the other
  // worker is handed over to the owner.
  f.backends[0]->inject(kIn, from_client().udp(40000, 53).build());
  auto out = f.sent(1);
  ASSERT_EQ(out.size(), 1u);
  ParsedPacket p;
  ASSERT_EQ(parse_frame(out[0].second.data(), out[0].second.size(), {}, &p), ParseStatus::kOk);
  EXPECT_EQ(p.tuple.src, ip_raw("198.19.0.1"));
  f.backends[1]->inject(
      kOut, FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").udp(53, __builtin_bswap16(p.tuple.sport)).build());
  out = f.sent(2);
  ASSERT_EQ(out.size(), 2u);
  ASSERT_EQ(parse_frame(out[1].second.data(), out[1].second.size(), {}, &p), ParseStatus::kOk);
  EXPECT_EQ(p.tuple.dst, ip_raw("198.18.0.2"));

  (*g)->stop();
  EXPECT_EQ(f.steering->calls.back(), "detach_all");
  GatewayReport r = (*g)->report(true);
  uint64_t created = 0;
  for (const CounterSource& s : r.engines) created += s.counters.get(Counter::flows_created);
  EXPECT_EQ(created, 1u);
  EXPECT_NE(r.table.find("src=198.18.0.2 dst=198.51.100.7 sport=40000 dport=53"), std::string::npos) << r.table;
  const std::string c = (*g)->counters_text(r);
  EXPECT_NE(c.find("live_rx_eth1 1\n"), std::string::npos) << c;
  EXPECT_NE(c.find("live_tx_eth1 1\n"), std::string::npos) << c;
}

// --worker-cpus: each worker on its own CPU, named so an operator finds it;
// lists that cannot be honoured stop the start with what to change.
TEST(GatewayPlatform, PinsWorkersToTheirCpus) {
  auto allowed = allowed_cpus();
  ASSERT_TRUE(allowed) << allowed.error().message;
  const int cpu = allowed->back();
  Fixture f(kMasq);
  RunOptions o = workers(1);
  o.worker_cpus = std::to_string(cpu);
  auto g = Gateway::start(f.cfg, o, f.platform);
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_NE((*g)->banner().find(fmt::format("workers on CPU {}", cpu)), std::string::npos) << (*g)->banner();
  std::vector<int> rest;
  for (int c : *allowed)
    if (c != cpu) rest.push_back(c);
  EXPECT_EQ((*g)->control_cpus(), rest);
  // The kernel's view of the worker thread: allowed on its CPU alone.
  std::string worker_cpus;
  for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(t.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name != "xnat-worker 0") continue;
    std::ifstream status(t.path() / "status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("Cpus_allowed_list:", 0) == 0) worker_cpus = line.substr(line.find_first_not_of(" \t", 18));
  }
  EXPECT_EQ(worker_cpus, std::to_string(cpu));
  // It still forwards.
  f.backends[0]->inject(kIn, from_client().udp(40000, 53).build());
  EXPECT_EQ(f.sent(1).size(), 1u);
  (*g)->stop();
  // The scheduler's figures for its thread, read by the thread itself to the end.
  GatewayReport r = (*g)->report(false);
  ASSERT_EQ(r.worker_times.size(), 1u);
  EXPECT_GT(r.worker_times[0].cpu_ns, 0u);
  const std::string c = (*g)->counters_text(r);
  EXPECT_NE(c.find(fmt::format("live_worker0_cpu_nanoseconds {}\n", r.worker_times[0].cpu_ns)), std::string::npos) << c;
  EXPECT_NE(c.find("live_worker0_runqueue_wait_nanoseconds "), std::string::npos) << c;

  for (const auto& [list, n, why] : std::vector<std::tuple<std::string, int, std::string>>{
           {"1-", 1, "--worker-cpus '1-': '1-' is not a CPU or a range of CPUs"},
           {std::to_string(cpu), 2, fmt::format("--worker-cpus {}: 1 CPU for 2 workers; give one CPU per worker", cpu)},
           {"1023", 1, "--worker-cpus 1023: CPU 1023 is not one this process may run on (allowed: "},
       }) {
    Fixture bad(kMasq);
    RunOptions b = workers(n);
    b.worker_cpus = list;
    auto r = Gateway::start(bad.cfg, b, bad.platform);
    ASSERT_FALSE(r.ok()) << list;
    EXPECT_EQ(r.error().message.rfind(why, 0), 0u) << r.error().message;
  }
}

// --rps-cpus: RPS on the gateway's interfaces for the run, in the banner;
// a bad list stops the start.
TEST(GatewayPlatform, SetsRpsOnItsInterfacesForTheRun) {
  const std::filesystem::path root =
      std::filesystem::temp_directory_path() / ("xnat_gw_rps_" + std::to_string(getpid()));
  std::filesystem::remove_all(root);
  Fixture f(kMasq);
  std::vector<std::string> names;
  for (const Interface& i : f.cfg.fib.interfaces()) {
    names.push_back(i.name);
    std::filesystem::create_directories(root / i.name / "queues" / "rx-0");
    std::ofstream(root / i.name / "queues" / "rx-0" / "rps_cpus") << "0\n";
  }
  std::vector<int> asked;
  f.platform.set_rps = [&](const std::vector<std::string>& ifnames, const std::vector<int>& cpus) {
    asked = cpus;
    return ReceiveOrder::apply(ifnames, cpus, root.string());
  };
  RunOptions o = workers(1);
  o.rps_cpus = "0";
  auto g = Gateway::start(f.cfg, o, f.platform);
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(asked, std::vector<int>{0});
  ASSERT_EQ(names.size(), 2u);
  EXPECT_NE((*g)->banner().find(fmt::format("; RPS on {}, {} to CPU 0", names[0], names[1])), std::string::npos)
      << (*g)->banner();
  auto mask = [&](const std::string& n) {
    std::ifstream in(root / n / "queues" / "rx-0" / "rps_cpus");
    std::string m;
    std::getline(in, m);
    return m;
  };
  EXPECT_EQ(mask(names[0]), "1");
  (*g)->stop();
  EXPECT_EQ(mask(names[0]), "0") << "put back at the stop";
  std::filesystem::remove_all(root);

  Fixture bad(kMasq);
  RunOptions b = workers(1);
  b.rps_cpus = "0-";
  auto r = Gateway::start(bad.cfg, b, bad.platform);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.rfind("--rps-cpus '0-': '0-' is not a CPU or a range of CPUs", 0), 0u) << r.error().message;
  Fixture offline(kMasq);
  b.rps_cpus = "1023";
  r = Gateway::start(offline.cfg, b, offline.platform);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.rfind("--rps-cpus 1023: CPU 1023 is not online (online: ", 0), 0u) << r.error().message;
}

// --gro: af_packet (a tc hook) turns GRO on on its veths by default; AF_XDP
// takes frames before GRO, so auto asks for nothing there; `on` asks for
// every interface, `keep` for none. What is asked for is held for the run.
TEST(GatewayPlatform, TurnsGroOnForAfPacketsVethsByDefault) {
  struct Case {
    SteerHook hook;
    std::string gro;
    bool asked, only_veth;
  };
  for (const Case& c : {Case{SteerHook::kTc, "auto", true, true}, Case{SteerHook::kXdp, "auto", false, false},
                        Case{SteerHook::kXdp, "on", true, false}, Case{SteerHook::kTc, "on", true, false},
                        Case{SteerHook::kTc, "keep", false, false}}) {
    Fixture f(kMasq);
    f.platform.hook = c.hook;
    bool asked = false, only_veth = false;
    std::vector<std::string> ifnames;
    f.platform.set_gro = [&](const std::vector<std::string>& names, bool veth) {
      asked = true;
      only_veth = veth;
      ifnames = names;
      return ReceiveCoalescing::apply({}, veth);  // nothing to switch: no device touched
    };
    RunOptions o = workers(1);
    o.gro = c.gro;
    auto g = Gateway::start(f.cfg, o, f.platform);
    ASSERT_TRUE(g.ok()) << g.error().message;
    const std::string what = fmt::format("hook {} --gro {}", c.hook == SteerHook::kTc ? "tc" : "xdp", c.gro);
    EXPECT_EQ(asked, c.asked) << what;
    if (!c.asked) continue;
    EXPECT_EQ(only_veth, c.only_veth) << what;
    EXPECT_EQ(ifnames.size(), 2u) << what;
    EXPECT_EQ((*g)->banner().find("GRO on"), std::string::npos) << "none turned on, none named: " << (*g)->banner();
  }
}

// The control thread as xnat run has it: the gateway's and the control
// socket's polls, in a loop, until the end of the test.
// A client written by hand: connected to the control socket at `path`,
// `bytes` sent (as far as the server takes them); the socket, or -1.
int send_raw(const std::string& path, const std::string& bytes) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  (void)!::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  return fd;
}

struct ControlLoop {
  char dir[32] = "/tmp/xnat-control-XXXXXX";
  std::string path;
  std::optional<ControlServer> server;
  std::atomic<bool> done{false};
  std::thread loop;

  explicit ControlLoop(Gateway& g) {
    EXPECT_NE(mkdtemp(dir), nullptr);
    path = std::string(dir) + "/xnat.sock";
    auto cs = ControlServer::open(path, [&g](const std::vector<std::string>& a) { return g.control(a); });
    EXPECT_TRUE(cs.ok()) << cs.error().message;
    if (!cs.ok()) return;
    server.emplace(std::move(*cs));
    loop = std::thread([this, &g] {
      while (!done) {
        g.poll();
        server->poll();
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
  }
  void stop() {
    done = true;
    if (loop.joinable()) loop.join();
  }
  ~ControlLoop() {
    stop();
    server.reset();
    ::rmdir(dir);
  }
};

// The control socket: conntrack-tools' commands against the running
// gateway's tables, sysctl and status, and bad requests answered with errors.
TEST(GatewayPlatform, ControlSocketServesConntrackSysctlAndStatus) {
  Fixture f(kMasq);
  auto g = Gateway::start(f.cfg, workers(2), f.platform);
  ASSERT_TRUE(g.ok()) << g.error().message;
  ControlLoop control(**g);
  ASSERT_TRUE(control.server);
  const std::string& path = control.path;
  char* dir = control.dir;
  auto ask = [&](std::vector<std::string> args) {
    auto r = control_request(path, args);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : ControlReply{-1, "", ""};
  };
  for (uint16_t port : {40000, 40001, 40002}) f.backends[0]->inject(kIn, from_client().udp(port, 53).build());
  f.backends[0]->inject(kIn, from_client().tcp(40003, 80, kTcpSyn).build());
  ASSERT_EQ(f.sent(4).size(), 4u);

  ControlReply r = ask({"conntrack", "-L"});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 4);
  EXPECT_EQ(r.err, "conntrack v1.4.7 (conntrack-tools): 4 flow entries have been shown.\n");
  EXPECT_NE(r.out.find("udp      17 "), std::string::npos) << r.out;  // the default format: no ipv4 column
  r = ask({"conntrack", "-L", "-p", "tcp", "-o", "extended"});
  EXPECT_EQ(r.out.substr(0, 22), "ipv4     2 tcp      6 ") << r.out;
  EXPECT_NE(r.out.find("SYN_SENT src=198.18.0.2 dst=198.51.100.7 sport=40003 dport=80 [UNREPLIED]"), std::string::npos);
  EXPECT_EQ(ask({"conntrack", "-C"}).out, "4\n");
  EXPECT_EQ(ask({"conntrack", "-C", "-p", "udp", "--sport", "40001"}).out, "1\n");
  // -D removes the matching connection; its next packet is a new one.
  r = ask({"conntrack", "-D", "-p", "udp", "--orig-port-src", "40001"});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.err, "conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted.\n");
  EXPECT_EQ(ask({"conntrack", "-C"}).out, "3\n");
  EXPECT_EQ(ask({"conntrack", "-D", "-p", "udp", "--sport", "40001"}).status, 1);  // nothing left to delete
  f.backends[0]->inject(kIn, from_client().udp(40001, 53).build());
  ASSERT_EQ(f.sent(5).size(), 5u);
  EXPECT_EQ(ask({"conntrack", "-C"}).out, "4\n");
  // -S: a line per worker.
  r = ask({"conntrack", "-S"});
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2);
  EXPECT_EQ(r.out.substr(0, 6), "cpu=0 ");
  // sysctl, as sysctl prints it; unknown names as sysctl fails them.
  r = ask({"sysctl", "net.netfilter.nf_conntrack_count", "net.netfilter.nf_conntrack_udp_timeout"});
  EXPECT_EQ(r.out, "net.netfilter.nf_conntrack_count = 4\nnet.netfilter.nf_conntrack_udp_timeout = 30\n");
  r = ask({"sysctl", "net.netfilter.nf_conntrack_bogus"});
  EXPECT_EQ(r.status, 255);
  EXPECT_EQ(r.err, "sysctl: cannot stat /proc/sys/net/netfilter/nf_conntrack_bogus: No such file or directory\n");
  EXPECT_NE(ask({"status"}).out.find("flows 4 of"), std::string::npos);
  // sysctl -w: a timeout applies at once (to the next packet's refresh).
  r = ask({"sysctl", "-w", "net.netfilter.nf_conntrack_udp_timeout=7"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "net.netfilter.nf_conntrack_udp_timeout = 7\n");
  EXPECT_EQ(ask({"sysctl", "net.netfilter.nf_conntrack_udp_timeout"}).out, "net.netfilter.nf_conntrack_udp_timeout = 7\n");
  // sysctl's flags: -q quiet, -n values only, -e unknown names ignored.
  EXPECT_EQ(ask({"sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=7"}).out, "");
  EXPECT_EQ(ask({"sysctl", "-n", "net.netfilter.nf_conntrack_udp_timeout"}).out, "7\n");
  EXPECT_EQ(ask({"sysctl", "-e", "net.netfilter.nf_conntrack_bogus"}).status, 0);
  EXPECT_EQ(ask({"sysctl", "-x", "net.netfilter.nf_conntrack_udp_timeout"}).err,
            "sysctl: invalid option -- 'x' (xnat's sysctl takes -a, -w, -q, -n, -N, -e)\n");
  f.backends[0]->inject(kIn, from_client().udp(40009, 53).build());
  ASSERT_EQ(f.sent(6).size(), 6u);
  r = ask({"conntrack", "-L", "-p", "udp", "--sport", "40009"});
  EXPECT_TRUE(r.out.starts_with("udp      17 6 ") || r.out.starts_with("udp      17 7 ")) << r.out;
  EXPECT_EQ(ask({"sysctl", "-w", "net.netfilter.nf_conntrack_udp_timeout=x"}).err,
            "sysctl: setting key \"net.netfilter.nf_conntrack_udp_timeout\": Invalid argument\n");
  EXPECT_EQ(ask({"sysctl", "-w", "net.netfilter.nf_conntrack_buckets=1024"}).err,
            "sysctl: setting key \"net.netfilter.nf_conntrack_buckets\": nf_conntrack_buckets sizes the tables xnat "
            "built at start: set it in [conntrack] and restart\n");
  r = ask({"sysctl", "-w", "net.netfilter.nf_conntrack_max=100000000"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("nf_conntrack_max can go up to that live"), std::string::npos) << r.err;
  r = ask({"sysctl", "-w", "net.netfilter.nf_conntrack_max=1000"});
  EXPECT_EQ(r.out, "net.netfilter.nf_conntrack_max = 1000\n");
  EXPECT_EQ(ask({"sysctl", "net.netfilter.nf_conntrack_max"}).out, "net.netfilter.nf_conntrack_max = 1000\n");
  // -F empties the table.
  r = ask({"conntrack", "-F"});
  EXPECT_EQ(r.err, "conntrack v1.4.7 (conntrack-tools): connection tracking table has been emptied.\n");
  EXPECT_EQ(ask({"conntrack", "-C"}).out, "0\n");
  // Errors a person can act on.
  r = ask({"conntrack", "-L", "--orig-zone", "1"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "conntrack v1.4.7 (conntrack-tools): --orig-zone: xnat has no conntrack zones, labels, secmarks "
                   "or status filters\n");
  EXPECT_EQ(ask({"conntrack", "-L", "-p", "bogus"}).err,
            "conntrack v1.4.7 (conntrack-tools): unknown protocol 'bogus' (tcp, udp, icmp or a number)\n");
  EXPECT_EQ(ask({"frobnicate"}).err, "unknown request 'frobnicate': conntrack, sysctl, status, reload or restore\n");
  // Malformed and oversized requests, written raw.
  auto raw = [&](const std::string& bytes) {
    const int fd = send_raw(path, bytes);
    EXPECT_GE(fd, 0);
    std::string resp;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) resp.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return resp;
  };
  EXPECT_EQ(raw("conntrack\n"), "2 0\nmalformed request: each argument must end in a NUL\n");
  EXPECT_EQ(raw(std::string(70000, 'x')), "2 0\nrequest longer than 65536 bytes: refused\n");
  // Another user is refused: by the socket's mode, and (were it opened to
  // all) by its credentials.
  if (::geteuid() == 0) {
    ASSERT_EQ(::chmod(path.c_str(), 0666), 0);
    ASSERT_EQ(::chmod(dir, 0755), 0);
    const pid_t child = ::fork();
    if (child == 0) {
      if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
      auto r = control_request(path, {"conntrack", "-F"});
      ::_exit(r.ok() && r->status == 77 && r->err.starts_with("permission denied") ? 0 : 11);
    }
    int st = 0;
    ASSERT_EQ(::waitpid(child, &st, 0), child);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
    EXPECT_EQ(ask({"conntrack", "-C"}).out, "0\n");
  }
  control.stop();
  // Another gateway cannot take the same socket while this one serves it.
  auto again = ControlServer::open(path, [](const std::vector<std::string>&) { return ControlReply{}; });
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message.find("another gateway is running there"), std::string::npos);
  control.server.reset();  // closes and removes the socket
  EXPECT_FALSE(std::filesystem::exists(path));
}

// conntrack -E through the control socket: a reader gets NEW and DESTROY as
// conntrack prints them; one that stops reading holds nothing up, and every
// event either reaches a reader or is reported to it as lost.
TEST(GatewayPlatform, EventStreamsAndCountedLossForAStalledReader) {
  Fixture f(kMasq);
  auto g = Gateway::start(f.cfg, workers(1), f.platform);  // one: MASQUERADE keeps the port
  ASSERT_TRUE(g.ok()) << g.error().message;
  ControlLoop control(**g);
  ASSERT_TRUE(control.server);
  const std::string& path = control.path;
  auto readers_now = [&] {
    auto r = control_request(path, {"status"});
    const size_t at = r.ok() ? r->out.find("event readers ") : std::string::npos;
    return at == std::string::npos ? -1 : std::atoi(r->out.c_str() + at + 14);
  };
  auto wait_readers = [&](int n) {
    for (int i = 0; i < 2000 && readers_now() != n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return readers_now() == n;
  };
  // What a reader was told: its events' lines, and the losses reported.
  struct Seen {
    std::mutex mu;
    std::string out, err;
    std::atomic<bool> stop{false};
  };
  auto follow = [&](Seen* seen, std::vector<std::string> args) {
    return std::thread([&, seen, args] {
      auto r = control_follow(
          path, args,
          [&](char kind, std::string_view t) {
            std::lock_guard<std::mutex> lock(seen->mu);
            (kind == 'o' ? seen->out : seen->err).append(t);
          },
          [&] { return seen->stop.load(); });
      EXPECT_TRUE(r.ok());
    });
  };
  auto lost_told = [](const std::string& err) {
    uint64_t n = 0;
    for (size_t at = 0; (at = err.find("WARNING: ", at)) != std::string::npos; at += 9)
      n += std::strtoull(err.c_str() + at + 9, nullptr, 10);
    return n;
  };

  Seen a;
  std::thread ta = follow(&a, {"conntrack", "-E", "-p", "udp"});
  ASSERT_TRUE(wait_readers(1));
  f.backends[0]->inject(kIn, from_client().udp(40000, 53).build());
  ASSERT_EQ(f.sent(1).size(), 1u);
  ASSERT_EQ(control_request(path, {"conntrack", "-D", "-p", "udp"})->status, 0);
  auto text = [](Seen& s) {
    std::lock_guard<std::mutex> lock(s.mu);
    return s.out;
  };
  auto lines_of = [](const std::string& t) { return uint64_t(std::count(t.begin(), t.end(), '\n')); };
  for (int i = 0; i < 2000 && lines_of(text(a)) < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(text(a),
            "    [NEW] udp      17 30 src=198.18.0.2 dst=198.51.100.7 sport=40000 dport=53 [UNREPLIED] "
            "src=198.51.100.7 dst=198.19.0.1 sport=53 dport=40000\n"
            "[DESTROY] udp      17 29 src=198.18.0.2 dst=198.51.100.7 sport=40000 dport=53 [UNREPLIED] "
            "src=198.51.100.7 dst=198.19.0.1 sport=53 dport=40000\n");

  // A reader that sends its request and never reads.
  const int stalled =
      send_raw(path, std::string("conntrack") + '\0' + "-E" + '\0' + "-e" + '\0' + "NEW" + '\0' + "\n");
  ASSERT_GE(stalled, 0);
  ASSERT_TRUE(wait_readers(2));
  constexpr uint16_t kFlows = 20000;
  for (uint16_t i = 0; i < kFlows; ++i) f.backends[0]->inject(kIn, from_client().udp(uint16_t(20000 + i), 53).build());
  size_t sent = 0;
  for (int i = 0; i < 20 && sent < 1u + kFlows; ++i) sent = f.sent(1 + kFlows).size();
  ASSERT_EQ(sent, 1u + kFlows) << control_request(path, {"status"})->out;  // forwarding went on
  // The first reader keeps up, or is told what it missed.
  for (int i = 0; i < 5000; ++i) {
    const std::string out = text(a);
    std::string err;
    {
      std::lock_guard<std::mutex> lock(a.mu);
      err = a.err;
    }
    if (uint64_t(std::count(out.begin(), out.end(), '\n')) - 2 + lost_told(err) >= kFlows) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  {
    std::lock_guard<std::mutex> lock(a.mu);
    EXPECT_EQ(uint64_t(std::count(a.out.begin(), a.out.end(), '\n')) - 2 + lost_told(a.err), kFlows) << a.err;
  }
  // The stalled one now reads: events up to its bound, then the count of
  // those it lost.
  std::string got;
  char buf[65536];
  uint64_t lines = 0, lost = 0;
  for (int idle = 0; idle < 500 && lines + lost < kFlows;) {
    pollfd p{stalled, POLLIN, 0};
    if (::poll(&p, 1, 2) <= 0) {
      ++idle;
      continue;
    }
    const ssize_t n = ::recv(stalled, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    got.append(buf, size_t(n));
    // Chunks: kind, length, newline, bytes.
    std::string out, err;
    size_t at = got.find('\n') + 1;  // past "S stream"
    while (at < got.size()) {
      const size_t nl = got.find('\n', at);
      if (nl == std::string::npos) break;
      const size_t len = std::strtoull(got.c_str() + at + 1, nullptr, 10);
      if (got.size() < nl + 1 + len) break;
      (got[at] == 'o' ? out : err).append(got, nl + 1, len);
      at = nl + 1 + len;
    }
    lines = uint64_t(std::count(out.begin(), out.end(), '\n'));
    lost = lost_told(err);
  }
  EXPECT_GT(lost, 0u);
  EXPECT_EQ(lines + lost, kFlows);
  ::close(stalled);
  EXPECT_TRUE(wait_readers(1));
  auto st = control_request(path, {"status"});
  ASSERT_TRUE(st.ok());
  EXPECT_NE(st->out.find("events lost"), std::string::npos) << st->out;
  a.stop = true;
  ta.join();
}

// conntrack -L streams: pieces go as the client takes them, a client that
// stops reading holds the walk (not the forwarding), and one that leaves
// cancels it.
TEST(GatewayPlatform, ListingStreamsAtTheReadersPace) {
  Fixture f(kMasq);
  auto g = Gateway::start(f.cfg, workers(1), f.platform);
  ASSERT_TRUE(g.ok()) << g.error().message;
  ControlLoop control(**g);
  ASSERT_TRUE(control.server);
  const std::string& path = control.path;
  constexpr int kFlows = 100000;  // about 14 MiB of listing: more than the worker and the server hold of it
  for (int i = 0; i < kFlows; ++i)
    f.backends[0]->inject(kIn, from_client().udp(uint16_t(20000 + i % 40000), uint16_t(53 + i / 40000)).build());
  size_t sent = 0;
  for (int i = 0; i < 20 && sent < size_t(kFlows); ++i) sent = f.sent(kFlows).size();
  ASSERT_EQ(sent, size_t(kFlows));

  const int stalled = send_raw(path, std::string("conntrack") + '\0' + "-L" + '\0' + "\n");
  ASSERT_GE(stalled, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // One walk at a time: another waits, with a message that says why.
  auto r = control_request(path, {"conntrack", "-C"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 1);
  EXPECT_NE(r->err.find("a listing is being sent"), std::string::npos) << r->err;
  // Forwarding goes on meanwhile.
  f.backends[0]->inject(kIn, from_client().udp(19999, 53).build());
  sent = 0;
  for (int i = 0; i < 20 && sent < size_t(kFlows) + 1; ++i) sent = f.sent(kFlows + 1).size();
  EXPECT_EQ(sent, size_t(kFlows) + 1);
  ::close(stalled);  // leaves: the walk is dropped
  for (int i = 0; i < 200; ++i) {
    r = control_request(path, {"conntrack", "-C"});
    if (r.ok() && r->status == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, std::to_string(kFlows + 1) + "\n") << r->err;
  r = control_request(path, {"conntrack", "-L"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::count(r->out.begin(), r->out.end(), '\n'), kFlows + 1);
  EXPECT_EQ(r->err, fmt::format("conntrack v1.4.7 (conntrack-tools): {} flow entries have been shown.\n", kFlows + 1));
  // -o xml: the document around the entries, none without them.
  r = control_request(path, {"conntrack", "-L", "-o", "xml", "-p", "udp", "--sport", "19999"});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->out.starts_with(std::string(kXmlHead) + "<flow><meta direction=\"original\">")) << r->out;
  EXPECT_TRUE(r->out.ends_with("</flow>\n" + std::string(kXmlTail))) << r->out;
  r = control_request(path, {"conntrack", "-L", "-o", "xml", "-p", "tcp"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "");
}

// Prometheus metrics over HTTP: the figures, in a form promtool accepts.
TEST(GatewayPlatform, MetricsInPrometheusTextFormat) {
  Fixture f(kMasq);
  auto g = Gateway::start(f.cfg, workers(2), f.platform);
  ASSERT_TRUE(g.ok()) << g.error().message;
  f.backends[0]->inject(kIn, from_client().udp(40000, 53).build());
  ASSERT_EQ(f.sent(1).size(), 1u);
  auto ms = MetricsServer::open("127.0.0.1:0", [&] { return (*g)->metrics_text(); });
  ASSERT_TRUE(ms.ok()) << ms.error().message;
  std::optional<MetricsServer> server(std::move(*ms));
  std::atomic<bool> done{false};
  std::thread loop([&] {
    while (!done) {
      server->poll();
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  auto get = [&](const std::string& request) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(server->port()));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    (void)!::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::string resp;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) resp.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return resp;
  };
  // The workers publish their figures every 100 ms, each on its own clock
  // (the flow may be created by the worker the frame was handed to).
  std::string resp;
  for (int i = 0; i < 50; ++i) {
    resp = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    if (resp.find("\nxnat_flows_created_total 1\n") != std::string::npos &&
        resp.find("xnat_interface_received_packets_total{interface=\"eth1\"} 1\n") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(resp.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4")) << resp.substr(0, 200);
  const std::string body = resp.substr(resp.find("\r\n\r\n") + 4);
  EXPECT_NE(body.find("\nxnat_flows_created_total 1\n"), std::string::npos) << body;
  EXPECT_NE(body.find("# TYPE xnat_drops_total counter\n"), std::string::npos);
  EXPECT_NE(body.find("xnat_drops_total{reason=\"table_full\"} 0\n"), std::string::npos);
  EXPECT_NE(body.find("xnat_interface_received_packets_total{interface=\"eth1\"} 1\n"), std::string::npos);
  EXPECT_NE(body.find("xnat_conntrack_limit "), std::string::npos);
  // What offloads left in the frames, per interface (none from this fake).
  for (const char* family : {"xnat_interface_rx_gso_total", "xnat_interface_tx_gso_total",
                             "xnat_interface_tx_coalesced_total", "xnat_interface_rx_checksum_verified_total"})
    EXPECT_NE(body.find(std::string("# TYPE ") + family + " counter\n" + family + "{interface=\"eth1\"} 0\n"),
              std::string::npos)
        << family;
  // The frame's bytes, and the MASQUERADE pool with the one flow on it.
  EXPECT_NE(body.find("xnat_interface_received_bytes_total{interface=\"eth1\"} "), std::string::npos);
  EXPECT_EQ(body.find("xnat_interface_received_bytes_total{interface=\"eth1\"} 0\n"), std::string::npos);
  EXPECT_NE(body.find("xnat_nat_pool_ports{address=\"198.19.0.1\"} 64512\n"), std::string::npos) << body;
  EXPECT_NE(body.find("xnat_nat_translated_flows{address=\"198.19.0.1\",proto=\"udp\"} 1\n"), std::string::npos);
  EXPECT_NE(body.find("xnat_nat_translated_flows{address=\"198.19.0.1\",proto=\"tcp\"} 0\n"), std::string::npos);
  EXPECT_TRUE(get("GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 Not Found"));
  EXPECT_TRUE(get("POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
  EXPECT_TRUE(get(std::string(9000, 'x')).starts_with("HTTP/1.1 431"));
  done = true;
  loop.join();
  // promtool (Debian's prometheus package) checks names, types and help.
  char path[] = "/tmp/xnat-metrics-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, body.data(), body.size()), static_cast<ssize_t>(body.size()));
  ::close(fd);
  const int rc = std::system(fmt::format("promtool check metrics < {} > {}.out 2>&1", path, path).c_str());
  std::ifstream lint(std::string(path) + ".out");
  const std::string lint_text((std::istreambuf_iterator<char>(lint)), std::istreambuf_iterator<char>());
  EXPECT_EQ(rc, 0) << lint_text;
  std::remove(path);
  std::remove((std::string(path) + ".out").c_str());
}

// xnat reload / SIGHUP / xnat restore: new rules for new connections,
// existing ones keep their translation; a broken file changes nothing.
TEST(GatewayPlatform, ReloadAppliesNewRulesToNewConnectionsOnly) {
  char dir[] = "/tmp/xnat-reload-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string rules = std::string(dir) + "/rules.txt", toml = std::string(dir) + "/xnat.toml";
  auto write = [](const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::trunc) << text;
  };
  ExampleGateway eg;
  eg.rules_file = rules;
  eg.neighbors = {{"198.18.0.2", "02:00:00:00:00:10"}};
  write(toml, example_gateway_toml(eg));
  write(rules, kMasq);
  auto cfg = load_config(toml, ConfigMode::kLive);
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  Fixture f(kMasq);
  RunOptions o = workers(1);
  o.config = toml;
  auto g = Gateway::start(std::move(*cfg), o, f.platform);
  ASSERT_TRUE(g.ok()) << g.error().message;
  auto src_of = [&](size_t n) {
    auto out = f.sent(n);
    EXPECT_EQ(out.size(), n);
    ParsedPacket p;
    EXPECT_EQ(parse_frame(out.back().second.data(), out.back().second.size(), {}, &p), ParseStatus::kOk);
    return p.tuple;
  };
  f.backends[0]->inject(kIn, from_client().udp(40000, 53).build());
  EXPECT_EQ(src_of(1).src, ip_raw("198.19.0.1"));

  write(rules, nat_table("-A POSTROUTING -o eth0 -j SNAT --to-source 198.19.0.9\n"));
  ControlReply r = (*g)->control({"reload"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("reloaded"), std::string::npos) << r.out;
  f.backends[0]->inject(kIn, from_client().udp(40001, 53).build());
  EXPECT_EQ(src_of(2).src, ip_raw("198.19.0.9"));  // a new connection: the new rule
  f.backends[0]->inject(kIn, from_client().udp(40000, 53).build());
  EXPECT_EQ(src_of(3).src, ip_raw("198.19.0.1"));  // the existing one keeps its mapping
  f.backends[0]->inject(kOut, FrameBuilder().eth(kRouterMac, kOutMac).ip("198.51.100.7", "198.19.0.1").udp(53, 40000).build());
  EXPECT_EQ(src_of(4).dst, ip_raw("198.18.0.2"));  // and its replies still come back

  // A broken file: refused with its file and line, the running rules kept.
  write(rules, nat_table("-A POSTROUTING -o eth0 -j SNAT --to-sauce 198.19.0.7\n"));
  r = (*g)->control({"reload"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("rules.txt:6: '--to-sauce': unknown option"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("the running configuration is unchanged"), std::string::npos) << r.err;
  f.backends[0]->inject(kIn, from_client().udp(40002, 53).build());
  EXPECT_EQ(src_of(5).src, ip_raw("198.19.0.9"));

  // restore: the rules as iptables-restore takes them.
  r = (*g)->control({"restore", kMasq});
  EXPECT_EQ(r.status, 0) << r.err;
  f.backends[0]->inject(kIn, from_client().udp(40003, 53).build());
  EXPECT_EQ(src_of(6).src, ip_raw("198.19.0.1"));
  EXPECT_EQ((*g)->control({"restore", "*nat\n-A BOGUS -j ACCEPT\nCOMMIT\n"}).status, 1);
  (*g)->stop();
  std::filesystem::remove_all(dir);
}

TEST(GatewayPlatform, AsksTheKernelForANextHopAndSendsOnItsAnswer) {
  Fixture f(kMasq);
  auto g = Gateway::start(f.cfg, workers(1), f.platform);
  ASSERT_TRUE(g.ok()) << g.error().message;
  // 198.19.0.77 is on eth0's subnet, and the kernel has not resolved it yet.
  f.backends[0]->inject(kIn, from_client().ip("198.18.0.2", "198.19.0.77").udp(40000, 53).build());
  auto asked = [&] {
    std::lock_guard<std::mutex> lock(f.kernel->mu);
    return !f.kernel->resolved.empty();
  };
  for (int i = 0; i < 2000 && !asked(); ++i) {
    (*g)->poll();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  {
    std::lock_guard<std::mutex> lock(f.kernel->mu);
    ASSERT_EQ(f.kernel->resolved.size(), 1u);
    EXPECT_EQ(f.kernel->resolved[0], std::make_pair(12, ip_raw("198.19.0.77")));
  }
  EXPECT_TRUE(f.backends[0]->sent().empty());
  // The kernel's answer arrives as a change; the next poll reads it.
  const MacAddr mac{{0x02, 0, 0, 0, 0, 0x77}};
  f.kernel->edit([&](KernelState& s) {
    s.neighbors.push_back(KernelNeighbor{12, ip_raw("198.19.0.77"), mac});
  });
  (*g)->poll();
  auto out = f.sent(1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].first, kOut);
  EXPECT_TRUE(std::equal(mac.b, mac.b + 6, out[0].second.begin()));
}

// Whether the counters come to hold `line` (the workers publish them every
// 100 ms), within two seconds; else the counters, to see why.
testing::AssertionResult counted(Gateway& g, const std::string& line) {
  std::string text;
  for (int i = 0; i < 2000; ++i) {
    GatewayReport now = g.report(false);
    text = g.counters_text(now);
    if (text.find(line + "\n") != std::string::npos) return testing::AssertionSuccess();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return testing::AssertionFailure() << "no line '" << line << "' in:\n" << text;
}

// The interfaces' addresses and routes left to the kernel, as a config
// without 'address' and 'route' lines does.
void leave_addresses_to_kernel(Fixture& f) {
  Fib conf;
  for (Interface i : f.cfg.fib.interfaces()) {
    i.addr = 0;
    i.prefix_len = 0;
    conf.add_interface(i);
  }
  f.cfg.fib.for_each_neighbor([&](uint32_t a, const MacAddr& m) { conf.add_neighbor(a, m); });
  f.cfg.fib = conf;
  f.cfg.routes_pinned = false;
  f.kernel->state.addrs = {{11, ip_raw("198.18.0.1"), 16}, {12, ip_raw("198.19.0.1"), 16}};
  f.kernel->state.routes = {KernelRoute{12, 0, 0, ip_raw("198.19.0.254"), 0}};
}

uint32_t source_of(const std::vector<uint8_t>& frame) {
  ParsedPacket p;
  EXPECT_EQ(parse_frame(frame.data(), frame.size(), {}, &p), ParseStatus::kOk);
  return p.tuple.src;
}

// As nf_nat_masquerade's notifiers: when the address a connection was
// masqueraded to leaves its interface (a new DHCP lease), or the interface
// goes down, the connection is forgotten, and its next packet is a new one,
// translated to what the interface has then. Connections translated by SNAT
// stay.
void masquerade_loss(bool link_down) {
  Fixture f(nat_table("-A POSTROUTING -o eth0 -p udp --dport 53 -j MASQUERADE\n"
                      "-A POSTROUTING -o eth0 -j SNAT --to-source 198.19.0.9\n"));
  leave_addresses_to_kernel(f);
  auto g = Gateway::start(f.cfg, workers(2), f.platform);
  ASSERT_TRUE(g.ok()) << g.error().message;
  f.backends[0]->inject(kIn, from_client().udp(40000, 53).build());
  f.backends[1]->inject(kIn, from_client().udp(40001, 54).build());
  auto out = f.sent(2);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(source_of(out[0].second) == ip_raw("198.19.0.1") || source_of(out[1].second) == ip_raw("198.19.0.1"));
  f.kernel->edit([&](KernelState& s) {
    if (link_down) s.links[1].up = false;
    else s.addrs.pop_back();
  });
  (*g)->poll();
  (*g)->collect_listing();
  GatewayReport r = (*g)->report(true);
  EXPECT_EQ(r.table.find("sport=40000 dport=53"), std::string::npos) << r.table;
  EXPECT_NE(r.table.find("sport=40001 dport=54"), std::string::npos) << r.table;
  EXPECT_NE((*g)->counters_text(r).find("live_masquerade_forgotten 1\n"), std::string::npos);
  // Nothing more goes: the next turn has nothing to forget.
  (*g)->poll();
  (*g)->collect_listing();
  r = (*g)->report(true);
  EXPECT_NE(r.table.find("sport=40001 dport=54"), std::string::npos) << r.table;
  EXPECT_NE((*g)->counters_text(r).find("live_masquerade_forgotten 1\n"), std::string::npos);
  if (!link_down) {
    // With no address (and, as the dump can show a moment after the address
    // left, the default route still there) the client's next datagram has
    // nothing to be masqueraded to: dropped, as the kernel's MASQUERADE
    // drops it ("ate my IP address"), not sent from the address that left.
    f.backends[0]->inject(kIn, from_client().udp(40000, 53).build());
    EXPECT_TRUE(counted(**g, "drop_no_address 1"));
    EXPECT_NE((*g)->banner().find(" eth0 (no IPv4 address"), std::string::npos) << (*g)->banner();
    EXPECT_EQ(f.sent(2).size(), 2u);
    // The new address comes: the next datagram leaves with it.
    f.kernel->edit([&](KernelState& s) {
      s.addrs.push_back({12, ip_raw("198.19.0.5"), 16});
    });
    (*g)->poll();
    f.backends[0]->inject(kIn, from_client().udp(40000, 53).build());
    out = f.sent(3);
    ASSERT_EQ(out.size(), 3u);
    // In the backends' order, not the sends': the new one is among them.
    EXPECT_EQ(std::count_if(out.begin(), out.end(),
                            [](const auto& o) { return source_of(o.second) == ip_raw("198.19.0.5"); }),
              1);
    EXPECT_EQ(f.steering->local, std::vector<uint32_t>({ip_raw("198.18.0.1"), ip_raw("198.19.0.5")}));
  }
  (*g)->stop();
}

TEST(GatewayPlatform, AnAddressLeavingForgetsWhatWasMasqueradedToIt) { masquerade_loss(false); }
TEST(GatewayPlatform, AnOutputGoingDownForgetsWhatWasMasqueradedThroughIt) { masquerade_loss(true); }

// The host's other addresses (an alias on an interface, one on lo) go to
// the steering program with the interfaces' own: its kernel answers them.
TEST(GatewayPlatform, TheHostsOtherAddressesAreItsOwn) {
  Fixture f(kMasq);
  f.kernel->state.addrs = {{11, ip_raw("198.18.0.1"), 16}, {12, ip_raw("198.19.0.1"), 16},
                           {12, ip_raw("198.19.0.7"), 16}, {1, ip_raw("10.99.0.1"), 32}};
  auto g = Gateway::start(f.cfg, workers(1), f.platform);
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(f.steering->local, std::vector<uint32_t>({ip_raw("198.18.0.1"), ip_raw("198.19.0.1"),
                                                      ip_raw("198.19.0.7"), ip_raw("10.99.0.1")}));
  // A client's packet to one of them is not forwarded: the host's stack has it.
  f.backends[0]->inject(kIn, FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "10.99.0.1").udp(40000, 53).build());
  EXPECT_TRUE(counted(**g, "to_host 1"));
  EXPECT_TRUE(f.backends[0]->sent().empty());
  (*g)->stop();
}

// An output with addresses in two prefixes: as the kernel's MASQUERADE
// (inet_select_addr), a connection takes the primary address in its next
// hop's prefix, else the first; never a link-scoped one. When one of them
// leaves, only the connections masqueraded to it are forgotten.
TEST(GatewayPlatform, MasqueradeTakesTheAddressInTheNextHopsPrefix) {
  Fixture f(kMasq);
  leave_addresses_to_kernel(f);
  KernelAddr link_local{12, ip_raw("169.254.1.1"), 16};
  link_local.global = false;
  f.kernel->state.addrs = {{11, ip_raw("198.18.0.1"), 16}, link_local, {12, ip_raw("198.19.0.1"), 16},
                           {12, ip_raw("203.0.113.5"), 24}};
  f.kernel->state.routes = {KernelRoute{12, 0, 0, ip_raw("203.0.113.1"), 0}};
  f.kernel->state.neighbors = {KernelNeighbor{12, ip_raw("203.0.113.1"), MacAddr{{0x02, 0, 0, 0, 0, 0x31}}}};
  auto g = Gateway::start(f.cfg, workers(1), f.platform);
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_NE((*g)->banner().find(" eth0 (198.19.0.1/16)"), std::string::npos) << (*g)->banner();
  // To the internet, by the default route's next hop in 203.0.113.0/24.
  f.backends[0]->inject(kIn, from_client().udp(40000, 53).build());
  // To a host on 198.19/16, the output's first prefix.
  f.backends[0]->inject(kIn, FrameBuilder().eth(kClientMac, kInMac).ip("198.18.0.2", "198.19.0.20").udp(40001, 53).build());
  auto out = f.sent(2);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(source_of(out[0].second), ip_raw("203.0.113.5"));
  EXPECT_EQ(source_of(out[1].second), ip_raw("198.19.0.1"));
  f.kernel->edit([&](KernelState& s) {
    s.addrs.pop_back();  // 203.0.113.5 leaves
  });
  (*g)->poll();
  (*g)->collect_listing();
  GatewayReport r = (*g)->report(true);
  EXPECT_EQ(r.table.find("sport=40000 dport=53"), std::string::npos) << r.table;
  EXPECT_NE(r.table.find("sport=40001 dport=53"), std::string::npos) << r.table;
  (*g)->stop();
}

// Policy routing rules the gateway does not follow are said, in the status
// too, not silently ignored.
TEST(GatewayPlatform, StatusNamesThePolicyRulesItDoesNotFollow) {
  Fixture f(kMasq);
  auto g = Gateway::start(f.cfg, workers(1), f.platform);
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ((*g)->control({"status"}).out.find("policy routing"), std::string::npos);
  f.kernel->edit([&](KernelState& s) {
    s.policy_rules = {"100: from 198.18.0.0/16 lookup 100"};
  });
  (*g)->poll();
  EXPECT_NE((*g)->control({"status"}).out.find("policy routing rules not followed (the main table alone routes): "
                                                "100: from 198.18.0.0/16 lookup 100\n"),
            std::string::npos)
      << (*g)->control({"status"}).out;
  (*g)->stop();
}

// A dump of the kernel's state that fails is tried again at the next turn,
// not only at the next change: the change it missed may be the last.
TEST(GatewayPlatform, AFailedDumpIsTriedAgain) {
  Fixture f(kMasq);
  leave_addresses_to_kernel(f);
  auto g = Gateway::start(f.cfg, workers(1), f.platform);
  ASSERT_TRUE(g.ok()) << g.error().message;
  {
    std::lock_guard<std::mutex> lock(f.kernel->mu);
    f.kernel->state.addrs.back().addr = ip_raw("198.19.0.7");
    f.kernel->failing_dumps = 1;
    f.kernel->change = true;
  }
  (*g)->poll();
  EXPECT_EQ(f.steering->local, std::vector<uint32_t>({ip_raw("198.18.0.1"), ip_raw("198.19.0.1")}));
  (*g)->poll();
  EXPECT_EQ(f.steering->local, std::vector<uint32_t>({ip_raw("198.18.0.1"), ip_raw("198.19.0.7")}));
  (*g)->stop();
}

// An address pinned in the config is what MASQUERADE uses, whatever the
// kernel's interface has: the kernel's address leaving forgets nothing.
TEST(GatewayPlatform, AnAddressPinnedInTheConfigIsKeptWhenTheKernelsLeaves) {
  Fixture f(nat_table("-A POSTROUTING -o eth0 -j MASQUERADE\n"));
  f.kernel->state.addrs = {{11, ip_raw("198.18.0.1"), 16}, {12, ip_raw("198.19.0.1"), 16}};
  auto g = Gateway::start(f.cfg, workers(1), f.platform);
  ASSERT_TRUE(g.ok()) << g.error().message;
  f.backends[0]->inject(kIn, from_client().udp(40000, 53).build());
  ASSERT_EQ(f.sent(1).size(), 1u);
  f.kernel->edit([&](KernelState& s) {
    s.addrs.pop_back();
  });
  (*g)->poll();
  f.backends[0]->inject(kIn, from_client().udp(40000, 53).build());
  auto out = f.sent(2);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(source_of(out[1].second), ip_raw("198.19.0.1"));
  (*g)->collect_listing();
  GatewayReport r = (*g)->report(true);
  EXPECT_NE((*g)->counters_text(r).find("live_masquerade_forgotten 0\n"), std::string::npos);
  (*g)->stop();
}

// An interface deleted and made again under its name (a PPPoE link
// redialled, a container's veth) is a new device: the gateway attaches to
// it again, with new sockets, and goes on with its table and its figures.
TEST(GatewayPlatform, AnInterfaceMadeAgainIsAttachedAgain) {
  // SNAT: its connection outlives the device (MASQUERADE's is forgotten
  // when the device goes, as the kernel's).
  Fixture f(nat_table("-A POSTROUTING -o eth0 -j SNAT --to-source 198.19.0.9\n"));
  auto g = Gateway::start(f.cfg, workers(2), f.platform);
  ASSERT_TRUE(g.ok()) << g.error().message;
  f.backends[0]->inject(kIn, from_client().udp(40000, 53).build());
  ASSERT_EQ(f.sent(1).size(), 1u);
  const KernelLink eth0 = f.kernel->state.links[1];
  f.kernel->edit([&](KernelState& s) {
    s.links.pop_back();  // deleted
  });
  (*g)->poll();
  EXPECT_EQ(f.backends.size(), 2u);  // nothing to attach to yet
  EXPECT_TRUE((*g)->broken().empty());
  f.kernel->edit([&](KernelState& s) {
    s.links.push_back(KernelLink{20, "eth0", eth0.mac, 1500, true});
  });
  const size_t calls = f.steering->calls.size();
  (*g)->poll();
  EXPECT_TRUE((*g)->broken().empty()) << (*g)->broken();
  ASSERT_EQ(f.backends.size(), 4u);  // each worker's sockets opened again
  f.first_open = 2;
  // The old device's programs let go, the new one's attached once the new
  // sockets are there.
  ASSERT_EQ(f.steering->calls.size(), calls + 2);
  EXPECT_EQ(f.steering->calls[calls], "detach 12");
  EXPECT_EQ(f.steering->calls[calls + 1], "attach eth0 20 after 4 backends");
  // The same connection goes on, through the new sockets: the table stayed.
  f.backends[2]->inject(kIn, from_client().udp(40000, 53).build());
  auto out = f.sent(1);
  ASSERT_EQ(out.size(), 1u) << [&] {
    GatewayReport now = (*g)->report(false);
    return (*g)->counters_text(now);
  }();
  EXPECT_EQ(out[0].first, kOut);
  (*g)->collect_listing();
  GatewayReport r = (*g)->report(true);
  const std::string text = (*g)->counters_text(r);
  EXPECT_NE(text.find("flows_created 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("live_interface_rebinds 1\n"), std::string::npos) << text;
  // The interfaces' figures count on from before.
  EXPECT_EQ(r.ports[kIn].rx, 2u);
  EXPECT_EQ(r.ports[kOut].tx, 2u);
  (*g)->stop();
}

TEST(GatewayPlatform, AFailedAttachNamesItsCauseAndDetaches) {
  Fixture f(kMasq);
  f.steering->fail_attach = "eth0";
  auto g = Gateway::start(f.cfg, workers(2), f.platform);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().message, "attach eth0: Operation not permitted");
  EXPECT_EQ(f.steering->calls.back(), "detach_all");  // eth1's attachment undone
}

TEST(GatewayPlatform, RefusesAMissingInterfaceAndBadWorkerCounts) {
  Fixture f(kMasq);
  f.kernel->state.links.pop_back();
  auto g = Gateway::start(f.cfg, workers(1), f.platform);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().message, "interface 'eth0' does not exist (ip link show eth0)");
  EXPECT_TRUE(f.backends.empty());

  Fixture f2(kMasq);
  auto g2 = Gateway::start(f2.cfg, workers(0), f2.platform);
  ASSERT_FALSE(g2.ok());
  EXPECT_EQ(g2.error().message, "--workers 0: use 1 to 255");
}

TEST(GatewayPlatform, RulesForTheHostNeedAHostPort) {
  Fixture f(nat_table("-A PREROUTING -i eth0 -p tcp --dport 2222 -j REDIRECT --to-ports 22\n"));
  auto g = Gateway::start(f.cfg, workers(1), f.platform);  // the fake platform has none
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.error().message.find("needs a host port"), std::string::npos) << g.error().message;
}

// The ports a live gateway hands out cannot be foretold: each start draws
// its own secrets (a fixed seed let anyone who knew it predict the port of a
// --random mapping, and craft flows that share a hash bucket).
TEST(GatewayPlatform, EachStartDrawsItsOwnPortSecrets) {
  std::set<uint16_t> ports;
  for (int run = 0; run < 3; ++run) {
    Fixture f(nat_table("-A POSTROUTING -o eth0 -j MASQUERADE --random\n"));
    auto g = Gateway::start(f.cfg, workers(1), f.platform);
    ASSERT_TRUE(g.ok()) << g.error().message;
    f.backends[0]->inject(kIn, from_client().udp(40000, 53).build());
    auto out = f.sent(1);
    ASSERT_EQ(out.size(), 1u);
    ParsedPacket p;
    ASSERT_EQ(parse_frame(out[0].second.data(), out[0].second.size(), {}, &p), ParseStatus::kOk);
    ports.insert(p.tuple.sport);
    (*g)->stop();
  }
  EXPECT_GE(ports.size(), 2u);  // three starts, three draws from 64 512 ports
}

// A seed in the configuration is replay's: the live gateway refuses it,
// saying why.
TEST(GatewayConfig, LiveRefusesAFixedSeed) {
  auto cfg = parse_config("seed = 1\n[[interface]]\nname = \"eth0\"\n", "gw.toml", ConfigMode::kLive);
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.error().message.find("gw.toml:1: 'seed' is for replay"), std::string::npos) << cfg.error().message;
  EXPECT_TRUE(parse_config("seed = 1\n[[interface]]\nname = \"eth0\"\nmac = \"02:00:00:00:00:01\"\n"
                           "address = \"198.18.0.1/16\"\n", "gw.toml", ConfigMode::kReplay).ok());
}

// The live gateway's MTUs are its devices': a configured one is refused,
// saying where the MTU comes from.
TEST(GatewayConfig, LiveTakesTheMtuFromTheDevice) {
  char dir[] = "/tmp/xnat-mtu-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string toml = std::string(dir) + "/xnat.toml";
  ExampleGateway eg;
  std::string text = example_gateway_toml(eg);
  text.replace(text.find("mac = \"02:00:00:00:00:02\"\n"), 26, "mac = \"02:00:00:00:00:02\"\nmtu = 9000\n");
  std::ofstream(toml, std::ios::trunc) << text;
  auto cfg = load_config(toml, ConfigMode::kLive);
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.error().message.find("interface 'eth0': the live gateway takes the MTU from the device"),
            std::string::npos)
      << cfg.error().message;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace xnat::test
