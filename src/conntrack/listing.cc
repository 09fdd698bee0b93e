#include "conntrack/listing.h"

#include <fmt/format.h>

#include <iterator>

#include "conntrack/tcp_tracker.h"

namespace xnat {

namespace {
const char* proto_name(uint8_t p) {
  switch (p) {
    case 1: return "icmp";
    case 6: return "tcp";
    case 17: return "udp";
    case 33: return "dccp";
    case 47: return "gre";
    case 58: return "icmpv6";
    case 132: return "sctp";
    case 136: return "udplite";
    default: return "unknown";
  }
}

const char* event_name(uint8_t type, bool xml) {
  switch (type) {
    case kEventNew: return xml ? "new" : "[NEW]";
    case kEventUpdate: return xml ? "update" : "[UPDATE]";
    case kEventDestroy: return xml ? "destroy" : "[DESTROY]";
    default: return "";
  }
}

uint64_t seconds_left(uint64_t expires_ms, uint64_t now_ms) {
  return expires_ms > now_ms ? (expires_ms - now_ms) / 1000 : 0;
}

void append_tuple(std::string& out, const Tuple& t) {
  auto o = std::back_inserter(out);
  fmt::format_to(o, "src={} dst={} ", ip_to_string(t.src), ip_to_string(t.dst));
  if (t.has_ports())
    fmt::format_to(o, "sport={} dport={} ", __builtin_bswap16(t.sport), __builtin_bswap16(t.dport));
  else if (t.proto == kProtoIcmp)
    fmt::format_to(o, "type={} code={} id={} ", t.icmp_type(), t.icmp_code(), __builtin_bswap16(t.sport));
}

void append_text(std::string& out, const Flow& f, const EntryView& v, bool l3) {
  auto o = std::back_inserter(out);
  const uint8_t proto = f.tuple[0].proto;
  if (v.event) fmt::format_to(o, "{:>9} ", event_name(v.event, false));
  if (l3) out += "ipv4     2 ";
  fmt::format_to(o, "{:<8} {} ", proto_name(proto), proto);
  if (v.show_timeout) fmt::format_to(o, "{} ", v.timeout_s);
  if (v.show_state && proto == kProtoTcp) fmt::format_to(o, "{} ", tcp_state_name(f.tcp_state));
  append_tuple(out, f.tuple[0]);
  if (!(f.status & kStatusSeenReply)) out += "[UNREPLIED] ";
  append_tuple(out, f.tuple[1]);
  // As libnetfilter_conntrack prints IPS_OFFLOAD: in place of ASSURED.
  if (f.status & kStatusOffload) out += "[OFFLOAD] ";
  else if (f.status & kStatusAssured) out += "[ASSURED] ";
  if (v.show_mark) fmt::format_to(o, "mark={} ", v.mark);
  if (v.show_use) out += "use=1 ";
  if (v.show_id) fmt::format_to(o, "id={} ", v.id);
  out.pop_back();  // the last field's space
}

// libnetfilter_conntrack's XML: ports for TCP and UDP only (ICMP's layer4
// element is empty there), then the independent part.
void append_xml_tuple(std::string& out, const Tuple& t, const char* dir) {
  auto o = std::back_inserter(out);
  fmt::format_to(o,
                 "<meta direction=\"{}\"><layer3 protonum=\"2\" protoname=\"ipv4\"><src>{}</src><dst>{}</dst>"
                 "</layer3><layer4 protonum=\"{}\" protoname=\"{}\">",
                 dir, ip_to_string(t.src), ip_to_string(t.dst), t.proto, proto_name(t.proto));
  if (t.has_ports())
    fmt::format_to(o, "<sport>{}</sport><dport>{}</dport>", __builtin_bswap16(t.sport), __builtin_bswap16(t.dport));
  out += "</layer4></meta>";
}

void append_xml(std::string& out, const Flow& f, const EntryView& v) {
  auto o = std::back_inserter(out);
  if (v.event) fmt::format_to(o, "<flow type=\"{}\">", event_name(v.event, true));
  else out += "<flow>";
  append_xml_tuple(out, f.tuple[0], "original");
  append_xml_tuple(out, f.tuple[1], "reply");
  out += "<meta direction=\"independent\">";
  if (v.show_state && f.tuple[0].proto == kProtoTcp) fmt::format_to(o, "<state>{}</state>", tcp_state_name(f.tcp_state));
  if (v.show_timeout) fmt::format_to(o, "<timeout>{}</timeout>", v.timeout_s);
  if (v.show_mark) fmt::format_to(o, "<mark>{}</mark>", v.mark);
  if (v.show_use) out += "<use>1</use>";
  fmt::format_to(o, "<id>{}</id>", v.id);
  if (f.status & kStatusAssured) out += "<assured/>";
  if (!(f.status & kStatusSeenReply)) out += "<unreplied/>";
  out += "</meta></flow>";
}

void append_json_tuple(std::string& out, const Tuple& t) {
  auto o = std::back_inserter(out);
  fmt::format_to(o, "{{\"src\":\"{}\",\"dst\":\"{}\"", ip_to_string(t.src), ip_to_string(t.dst));
  if (t.has_ports())
    fmt::format_to(o, ",\"sport\":{},\"dport\":{}", __builtin_bswap16(t.sport), __builtin_bswap16(t.dport));
  else if (t.proto == kProtoIcmp)
    fmt::format_to(o, ",\"type\":{},\"code\":{},\"id\":{}", t.icmp_type(), t.icmp_code(), __builtin_bswap16(t.sport));
  out += '}';
}

void append_json(std::string& out, const Flow& f, const EntryView& v) {
  auto o = std::back_inserter(out);
  const uint8_t p = f.tuple[0].proto;
  out += '{';
  if (v.event) fmt::format_to(o, "\"event\":\"{}\",", event_name(v.event, true));
  fmt::format_to(o, "\"proto\":{}", p);
  if (v.show_timeout) fmt::format_to(o, ",\"timeout\":{}", v.timeout_s);
  if (v.show_state && p == kProtoTcp) fmt::format_to(o, ",\"state\":\"{}\"", tcp_state_name(f.tcp_state));
  out += ",\"original\":";
  append_json_tuple(out, f.tuple[0]);
  out += ",\"reply\":";
  append_json_tuple(out, f.tuple[1]);
  fmt::format_to(o, ",\"unreplied\":{},\"assured\":{},\"src_nat\":{},\"dst_nat\":{}", !(f.status & kStatusSeenReply),
                 (f.status & kStatusAssured) != 0, (f.status & kStatusSrcNat) != 0, (f.status & kStatusDstNat) != 0);
  if (f.status & kStatusOffload) out += ",\"offload\":true";
  if (v.show_mark) fmt::format_to(o, ",\"mark\":{}", v.mark);
  if (v.show_id) fmt::format_to(o, ",\"id\":{}", v.id);
  out += '}';
}
}  // namespace

void append_conntrack_entry(std::string* out, const Flow& f, const EntryView& v, EntryFormat fmt) {
  switch (fmt) {
    case EntryFormat::kDefault: return append_text(*out, f, v, false);
    case EntryFormat::kExtended: return append_text(*out, f, v, true);
    case EntryFormat::kXml: return append_xml(*out, f, v);
    case EntryFormat::kJson: return append_json(*out, f, v);
  }
}

EntryView listing_view(const Flow& f, uint64_t now_ms, uint32_t mark, uint64_t id, bool show_id) {
  EntryView v;
  v.timeout_s = seconds_left(f.expires_ms, now_ms);
  v.mark = mark;
  v.id = id;
  v.show_id = show_id;
  return v;
}

EntryView event_view(const FlowEvent& e, uint64_t now_ms, bool show_id) {
  EntryView v;
  v.event = e.type;
  v.show_state = e.shows & kShowState;
  v.show_mark = e.shows & kShowMark;
  v.show_use = false;
  v.show_id = show_id;
  v.mark = e.mark;
  v.id = e.id;
  v.timeout_s = seconds_left(e.flow.expires_ms, e.at_ms ? e.at_ms : now_ms);
  // A destroyed entry's timeout only while some of it is left (ctnetlink
  // skips a zero one).
  v.show_timeout = (e.shows & kShowTimeout) && (e.type != kEventDestroy || v.timeout_s > 0);
  return v;
}

std::string format_conntrack_extended(const Flow& f, uint64_t now_ms, uint32_t mark) {
  std::string out;
  append_conntrack_entry(&out, f, listing_view(f, now_ms, mark), EntryFormat::kExtended);
  return out;
}

std::string format_conntrack_default(const Flow& f, uint64_t now_ms, uint32_t mark) {
  std::string out;
  append_conntrack_entry(&out, f, listing_view(f, now_ms, mark), EntryFormat::kDefault);
  return out;
}

}  // namespace xnat
