#include "live/cpus.h"

#include <gtest/gtest.h>

#include <thread>

namespace xnat {
namespace {

TEST(CpuList, ParsesListsAndRanges) {
  EXPECT_EQ(*parse_cpu_list("1"), (std::vector<int>{1}));
  EXPECT_EQ(*parse_cpu_list("3,1"), (std::vector<int>{3, 1}));  // worker 0 on CPU 3
  EXPECT_EQ(*parse_cpu_list("2-4,8"), (std::vector<int>{2, 3, 4, 8}));
  EXPECT_EQ(*parse_cpu_list("0-0"), (std::vector<int>{0}));
}

TEST(CpuList, RejectsWhatIsNotAList) {
  for (const char* bad : {"", ",", "1,", ",1", "a", "1-", "-1", "4-2", "1.5", " 1", "1 ", "1-2-3", "99999",
                          "0x1"}) {
    auto r = parse_cpu_list(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("expected a list such as 1,3-4"), std::string::npos) << r.error().message;
  }
  auto twice = parse_cpu_list("1-3,2");
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().message, "'1-3,2': CPU 2 is given twice (a CPU runs one worker)");
}

TEST(CpuList, CompactText) {
  EXPECT_EQ(cpu_list_text({}), "");
  EXPECT_EQ(cpu_list_text({4, 0, 1, 2, 7, 8}), "0-2,4,7-8");
}

TEST(WorkerCpus, OneEachAndAllowed) {
  auto rest = check_worker_cpus({1}, 1, {0, 1});
  ASSERT_TRUE(rest) << rest.error().message;
  EXPECT_EQ(*rest, (std::vector<int>{0}));
  rest = check_worker_cpus({2, 3}, 2, {0, 1, 2, 3});
  ASSERT_TRUE(rest);
  EXPECT_EQ(*rest, (std::vector<int>{0, 1}));
  rest = check_worker_cpus({0, 1}, 2, {0, 1});  // nothing left: the control thread shares
  ASSERT_TRUE(rest);
  EXPECT_TRUE(rest->empty());

  auto few = check_worker_cpus({1}, 2, {0, 1});
  ASSERT_FALSE(few);
  EXPECT_EQ(few.error().message, "--worker-cpus 1: 1 CPU for 2 workers; give one CPU per worker");
  auto absent = check_worker_cpus({1, 5}, 2, {0, 1, 2});
  ASSERT_FALSE(absent);
  EXPECT_EQ(absent.error().message, "--worker-cpus 1,5: CPU 5 is not one this process may run on (allowed: 0-2)");
}

TEST(WorkerCpus, PinsAThread) {
  auto allowed = allowed_cpus();
  ASSERT_TRUE(allowed) << allowed.error().message;
  ASSERT_FALSE(allowed->empty());
  const int cpu = allowed->back();
  std::thread t([&] {
    ASSERT_TRUE(pin_thread(pthread_self(), {cpu}));
    auto now = allowed_cpus();
    ASSERT_TRUE(now);
    EXPECT_EQ(*now, (std::vector<int>{cpu}));
    EXPECT_EQ(sched_getcpu(), cpu);
  });
  t.join();
}

}  // namespace
}  // namespace xnat
