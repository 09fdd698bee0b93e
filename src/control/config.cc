#include "control/config.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>

#include "nat/rules_parser.h"

namespace xnat {
namespace {

std::string where(const std::string& path, const toml::node& n) {
  const auto& src = n.source();
  if (src.begin.line) return fmt::format("{}:{}", path, src.begin.line);
  return path;
}

Error err(const std::string& path, const toml::node& n, const std::string& msg) {
  return Error{fmt::format("{}: {}", where(path, n), msg)};
}

// Checks that a table has only the given keys.
Status only_keys(const std::string& path, const toml::table& t, std::initializer_list<std::string_view> keys, const std::string& ctx) {
  for (const auto& [k, v] : t) {
    bool known = false;
    for (auto want : keys) known |= (k.str() == want);
    if (!known) {
      std::string list;
      for (auto want : keys) list += (list.empty() ? "" : ", ") + std::string(want);
      return err(path, v, fmt::format("unknown key '{}' in {}; expected one of: {}", k.str(), ctx, list));
    }
  }
  return {};
}

Result<std::string> get_string(const std::string& path, const toml::table& t, std::string_view key,
                               const std::string& ctx) {
  const toml::node* n = t.get(key);
  if (!n) return Error{fmt::format("{}: {} needs '{}'", path, ctx, key)};
  if (!n->is_string()) return err(path, *n, fmt::format("'{}' must be a string", key));
  return std::string(*n->value<std::string>());
}

}  // namespace

bool parse_mac(const std::string& s, MacAddr* out) {
  unsigned b[6];
  char tail;
  if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
    return false;
  for (int i = 0; i < 6; ++i) {
    if (b[i] > 255) return false;
    out->b[i] = static_cast<uint8_t>(b[i]);
  }
  return true;
}

Result<EngineConfig> parse_config(const std::string& text, const std::string& path, ConfigMode mode) {
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    return Error{fmt::format("{}:{}:{}: {}", path, e.source().begin.line, e.source().begin.column, e.description())};
  }
  EngineConfig cfg;
  if (auto r = only_keys(path, root, {"rules", "seed", "conntrack", "interface", "route", "neighbor", "ipv4"},
                         "the top level"); !r)
    return r.error();

  if (const toml::node* s = root.get("seed")) {
    // A seed known to others lets a host predict the ports connections get
    // and send flows that pile into one hash bucket; netfilter draws its
    // secrets at boot, and so does the live gateway (getrandom).
    if (mode != ConfigMode::kReplay)
      return err(path, *s, "'seed' is for replay, which it makes reproducible; the live gateway draws its own "
                           "from the kernel's random source, so that its ports and hashes cannot be predicted");
    if (!s->is_integer() || *s->value<int64_t>() < 0) return err(path, *s, "'seed' must be a non-negative integer");
    cfg.seed = static_cast<uint64_t>(*s->value<int64_t>());
  }

  if (const toml::node* ct = root.get("conntrack")) {
    if (!ct->is_table()) return err(path, *ct, "[conntrack] must be a table");
    for (const auto& [k, v] : *ct->as_table()) {
      int64_t value;
      if (v.is_integer()) value = *v.value<int64_t>();
      else if (v.is_boolean()) value = *v.value<bool>() ? 1 : 0;
      else return err(path, v, fmt::format("'{}' must be an integer", k.str()));
      if (auto r = cfg.conntrack.set(k.str(), value); !r) return err(path, v, r.error().message);
    }
    if (auto r = cfg.conntrack.check(); !r) return err(path, *ct, r.error().message);
  }

  if (const toml::node* ip = root.get("ipv4")) {
    if (!ip->is_table()) return err(path, *ip, "[ipv4] must be a table");
    if (auto r = only_keys(path, *ip->as_table(), {"icmp_msgs_per_sec", "icmp_msgs_burst", "icmp_ratelimit"}, "[ipv4]");
        !r)
      return r.error();
    for (const auto& [k, v] : *ip->as_table()) {
      const int64_t most = k.str() == "icmp_ratelimit" ? IcmpPeerLimit::kMaxIntervalMs : 1000000;
      if (!v.is_integer() || *v.value<int64_t>() < 0 || *v.value<int64_t>() > most)
        return err(path, v, fmt::format("'{}' must be an integer 0..{}", k.str(), most));
      (k.str() == "icmp_msgs_per_sec" ? cfg.icmp_msgs_per_sec
       : k.str() == "icmp_msgs_burst" ? cfg.icmp_msgs_burst
                                      : cfg.icmp_ratelimit) = static_cast<uint32_t>(*v.value<int64_t>());
    }
  }

