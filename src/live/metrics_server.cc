#include "live/metrics_server.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace xnat {
namespace {

uint64_t mono_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

void send_all(int fd, const std::string& s) {
  size_t at = 0;
  while (at < s.size()) {
    const ssize_t n = ::send(fd, s.data() + at, s.size() - at, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    at += static_cast<size_t>(n);
  }
}

std::string response(int code, const char* reason, const std::string& type, const std::string& body) {
  return fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}", code,
                     reason, type, body.size(), body);
}

}  // namespace

Result<MetricsServer> MetricsServer::open(const std::string& addr_port, std::function<std::string()> body) {
  const size_t colon = addr_port.rfind(':');
  sockaddr_in a{};
  a.sin_family = AF_INET;
  unsigned port = 0;
  char tail;
  if (colon == std::string::npos || std::sscanf(addr_port.c_str() + colon + 1, "%u%c", &port, &tail) != 1 ||
      port > 65535 || inet_pton(AF_INET, addr_port.substr(0, colon).c_str(), &a.sin_addr) != 1)
    return Error{fmt::format("--metrics {}: expected ADDRESS:PORT, such as 127.0.0.1:9510", addr_port)};
  a.sin_port = htons(static_cast<uint16_t>(port));
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{fmt::format("--metrics: socket: {}", std::strerror(errno))};
  const int one = 1;
  (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 16) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    return Error{fmt::format("--metrics {}: {}", addr_port, why)};
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return MetricsServer(fd, ntohs(a.sin_port), std::move(body));
}

MetricsServer::MetricsServer(MetricsServer&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), port_(o.port_), body_(std::move(o.body_)) {}

MetricsServer::~MetricsServer() {
  if (fd_ >= 0) ::close(fd_);
}

int MetricsServer::poll(int timeout_ms) {
  int served = 0;
  for (;;) {
    const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return served;
    serve(c, timeout_ms);
    ::close(c);
    ++served;
  }
}

void MetricsServer::serve(int c, int timeout_ms) {
  // The request line and headers, up to the blank line: at most 8 KiB, with a deadline.
  std::string req;
  const uint64_t deadline = mono_ms() + static_cast<uint64_t>(timeout_ms);
  char buf[2048];
  while (req.find("\r\n\r\n") == std::string::npos && req.find("\n\n") == std::string::npos) {
    if (req.size() > 8192) return send_all(c, response(431, "Request Header Fields Too Large", "text/plain", "too long\n"));
    const uint64_t now = mono_ms();
    if (now >= deadline) return;
    pollfd p{c, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(deadline - now)) <= 0) continue;
    const ssize_t n = ::recv(c, buf, sizeof buf, 0);
    if (n <= 0) return;
    req.append(buf, static_cast<size_t>(n));
  }
  const size_t eol = req.find_first_of("\r\n");
  const std::string line = req.substr(0, eol);
  if (!line.starts_with("GET ")) return send_all(c, response(405, "Method Not Allowed", "text/plain", "GET only\n"));
  const size_t sp = line.find(' ', 4);
  const std::string path = line.substr(4, sp == std::string::npos ? std::string::npos : sp - 4);
  if (path != "/metrics" && !path.starts_with("/metrics?"))
    return send_all(c, response(404, "Not Found", "text/plain", "xnat serves /metrics\n"));
  send_all(c, response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", body_()));
}

}  // namespace xnat
