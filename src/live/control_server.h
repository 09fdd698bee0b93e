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
//
// A request may open a stream (`xnat conntrack -E`): then the answer's line
// is "S stream", and chunks follow until either side closes: a kind byte
// ('o' for stdout, 'e' for stderr), the length, a newline, the bytes. The
// server writes a stream's chunks without blocking, as the client takes
// them; its source bounds what waits and counts what it had to drop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace xnat {

// The source of a stream: polled by the server whenever the client has taken
// all it was given.
class ControlStream {
 public:
  virtual ~ControlStream() = default;
  // Moves what is waiting for stdout to *out and for stderr to *err.
  virtual void take(std::string* out, std::string* err) = 0;
  // Whether the stream has said all it had (take() gave its last): the
  // server closes the connection once that is sent.
  virtual bool done() const { return false; }
};

struct ControlReply {
  int status = 0;
  std::string out, err;
  std::shared_ptr<ControlStream> stream;  // set: out and err go first, then the stream's
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
  size_t streams() const { return streams_.size(); }

 private:
  ControlServer(int fd, std::string path, Handler h) : fd_(fd), path_(std::move(path)), handler_(std::move(h)) {}
  // Returns the stream the request opened, if any (the connection stays open).
  std::shared_ptr<ControlStream> serve(int client, int timeout_ms);
  // Writes what the open streams have; closes those whose client went away.
  void pump();
  struct Open {
    int fd;
    std::shared_ptr<ControlStream> source;
    std::string buf;  // framed, not yet taken by the client
    size_t sent = 0;
  };
  int fd_ = -1;
  std::string path_;
  Handler handler_;
  std::vector<Open> streams_;
};

// The client side: sends args to the gateway at `path`; its reply, or an
// error that says why the gateway could not be reached.
Result<ControlReply> control_request(const std::string& path, const std::vector<std::string>& args);
// The same for a request that may open a stream: sink(kind, bytes) gets
// stdout ('o') and stderr ('e') text as it arrives, until the gateway ends
// the stream or stop() returns true (checked when a read is interrupted by a
// signal, and every 200 ms). Returns the exit status.
Result<int> control_follow(const std::string& path, const std::vector<std::string>& args,
                           const std::function<void(char kind, std::string_view bytes)>& sink,
                           const std::function<bool()>& stop);

}  // namespace xnat
