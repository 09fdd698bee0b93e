// The running gateway's control socket: a Unix stream socket (mode 0660)
// through which `xnat conntrack`, `xnat sysctl` and `xnat status` reach it.
// A peer is served if it is root, the gateway's own user, or in the socket's
// group (SO_PEERCRED); anyone else is refused, and that is logged.
//
// One request per connection: the command's arguments, each ended by a NUL,
// the whole ended by a newline, at most 64 KiB. The answer: the exit status
// and the length of what goes to stdout, one line, then stdout's bytes, then
// stderr's. The control thread polls the socket between its other work and
// serves a request at a time: the workers never wait for it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/result.h"

namespace xnat {

struct ControlReply {
  int status = 0;
  std::string out, err;
};

class ControlServer {
 public:
  using Handler = std::function<ControlReply(const std::vector<std::string>& args)>;
  // Creates the socket at `path` (its directory too; a stale socket file is
  // replaced, a live one is an error).
  static Result<ControlServer> open(const std::string& path, Handler handler);
  ControlServer(ControlServer&& o) noexcept;
  ControlServer& operator=(ControlServer&&) = delete;
  ~ControlServer();

  // Serves the requests waiting, each with a deadline of `timeout_ms` for the
  // client to send it; returns how many were served (refused ones included).
  int poll(int timeout_ms = 1000);
  const std::string& path() const { return path_; }

 private:
  ControlServer(int fd, std::string path, Handler h) : fd_(fd), path_(std::move(path)), handler_(std::move(h)) {}
  void serve(int client, int timeout_ms);
  int fd_ = -1;
  std::string path_;
  Handler handler_;
};

// The client side: sends args to the gateway at `path`; its reply, or an
// error that says why the gateway could not be reached.
Result<ControlReply> control_request(const std::string& path, const std::vector<std::string>& args);

}  // namespace xnat
