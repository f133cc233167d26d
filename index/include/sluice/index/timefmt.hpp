// Times as a query gives them and as it prints them: RFC 3339 (with a
// fraction of up to nanoseconds and a Z or ±HH:MM offset) or unix seconds
// with a fraction; nanoseconds since the epoch inside.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::index {

// "2024-05-14T14:02:00Z", "2024-05-14 16:02:00.25+02:00", "1715695320",
// "1715695320.5". nullopt for anything else, or a time before 1970.
std::optional<uint64_t> parse_time(std::string_view text);

// "2024-05-14T14:02:00.250000000Z"
std::string format_time(uint64_t ns);

}  // namespace sluice::index
