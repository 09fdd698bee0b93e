#include "cli/replay.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "control/config.h"
#include "io/pcap.h"

namespace xnat {

std::string format_conntrack_table(const Conntrack& ct, uint64_t now_ms) {
  std::string out;
  append_conntrack_range(ct, now_ms, 0, ct.capacity(), &out);
  return out;
}

void append_conntrack_range(const Conntrack& ct, uint64_t now_ms, uint32_t begin, uint32_t end, std::string* out) {
  ct.for_each_live(
      now_ms,
      [&](const Flow& f) {
        *out += format_conntrack_extended(f, now_ms);
        *out += '\n';
      },
      begin, end);
}

CounterSource counter_source(const Engine& e) {
  const Conntrack& ct = e.conntrack();
  return CounterSource{e.counters(), ct.stats(), ct.count(), ct.capacity(), ct.bytes_per_flow()};
}

std::string format_counters(const Engine& e) { return format_counters(std::vector<CounterSource>{counter_source(e)}); }

std::string format_counters(const std::vector<CounterSource>& workers) {
  CounterSource t;
  for (const CounterSource& w : workers) {
    for (size_t i = 0; i < kCounterCount; ++i) t.counters.v[i] += w.counters.v[i];
    t.stats += w.stats;
    t.count += w.count;
    t.capacity += w.capacity;
    t.bytes_per_flow = w.bytes_per_flow;
  }
  std::string out;
  for (size_t i = 0; i < kCounterCount; ++i)
    out += fmt::format("{} {}\n", counter_name(static_cast<Counter>(i)), t.counters.v[i]);
  const ConntrackStats& s = t.stats;
  out += fmt::format("conntrack_count {}\n", t.count);
  out += fmt::format("conntrack_max {}\n", t.capacity);
  out += fmt::format("conntrack_expired {}\n", s.expired);
  out += fmt::format("conntrack_evicted_expired {}\n", s.evicted_expired);
  out += fmt::format("conntrack_evicted_closing {}\n", s.evicted_closing);
  out += fmt::format("conntrack_evicted_unreplied {}\n", s.evicted_unreplied);
  out += fmt::format("conntrack_evicted_half_closed {}\n", s.evicted_half_closed);
  out += fmt::format("conntrack_evicted_held {}\n", s.held);
  out += fmt::format("conntrack_readmitted {}\n", s.readmitted);
  out += fmt::format("conntrack_tcp_reopened {}\n", s.reopened);
  out += fmt::format("conntrack_tcp_killed_by_rst {}\n", s.killed);
  out += fmt::format("conntrack_source_limited {}\n", s.source_limited);
  out += fmt::format("conntrack_directory_full {}\n", s.directory_full);
  out += fmt::format("conntrack_borrowed {}\n", s.borrowed);
  out += fmt::format("conntrack_bytes_per_flow {}\n", t.bytes_per_flow);
  // The same figures in the layout of `conntrack -S`, a line per worker as it prints one per CPU.
  for (size_t w = 0; w < workers.size(); ++w) {
    const ConntrackStats& c = workers[w].stats;
    out += fmt::format(
        "cpu={} found={} invalid={} insert={} insert_failed={} drop={} early_drop={} error={} "
        "search_restart=0 clash_resolve=0 chaintoolong=0\n",
        w, c.found, c.invalid, c.insert, c.insert_failed, c.drop, c.early_drop, c.error);
  }
  return out;
}

Result<ReplaySummary> run_replay(const ReplayOptions& opts) {
  auto cfg = load_config(opts.config_path, ConfigMode::kReplay);
  if (!cfg) return cfg.error();
  struct Frame {
    uint64_t ts_ns;
    int iface;
    size_t input;
    size_t index;
  };
  std::vector<std::vector<PcapRecord>> captures;
  std::vector<Frame> order;
  for (size_t in = 0; in < opts.inputs.size(); ++in) {
    const auto& [ifname, path] = opts.inputs[in];
    const int ifindex = cfg->fib.find_interface(ifname);
    if (ifindex < 0)
      return Error{fmt::format("--in {}={}: no [[interface]] named '{}' in {}", ifname, path, ifname, opts.config_path)};
    auto recs = read_pcap(path);
    if (!recs) return recs.error();
    for (size_t i = 0; i < recs->size(); ++i) order.push_back(Frame{(*recs)[i].ts_ns, ifindex, in, i});
    captures.push_back(std::move(*recs));
  }
  // Timestamp order; ties keep input order, then file order.
  std::stable_sort(order.begin(), order.end(), [](const Frame& a, const Frame& b) { return a.ts_ns < b.ts_ns; });

  std::error_code ec;
  std::filesystem::create_directories(opts.out_dir, ec);
  if (ec) return Error{fmt::format("{}: cannot create output directory: {}", opts.out_dir, ec.message())};
  Engine engine(std::move(*cfg));
  std::vector<PcapWriter> writers;
  for (const Interface& itf : engine.fib().interfaces()) {
    auto w = PcapWriter::create((std::filesystem::path(opts.out_dir) / (itf.name + ".pcap")).string());
    if (!w) return w.error();
    writers.push_back(std::move(*w));
  }
  auto host = PcapWriter::create((std::filesystem::path(opts.out_dir) / "host.pcap").string());
  if (!host) return host.error();

  ReplaySummary sum;
  // One buffer, with room for the largest frame plus an ICMP error's headers.
  std::vector<uint8_t> buf(262144 + 1024);
  uint64_t now_ms = 0;
  for (const Frame& fr : order) {
    const PcapRecord& r = captures[fr.input][fr.index];
    if (!r.data.empty()) std::memcpy(buf.data(), r.data.data(), r.data.size());
    Packet pkt;
    pkt.data = buf.data();
    pkt.len = static_cast<uint32_t>(r.data.size());
    pkt.capacity = static_cast<uint32_t>(buf.size());
    pkt.in_if = static_cast<int16_t>(fr.iface);
    now_ms = fr.ts_ns / 1000000;
    engine.process(pkt, now_ms);
    ++sum.frames;
    switch (pkt.verdict) {
      case Verdict::kForward:
        writers[pkt.out_if].write(fr.ts_ns, pkt.data, pkt.len);
        ++sum.forwarded;
        break;
      case Verdict::kToHost:
        host->write(fr.ts_ns, pkt.data, pkt.len);
        ++sum.to_host;
        break;
      case Verdict::kDrop:
      case Verdict::kNeighborPending:  // not in replay: hold_unresolved is off
      case Verdict::kHandoff:          // not in replay: one worker
        ++sum.dropped;
        break;
    }
  }
  for (PcapWriter& w : writers)
    if (!w.close()) return Error{fmt::format("{}: writing a capture failed", opts.out_dir)};
  if (!host->close()) return Error{fmt::format("{}: writing host.pcap failed", opts.out_dir)};
  sum.flows = engine.conntrack().count();

  auto write_text = [&](const char* name, const std::string& text) -> std::optional<Error> {
    std::ofstream o(std::filesystem::path(opts.out_dir) / name, std::ios::binary);
    o << text;
    if (!o) return Error{fmt::format("{}/{}: write failed", opts.out_dir, name)};
    return std::nullopt;
  };
  if (auto e = write_text("conntrack.txt", format_conntrack_table(engine.conntrack(), now_ms))) return *e;
  if (auto e = write_text("counters.txt", format_counters(engine))) return *e;
  return sum;
}

}  // namespace xnat
