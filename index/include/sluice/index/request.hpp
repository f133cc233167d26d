// A query as an operator words it, read the same way wherever it comes
// from: sluice-query's command line (--from, --to, --stream, FILTER) and
// the collector's GET /query (from=, to=, stream=, filter=). Each error is
// the one line the operator reads, naming the word as they wrote it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "sluice/index/query.hpp"

namespace sluice::index {

// Sets spec.from_ns (`from`) or spec.to_ns from `text` (RFC 3339 or unix
// seconds). The error names `name` ("--from", "from") and the forms a time
// takes.
std::optional<std::string> set_time(QuerySpec& spec, bool from, std::string_view name,
                                    std::string_view text);

// Adds a stream id to spec.streams.
std::optional<std::string> add_stream(QuerySpec& spec, std::string_view name,
                                      std::string_view text);

// An error when nothing lies between from and to.
std::optional<std::string> check_range(const QuerySpec& spec, std::string_view from_name,
                                       std::string_view to_name);

// Compiles the query; nullopt and `error` ("bad filter 'host and': syntax
// error") when libpcap refuses the filter.
std::optional<Query> make_query(QuerySpec spec, std::string* error);

// What the query was: "'host 10.1.2.3' from 2024-05-14T14:02:00.000000000Z
// to ...", with "--inner " before the filter when it matches the innermost
// packet; "" for every packet. For logs, and in the section header.
std::string describe(const QuerySpec& spec);

// The section header of a query's pcapng: shb_userappl "sluice-query
// VERSION", the comment "sluice-query" and describe(). A function of the
// query alone, not of who asks, so that sluice-query and GET /query write
// the same bytes for the same query on the same files.
struct SectionHeader {
    std::string application, comment;
};
SectionHeader section_header(const QuerySpec& spec, std::string_view version);

}  // namespace sluice::index
