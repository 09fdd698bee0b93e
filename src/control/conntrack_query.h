// `xnat conntrack`: conntrack-tools' command line (-L, -G, -D, -F, -C, -S,
// -E with its filters, -e and -o), parsed into a query the gateway's workers
// run on their tables (or, -E, the gateway runs on their events), so
// scripts written for `conntrack` work by changing the command name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "conntrack/events.h"
#include "conntrack/flow.h"
#include "conntrack/listing.h"

namespace xnat {

struct ConntrackQuery {
  enum class Command : uint8_t { kList, kGet, kDelete, kFlush, kCount, kStats, kEvents };
  Command command = Command::kList;
  EntryFormat output = EntryFormat::kDefault;
  bool with_id = false;         // -o id: each entry's id
  bool with_timestamp = false;  // -o timestamp: each event's time of day, as conntrack -E prints it
  uint8_t event_mask = kEventAll;  // -e
  // kCount answered from each table's own count, without a walk: the
  // gateway's nf_conntrack_count (the kernel's counts entries not yet
  // reaped as well).
  bool table_count = false;
  // Filters (conntrack's): tuples in network order, ports in host order.
  std::optional<uint8_t> proto;
  std::optional<uint32_t> orig_src, orig_dst, reply_src, reply_dst;
  std::optional<uint16_t> orig_sport, orig_dport, reply_sport, reply_dport;
  std::optional<TcpState> state;
  bool src_nat = false, dst_nat = false, any_nat = false;
  bool masquerade = false;  // translated by MASQUERADE (the gateway's own cleanup; conntrack has no such filter)
  std::optional<uint32_t> mark, mark_mask;

  bool matches(const Flow& f, uint32_t ct_mark) const;
  // conntrack's line for a flow, in the query's output format; `id` names
  // the entry while it lives (worker and slot).
  std::string format(const Flow& f, uint64_t now_ms, uint32_t ct_mark, uint64_t id = 0) const;
  // The same appended to *out, with its newline (a listing's piece).
  void append(std::string* out, const Flow& f, uint64_t now_ms, uint32_t ct_mark, uint64_t id) const;
  // An event's line (-E), appended with its newline. now_ms: the workers'
  // clock as the event is read.
  void append_event(std::string* out, const FlowEvent& e, uint64_t now_ms) const;
};

// The arguments after `xnat conntrack`; errors name the option, as conntrack does.
Result<ConntrackQuery> parse_conntrack_args(const std::vector<std::string>& args);

}  // namespace xnat
