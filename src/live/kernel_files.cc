#include "live/kernel_files.h"

#include <cerrno>
#include <cstdio>
#include <fstream>

namespace xnat {

bool read_kernel_line(const std::string& path, std::string* out) {
  std::ifstream in(path);
  return in && std::getline(in, *out);
}

std::string kernel_line(const std::string& path) {
  std::string s;
  if (!read_kernel_line(path, &s)) s.clear();
  return s;
}

int write_kernel_file(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) return errno;
  const bool ok = std::fputs(text.c_str(), f) >= 0;
  const int err = ok ? 0 : errno;
  if (std::fclose(f) != 0) return errno ? errno : EIO;
  return err;
}

}  // namespace xnat
