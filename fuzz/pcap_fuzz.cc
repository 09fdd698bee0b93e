// Fuzzes the pcap reader, which reads files a user hands to `xnat replay`:
// any bytes must give records that lie inside the input, or an error message,
// never a crash or a hang.
#include <cstddef>
#include <cstdint>

#include "io/pcap.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = xnat::parse_pcap(data, size, "fuzz.pcap");
  if (!r) {
    if (r.error().message.empty()) __builtin_trap();
    return 0;
  }
  size_t total = 0;
  for (const xnat::PcapRecord& rec : *r) total += rec.data.size() + 16;  // each behind a 16-byte record header
  if (total + 24 > size) __builtin_trap();  // more than the file held
  return 0;
}
