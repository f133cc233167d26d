// index/request: a query's words as sluice-query and GET /query read them,
// and the section header both write.
#include <gtest/gtest.h>

#include "sluice/index/request.hpp"
#include "sluice/index/timefmt.hpp"

namespace sluice::index {
namespace {

TEST(Request, TimesStreamsAndRangeWithTheOperatorsWords) {
    QuerySpec spec;
    EXPECT_FALSE(set_time(spec, true, "from", "2024-05-14T14:02:00Z"));
    EXPECT_EQ(spec.from_ns, 1715695320000000000ull);
    EXPECT_FALSE(set_time(spec, false, "--to", "1715695320.5"));
    EXPECT_EQ(spec.to_ns, 1715695320500000000ull);
    const auto bad = set_time(spec, true, "--from", "yesterday");
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->rfind("--from 'yesterday' is not a time: give RFC 3339", 0), 0u) << *bad;
    EXPECT_FALSE(add_stream(spec, "stream", "7"));
    EXPECT_EQ(add_stream(spec, "stream", "7x"), "stream '7x': give a number");
    EXPECT_EQ(add_stream(spec, "--stream", ""), "--stream '': give a number");
    EXPECT_EQ(spec.streams, std::vector<uint64_t>{7});
    EXPECT_FALSE(check_range(spec, "from", "to"));
    spec.to_ns = spec.from_ns;
    const auto empty = check_range(spec, "from", "to");
    ASSERT_TRUE(empty);
    EXPECT_NE(empty->find("is not before to"), std::string::npos) << *empty;
}

TEST(Request, TheSectionHeaderIsTheQuerysAlone) {
    QuerySpec spec;
    SectionHeader h = section_header(spec, "1.2.3");
    EXPECT_EQ(h.application, "sluice-query 1.2.3");
    EXPECT_EQ(h.comment, "sluice-query");
    spec.filter = "tcp port 443";
    spec.from_ns = 1715695320000000000ull;
    spec.dirs = {"/somewhere"};  // where the files are is not part of it
    h = section_header(spec, "1.2.3");
    EXPECT_EQ(h.comment, "sluice-query 'tcp port 443' from " + format_time(spec.from_ns));
    EXPECT_EQ(describe(spec), "'tcp port 443' from " + format_time(spec.from_ns));
}

TEST(Request, ABadFilterNamesItself) {
    QuerySpec spec;
    spec.filter = "host and";
    std::string error;
    EXPECT_FALSE(make_query(spec, &error));
    EXPECT_EQ(error.rfind("bad filter 'host and': ", 0), 0u) << error;
}

}  // namespace
}  // namespace sluice::index
