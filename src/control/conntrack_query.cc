#include "control/conntrack_query.h"

#include <fmt/format.h>

#include <strings.h>
#include <sys/time.h>

#include <cstdio>
#include <cstring>
#include <iterator>
#include <cstdlib>

#include "conntrack/listing.h"
#include "packet/tuple.h"

namespace xnat {
namespace {

bool parse_proto_name(const std::string& s, uint8_t* p) {
  if (s == "tcp") return *p = kProtoTcp, true;
  if (s == "udp") return *p = kProtoUdp, true;
  if (s == "icmp") return *p = kProtoIcmp, true;
  unsigned v;
  char tail;
  if (std::sscanf(s.c_str(), "%u%c", &v, &tail) == 1 && v <= 255) return *p = static_cast<uint8_t>(v), true;
  return false;
}

bool parse_port(const std::string& s, uint16_t* p) {
  unsigned v;
  char tail;
  if (std::sscanf(s.c_str(), "%u%c", &v, &tail) != 1 || v > 65535) return false;
  *p = static_cast<uint16_t>(v);
  return true;
}

bool parse_u32(const std::string& s, uint32_t* v) {
  char* end = nullptr;
  const unsigned long long x = std::strtoull(s.c_str(), &end, 0);
  if (s.empty() || *end || x > 0xFFFFFFFFull) return false;
  *v = static_cast<uint32_t>(x);
  return true;
}

// conntrack's comma-separated option values, each item (empty ones too).
std::vector<std::string> comma_list(const std::string& v) {
  std::vector<std::string> items;
  size_t at = 0;
  for (size_t comma; (comma = v.find(',', at)) != std::string::npos; at = comma + 1) items.push_back(v.substr(at, comma - at));
  items.push_back(v.substr(at));
  return items;
}

}  // namespace

Result<ConntrackQuery> parse_conntrack_args(const std::vector<std::string>& args) {
  ConntrackQuery q;
  bool have_command = false;
  auto command = [&](ConntrackQuery::Command c, const std::string& o) -> Status {
    if (have_command) return Error{fmt::format("{}: only one command at a time (-L, -G, -D, -F, -C, -S, -E)", o)};
    have_command = true;
    q.command = c;
    return {};
  };
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& o = args[i];
    auto value = [&]() -> Result<std::string> {
      if (i + 1 >= args.size()) return Error{fmt::format("option {} needs a value", o)};
      return args[++i];
    };
    using C = ConntrackQuery::Command;
    if (o == "-L" || o == "--dump") {
      if (auto r = command(C::kList, o); !r) return r.error();
    } else if (o == "-G" || o == "--get") {
      if (auto r = command(C::kGet, o); !r) return r.error();
    } else if (o == "-D" || o == "--delete") {
      if (auto r = command(C::kDelete, o); !r) return r.error();
    } else if (o == "-F" || o == "--flush") {
      if (auto r = command(C::kFlush, o); !r) return r.error();
    } else if (o == "-C" || o == "--count") {
      if (auto r = command(C::kCount, o); !r) return r.error();
    } else if (o == "-S" || o == "--stats") {
      if (auto r = command(C::kStats, o); !r) return r.error();
    } else if (o == "-E" || o == "--event") {
      if (auto r = command(C::kEvents, o); !r) return r.error();
    } else if (o == "-e" || o == "--event-mask") {
      auto v = value();
      if (!v) return v.error();
      // conntrack's names, any case, each may be cut short (UPD).
      uint8_t mask = 0;
      for (const std::string& item : comma_list(*v)) {
        static constexpr std::pair<const char*, uint8_t> kNames[] = {
            {"ALL", kEventAll}, {"NEW", kEventNew}, {"UPDATES", kEventUpdate}, {"DESTROY", kEventDestroy}};
        bool known = false;
        for (auto [name, bit] : kNames)
          if (!item.empty() && item.size() <= std::strlen(name) && strncasecmp(item.c_str(), name, item.size()) == 0) {
            mask |= bit;
            known = true;
            break;
          }
        if (!known) return Error{fmt::format("Bad parameter `{}' (-e takes ALL, NEW, UPDATES, DESTROY)", *v)};
      }
      q.event_mask = mask;
    } else if (o == "-p" || o == "--proto" || o == "--protonum") {
      auto v = value();
      if (!v) return v.error();
      uint8_t p;
      if (!parse_proto_name(*v, &p)) return Error{fmt::format("unknown protocol '{}' (tcp, udp, icmp or a number)", *v)};
      q.proto = p;
    } else if (o == "-s" || o == "--src" || o == "--orig-src" || o == "-d" || o == "--dst" || o == "--orig-dst" ||
               o == "-r" || o == "--reply-src" || o == "-q" || o == "--reply-dst") {
      auto v = value();
      if (!v) return v.error();
      uint32_t a;
      if (!parse_ipv4(*v, &a)) return Error{fmt::format("{} {}: expected an IPv4 address", o, *v)};
      if (o == "-s" || o == "--src" || o == "--orig-src") q.orig_src = a;
      else if (o == "-d" || o == "--dst" || o == "--orig-dst") q.orig_dst = a;
      else if (o == "-r" || o == "--reply-src") q.reply_src = a;
      else q.reply_dst = a;
    } else if (o == "--sport" || o == "--orig-port-src" || o == "--dport" || o == "--orig-port-dst" ||
               o == "--reply-port-src" || o == "--reply-port-dst") {
      auto v = value();
      if (!v) return v.error();
      uint16_t p;
      if (!parse_port(*v, &p)) return Error{fmt::format("{} {}: expected a port", o, *v)};
      if (o == "--sport" || o == "--orig-port-src") q.orig_sport = p;
      else if (o == "--dport" || o == "--orig-port-dst") q.orig_dport = p;
      else if (o == "--reply-port-src") q.reply_sport = p;
      else q.reply_dport = p;
    } else if (o == "--state") {
      auto v = value();
      if (!v) return v.error();
      bool found = false;
      for (int s = 0; s <= static_cast<int>(TcpState::kSynSent2); ++s)
        if (*v == tcp_state_name(static_cast<TcpState>(s))) {
          q.state = static_cast<TcpState>(s);
          found = true;
        }
      if (!found) return Error{fmt::format("--state {}: expected a TCP state such as ESTABLISHED or TIME_WAIT", *v)};
    } else if (o == "--src-nat" || o == "-n") {
      q.src_nat = true;
    } else if (o == "--dst-nat" || o == "-g") {
      q.dst_nat = true;
    } else if (o == "--any-nat" || o == "-j") {
      q.any_nat = true;
    } else if (o == "-m" || o == "--mark") {
      auto v = value();
      if (!v) return v.error();
      const size_t slash = v->find('/');
      uint32_t m, mask = 0xFFFFFFFF;
      if (!parse_u32(v->substr(0, slash), &m) || (slash != std::string::npos && !parse_u32(v->substr(slash + 1), &mask)))
        return Error{fmt::format("--mark {}: expected MARK[/MASK]", *v)};
      q.mark = m;
      q.mark_mask = mask;
    } else if (o == "-o" || o == "--output") {
      auto v = value();
      if (!v) return v.error();
      // conntrack's comma-separated list; json is xnat's (a JSON object a line).
      for (const std::string& item : comma_list(*v)) {
        if (item == "extended") {
          if (q.output != EntryFormat::kXml) q.output = EntryFormat::kExtended;  // xml wins, as in conntrack
        } else if (item == "xml") {
          q.output = EntryFormat::kXml;
        } else if (item == "json") {
          q.output = EntryFormat::kJson;
        } else if (item == "id") {
          q.with_id = true;
        } else if (item == "timestamp") {
          q.with_timestamp = true;
        } else {
          return Error{fmt::format("-o {}: xnat prints extended, xml, id, timestamp and json (not {})", *v, item)};
        }
      }
    } else if (o == "-f" || o == "--family") {
      auto v = value();
      if (!v) return v.error();
      if (*v != "ipv4") return Error{fmt::format("-f {}: xnat tracks IPv4 only", *v)};
    } else if (o.starts_with("--orig-zone") || o.starts_with("--reply-zone") || o == "-w" || o == "--zone" ||
               o == "--label" || o == "--secmark" || o == "-u" || o == "--status") {
      return Error{fmt::format("{}: xnat has no conntrack zones, labels, secmarks or status filters", o)};
    } else {
      return Error{fmt::format("unknown option '{}'", o)};
    }
  }
  if (!have_command) return Error{"no command: give one of -L, -G, -D, -F, -C, -S, -E"};
  return q;
}

