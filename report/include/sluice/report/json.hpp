// JSON text for summaries and reports: the one string escaper.
#pragma once

#include <string>
#include <string_view>

namespace sluice::report {

// `s` as a JSON string, quotes included: '"' and '\' escaped, control bytes
// as \u00XX; other bytes pass as they are (UTF-8 stays UTF-8).
std::string json_string(std::string_view s);

}  // namespace sluice::report
