#include "io/pcap.h"

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <iterator>

namespace xnat {
namespace {
constexpr uint32_t kMagicUs = 0xA1B2C3D4;
constexpr uint32_t kMagicNs = 0xA1B23C4D;
constexpr uint32_t kLinkEthernet = 1;
constexpr uint32_t kMaxSnap = 262144;

uint32_t rd32(const uint8_t* p, bool swap) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return swap ? __builtin_bswap32(v) : v;
}
}  // namespace

Result<std::vector<PcapRecord>> parse_pcap(const uint8_t* d, size_t len, const std::string& name) {
  if (len < 24) return Error{fmt::format("{}: not a pcap file (shorter than its 24-byte header)", name)};
  uint32_t magic;
  std::memcpy(&magic, d, 4);
  bool swap = false, ns = false;
  if (magic == kMagicUs) {
  } else if (magic == kMagicNs) {
    ns = true;
  } else if (magic == __builtin_bswap32(kMagicUs)) {
    swap = true;
  } else if (magic == __builtin_bswap32(kMagicNs)) {
    swap = ns = true;
  } else {
    return Error{fmt::format("{}: not a classic pcap file (pcapng is not supported; convert with "
                             "'editcap -F pcap')", name)};
  }
  const uint32_t link = rd32(d + 20, swap) & 0x0FFFFFFF;
  if (link != kLinkEthernet)
    return Error{fmt::format("{}: link type {} is not Ethernet (1)", name, link)};
  std::vector<PcapRecord> out;
  size_t off = 24;
  while (off < len) {
    if (len - off < 16) return Error{fmt::format("{}: record {} header cut short", name, out.size() + 1)};
    const uint64_t sec = rd32(d + off, swap), frac = rd32(d + off + 4, swap);
    const uint32_t incl = rd32(d + off + 8, swap);
    if (incl > kMaxSnap) return Error{fmt::format("{}: record {} claims {} bytes", name, out.size() + 1, incl)};
    if (len - off - 16 < incl) return Error{fmt::format("{}: record {} data cut short", name, out.size() + 1)};
    PcapRecord r;
    r.ts_ns = sec * 1000000000ull + (ns ? frac : frac * 1000);
    r.data.assign(d + off + 16, d + off + 16 + incl);
    out.push_back(std::move(r));
    off += 16 + incl;
  }
  return out;
}

Result<std::vector<PcapRecord>> read_pcap(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{fmt::format("{}: cannot open", path)};
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_pcap(bytes.data(), bytes.size(), path);
}

PcapWriter::~PcapWriter() { close(); }

Result<PcapWriter> PcapWriter::create(const std::string& path) {
  PcapWriter w;
  w.f_ = std::fopen(path.c_str(), "wb");
  if (!w.f_) return Error{fmt::format("{}: cannot create: {}", path, std::strerror(errno))};
  const uint32_t hdr[6] = {kMagicNs, 0x00040002 /* version 2.4 */, 0, 0, 65535, kLinkEthernet};
  std::fwrite(hdr, sizeof hdr, 1, w.f_);
  return w;
}

void PcapWriter::write(uint64_t ts_ns, const uint8_t* data, size_t len) {
  const uint32_t rec[4] = {static_cast<uint32_t>(ts_ns / 1000000000ull),
                           static_cast<uint32_t>(ts_ns % 1000000000ull), static_cast<uint32_t>(len),
                           static_cast<uint32_t>(len)};
  std::fwrite(rec, sizeof rec, 1, f_);
  std::fwrite(data, 1, len, f_);
}

bool PcapWriter::close() {
  if (!f_) return true;
  const bool ok = std::fclose(f_) == 0;
  f_ = nullptr;
  return ok;
}

}  // namespace xnat
