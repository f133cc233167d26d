// File names from templates (the collector's --file-template): formatted,
// parsed back exactly, refused when they could name two files alike or not
// be read back; found below a capture directory, in subdirectories, being
// written (.part) or finished.
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "sluice/index/file_name.hpp"

namespace sluice::index {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kSecond = 1'000'000'000ull;
constexpr uint64_t kWhen = 1'700'000'000ull * kSecond + 123;  // 2023-11-14T22:13:20Z

FileTemplate parse(std::string_view text) {
    std::string why;
    auto t = FileTemplate::parse(text, &why);
    EXPECT_TRUE(t) << text << ": " << why;
    return t ? *t : FileTemplate();
}

std::string refused(std::string_view text) {
    std::string why;
    EXPECT_FALSE(FileTemplate::parse(text, &why)) << text;
    return why;
}

TEST(FileTemplate, TheDefaultIsTheCollectorsNaming) {
    const FileTemplate t;
    EXPECT_EQ(t.text(), FileTemplate::kDefault);
    EXPECT_EQ(t.format(7, 3, kWhen), "stream-7-000003-20231114T221320Z");
    EXPECT_EQ(t.match("stream-7-000003-20231114T221320Z"), (FileId{7, 3}));
    EXPECT_EQ(t.match("stream-7-1234567-20231114T221320Z"), (FileId{7, 1234567}));
    EXPECT_FALSE(t.match("stream-7-000003-20231114T221320"));
    EXPECT_FALSE(t.match("stream-7-000003-2023111xT221320Z"));
    EXPECT_FALSE(t.match("stream-x-000003-20231114T221320Z"));
    EXPECT_FALSE(t.match("x/stream-7-000003-20231114T221320Z"));
}

TEST(FileTemplate, FieldsFormatAndParseBack) {
    const FileTemplate t = parse("{stream}/%Y/%m/%d/%j-%y %H:%M:%S %s %F %% {n}");
    EXPECT_TRUE(t.has_directories());
    const std::string name = t.format(42, 9, kWhen);
    EXPECT_EQ(name, "42/2023/11/14/318-23 22:13:20 1700000000 2023-11-14 % 000009");
    EXPECT_EQ(t.match(name), (FileId{42, 9}));
    // Any number of digits where the width varies; exactly the width where
    // it is fixed.
    EXPECT_EQ(t.match("18446744073709551615/2023/11/14/318-23 22:13:20 1 2023-11-14 % 1"),
              (FileId{UINT64_MAX, 1}));
    EXPECT_FALSE(t.match("42/2023/11/4/318-23 22:13:20 1700000000 2023-11-14 % 000009"));
    EXPECT_FALSE(t.match("42/2023/11/14/318-23 22:13:20 1700000000 2023-11-14 % 000009x"));
}

TEST(FileTemplate, RandomNamesRoundTrip) {
    std::mt19937_64 rng(5);
    const FileTemplate t = parse("cap-{stream}_%Y%m%dT%H%M%S_{n}");
    for (int i = 0; i < 2000; ++i) {
        const uint64_t stream = rng() >> (rng() % 64), n = rng() >> (rng() % 64);
        const uint64_t when = (rng() % 4'000'000'000ull) * kSecond;
        EXPECT_EQ(t.match(t.format(stream, n, when)), (FileId{stream, n}));
    }
}

TEST(FileTemplate, TemplatesThatCouldNameTwoFilesAlikeOrNotBeReadBackAreRefused) {
    EXPECT_NE(refused("capture-%H%M%S").find("{stream} and {n} once each"), std::string::npos);
    EXPECT_NE(refused("{stream}-{n}-{n}").find("once each"), std::string::npos);
    EXPECT_NE(refused("{stream}{n}").find("followed by a character that is not a digit"),
              std::string::npos);
    EXPECT_NE(refused("{stream}-{n}%Y").find("not a digit"), std::string::npos);
    EXPECT_NE(refused("{stream}-{n}1").find("not a digit"), std::string::npos);
    EXPECT_NE(refused("{stream}-{n}-%b").find("%b is not a time field"), std::string::npos);
    EXPECT_NE(refused("{stream}-{n}-%").find("lone '%'"), std::string::npos);
    EXPECT_NE(refused("{stream}-{n}-{host}").find("unknown field '{host}'"), std::string::npos);
    EXPECT_NE(refused("/{stream}-{n}").find("leading '/'"), std::string::npos);
    EXPECT_NE(refused("{stream}//{n}").find("empty path component"), std::string::npos);
    EXPECT_NE(refused("{stream}/{n}/").find("empty path component"), std::string::npos);
    EXPECT_NE(refused("../{stream}-{n}").find("begins with '.'"), std::string::npos);
    EXPECT_NE(refused(".hidden/{stream}-{n}").find("begins with '.'"), std::string::npos);
    EXPECT_NE(refused("{stream}-\n{n}").find("control character"), std::string::npos);
    EXPECT_NE(refused(std::string(230, 'a') + "{stream}-{n}").find("longer than 255"),
              std::string::npos);
    EXPECT_NE(refused("").find("empty"), std::string::npos);
    // What an operator may well write is fine.
    parse("{stream}/%Y%m%d/capture-%H%M%S-{n}");
    parse("sensor {stream} #{n} (%F)");
}

TEST(DataName, ExtensionsAndPart) {
    auto d = split_data_name("a/b.pcapng");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->stem, "a/b");
    EXPECT_EQ(d->compression, Compression::None);
    EXPECT_FALSE(d->part);
    d = split_data_name("b.pcapng.zst.part");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->stem, "b");
    EXPECT_EQ(d->compression, Compression::Zstd);
    EXPECT_TRUE(d->part);
    EXPECT_FALSE(split_data_name("b.pcapng.idx"));
    EXPECT_FALSE(split_data_name("b.pcapng.part.idx"));
    EXPECT_FALSE(split_data_name("b.pcap"));
    EXPECT_FALSE(split_data_name(".pcapng"));
    EXPECT_EQ(data_extension(Compression::Zstd), ".pcapng.zst");
}

