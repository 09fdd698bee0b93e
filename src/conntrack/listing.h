// How conntrack-tools prints an entry: a listing's line (-L), an event's
// (-E), in its text, -o extended, -o id and -o xml forms (libnetfilter_conntrack's
// snprintf), and xnat's JSON.
#pragma once

#include <cstdint>
#include <string>

#include "conntrack/events.h"
#include "conntrack/flow.h"

namespace xnat {

enum class EntryFormat : uint8_t { kDefault, kExtended, kXml, kJson };

// The attributes one printed entry carries: a listing's carry all but the
// id; an event's what ctnetlink put in it (events.h).
struct EntryView {
  uint8_t event = 0;  // 0: a listing's entry, else one EventType
  bool show_state = true;
  bool show_timeout = true;
  bool show_mark = true;
  bool show_use = true;  // CTA_USE: dumps only
  bool show_id = false;  // -o id; XML shows it always
  uint64_t timeout_s = 0;
  uint32_t mark = 0;
  uint64_t id = 0;
};

// One entry, without the newline. For XML the <flow> element alone: the
// caller writes the document's head and tail (xml_head, xml_tail).
void append_conntrack_entry(std::string* out, const Flow& f, const EntryView& v, EntryFormat fmt);
inline constexpr const char* kXmlHead = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<conntrack>\n";
inline constexpr const char* kXmlTail = "</conntrack>\n";

// A listing's view of a live flow.
EntryView listing_view(const Flow& f, uint64_t now_ms, uint32_t mark, uint64_t id = 0, bool show_id = false);
// An event's view; `now_ms` stands in for an event's own time when it has
// none (a DESTROY: its timeout as the reader finds it).
EntryView event_view(const FlowEvent& e, uint64_t now_ms, bool show_id);

// One line of `conntrack -L -o extended` for a flow (without the newline).
// `mark`: the connection's mark (CONNMARK).
std::string format_conntrack_extended(const Flow& f, uint64_t now_ms, uint32_t mark = 0);
// The same without the layer-3 columns (`ipv4     2 `): conntrack -L's default.
std::string format_conntrack_default(const Flow& f, uint64_t now_ms, uint32_t mark = 0);

}  // namespace xnat
