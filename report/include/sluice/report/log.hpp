// Control-path logging to stderr: one line per event, prefixed with the
// program's name ("sluice-collector: warning: ..."), written whole so lines
// from two threads never interleave. Never called from a per-packet path.
#pragma once

#include <string>
#include <string_view>

#include <fmt/format.h>

namespace sluice::report {

// The prefix every line gets; set once, first thing in main().
void set_program(std::string_view name);
const std::string& program();

// One line, as given (a trailing newline is added when missing).
void log_line(std::string_view text);

template <class... Args>
void log_info(fmt::format_string<Args...> f, Args&&... args) {
    log_line(fmt::format("{}: {}", program(), fmt::format(f, std::forward<Args>(args)...)));
}

template <class... Args>
void log_warning(fmt::format_string<Args...> f, Args&&... args) {
    log_line(
        fmt::format("{}: warning: {}", program(), fmt::format(f, std::forward<Args>(args)...)));
}

template <class... Args>
void log_error(fmt::format_string<Args...> f, Args&&... args) {
    log_line(fmt::format("{}: error: {}", program(), fmt::format(f, std::forward<Args>(args)...)));
}

}  // namespace sluice::report
