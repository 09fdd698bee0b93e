#include "live/sd_notify.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace xnat {
namespace {

TEST(SdNotify, SendsToTheSocketSystemdNamesAndReadsTheWatchdog) {
  unsetenv("NOTIFY_SOCKET");
  EXPECT_FALSE(sd_notify("READY=1"));  // not run by systemd: nothing to do
  char dir[] = "/tmp/xnat-notify-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/notify";
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  setenv("NOTIFY_SOCKET", path.c_str(), 1);
  EXPECT_TRUE(sd_notify("READY=1\nSTATUS=ok"));
  char buf[64] = {};
  ASSERT_EQ(::recv(fd, buf, sizeof buf, 0), 17);
  EXPECT_STREQ(buf, "READY=1\nSTATUS=ok");
  unsetenv("NOTIFY_SOCKET");
  ::close(fd);
  ::unlink(path.c_str());
  ::rmdir(dir);

  setenv("WATCHDOG_USEC", "30000000", 1);
  setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  EXPECT_EQ(sd_watchdog_ms(), 30000u);
  setenv("WATCHDOG_PID", "1", 1);  // another process's
  EXPECT_EQ(sd_watchdog_ms(), 0u);
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
}

}  // namespace
}  // namespace xnat
