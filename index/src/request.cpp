#include "sluice/index/request.hpp"

#include <charconv>

#include "sluice/index/timefmt.hpp"

namespace sluice::index {

std::optional<std::string> set_time(QuerySpec& spec, bool from, std::string_view name,
                                    std::string_view text) {
    const auto t = parse_time(text);
    if (!t) {
        return std::string(name) + " '" + std::string(text) +
               "' is not a time: give RFC 3339 (2024-05-14T14:02:00Z, "
               "2024-05-14T16:02:00.5+02:00) or unix seconds (1715695320.5)";
    }
    (from ? spec.from_ns : spec.to_ns) = *t;
    return std::nullopt;
}

std::optional<std::string> add_stream(QuerySpec& spec, std::string_view name,
                                      std::string_view text) {
    uint64_t n = 0;
    const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (text.empty() || ec != std::errc() || p != text.data() + text.size())
        return std::string(name) + " '" + std::string(text) + "': give a number";
    spec.streams.push_back(n);
    return std::nullopt;
}

std::optional<std::string> check_range(const QuerySpec& spec, std::string_view from_name,
                                       std::string_view to_name) {
    if (spec.from_ns < spec.to_ns) return std::nullopt;
    return std::string(from_name) + " " + format_time(spec.from_ns) + " is not before " +
           std::string(to_name) + " " + format_time(spec.to_ns) + ": nothing lies between them";
}

std::optional<Query> make_query(QuerySpec spec, std::string* error) {
    const std::string filter = spec.filter;
    std::string why;
    auto q = Query::make(std::move(spec), &why);
    if (!q && error) *error = "bad filter '" + filter + "': " + why;
    return q;
}

std::string describe(const QuerySpec& spec) {
    std::string s;
    if (!spec.filter.empty()) s += (spec.inner ? "--inner '" : "'") + spec.filter + "'";
    if (spec.from_ns) s += (s.empty() ? "" : " ") + ("from " + format_time(spec.from_ns));
    if (spec.to_ns != UINT64_MAX) s += (s.empty() ? "" : " ") + ("to " + format_time(spec.to_ns));
    return s;
}

SectionHeader section_header(const QuerySpec& spec, std::string_view version) {
    const std::string what = describe(spec);
    return {"sluice-query " + std::string(version),
            what.empty() ? "sluice-query" : "sluice-query " + what};
}

}  // namespace sluice::index
