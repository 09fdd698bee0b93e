// The small text files through which the kernel is read and set (/proc/sys,
// /sys): one value each.
#pragma once

#include <string>

namespace xnat {

// The file's first line, without its newline; false if it cannot be read.
bool read_kernel_line(const std::string& path, std::string* out);
// The file's first line, or "" if it cannot be read.
std::string kernel_line(const std::string& path);
// Writes text; 0, or the errno. sysfs reports a value it refuses when the
// file is closed, so that is checked too.
int write_kernel_file(const std::string& path, const std::string& text);

}  // namespace xnat
