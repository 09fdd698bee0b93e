#include "live/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace xnat {

bool sd_notify(const std::string& state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || !*path) return false;
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  const size_t len = std::strlen(path);
  if (len >= sizeof a.sun_path) return false;
  std::memcpy(a.sun_path, path, len);
  if (a.sun_path[0] == '@') a.sun_path[0] = '\0';  // an abstract socket
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const ssize_t n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&a),
                             static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len));
  ::close(fd);
  return n == static_cast<ssize_t>(state.size());
}

uint64_t sd_watchdog_ms() {
  const char* usec = std::getenv("WATCHDOG_USEC");
  const char* pid = std::getenv("WATCHDOG_PID");
  if (!usec) return 0;
  if (pid && std::strtoll(pid, nullptr, 10) != static_cast<long long>(::getpid())) return 0;
  return std::strtoull(usec, nullptr, 10) / 1000;
}

}  // namespace xnat
