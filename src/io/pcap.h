// Classic pcap files (the format tcpdump writes): Ethernet link type,
// microsecond or nanosecond timestamps, either byte order. Reading validates
// every record header against the file, so a damaged capture is an error
// message, not a crash.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "base/result.h"

namespace xnat {

struct PcapRecord {
  uint64_t ts_ns = 0;
  std::vector<uint8_t> data;
};

Result<std::vector<PcapRecord>> read_pcap(const std::string& path);
Result<std::vector<PcapRecord>> parse_pcap(const uint8_t* data, size_t len, const std::string& name);

class PcapWriter {
 public:
  PcapWriter() = default;
  ~PcapWriter();
  PcapWriter(const PcapWriter&) = delete;
  PcapWriter& operator=(const PcapWriter&) = delete;
  PcapWriter(PcapWriter&& o) noexcept : f_(o.f_) { o.f_ = nullptr; }

  // Writes a nanosecond-resolution pcap header, link type Ethernet.
  static Result<PcapWriter> create(const std::string& path);
  void write(uint64_t ts_ns, const uint8_t* data, size_t len);
  bool close();

 private:
  std::FILE* f_ = nullptr;
};

}  // namespace xnat
