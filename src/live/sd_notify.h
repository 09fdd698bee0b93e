// systemd's service notifications (sd_notify(3)) without libsystemd: a
// datagram to $NOTIFY_SOCKET. Nothing happens when not run by systemd.
#pragma once

#include <cstdint>
#include <string>

namespace xnat {

// Sends `state` ("READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=..."); false
// when there is no socket to send to or the send failed.
bool sd_notify(const std::string& state);
// The watchdog interval systemd asked for ($WATCHDOG_USEC, for this
// process), in ms; 0 when none.
uint64_t sd_watchdog_ms();

}  // namespace xnat
