#include "cli/replay.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "conntrack/listing.h"
#include "control/config.h"
#include "io/pcap.h"
#include "packet/offload.h"

namespace xnat {

Result<ReplaySummary> run_replay(const ReplayOptions& opts) {
  auto cfg = load_config(opts.config_path, ConfigMode::kReplay);
  if (!cfg) return cfg.error();
  for (const std::string& n : config_notices(*cfg)) fmt::print(stderr, "xnat replay: note: {}\n", n);
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
  EventRing ring(4096);  // drained after each frame: one frame's events fit
  std::string events;
  if (opts.events) engine.conntrack().set_events(&ring, kEventAll);
  // One buffer, with room for the largest frame plus an ICMP error's headers.
  std::vector<uint8_t> buf(262144 + 1024);
  uint64_t now_ms = 0;
  std::string log;  // -j LOG lines, as "<level>line" (log.txt)
  // Where a frame went: a later fragment that came ahead of its first
  // (held) when its first came, or nowhere (dropped). Anything else is a
  // drop: kNeighborPending and kHandoff too (hold_unresolved is off, one
  // worker), so the drops are what neither went out nor to the host.
  std::vector<uint8_t> piece(65536 + 64);  // a fragment of a datagram larger than its output's MTU
  auto account = [&](const Packet& pkt, uint64_t ts_ns) {
    if (pkt.verdict == Verdict::kForward && pkt.frag_mtu) {
      auto write = [&](const uint8_t* f, uint32_t len) {
        writers[pkt.out_if].write(ts_ns, f, len);
        return true;
      };
      (void)fragment_ipv4(pkt.data, pkt.len, pkt.frag_mtu, piece.data(), static_cast<uint32_t>(piece.size()), write);
      ++sum.forwarded;
    } else if (pkt.verdict == Verdict::kForward) {
      writers[pkt.out_if].write(ts_ns, pkt.data, pkt.len);
      ++sum.forwarded;
    } else if (pkt.verdict == Verdict::kToHost) {
      host->write(ts_ns, pkt.data, pkt.len);
      ++sum.to_host;
    }
  };
  Packet released[Engine::kBurst];
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
    account(pkt, fr.ts_ns);
    // Later fragments that came ahead of this first fragment follow it.
    for (size_t n; (n = engine.take_released(released, Engine::kBurst, now_ms)) > 0; engine.released_done()) {
      engine.process_burst(released, n, now_ms);
      for (size_t i = 0; i < n; ++i) account(released[i], fr.ts_ns);
    }
    engine.log_ring().drain([&](uint8_t level, std::string_view text) {
      log += fmt::format("<{}>{}\n", level, text);
    });
    ring.drain([&](const FlowEvent& e) {
      append_conntrack_entry(&events, e.flow, event_view(e, now_ms, false), EntryFormat::kExtended);
      events += '\n';
    });
    ++sum.frames;
  }
  engine.drop_waiting_fragments();
  sum.dropped = sum.frames - sum.forwarded - sum.to_host;
  for (PcapWriter& w : writers)
    if (!w.close()) return Error{fmt::format("{}: writing a capture failed", opts.out_dir)};
  if (!host->close()) return Error{fmt::format("{}: writing host.pcap failed", opts.out_dir)};
  sum.flows = engine.conntrack().count();

  auto write_text = [&](const char* name, const std::string& text) -> Status {
    std::ofstream o(std::filesystem::path(opts.out_dir) / name, std::ios::binary);
    o << text;
    if (!o) return Error{fmt::format("{}/{}: write failed", opts.out_dir, name)};
    return {};
  };
  if (auto r = write_text("conntrack.txt", format_conntrack_table(engine.conntrack(), now_ms)); !r) return r.error();
  if (auto r = write_text("counters.txt", format_counters(engine)); !r) return r.error();
  if (opts.events)
    if (auto r = write_text("events.txt", events); !r) return r.error();
  if (!log.empty())
    if (auto r = write_text("log.txt", log); !r) return r.error();
  return sum;
}

}  // namespace xnat
