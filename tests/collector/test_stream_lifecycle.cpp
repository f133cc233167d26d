// A stream's files through their lives: written as NAME.part, renamed when
// finished (rotation, the end of a --rotate-time period, stop, the next
// start after a crash), named by a template (directories too), and each
// finished file told to the collector exactly once.
#include <set>

#include "collector_testing.hpp"
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "sluice/collector/files.hpp"
#include "sluice/index/format.hpp"
#include "sluice/session/clock.hpp"

namespace sluice::collector {
namespace {

using namespace testing;

constexpr uint64_t kSecond = 1'000'000'000ull;

// Records what a stream tells the collector about its files.
struct Recorder final : FileEvents {
    std::vector<index::FoundFile> files_of(uint64_t) override { return found; }
    void created(uint64_t, const std::string& p) override { created_paths.push_back(p); }
    void finished(uint64_t, const std::string& p) override { finished_paths.push_back(p); }
    void removed(const std::string& p) override { removed_paths.push_back(p); }
    std::vector<index::FoundFile> found;
    std::vector<std::string> created_paths, finished_paths, removed_paths;
};

struct Fixture {
    explicit Fixture(Compression c = Compression::None, uint64_t rotate = 0) {
        set.dir = dir.str();
        set.compression = c;
        set.rotate_bytes = rotate;
        set.application = "sluice-collector test";
        ws.zstd = &zstd;
    }
    std::unique_ptr<Stream> open(uint64_t id = 7) {
        auto s = std::make_unique<Stream>(id, set, ws);
        log = s->recover();
        return s;
    }
    FrameOutcome add(Stream& s, const std::vector<std::byte>& frame) {
        auto v = reader.open(frame, scratch);
        EXPECT_TRUE(v.ok());
        return s.add(*v);
    }
    session::Hello hello(uint64_t session, uint64_t position) {
        session::Hello h;
        h.session_id = session;
        h.resume = true;
        h.secret[0] = std::byte{static_cast<uint8_t>(session)};
        h.position.known = true;
        h.position.sequence = position;
        return h;
    }
    // Every regular file below the directory (not .sluice), relative.
    std::set<std::string> tree() const {
        std::set<std::string> out;
        for (auto it = fs::recursive_directory_iterator(dir.path()); it != fs::end(it); ++it) {
            if (it->path().filename() == ".sluice") {
                it.disable_recursion_pending();
                continue;
            }
            if (it->is_regular_file()) out.insert(fs::relative(it->path(), dir.path()).string());
        }
        return out;
    }
    TempDir dir;
    StreamSettings set;
    ZstdCompressor zstd{3};
    Workspace ws;
    wire::FrameReader reader;
    std::vector<std::byte> scratch = std::vector<std::byte>(1 << 20);
    std::vector<std::string> log;
};

bool ends_with(const std::string& s, std::string_view end) {
    return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
}

TEST(StreamLifecycle, AFileIsWrittenAsPartAndRenamedWhenFinished) {
    for (Compression c : {Compression::None, Compression::Zstd}) {
        SCOPED_TRACE(c == Compression::Zstd ? "zstd" : "plain");
        Fixture fx(c, 32 * 1024);
        Recorder events;
        fx.set.files = &events;
        const auto pk = packets(600, 31, 1, 2);
        const auto fr = make_frames(7, pk, 10);
        auto s = fx.open();
        s->on_hello(fx.hello(1, 0));
        for (const auto& f : fr.frames) {
            ASSERT_EQ(fx.add(*s, f), FrameOutcome::Written);
            ASSERT_TRUE(s->commit());
        }
        const std::string ext = c == Compression::Zstd ? ".pcapng.zst" : ".pcapng";
        // Every file but the current one has its final name and a
        // finished index beside it; the current one is NAME.part.
        auto files = stream_files(fx.dir.path(), 7);
        ASSERT_GE(files.size(), 3u);
        for (std::size_t i = 0; i < files.size(); ++i) {
            const std::string name = files[i].filename().string();
            const bool last = i + 1 == files.size();
            EXPECT_TRUE(ends_with(name, last ? ext + ".part" : ext)) << name;
            const auto ix = index::load_index(index::index_path(files[i].string()), nullptr);
            ASSERT_TRUE(ix) << name;
            EXPECT_EQ(ix->finish.has_value(), !last) << name;
        }
        EXPECT_EQ(s->current_path(), files.back().string());
        EXPECT_EQ(events.finished_paths.size(), files.size() - 1);
        EXPECT_EQ(events.created_paths.size(), files.size());

        // Stop: the current file is finished too, and the state has none.
        ASSERT_TRUE(s->finish_file());
        EXPECT_EQ(s->current_path(), "");
        EXPECT_TRUE(s->saved().file().empty());
        files = stream_files(fx.dir.path(), 7);
        for (const auto& f : files) {
            EXPECT_TRUE(ends_with(f.filename().string(), ext)) << f;
            const auto ix = index::load_index(index::index_path(f.string()), nullptr);
            ASSERT_TRUE(ix && ix->finish) << f;
        }
        for (const auto& p : fx.tree())
            EXPECT_FALSE(ends_with(p, ".part") || ends_with(p, ".part.idx")) << p;
        // Each finished file told once, under its final name.
        const std::set<std::string> told(events.finished_paths.begin(),
                                         events.finished_paths.end());
        EXPECT_EQ(told.size(), events.finished_paths.size());
        EXPECT_EQ(told.size(), files.size());
        for (const auto& f : files)
            EXPECT_TRUE(told.count(f.filename().string())) << f;
        EXPECT_EQ(read_stream(fx.dir.path(), 7), pk);

        // What comes next begins a new file with the next number.
        const uint64_t last = s->saved().file_index;
        s->on_hello(fx.hello(2, 0));
        const auto more = make_frames(7, packets(10, 32), 10);
        ASSERT_EQ(fx.add(*s, more.frames[0]), FrameOutcome::Written);
        ASSERT_TRUE(s->commit());
        EXPECT_EQ(s->saved().file_index, last + 1);
        EXPECT_TRUE(ends_with(s->current_path(), ext + ".part"));
    }
}

TEST(StreamLifecycle, RotationTimesAreMultiplesOfThePeriodOnTheClock) {
    const uint64_t t0 = 1'700'000'000ull * kSecond;                          // 2023-11-14T22:13:20Z
    EXPECT_EQ(rotation_due(t0, 300 * kSecond), 1'700'000'100ull * kSecond);  // 22:15:00
    EXPECT_EQ(rotation_due(1'700'000'100ull * kSecond, 300 * kSecond),
              1'700'000'400ull * kSecond);  // on the boundary: the next one
    EXPECT_EQ(rotation_due(t0 + 1, 3600 * kSecond), 1'700'002'800ull * kSecond);  // 23:00:00
    EXPECT_EQ(rotation_due(t0, 86400 * kSecond), 1'700'006'400ull * kSecond);     // midnight
}

// The clock is the caller's: a period ends exactly at its boundary, not a
// period after the file began.
TEST(StreamLifecycle, ATimedFileEndsAtItsBoundaryWhetherItsSenderIsThereOrNot) {
    for (bool connected : {true, false}) {
        SCOPED_TRACE(connected ? "connected" : "its sender went away");
        Fixture fx;
        fx.set.rotate_ns = 300 * kSecond;
        Recorder events;
        fx.set.files = &events;
        const auto pk = packets(40, 33);
        const auto fr = make_frames(7, pk, 10);
        auto s = fx.open();
        s->on_hello(fx.hello(1, 0));
        ASSERT_EQ(fx.add(*s, fr.frames[0]), FrameOutcome::Written);
        ASSERT_TRUE(s->commit());
        if (!connected) s->close_file();
        const std::string part = s->current_path();
        const uint64_t due = rotation_due(s->saved().file_created_ns, fx.set.rotate_ns);
        ASSERT_TRUE(s->maybe_rotate_by_time(due - 1));
        EXPECT_EQ(s->current_path(), part) << "one nanosecond before the boundary";
        ASSERT_TRUE(s->maybe_rotate_by_time(due));
        EXPECT_EQ(s->current_path(), "");
        const std::string final_path = part.substr(0, part.size() - 5);
        EXPECT_FALSE(fs::exists(part));
        ASSERT_TRUE(fs::exists(final_path));
        const auto ix = index::load_index(index::index_path(final_path), nullptr);
        ASSERT_TRUE(ix && ix->finish);
        EXPECT_EQ(ix->finish->packets, 10u);
        ASSERT_EQ(events.finished_paths.size(), 1u);
        // Nothing more to end until the next frame begins a file.
        ASSERT_TRUE(s->maybe_rotate_by_time(due + 1000 * kSecond));
        EXPECT_EQ(events.finished_paths.size(), 1u);
        s->on_hello(fx.hello(1, 1));
        ASSERT_EQ(fx.add(*s, fr.frames[1]), FrameOutcome::Written);
        ASSERT_TRUE(s->commit());
        EXPECT_NE(s->current_path(), "");
        EXPECT_EQ(read_stream(fx.dir.path(), 7), std::vector<Packet>(pk.begin(), pk.begin() + 20));
    }
}

// A crash after the state says "finished" but before the rename: the next
// start renames it (and its index), and tells the collector.
TEST(StreamLifecycle, AFileFinishedButNotRenamedBeforeACrashIsRenamedAtStart) {
    Fixture fx;
    const auto pk = packets(30, 34);
    const auto fr = make_frames(7, pk, 10);
    std::string final_path;
    {
        auto s = fx.open();
        s->on_hello(fx.hello(1, 0));
        ASSERT_EQ(fx.add(*s, fr.frames[0]), FrameOutcome::Written);
        ASSERT_TRUE(s->commit());
        final_path = s->current_path();
        final_path.resize(final_path.size() - 5);
        ASSERT_TRUE(s->finish_file());
    }
    // Back to how the crash left it.
    fs::rename(final_path, final_path + ".part");
    fs::rename(final_path + ".idx", final_path + ".part.idx");
    Recorder events;
    events.found = {{fs::path(final_path).filename().string() + ".part",
                     {7, 1},
                     index::Compression::None,
                     true}};
    fx.set.files = &events;
    auto s = fx.open();
    EXPECT_TRUE(fs::exists(final_path));
    EXPECT_TRUE(fs::exists(final_path + ".idx"));
    EXPECT_FALSE(fs::exists(final_path + ".part"));
    ASSERT_EQ(events.finished_paths.size(), 1u);
    EXPECT_EQ(events.finished_paths[0], fs::path(final_path).filename().string());
    EXPECT_EQ(read_pcapng(final_path).packets, std::vector<Packet>(pk.begin(), pk.begin() + 10));
}

// A collector before NAME.part wrote the current file under its final name:
// a start cuts it back and finishes it where it is.
TEST(StreamLifecycle, TheCurrentFileOfAnEarlierCollectorIsCutAndFinishedInPlace) {
    Fixture fx;
    const auto pk = packets(30, 35);
    const auto fr = make_frames(7, pk, 10);
    std::string final_path;
    uint64_t committed = 0;
    {
        auto s = fx.open();
        s->on_hello(fx.hello(1, 0));
        ASSERT_EQ(fx.add(*s, fr.frames[0]), FrameOutcome::Written);
        ASSERT_TRUE(s->commit());
        const std::string part = s->current_path();
        committed = fs::file_size(part);
        s->close_file();
        final_path = part.substr(0, part.size() - 5);
        fs::rename(part, final_path);
        fs::rename(part + ".idx", final_path + ".idx");
        std::ofstream(final_path, std::ios::binary | std::ios::app) << "torn";
    }
    auto s = fx.open();
    EXPECT_EQ(fs::file_size(final_path), committed);
    EXPECT_EQ(s->current_path(), "");
    const auto ix = index::load_index(final_path + ".idx", nullptr);
    ASSERT_TRUE(ix && ix->finish);
    EXPECT_EQ(read_pcapng(final_path).packets, std::vector<Packet>(pk.begin(), pk.begin() + 10));
}

TEST(StreamLifecycle, ATemplateNamesFilesAndDirectoriesAndRecoveryFindsThem) {
    Fixture fx(Compression::None, 16 * 1024);
    std::string why;
    auto t = index::FileTemplate::parse("s{stream}/%Y/%m/cap %H%M%S #{n}", &why);
    ASSERT_TRUE(t) << why;
    fx.set.names = *t;
    const auto pk = packets(400, 36);
    const auto fr = make_frames(7, pk, 10);
    uint64_t opened = 0;
    {
        auto s = fx.open();
        s->on_hello(fx.hello(1, 0));
        for (std::size_t i = 0; i < 20; ++i) {
            ASSERT_EQ(fx.add(*s, fr.frames[i]), FrameOutcome::Written);
            ASSERT_TRUE(s->commit());
        }
        opened = s->files_opened();
        // Killed.
    }
    ASSERT_GE(opened, 2u);
    std::vector<std::string> data;
    for (const auto& p : fx.tree()) {
        EXPECT_EQ(p.rfind("s7/", 0), 0u) << p;
        const auto d = index::split_data_name(p);
        if (!d) continue;
        const auto id = t->match(d->stem);
        ASSERT_TRUE(id) << p;
        EXPECT_EQ(id->stream, 7u);
        data.push_back(p);
    }
    EXPECT_EQ(data.size(), opened);
    // A rotation begun but not recorded, in the template's directories.
    const uint64_t now = session::wall_ns();
    const std::string orphan = t->format(7, opened + 1, now) + ".pcapng.part";
    fs::create_directories((fx.dir.path() / orphan).parent_path());
    std::ofstream(fx.dir.path() / orphan) << "SHB only";
    auto s = fx.open();  // finds its files itself (no FileEvents)
    EXPECT_FALSE(fs::exists(fx.dir.path() / orphan));
    s->on_hello(fx.hello(1, 20));
    for (std::size_t i = 20; i < fr.frames.size(); ++i) {
        ASSERT_EQ(fx.add(*s, fr.frames[i]), FrameOutcome::Written);
        ASSERT_TRUE(s->commit());
    }
    ASSERT_TRUE(s->finish_file());
    // In number order, every packet once.
    std::vector<std::pair<uint64_t, std::string>> files;
    for (const auto& p : fx.tree())
        if (const auto d = index::split_data_name(p)) {
            EXPECT_FALSE(d->part) << p;
            files.emplace_back(t->match(d->stem)->n, p);
        }
    std::sort(files.begin(), files.end());
    std::vector<Packet> all;
    for (const auto& [n, p] : files) {
        const auto f = read_pcapng(fx.dir.path() / p);
        all.insert(all.end(), f.packets.begin(), f.packets.end());
    }
    EXPECT_EQ(all, pk);
    EXPECT_EQ(files.back().first, s->saved().file_index);
}

TEST(StreamLifecycle, IndexFilesGetTheCaptureFilesMode) {
    const mode_t old = ::umask(077);
    Fixture fx;
    fx.set.file_mode = 0640;
    auto s = fx.open();
    s->on_hello(fx.hello(1, 0));
    const auto fr = make_frames(7, packets(10, 37), 10);
    ASSERT_EQ(fx.add(*s, fr.frames[0]), FrameOutcome::Written);
    ASSERT_TRUE(s->commit());
    ::umask(old);
    struct stat st {};
    ASSERT_EQ(::stat(index::index_path(s->current_path()).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0640u);
}

// A collector group's stream (its commits confirmed by the group): a file
// finished stays finished across restarts (what undoing the last commit
// would restore does not outlive the file), and the next file begins only
// once what came before is confirmed.
TEST(StreamLifecycle, AGroupStreamsFinishedFileStaysFinishedAndTheNextWaitsForConfirmation) {
    Fixture fx;
    const auto pk = packets(40, 38);
    const auto fr = make_frames(7, pk, 10);
    std::string part;
    {
        auto s = fx.open();
        s->set_group_commits(true);
        session::Hello h = fx.hello(5, 0);
        h.authoritative = true;
        s->on_hello(h);
        for (int i = 0; i < 2; ++i) {
            ASSERT_EQ(fx.add(*s, fr.frames[i]), FrameOutcome::Written);
            ASSERT_TRUE(s->commit());
            ASSERT_TRUE(s->confirm_commit());
        }
        part = s->current_path();
    }
    for (int restart = 0; restart < 2; ++restart) {
        auto s = fx.open();
        EXPECT_EQ(s->current_path(), "");
        EXPECT_EQ(std::count_if(fx.log.begin(), fx.log.end(),
                                [](const std::string& l) {
                                    return l.find("left by the previous run") != std::string::npos;
                                }),
                  restart == 0 ? 1 : 0)
            << "finished once, at the first start";
    }
    const std::string final_path = part.substr(0, part.size() - 5);
    ASSERT_TRUE(fs::exists(final_path));
    auto s = fx.open();
    s->set_group_commits(true);
    session::Hello h = fx.hello(5, 2);
    h.authoritative = true;
    s->on_hello(h);
    // A commit the group has not confirmed: the next file waits for it.
    ASSERT_EQ(fx.add(*s, fr.frames[2]), FrameOutcome::Written);
    ASSERT_TRUE(s->commit());
    ASSERT_TRUE(s->pending());
    EXPECT_EQ(fx.add(*s, fr.frames[3]), FrameOutcome::Written) << "the file goes on";
    ASSERT_TRUE(s->commit());
    ASSERT_TRUE(s->confirm_commit());
    ASSERT_TRUE(s->finish_file());
    // The stream holds the frame's bytes until the commit: they outlive it.
    const auto next_file = make_frames(7, packets(10, 39), 10, wire::Codec::None, 4);
    EXPECT_EQ(fx.add(*s, next_file.frames[0]), FrameOutcome::Written);
    s->set_source_position(9);
    ASSERT_TRUE(s->commit());
    ASSERT_TRUE(s->pending());
    ASSERT_TRUE(s->finish_file());
    EXPECT_NE(s->current_path(), "") << "a pending commit keeps its file current";
    const std::string undone = s->current_path();
    ASSERT_TRUE(s->undo_commit()) << s->last_error();
    EXPECT_EQ(s->saved().next_sequence, 4u);
    ASSERT_TRUE(s->finish_file());
    EXPECT_EQ(s->current_path(), "");
    // The undone commit was the file's only one: an empty file is not
    // published, it goes.
    EXPECT_FALSE(fs::exists(undone));
    EXPECT_FALSE(fs::exists(undone.substr(0, undone.size() - 5)));
    // After a finish, a frame while nothing is pending opens the next file.
    const auto again = make_frames(7, packets(10, 39), 10, wire::Codec::None, 4);
    EXPECT_EQ(fx.add(*s, again.frames[0]), FrameOutcome::Written);
}

// What a sender reports of (port 0, queues 0 and 1): counters only, no packet.
std::vector<std::byte> statistics_frame(uint64_t sequence, uint64_t received) {
    const uint32_t max = 1u << 20;
    wire::FrameBuilder b({max, 65535});
    wire::FrameEncoder enc(
        {.codec = wire::Codec::None, .min_compress_bytes = 0, .max_raw_frame_bytes = max});
    std::vector<std::byte> raw(max), out(wire::FrameEncoder::max_sealed_size(max));
    b.begin(raw, 7, sequence, 0);
    for (uint16_t q = 0; q < 2; ++q) {
        wire::InterfaceStatistics st;
        st.queue = q;
        st.start_ns = 1700000000ull * kSecond;
        st.time_ns = st.start_ns + kSecond;
        st.received = st.accepted = st.delivered = received;
        st.dropped = 1;
        EXPECT_EQ(b.append_statistics(st), wire::AppendResult::Appended);
    }
    auto sealed = enc.seal(b.finish(), out);
    EXPECT_TRUE(sealed.ok());
    return {sealed->frame.begin(), sealed->frame.end()};
}

// A file's interfaces' latest counters end it when its period ends: in
// NAME.part, before it gets its final name, whether its sender is there or
// not; in a collector group only once the group confirmed that commit.
TEST(StreamLifecycle, ATimedFileEndsWithItsInterfacesStatisticsBeforeItsRename) {
    const auto pk = packets(40, 41);
    const auto fr = make_frames(7, pk, 10, wire::Codec::None, 1);
    for (const char* how : {"connected", "its sender went away", "a group member"}) {
        SCOPED_TRACE(how);
        const bool group = how[0] == 'a';
        Fixture fx;
        fx.set.rotate_ns = 300 * kSecond;
        auto s = fx.open();
        s->set_group_commits(group);
        session::Hello h = fx.hello(1, 0);
        h.authoritative = group;
        s->on_hello(h);
        ASSERT_EQ(fx.add(*s, statistics_frame(0, 1000)), FrameOutcome::Written);
        if (group) {  // a group's file begins once what came before is confirmed
            ASSERT_TRUE(s->commit());
            ASSERT_TRUE(s->confirm_commit());
        }
        ASSERT_EQ(fx.add(*s, fr.frames[0]), FrameOutcome::Written);
        ASSERT_TRUE(s->commit());
        if (group) {
            ASSERT_TRUE(s->confirm_commit());
        }
        if (how[0] == 'i') s->close_file();
        const std::string part = s->current_path();
        EXPECT_EQ(read_pcapng(part).statistics, 0u) << "counters are only remembered before";
        const uint64_t due = rotation_due(s->saved().file_created_ns, fx.set.rotate_ns);
        ASSERT_TRUE(s->maybe_rotate_by_time(due)) << s->last_error();
        if (group) {
            EXPECT_EQ(s->current_path(), part) << "its last commit waits for the group";
            ASSERT_TRUE(s->pending());
            ASSERT_TRUE(s->confirm_commit());
            ASSERT_TRUE(s->maybe_rotate_by_time(due)) << s->last_error();
        }
        EXPECT_EQ(s->current_path(), "");
        const std::string final_path = part.substr(0, part.size() - 5);
        ASSERT_TRUE(fs::exists(final_path));
        const auto p = read_pcapng(final_path);
        EXPECT_EQ(p.packets.size(), 10u);
        ASSERT_FALSE(p.interfaces.empty());
        EXPECT_EQ(p.statistics, p.interfaces.size()) << "exactly one per interface";
        const auto ix = index::load_index(index::index_path(final_path), nullptr);
        ASSERT_TRUE(ix && ix->finish);
    }
}

// A size rotation in a group: the file's statistics go into a commit of
// their own, which the group confirms before the file is finished.
TEST(StreamLifecycle, AGroupsRotationCommitsTheFilesStatisticsFirst) {
    Fixture fx(Compression::None, 4096);
    const auto pk = packets(40, 42);
    const auto fr = make_frames(7, pk, 10, wire::Codec::None, 1);
    auto s = fx.open();
    s->set_group_commits(true);
    session::Hello h = fx.hello(1, 0);
    h.authoritative = true;
    s->on_hello(h);
    ASSERT_EQ(fx.add(*s, statistics_frame(0, 1000)), FrameOutcome::Written);
    ASSERT_TRUE(s->commit());
    ASSERT_TRUE(s->confirm_commit());
    ASSERT_EQ(fx.add(*s, fr.frames[0]), FrameOutcome::Written);
    ASSERT_TRUE(s->commit());
    ASSERT_TRUE(s->confirm_commit());
    const std::string part = s->current_path();
    ASSERT_EQ(fx.add(*s, fr.frames[1]), FrameOutcome::CommitFirst);
    EXPECT_EQ(s->current_path(), part);
    ASSERT_TRUE(s->commit());
    ASSERT_TRUE(s->pending());
    ASSERT_TRUE(s->confirm_commit());
    ASSERT_EQ(fx.add(*s, fr.frames[1]), FrameOutcome::Written) << "offered again, it goes on";
    ASSERT_TRUE(s->commit());
    EXPECT_NE(s->current_path(), part);
    const std::string final_path = part.substr(0, part.size() - 5);
    ASSERT_TRUE(fs::exists(final_path));
    const auto p = read_pcapng(final_path);
    EXPECT_EQ(p.packets.size(), 10u);
    EXPECT_EQ(p.statistics, p.interfaces.size()) << "exactly one per interface";
    EXPECT_EQ(read_pcapng(s->current_path()).statistics, 0u);
}

}  // namespace
}  // namespace sluice::collector