bool ConntrackQuery::matches(const Flow& f, uint32_t ct_mark) const {
  const Tuple& o = f.tuple[0];
  const Tuple& r = f.tuple[1];
  if (proto && o.proto != *proto) return false;
  if ((orig_src && o.src != *orig_src) || (orig_dst && o.dst != *orig_dst)) return false;
  if ((reply_src && r.src != *reply_src) || (reply_dst && r.dst != *reply_dst)) return false;
  auto port = [](const std::optional<uint16_t>& want, const Tuple& t, uint16_t raw) {
    return !want || (t.has_ports() && __builtin_bswap16(raw) == *want);
  };
  if (!port(orig_sport, o, o.sport) || !port(orig_dport, o, o.dport) || !port(reply_sport, r, r.sport) ||
      !port(reply_dport, r, r.dport))
    return false;
  if (state && (o.proto != kProtoTcp || f.tcp_state != *state)) return false;
  if (src_nat && !(f.status & kStatusSrcNat)) return false;
  if (dst_nat && !(f.status & kStatusDstNat)) return false;
  if (any_nat && !(f.status & (kStatusSrcNat | kStatusDstNat))) return false;
  if (masquerade && !(f.status & kStatusMasquerade)) return false;
  if (mark && (ct_mark & *mark_mask) != *mark) return false;
  return true;
}

std::string ConntrackQuery::format(const Flow& f, uint64_t now_ms, uint32_t ct_mark, uint64_t id) const {
  std::string line;
  append_conntrack_entry(&line, f, listing_view(f, now_ms, ct_mark, id, with_id), output);
  return line;
}

void ConntrackQuery::append(std::string* out, const Flow& f, uint64_t now_ms, uint32_t ct_mark, uint64_t id) const {
  append_conntrack_entry(out, f, listing_view(f, now_ms, ct_mark, id, with_id), output);
  *out += '\n';
}

void ConntrackQuery::append_event(std::string* out, const FlowEvent& e, uint64_t now_ms) const {
  if (with_timestamp && output != EntryFormat::kXml) {
    timeval tv;
    gettimeofday(&tv, nullptr);
    fmt::format_to(std::back_inserter(*out), "[{}.{:06}]\t", tv.tv_sec, tv.tv_usec);
  }
  append_conntrack_entry(out, e.flow, event_view(e, now_ms, with_id), output);
  *out += '\n';
}

}  // namespace xnat
