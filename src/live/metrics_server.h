// Prometheus' text exposition over HTTP (`--metrics ADDR:PORT`): GET
// /metrics answered with what `body()` returns, anything else with 404. The
// control thread polls it between its other work, a request at a time with a
// deadline, so a slow or stalled client never holds up forwarding.
#pragma once

#include <functional>
#include <string>

#include "base/result.h"

namespace xnat {

class MetricsServer {
 public:
  static Result<MetricsServer> open(const std::string& addr_port, std::function<std::string()> body);
  MetricsServer(MetricsServer&& o) noexcept;
  MetricsServer& operator=(MetricsServer&&) = delete;
  ~MetricsServer();
  // Serves the requests waiting; returns how many.
  int poll(int timeout_ms = 1000);
  int port() const { return port_; }  // the one bound (useful with port 0)

 private:
  MetricsServer(int fd, int port, std::function<std::string()> body) : fd_(fd), port_(port), body_(std::move(body)) {}
  void serve(int client, int timeout_ms);
  int fd_ = -1;
  int port_ = 0;
  std::function<std::string()> body_;
};

}  // namespace xnat
