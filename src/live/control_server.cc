#include "live/control_server.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace xnat {
namespace {

constexpr size_t kMaxRequest = 64 * 1024;

uint64_t mono_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

Result<sockaddr_un> address(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof a.sun_path)
    return Error{fmt::format("control socket path '{}': empty or longer than {} bytes", path, sizeof a.sun_path - 1)};
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

bool write_all(int fd, const char* p, size_t n) {
  while (n) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

Result<ControlServer> ControlServer::open(const std::string& path, Handler handler) {
  auto a = address(path);
  if (!a) return a.error();
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  // A socket file left by a gateway that is gone is replaced; one that
  // answers belongs to a running gateway.
  if (std::filesystem::exists(path)) {
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool live = probe >= 0 && ::connect(probe, reinterpret_cast<const sockaddr*>(&*a), sizeof *a) == 0;
    if (probe >= 0) ::close(probe);
    if (live) return Error{fmt::format("control socket {}: another gateway is running there (give --control PATH)", path)};
    ::unlink(path.c_str());
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{fmt::format("control socket: {}", std::strerror(errno))};
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&*a), sizeof *a) != 0 || ::chmod(path.c_str(), 0660) != 0 ||
      ::listen(fd, 16) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    return Error{fmt::format("control socket {}: {}", path, why)};
  }
  return ControlServer(fd, path, std::move(handler));
}

ControlServer::ControlServer(ControlServer&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      path_(std::move(o.path_)),
      handler_(std::move(o.handler_)),
      streams_(std::move(o.streams_)) {}

ControlServer::~ControlServer() {
  for (Open& s : streams_) ::close(s.fd);
  if (fd_ < 0) return;
  ::close(fd_);
  ::unlink(path_.c_str());
}

int ControlServer::poll(int timeout_ms) {
  int served = 0;
  for (;;) {
    const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) break;  // none waiting (EAGAIN), or an error the next poll sees again
    ++served;
    if (auto stream = serve(c, timeout_ms)) {
      // From now on written without blocking: a client that stops reading
      // holds nothing up.
      (void)::fcntl(c, F_SETFL, ::fcntl(c, F_GETFL) | O_NONBLOCK);
      streams_.push_back(Open{c, std::move(stream), {}, 0});
    } else {
      ::close(c);
    }
  }
  pump();
  return served;
}

void ControlServer::pump() {
  // Each stream gets up to a few milliseconds of this thread per poll: what
  // its client takes at once, refilled from its source, until either runs dry.
  const uint64_t deadline = mono_ms() + 5;
  for (size_t i = 0; i < streams_.size();) {
    Open& s = streams_[i];
    // The client sends nothing after its request: readable means it closed.
    pollfd p{s.fd, POLLIN, 0};
    bool gone = ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR));
    bool blocked = false;
    while (!gone && !blocked) {
      if (s.sent == s.buf.size()) {
        s.buf.clear();
        s.sent = 0;
        std::string out, err;
        s.source->take(&out, &err);
        for (auto [kind, text] : {std::pair{'e', &err}, std::pair{'o', &out}})
          if (!text->empty()) s.buf += fmt::format("{}{}\n", kind, text->size()) + *text;
        if (s.buf.empty()) break;  // nothing more for now
      }
      while (s.sent < s.buf.size()) {
        const ssize_t w = ::send(s.fd, s.buf.data() + s.sent, s.buf.size() - s.sent, MSG_NOSIGNAL);
        if (w > 0) {
          s.sent += static_cast<size_t>(w);
        } else if (w < 0 && errno == EINTR) {
          continue;
        } else {
          gone = w < 0 && errno != EAGAIN;
          blocked = true;
          break;
        }
      }
      if (mono_ms() >= deadline) break;
    }
    if (!gone && s.sent == s.buf.size() && s.source->done()) gone = true;  // all said and sent
    if (gone) {
      ::close(s.fd);
      streams_.erase(streams_.begin() + static_cast<ptrdiff_t>(i));  // the source goes with it
    } else {
      ++i;
    }
  }
}

