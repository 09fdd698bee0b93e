// The token-level syntax of iptables-save lines, as iptables and its
// extensions parse it: quoting, numbers, addresses and prefixes, ports and
// ranges, protocol, ICMP type, address-type, TCP flag, mark, conntrack state,
// limit-rate and MAC notations. rules_parser.cc builds rules from these.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nat/rules.h"
#include "packet/headers.h"

// In their own namespace: other layers have functions of these names.
namespace xnat::syntax {

// A parse error at a token of the line being read.
struct ParseError {
  std::string token;
  std::string message;
};

// Splits a line as iptables-save quotes it: whitespace separates, double
// quotes group, backslash escapes the next character inside quotes.
std::optional<std::vector<std::string>> tokenize(std::string_view line, ParseError* err);

bool parse_uint(std::string_view s, uint64_t max, uint64_t* v);

// A comma-separated list of conntrack states (or, status, statuses) as
// libxt_conntrack prints them.
bool parse_ct_bits(const std::string& s, bool status, uint8_t* bits);

// --limit N[/unit]: the interval between packets in 1/10000 s, as
// libxt_limit keeps it (XT_LIMIT_SCALE); the unit may be abbreviated.
bool parse_limit_rate(const std::string& s, uint32_t* avg);

bool parse_mac(const std::string& s, MacAddr* mac);

bool parse_reject_with(const std::string& s, RejectWith* w);

// VALUE[/MASK] as iptables-save writes marks: decimal or 0x hex; MASK
// defaults to all ones.
bool parse_value_mask(const std::string& s, uint32_t* value, uint32_t* mask);

// A comma-separated TCP flag list as iptables writes it (SYN,RST,ACK,FIN;
// ALL; NONE).
bool parse_tcp_flags(const std::string& s, uint8_t* out);

bool parse_addr_host(const std::string& s, uint32_t* host);

// ADDR, ADDR/LEN or ADDR/DOTTED-MASK (iptables-save prints /32 forms).
bool parse_prefix(const std::string& s, Prefix* p);

bool parse_port(std::string_view s, uint16_t* p);

// P or P:P (iptables), also P-P in NAT target ranges. "P:" and ":P" are open ranges.
bool parse_port_range(std::string_view s, PortRange* r, char sep = ':');

bool parse_proto(const std::string& s, uint8_t* proto);

bool parse_addrtypes(const std::string& s, uint16_t* bits);

bool parse_icmp_type(const std::string& s, uint8_t* type, int* code);

// IP[-IP][:PORT[-PORT]] as SNAT/DNAT print it; the address part may be empty
// (":PORT") for DNAT/SNAT that keep the address.
bool parse_nat_range(const std::string& s, NatRange* r);

}  // namespace xnat::syntax
