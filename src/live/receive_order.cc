#include "live/receive_order.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>

#include "live/cpus.h"
#include "live/kernel_files.h"

namespace xnat {

std::string rps_mask(const std::vector<int>& cpus) {
  int top = 0;
  for (int c : cpus) top = std::max(top, c);
  std::vector<uint32_t> words(static_cast<size_t>(top / 32 + 1), 0);
  for (int c : cpus)
    if (c >= 0) words[static_cast<size_t>(c / 32)] |= 1u << (c % 32);
  std::string s = fmt::format("{:x}", words.back());
  for (size_t i = words.size() - 1; i-- > 0;) s += fmt::format(",{:08x}", words[i]);
  return s;
}

namespace {

// An rps_cpus text's hex digits without commas and leading zeros: one
// text per set of CPUs, however sysfs pads it ("" for none).
std::string mask_digits(const std::string& text) {
  std::string d;
  for (char c : text)
    if (c != ',' && c != '\n' && c != ' ') d += c;
  const size_t nz = d.find_first_not_of('0');
  return nz == std::string::npos ? std::string() : d.substr(nz);
}

}  // namespace

bool rps_mask_empty(const std::string& text) { return mask_digits(text).empty(); }

std::unique_ptr<ReceiveOrder> ReceiveOrder::apply(const std::vector<std::string>& ifnames,
                                                  const std::vector<int>& cpus, const std::string& class_net) {
  std::unique_ptr<ReceiveOrder> r(new ReceiveOrder);
  r->cpus_ = cpus;
  r->mask_ = rps_mask(cpus);
  const std::string& mask = r->mask_;
  for (const std::string& ifname : ifnames) {
    std::error_code ec;
    std::vector<std::string> queues;
    for (const auto& e : std::filesystem::directory_iterator(class_net + "/" + ifname + "/queues", ec))
      if (e.path().filename().string().rfind("rx-", 0) == 0) queues.push_back(e.path().string() + "/rps_cpus");
    std::sort(queues.begin(), queues.end());
    bool set_any = false;
    for (const std::string& q : queues) {
      std::string was;
      if (!read_kernel_line(q, &was) || !rps_mask_empty(was)) continue;  // the operator's mask stays
      if (const int err = write_kernel_file(q, mask); err) {
        r->warnings_.push_back(fmt::format(
            "--rps-cpus: RPS on {} not set ({}: {}); set {} to {} by hand", ifname, q, std::strerror(err), q, mask));
        continue;
      }
      r->set_.push_back(Set{q, was});
      set_any = true;
    }
    if (set_any) r->ifnames_.push_back(ifname);
  }
  return r;
}

ReceiveOrder::~ReceiveOrder() {
  for (const Set& s : set_) {
    std::string now;
    // Changed since (by an operator, a test): theirs now.
    if (read_kernel_line(s.path, &now) && mask_digits(now) == mask_digits(mask_))
      (void)write_kernel_file(s.path, s.was);
  }
}

std::string ReceiveOrder::describe() const {
  if (ifnames_.empty()) return "";
  std::string names;
  for (const std::string& n : ifnames_) names += (names.empty() ? "" : ", ") + n;
  return fmt::format("RPS on {} to CPU {}", names, cpu_list_text(cpus_));
}

}  // namespace xnat
