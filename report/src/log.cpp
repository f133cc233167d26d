#include "sluice/report/log.hpp"

#include <cstdio>

namespace sluice::report {
namespace {

std::string& name() {
    static std::string n = "sluice";
    return n;
}

}  // namespace

void set_program(std::string_view n) {
    name() = std::string(n);
}

const std::string& program() {
    return name();
}

void log_line(std::string_view text) {
    std::string line(text);
    if (line.empty() || line.back() != '\n') line += '\n';
    // One write per line: stdio locks the stream for the call.
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
}

}  // namespace sluice::report
