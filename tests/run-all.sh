#!/usr/bin/env bash
# Install, build and run every test: the unit tests and the end-to-end
# tests through real Postfix, Sendmail and miltertest.  Needs root (apt,
# Postfix): contrib/as-root tests/run-all.sh.  With --sanitize the build
# goes to build-asan with AddressSanitizer and UndefinedBehaviorSanitizer,
# and leaves out the tests labelled "once" (the package, the libmilter
# engine's run of the core scenarios), which the normal run has done.
# The tests are asked for (PORTCULLIS_TESTS=ON): configuring stops when
# GoogleTest is missing instead of building the daemon alone.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=build
cmake_flags=(-DPORTCULLIS_TESTS=ON)
ctest_flags=()
if [ "${1:-}" = "--sanitize" ]; then
  build_dir=build-asan
  cmake_flags+=(-DPORTCULLIS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
  # The tests labelled "once" ran in the normal build (tests/CMakeLists.txt).
  ctest_flags=(-LE once)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi

bash contrib/install-deps.sh --test
sh tests/e2e/fetch-sendmail.sh /var/tmp/portcullis-e2e-cache/sendmail   # the e2e harness reads it there
cmake -S . -B "$build_dir" "${cmake_flags[@]}"
cmake --build "$build_dir" -j"$(nproc)"
ctest --test-dir "$build_dir" --output-on-failure --timeout 900 "${ctest_flags[@]}"
