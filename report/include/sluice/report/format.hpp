// Numbers as an operator reads them in a stats line or a summary.
#pragma once

#include <string>

namespace sluice::report {

// With an SI prefix and two decimals: 1234567 -> "1.23 M", 999 -> "999 "
// (the space keeps "bit/s" and "B" after it aligned).
std::string si(double v);

}  // namespace sluice::report
