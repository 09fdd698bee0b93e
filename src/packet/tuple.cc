#include "packet/tuple.h"

#include <arpa/inet.h>

namespace xnat {

std::string ip_to_string(uint32_t raw) {
  char buf[INET_ADDRSTRLEN];
  in_addr a{raw};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

bool parse_ipv4(const std::string& s, uint32_t* raw) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return false;
  *raw = a.s_addr;
  return true;
}

}  // namespace xnat