  // Interfaces.
  const toml::node* ifs = root.get("interface");
  if (!ifs) return Error{fmt::format("{}: no [[interface]]: the gateway needs at least one", path)};
  if (!ifs->is_array_of_tables()) return err(path, *ifs, "'interface' must be written as [[interface]] tables");
  for (const toml::node& n : *ifs->as_array()) {
    const toml::table& t = *n.as_table();
    const std::string ctx = "[[interface]]";
    if (auto r = only_keys(path, t, {"name", "address", "mac", "mtu"}, ctx); !r) return r.error();
    auto name = get_string(path, t, "name", ctx);
    if (!name) return name.error();
    Interface itf;
    itf.name = *name;
    if (itf.name.empty() || itf.name.size() > 15) return err(path, n, "interface names are 1 to 15 characters");
    if (cfg.fib.find_interface(itf.name) >= 0) return err(path, n, fmt::format("interface '{}' twice", itf.name));
    if (cfg.fib.interfaces().size() >= 64) return err(path, n, "at most 64 interfaces");
    // Live: without 'address', read from the kernel at start and followed as it changes.
    if (mode == ConfigMode::kReplay || t.get("address")) {
      auto addr = get_string(path, t, "address", ctx + " '" + itf.name + "'");
      if (!addr) return addr.error();
      const std::string& a = *addr;
      size_t slash = a.find('/');
      uint64_t len = 32;
      if (slash != std::string::npos) {
        try {
          size_t used = 0;
          len = std::stoul(a.substr(slash + 1), &used);
          if (used != a.size() - slash - 1) len = 99;
        } catch (...) {
          len = 99;
        }
      }
      if (!parse_ipv4(a.substr(0, slash), &itf.addr) || len > 32)
        return err(path, *t.get("address"), fmt::format("address '{}' is not a.b.c.d/len", a));
      itf.prefix_len = static_cast<uint8_t>(len);
    }
    if (const toml::node* m = t.get("mac")) {
      if (!m->is_string() || !parse_mac(*m->value<std::string>(), &itf.mac))
        return err(path, *m, "mac must be six hex bytes like \"02:00:00:00:00:01\"");
    } else if (mode == ConfigMode::kReplay) {
      return err(path, n, fmt::format("interface '{}' needs 'mac' in replay (the live gateway reads it "
                                      "from the device)", itf.name));
    }
    if (const toml::node* m = t.get("mtu")) {
      if (mode != ConfigMode::kReplay)
        return err(path, *m, fmt::format("interface '{}': the live gateway takes the MTU from the device "
                                         "(ip link set {} mtu N); 'mtu' is for replay",
                                         itf.name, itf.name));
      if (!m->is_integer() || *m->value<int64_t>() < 68 || *m->value<int64_t>() > 65535)
        return err(path, *m, "mtu must be an integer from 68 to 65535");
      itf.mtu = static_cast<uint32_t>(*m->value<int64_t>());
    }
    cfg.fib.add_interface(itf);
  }

  // Routes.
  if (const toml::node* rs = root.get("route")) {
    if (!rs->is_array_of_tables()) return err(path, *rs, "'route' must be written as [[route]] tables");
    cfg.routes_pinned = true;
    for (const toml::node& n : *rs->as_array()) {
      const toml::table& t = *n.as_table();
      if (auto r = only_keys(path, t, {"prefix", "via", "dev"}, "[[route]]"); !r) return r.error();
      auto pfx = get_string(path, t, "prefix", "[[route]]");
      if (!pfx) return pfx.error();
      Prefix p;
      if (!parse_prefix_text(*pfx, &p)) return err(path, n, fmt::format("prefix '{}' is not a.b.c.d/len", *pfx));
      uint32_t via = 0;
      if (const toml::node* v = t.get("via")) {
        if (!v->is_string() || !parse_ipv4(*v->value<std::string>(), &via))
          return err(path, *v, "'via' must be an IPv4 address");
      }
      int dev = -1;
      if (const toml::node* d = t.get("dev")) {
        if (!d->is_string() || (dev = cfg.fib.find_interface(*d->value<std::string>())) < 0)
          return err(path, *d, "'dev' must name an [[interface]]");
      }
      if (auto r = cfg.fib.add_route(p, via, dev); !r) return err(path, n, r.error().message);
    }
  }

  // Neighbours.
  if (const toml::node* ns = root.get("neighbor")) {
    if (!ns->is_array_of_tables()) return err(path, *ns, "'neighbor' must be written as [[neighbor]] tables");
    for (const toml::node& n : *ns->as_array()) {
      const toml::table& t = *n.as_table();
      if (auto r = only_keys(path, t, {"address", "mac"}, "[[neighbor]]"); !r) return r.error();
      auto a = get_string(path, t, "address", "[[neighbor]]");
      if (!a) return a.error();
      auto m = get_string(path, t, "mac", "[[neighbor]]");
      if (!m) return m.error();
      uint32_t addr;
      MacAddr mac;
      if (!parse_ipv4(*a, &addr)) return err(path, n, fmt::format("'{}' is not an IPv4 address", *a));
      if (!parse_mac(*m, &mac)) return err(path, n, fmt::format("'{}' is not a MAC address", *m));
      cfg.fib.add_neighbor(addr, mac);
    }
  }

  // Rules, relative to the config file.
  if (const toml::node* r = root.get("rules")) {
    if (!r->is_string()) return err(path, *r, "'rules' must be a file name");
    std::filesystem::path rp(*r->value<std::string>());
    if (rp.is_relative()) rp = std::filesystem::path(path).parent_path() / rp;
    auto rules = load_rules_file(rp.string());
    if (!rules) return rules.error();
    cfg.rules = std::move(*rules);
  }
  return cfg;
}

std::vector<std::string> config_notices(const EngineConfig& cfg) {
  std::vector<std::string> names;
  for (const Interface& i : cfg.fib.interfaces()) names.push_back(i.name);
  return cfg.rules.notices(names);
}

Result<EngineConfig> load_config(const std::string& path, ConfigMode mode) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{fmt::format("{}: cannot open config file", path)};
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), path, mode);
}

}  // namespace xnat
