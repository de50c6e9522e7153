// What every fuzz target uses to report a finding: a failed property aborts, which libFuzzer (and
// the tests' replay of fuzz/regressions/) records as a crash with its input.
#pragma once

#include <cstdlib>

namespace tandem::fuzz {

inline void require(bool ok) {
  if (!ok) std::abort();
}

}  // namespace tandem::fuzz
