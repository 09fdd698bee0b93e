#!/usr/bin/env bash
# The whole test suite: unit, golden and replay tests; the same suite under
# AddressSanitizer + UndefinedBehaviorSanitizer; and the fuzzers for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
FUZZ_SECONDS=${FUZZ_SECONDS:-60}  # wall time: the three share the CPUs

scripts/setup.sh

echo "== build (release) and tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

echo "== build (ASan+UBSan) and tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DXNAT_SANITIZE=ON -DXNAT_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
# The sanitizer pass runs every unit test and the live variants that add a
# code path (CMakeLists.txt: the others are labelled release_only), but not
# the live full-table stress phase (timing-bound; the release pass above
# runs it for both backends).
XNAT_STRESS=0 ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" -LE release_only

echo "== fuzzers (${FUZZ_SECONDS}s, side by side)"
CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DXNAT_FUZZ=ON -DXNAT_TESTS=OFF -DXNAT_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target engine_fuzz rules_fuzz pcap_fuzz
# The three run at once, each on its own copy of its corpus; each is judged
# when all have ended.
fuzzers=(engine rules pcap)
declare -A work pid
for f in "${fuzzers[@]}"; do
  work[$f]=$(mktemp -d)
  cp fuzz/corpus/"$f"/* "${work[$f]}"/ 2>/dev/null || true
  ./build-fuzz/${f}_fuzz -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
    -artifact_prefix=build-fuzz/"$f"- "${work[$f]}" >"${work[$f]}.log" 2>&1 &
  pid[$f]=$!
done
fuzz_failed=0
for f in "${fuzzers[@]}"; do
  log="${work[$f]}.log"
  if ! wait "${pid[$f]}"; then
    cat "$log"
    echo "fuzzer ${f}_fuzz found a failure (reproducer saved as build-fuzz/${f}-crash-*; replay it with ./build-fuzz/${f}_fuzz FILE)"
    fuzz_failed=1
  else
    grep -E "^Done|stat::number_of_executed_units|stat::peak_rss_mb" "$log" | sed "s/^/  ${f}_fuzz: /"
  fi
  rm -rf "${work[$f]}" "$log"
done
[ "$fuzz_failed" = 0 ] || exit 1

# The last line is what CI reads; ctest's own summary lines above carry the counts.
echo "all suites passed"
