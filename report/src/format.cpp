#include "sluice/report/format.hpp"

#include <fmt/format.h>

namespace sluice::report {

std::string si(double v) {
    const char* units[] = {"", "K", "M", "G", "T"};
    int u = 0;
    while (v >= 1000 && u < 4)
        v /= 1000, ++u;
    return u == 0 ? fmt::format("{:.0f} ", v) : fmt::format("{:.2f} {}", v, units[u]);
}

}  // namespace sluice::report