std::shared_ptr<ControlStream> ControlServer::serve(int c, int timeout_ms) {
  ucred cred{};
  socklen_t len = sizeof cred;
  struct stat st{};
  const bool known = ::getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && ::stat(path_.c_str(), &st) == 0;
  if (!known || !(cred.uid == 0 || cred.uid == ::geteuid() || cred.gid == st.st_gid)) {
    fmt::print(stderr, "xnat: control: refused a request from uid {} gid {} pid {} (not root, not the gateway's "
                       "user, not in the socket's group)\n",
               cred.uid, cred.gid, cred.pid);
    const std::string msg = "permission denied: the gateway serves root, its own user and the socket's group\n";
    const std::string head = fmt::format("77 0\n");
    (void)write_all(c, head.data(), head.size());
    (void)write_all(c, msg.data(), msg.size());
    return nullptr;
  }
  // The request, with a deadline: a client that stalls cannot hold the loop.
  std::string req;
  const uint64_t deadline = mono_ms() + static_cast<uint64_t>(timeout_ms);
  char buf[4096];
  ControlReply reply;
  for (;;) {
    if (!req.empty() && req.back() == '\n') break;
    if (req.size() > kMaxRequest) {
      reply = {2, "", fmt::format("request longer than {} bytes: refused\n", kMaxRequest)};
      break;
    }
    const uint64_t now = mono_ms();
    if (now >= deadline) {
      reply = {2, "", "request not received in time\n"};
      break;
    }
    pollfd p{c, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(deadline - now)) <= 0) continue;
    const ssize_t n = ::recv(c, buf, sizeof buf, 0);
    if (n <= 0) return nullptr;  // the client went away
    req.append(buf, static_cast<size_t>(n));
  }
  if (reply.err.empty()) {
    req.pop_back();
    std::vector<std::string> args;
    size_t at = 0;
    while (at < req.size()) {
      const size_t end = req.find('\0', at);
      if (end == std::string::npos) {
        reply = {2, "", "malformed request: each argument must end in a NUL\n"};
        break;
      }
      args.push_back(req.substr(at, end - at));
      at = end + 1;
    }
    if (reply.err.empty()) reply = handler_(args);
  }
  if (reply.stream) {
    std::string first = "S stream\n";
    if (!reply.err.empty()) first += fmt::format("e{}\n", reply.err.size()) + reply.err;
    if (!reply.out.empty()) first += fmt::format("o{}\n", reply.out.size()) + reply.out;
    if (!write_all(c, first.data(), first.size())) return nullptr;
    return std::move(reply.stream);
  }
  const std::string head = fmt::format("{} {}\n", reply.status, reply.out.size());
  if (write_all(c, head.data(), head.size()) && write_all(c, reply.out.data(), reply.out.size()))
    (void)write_all(c, reply.err.data(), reply.err.size());
  return nullptr;
}

namespace {

// Connects and sends the request; the socket, or why not.
Result<int> send_request(const std::string& path, const std::vector<std::string>& args) {
  auto a = address(path);
  if (!a) return a.error();
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{fmt::format("socket: {}", std::strerror(errno))};
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&*a), sizeof *a) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    return Error{fmt::format("cannot reach the gateway at {}: {} (is `xnat run` running? its socket is given by "
                             "--control PATH)",
                             path, why)};
  }
  std::string req;
  for (const std::string& s : args) req += s + '\0';
  req += '\n';
  if (!write_all(fd, req.data(), req.size())) {
    ::close(fd);
    return Error{fmt::format("the gateway at {} closed the connection", path)};
  }
  return fd;
}

}  // namespace

Result<int> control_follow(const std::string& path, const std::vector<std::string>& args,
                           const std::function<void(char kind, std::string_view bytes)>& sink,
                           const std::function<bool()>& stop) {
  auto fd = send_request(path, args);
  if (!fd) return fd.error();
  std::string buf;
  bool streaming = false;
  int status = 0;
  size_t out_len = 0;
  bool headed = false;
  char chunk[65536];
  for (;;) {
    // The head, then (a stream) whole chunks as they arrive.
    if (!headed) {
      const size_t nl = buf.find('\n');
      if (nl != std::string::npos) {
        headed = true;
        streaming = buf.compare(0, nl, "S stream") == 0;
        if (!streaming && std::sscanf(buf.c_str(), "%d %zu", &status, &out_len) != 2) break;
        buf.erase(0, nl + 1);
      }
    }
    while (headed && streaming) {
      const size_t nl = buf.find('\n');
      size_t len = 0;
      if (nl == std::string::npos || std::sscanf(buf.c_str() + 1, "%zu", &len) != 1 || buf.size() < nl + 1 + len) break;
      sink(buf[0], std::string_view(buf).substr(nl + 1, len));
      buf.erase(0, nl + 1 + len);
    }
    if (stop && stop()) break;
    pollfd p{*fd, POLLIN, 0};
    const int r = ::poll(&p, 1, 200);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    const ssize_t n = ::recv(*fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the gateway ended it
    buf.append(chunk, static_cast<size_t>(n));
  }
  ::close(*fd);
  if (!headed) return Error{fmt::format("the gateway at {} sent no answer, or a malformed one", path)};
  if (!streaming) {
    if (buf.size() < out_len) return Error{fmt::format("the gateway at {} sent a short answer", path)};
    sink('o', std::string_view(buf).substr(0, out_len));
    sink('e', std::string_view(buf).substr(out_len));
  }
  return status;
}

Result<ControlReply> control_request(const std::string& path, const std::vector<std::string>& args) {
  ControlReply r;
  auto status = control_follow(
      path, args, [&](char kind, std::string_view t) { (kind == 'o' ? r.out : r.err).append(t); }, nullptr);
  if (!status) return status.error();
  r.status = *status;
  return r;
}

}  // namespace xnat
