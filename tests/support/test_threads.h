// I/O threads for the servers the tests start.
#pragma once

#include <cstdlib>

namespace tandem::testing {

// TANDEM_TEST_THREADS, else 2 (scripts/test --tsan runs the server tests with 4 under
// ThreadSanitizer).
inline int test_threads() {
  const char* v = std::getenv("TANDEM_TEST_THREADS");
  const int n = v ? std::atoi(v) : 0;
  return n > 0 ? n : 2;
}

}  // namespace tandem::testing
