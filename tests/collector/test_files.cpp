// FileStore: the directory's capture files as the collector knows them, and
// retention: --keep, --max-age, --max-disk and --min-free delete the oldest
// finished files (with their indexes) across streams, never a file being
// written, never a file no template names; each deletion counted.
#include "collector_testing.hpp"
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "sluice/collector/files.hpp"

namespace sluice::collector {
namespace {

using namespace testing;

constexpr uint64_t kSecond = 1'000'000'000ull;
constexpr uint64_t kNow = 1'700'000'000ull * kSecond;

struct Dir {
    TempDir dir;
    FileCounters k;

    // A finished file of `bytes` (and a 100-byte index) last written at `written`.
    std::string file(uint64_t stream, uint64_t n, uint64_t written, std::size_t bytes,
                     bool part = false, const index::FileTemplate& names = {}) {
        std::string name = names.format(stream, n, written) + ".pcapng";
        if (part) name += ".part";
        const fs::path p = dir.path() / name;
        fs::create_directories(p.parent_path());
        std::ofstream(p, std::ios::binary) << std::string(bytes, 'x');
        std::ofstream(p.string() + ".idx", std::ios::binary) << std::string(100, 'i');
        const timespec t[2] = {{static_cast<time_t>(written / kSecond), 0},
                               {static_cast<time_t>(written / kSecond), 0}};
        ::utimensat(AT_FDCWD, p.c_str(), t, 0);
        return name;
    }
    bool has(const std::string& name) const {
        return fs::exists(dir.path() / name) && fs::exists(dir.path() / (name + ".idx"));
    }
    bool gone(const std::string& name) const {
        return !fs::exists(dir.path() / name) && !fs::exists(dir.path() / (name + ".idx"));
    }
    std::unique_ptr<FileStore> store(RetentionSettings r) {
        auto s = std::make_unique<FileStore>(dir.str(), std::vector<index::FileTemplate>(1), r, k);
        EXPECT_TRUE(s->scan().empty());
        return s;
    }
};

TEST(FileStore, FindsTheFilesTemplatesNameAndNothingElse) {
    Dir d;
    const auto a = d.file(1, 1, kNow, 1000);
    const auto b = d.file(2, 4, kNow, 2000, true);
    std::ofstream(d.dir.path() / "notes.pcapng") << "the operator's own";
    std::ofstream(d.dir.path() / "stream-1-x-1.pcapng") << "not a name the collector gives";
    auto s = d.store({});
    EXPECT_EQ(s->files(), 2u);
    EXPECT_EQ(s->bytes(), 1000u + 2000u + 2 * 100u);
    const auto one = s->files_of(1), two = s->files_of(2);
    ASSERT_EQ(one.size(), 1u);
    ASSERT_EQ(two.size(), 1u);
    EXPECT_EQ(one[0].path, a);
    EXPECT_FALSE(one[0].part);
    EXPECT_EQ(two[0].path, b);
    EXPECT_TRUE(two[0].part);
    EXPECT_EQ(two[0].id.n, 4u);
}

TEST(FileStore, MaxDiskDeletesTheOldestFinishedFilesAcrossStreams) {
    Dir d;
    // Interleaved in time: stream 1 at t=10, 30, 50; stream 2 at 20, 40, 60.
    std::vector<std::string> f;
    for (int i = 0; i < 6; ++i)
        f.push_back(d.file(1 + i % 2, 1 + i / 2, kNow + (10 + 10 * i) * kSecond, 900));
    const auto writing = d.file(1, 4, kNow + 70 * kSecond, 5000, true);
    auto s = d.store({.max_disk = 10'000});
    // 6 x 1000 + 5100 = 11100: the two oldest go, whichever stream.
    s->enforce(kNow + 100 * kSecond);
    EXPECT_TRUE(d.gone(f[0]));
    EXPECT_TRUE(d.gone(f[1]));
    for (int i = 2; i < 6; ++i)
        EXPECT_TRUE(d.has(f[i])) << f[i];
    EXPECT_TRUE(d.has(writing));
    EXPECT_EQ(d.k.files_deleted_max_disk.get(), 2u);
    EXPECT_EQ(d.k.bytes_deleted.get(), 2000u);
    EXPECT_EQ(s->bytes(), 9100u);
    // Within the limit: nothing more.
    s->enforce(kNow + 101 * kSecond);
    EXPECT_EQ(d.k.files_deleted_max_disk.get(), 2u);
    EXPECT_EQ(d.k.retention_exhausted.get(), 0u);
}

TEST(FileStore, AFileBeingWrittenIsNeverDeletedAndRunningOutIsToldOnce) {
    Dir d;
    const auto old = d.file(1, 1, kNow, 1000);
    const auto writing = d.file(1, 2, kNow, 50'000, true);
    auto s = d.store({.max_disk = 10'000});
    s->enforce(kNow);
    EXPECT_TRUE(d.gone(old));
    EXPECT_TRUE(d.has(writing));
    EXPECT_EQ(d.k.retention_exhausted.get(), 1u);
    s->enforce(kNow + kSecond);
    s->enforce(kNow + 2 * kSecond);
    EXPECT_EQ(d.k.retention_exhausted.get(), 1u) << "once per episode, not per check";
    EXPECT_TRUE(d.has(writing));
}

TEST(FileStore, MaxAgeDeletesFilesLastWrittenLongerAgo) {
    Dir d;
    const auto old1 = d.file(3, 1, kNow - 7200 * kSecond, 100);
    const auto old2 = d.file(4, 1, kNow - 3601 * kSecond, 100);
    const auto young = d.file(3, 2, kNow - 3599 * kSecond, 100);
    const auto writing = d.file(3, 3, kNow - 9000 * kSecond, 100, true);
    auto s = d.store({.max_age_ns = 3600 * kSecond});
    s->enforce(kNow);
    EXPECT_TRUE(d.gone(old1));
    EXPECT_TRUE(d.gone(old2));
    EXPECT_TRUE(d.has(young));
    EXPECT_TRUE(d.has(writing)) << "being written: never";
    EXPECT_EQ(d.k.files_deleted_max_age.get(), 2u);
}

TEST(FileStore, MinFreeDeletesUntilEnoughIsFreeCountingWhatItFrees) {
    Dir d;
    std::vector<std::string> f;
    for (int i = 0; i < 5; ++i)
        f.push_back(d.file(1, 1 + i, kNow + i * kSecond, 64 * 1024));
    auto s = d.store({.min_free = 1'000'000});
    // The file system reports the same free space throughout (as one that
    // frees later would): what deleting frees is added as it goes.
    uint64_t per_file = 0;
    {
        struct stat a {
        }, b{};
        ::stat((d.dir.path() / f[0]).c_str(), &a);
        ::stat((d.dir.path() / (f[0] + ".idx")).c_str(), &b);
        per_file = uint64_t(a.st_blocks + b.st_blocks) * 512;
    }
    ASSERT_GT(per_file, 0u);
    s->free_space([&] { return std::optional<uint64_t>(1'000'000 - 2 * per_file + 1); });
    s->enforce(kNow + 10 * kSecond);
    EXPECT_TRUE(d.gone(f[0]));
    EXPECT_TRUE(d.gone(f[1]));
    for (int i = 2; i < 5; ++i)
        EXPECT_TRUE(d.has(f[i])) << f[i];
    EXPECT_EQ(d.k.files_deleted_min_free.get(), 2u);
}

TEST(FileStore, KeepCountsTheFileBeingWrittenAndDeletesByNumber) {
    Dir d;
    const auto f1 = d.file(5, 1, kNow, 10);
    const auto f2 = d.file(5, 2, kNow, 10);
    const auto other = d.file(6, 1, kNow - 100 * kSecond, 10);
    auto s = d.store({.keep_files = 2});
    // A new file of stream 5: three, so the lowest number goes.
    const auto f3 = d.file(5, 3, kNow, 10, true);
    s->created(5, f3);
    EXPECT_TRUE(d.gone(f1));
    EXPECT_TRUE(d.has(f2));
    EXPECT_TRUE(d.has(f3));
    EXPECT_TRUE(d.has(other)) << "another stream's file";
    EXPECT_EQ(d.k.files_deleted_keep.get(), 1u);
}

TEST(FileStore, FinishedFilesAreToldOnceAndEmptyTemplateDirectoriesGo) {
    Dir d;
    std::string why;
    const auto nested = index::FileTemplate::parse("{stream}/%Y/%m/cap-{n}", &why);
    ASSERT_TRUE(nested) << why;
    const auto f1 = d.file(1, 1, kNow, 10, false, *nested);
    const auto f2 = d.file(1, 2, kNow + 40 * 86400 * kSecond, 10, true, *nested);
    ASSERT_NE(fs::path(f1).parent_path(), fs::path(f2).parent_path());
    FileStore s(d.dir.str(), {index::FileTemplate(), *nested}, {.max_disk = 50}, d.k);
    std::vector<std::string> told;
    s.on_finished([&](uint64_t stream, const std::string& p) {
        EXPECT_EQ(stream, 1u);
        told.push_back(p);
    });
    EXPECT_TRUE(s.scan().empty());
    EXPECT_EQ(s.files(), 2u);
    const std::string final2 = f2.substr(0, f2.size() - 5);
    fs::rename(d.dir.path() / f2, d.dir.path() / final2);
    fs::rename(d.dir.path() / (f2 + ".idx"), d.dir.path() / (final2 + ".idx"));
    s.finished(1, final2);
    EXPECT_EQ(told, std::vector<std::string>{final2});
    EXPECT_EQ(d.k.files_finished.get(), 1u);
    s.enforce(kNow + 50 * 86400 * kSecond);  // 220 bytes > 50: both go
    EXPECT_TRUE(d.gone(f1));
    EXPECT_TRUE(d.gone(final2));
    EXPECT_FALSE(fs::exists(d.dir.path() / "1")) << "the emptied directories went too";
    EXPECT_EQ(told.size(), 1u);
}

// Here a directory stands where the file was: unlink() refuses it, as it
// refuses a file on a read-only file system, even to root.
TEST(FileStore, AFileThatCannotBeDeletedIsCountedAndLeftAlone) {
    Dir d;
    const auto f = d.file(1, 1, kNow, 1000);
    auto s = d.store({.max_disk = 10});
    fs::remove(d.dir.path() / f);
    fs::create_directories(d.dir.path() / f / "inside");
    s->enforce(kNow);
    EXPECT_TRUE(fs::is_directory(d.dir.path() / f));
    EXPECT_EQ(d.k.delete_failures.get(), 1u);
    EXPECT_EQ(d.k.files_deleted_max_disk.get(), 0u);
    EXPECT_EQ(s->files(), 0u) << "not tried again";
    s->enforce(kNow + kSecond);
    EXPECT_EQ(d.k.delete_failures.get(), 1u);
}

}  // namespace
}  // namespace sluice::collector