class TempDir {
  public:
    TempDir() {
        std::random_device rd;
        path_ = fs::path(::testing::TempDir()) /
                ("sluice-names-" + std::to_string(rd()) + std::to_string(rd()));
        fs::create_directories(path_ / ".sluice");
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }
    std::string str() const { return path_.string(); }

  private:
    fs::path path_;
};

void touch(const fs::path& p) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << "x";
}

TEST(FindDataFiles, EveryTemplatesFilesBelowTheDirectoryAndNothingElse) {
    TempDir d;
    const FileTemplate nested = parse("{stream}/%Y/cap-{n}");
    const FileTemplate standard;
    touch(d.path() / (standard.format(1, 1, kWhen) + ".pcapng"));
    touch(d.path() / (standard.format(1, 2, kWhen) + ".pcapng.zst.part"));
    touch(d.path() / (nested.format(2, 5, kWhen) + ".pcapng"));
    touch(d.path() / (nested.format(2, 6, kWhen) + ".pcapng.part"));
    touch(d.path() / (nested.format(2, 5, kWhen) + ".pcapng.idx"));
    touch(d.path() / "2/2023/notes.txt");
    touch(d.path() / ".hidden/2/2023/cap-000007.pcapng");
    touch(d.path() / ".sluice/stream-1-000009-20231114T221320Z.pcapng");
    fs::create_directory_symlink(d.path() / "2", d.path() / "link");
    std::vector<FoundFile> found;
    std::vector<std::string> warnings;
    std::string error;
    ASSERT_TRUE(find_data_files(d.str(), {standard, nested}, found, &warnings, &error)) << error;
    EXPECT_TRUE(warnings.empty());
    std::set<std::tuple<std::string, uint64_t, uint64_t, bool, bool>> got;
    for (const auto& f : found)
        got.emplace(f.path, f.id.stream, f.id.n, f.part, f.compression == Compression::Zstd);
    const std::set<std::tuple<std::string, uint64_t, uint64_t, bool, bool>> want = {
        {"stream-1-000001-20231114T221320Z.pcapng", 1, 1, false, false},
        {"stream-1-000002-20231114T221320Z.pcapng.zst.part", 1, 2, true, true},
        {"2/2023/cap-000005.pcapng", 2, 5, false, false},
        {"2/2023/cap-000006.pcapng.part", 2, 6, true, false},
    };
    EXPECT_EQ(got, want);
    EXPECT_FALSE(
        find_data_files((d.path() / "missing").string(), {standard}, found, nullptr, &error));
    EXPECT_NE(error.find("cannot read"), std::string::npos) << error;
}

TEST(Templates, RecordedOncePerDirectoryAndReadBack) {
    TempDir d;
    std::string error;
    ASSERT_TRUE(record_template(d.str(), FileTemplate(), 0640, &error));
    EXPECT_FALSE(fs::exists(d.path() / kTemplatesFile)) << "the default needs no record";
    const FileTemplate a = parse("{stream}/a-{n}"), b = parse("b-{stream}-{n}");
    ASSERT_TRUE(record_template(d.str(), a, 0640, &error)) << error;
    ASSERT_TRUE(record_template(d.str(), b, 0640, &error)) << error;
    ASSERT_TRUE(record_template(d.str(), a, 0640, &error)) << error;
    std::vector<std::string> warnings;
    const auto all = directory_templates(d.str(), &warnings);
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[0].text(), FileTemplate::kDefault);
    EXPECT_EQ(all[1].text(), a.text());
    EXPECT_EQ(all[2].text(), b.text());
    EXPECT_TRUE(warnings.empty());
    EXPECT_EQ(fs::status(d.path() / kTemplatesFile).permissions(),
              fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
    // A damaged line is skipped with a warning; the others still count.
    std::ofstream(d.path() / kTemplatesFile, std::ios::app) << "no fields here\n";
    EXPECT_EQ(directory_templates(d.str(), &warnings).size(), 3u);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("its files are not found"), std::string::npos) << warnings[0];
}

}  // namespace
}  // namespace sluice::index
