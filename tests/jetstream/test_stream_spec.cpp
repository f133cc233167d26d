// The JetStream stream's subjects and settings: the subject template, and
// the differences between the stream sluice wants and one that exists.
#include <gtest/gtest.h>

#include "sluice/jetstream/stream_spec.hpp"

namespace sluice::jetstream {
namespace {

TEST(StreamSpec, SubjectTemplates) {
    EXPECT_EQ(check_subject("sluice.frames.{stream_id}"), "");
    EXPECT_EQ(check_subject("{stream_id}.x"), "");
    EXPECT_NE(check_subject("sluice.frames"), "");
    EXPECT_NE(check_subject("sluice.frames-{stream_id}"), "");
    EXPECT_NE(check_subject("sluice..{stream_id}"), "");
    EXPECT_NE(check_subject("sluice.*.{stream_id}"), "");
    EXPECT_NE(check_subject("{stream_id}.{stream_id}"), "");
    EXPECT_EQ(subject_for("sluice.frames.{stream_id}", 7), "sluice.frames.7");
    EXPECT_EQ(subject_wildcard("sluice.frames.{stream_id}"), "sluice.frames.*");
    EXPECT_EQ(subject_wildcard("a.{stream_id}.b"), "a.*.b");
    EXPECT_EQ(stream_id_of("a.{stream_id}.b", "a.42.b"), 42u);
    EXPECT_EQ(stream_id_of("a.{stream_id}.b", "a.42.c"), std::nullopt);
    EXPECT_EQ(stream_id_of("a.{stream_id}.b", "a.x.b"), std::nullopt);
    EXPECT_EQ(stream_id_of("a.{stream_id}", "a."), std::nullopt);
}

struct Have {
    Have() {
        jsStreamConfig_Init(&c);
        c.Subjects = subjects;
        c.SubjectsLen = 1;
        c.Storage = js_FileStorage;
        c.Retention = js_LimitsPolicy;
        c.Replicas = 1;
        c.MaxAge = 86400LL * 1'000'000'000;
        c.MaxBytes = -1;
        c.Duplicates = 120LL * 1'000'000'000;
        c.Discard = js_DiscardOld;
    }
    const char* subjects[1] = {"sluice.frames.*"};
    jsStreamConfig c;
};

TEST(StreamSpec, AStreamAsSluiceMakesItHasNoConflict) {
    Have h;
    EXPECT_TRUE(conflicts(StreamSpec{}, h.c).empty());
    const char* wide[] = {"sluice.>"};
    h.c.Subjects = wide;
    EXPECT_TRUE(conflicts(StreamSpec{}, h.c).empty()) << "a wider subject takes ours too";
}

TEST(StreamSpec, EveryDifferenceIsNamed) {
    Have h;
    const char* other[] = {"other.*"};
    h.c.Subjects = other;
    h.c.Storage = js_MemoryStorage;
    h.c.Retention = js_InterestPolicy;
    h.c.Replicas = 3;
    h.c.MaxAge = 0;
    h.c.MaxBytes = 1 << 30;
    h.c.Duplicates = 1'000'000'000;
    h.c.Discard = js_DiscardNew;
    const auto d = conflicts(StreamSpec{}, h.c);
    ASSERT_EQ(d.size(), 8u);
    const char* names[] = {"subjects", "storage",   "retention",        "replicas",
                           "max_age",  "max_bytes", "duplicate_window", "discard"};
    for (std::size_t i = 0; i < d.size(); ++i)
        EXPECT_EQ(d[i].rfind(names[i], 0), 0u) << d[i];
    EXPECT_NE(d[3].find("has 3, sluice wants 1"), std::string::npos) << d[3];
}

}  // namespace
}  // namespace sluice::jetstream
