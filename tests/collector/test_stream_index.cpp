// The index beside each file (docs/query.md) as Stream keeps it: complete
// after every close, finished at rotation, rolled back with a failed batch,
// caught up after a crash, removed with its file, absent with --no-index.
#include <csignal>

#include "collector_testing.hpp"
#include <gtest/gtest.h>
#include <sys/resource.h>

#include "sluice/collector/files.hpp"
#include "sluice/index/format.hpp"

namespace sluice::collector {
namespace {

using namespace testing;

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
        h.position.known = true;
        h.position.sequence = position;
        return h;
    }
    TempDir dir;
    StreamSettings set;
    ZstdCompressor zstd{3};
    Workspace ws;
    wire::FrameReader reader;
    std::vector<std::byte> scratch = std::vector<std::byte>(1 << 20);
    std::vector<std::string> log;
};

struct IndexSummary {
    bool present = false, finished = false;
    uint64_t covered_end = 0, packets = 0;
};

IndexSummary summary(const fs::path& data) {
    IndexSummary r;
    const auto ix = index::load_index(index::index_path(data.string()), nullptr);
    if (!ix) return r;
    r.present = true;
    r.finished = ix->finish.has_value();
    r.covered_end = ix->covered_end;
    for (const auto& b : ix->blocks)
        r.packets += b.packets;
    return r;
}

class StreamIndex : public ::testing::TestWithParam<Compression> {};

TEST_P(StreamIndex, EveryFileHasAnIndexFinishedAtRotation) {
    Fixture fx(GetParam(), 64 * 1024);
    const auto pk = packets(3000, 21, 2, 2);
    const auto fr = make_frames(7, pk, 20);
    {
        auto s = fx.open();
        s->on_hello(fx.hello(1, 0));
        for (std::size_t i = 0; i < fr.frames.size(); ++i) {
            fx.add(*s, fr.frames[i]);
            if (i % 3 == 2) {
                ASSERT_TRUE(s->commit());
            }
        }
        ASSERT_TRUE(s->commit());
        s->close_file();
    }
    const auto files = stream_files(fx.dir.path(), 7);
    ASSERT_GE(files.size(), 5u);
    uint64_t packets = 0;
    for (std::size_t i = 0; i < files.size(); ++i) {
        const IndexSummary x = summary(files[i]);
        ASSERT_TRUE(x.present) << files[i];
        EXPECT_EQ(x.finished, i + 1 < files.size()) << files[i];
        EXPECT_EQ(x.covered_end, fs::file_size(files[i])) << files[i];
        EXPECT_EQ(x.packets, read_pcapng(files[i]).packets.size()) << files[i];
        packets += x.packets;
    }
    EXPECT_EQ(packets, pk.size());
}

TEST_P(StreamIndex, ACrashLeavesTheIndexBehindAndRecoveryCatchesUp) {
    Fixture fx(GetParam());
    const auto pk = packets(400, 22, 1, 2);
    const auto fr = make_frames(7, pk, 50);
    std::string part;
    {
        auto s = fx.open();
        s->on_hello(fx.hello(1, 0));
        for (int i = 0; i < 5; ++i) {
            fx.add(*s, fr.frames[i]);
            ASSERT_TRUE(s->commit());
        }
        part = s->current_path();
        // Killed: the open block was only in memory.
    }
    auto s = fx.open();
    // Caught up, then finished: the file of the previous run is complete.
    const fs::path file = part.substr(0, part.size() - 5);
    IndexSummary x = summary(file);
    EXPECT_TRUE(x.finished);
    EXPECT_EQ(x.covered_end, fs::file_size(file));
    EXPECT_EQ(x.packets, 250u);
    s->on_hello(fx.hello(1, 5));
    for (int i = 5; i < 8; ++i)
        fx.add(*s, fr.frames[i]);
    ASSERT_TRUE(s->commit());
    s->close_file();
    const fs::path next = s->current_path();
    x = summary(next);
    EXPECT_EQ(x.covered_end, fs::file_size(next));
    EXPECT_EQ(x.packets, 150u);
}

TEST_P(StreamIndex, AFailedWriteRollsTheIndexBackWithTheBatch) {
    Fixture fx(GetParam());
    const auto pk = packets(60, 23);
    const auto fr = make_frames(7, pk, 10);
    auto s = fx.open();
    s->on_hello(fx.hello(1, 0));
    for (int i = 0; i < 4; ++i)
        fx.add(*s, fr.frames[i]);
    ASSERT_TRUE(s->commit());
    const auto size = fs::file_size(s->current_path());
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit old{};
    ::getrlimit(RLIMIT_FSIZE, &old);
    rlimit lim{static_cast<rlim_t>(size + 100), old.rlim_max};
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &lim), 0);
    fx.add(*s, fr.frames[4]);
    const bool ok = s->commit();
    ::setrlimit(RLIMIT_FSIZE, &old);
    ASSERT_FALSE(ok);
    // The replay: each packet once in the index, as in the file.
    fx.add(*s, fr.frames[4]);
    fx.add(*s, fr.frames[5]);
    ASSERT_TRUE(s->commit());
    s->close_file();
    const IndexSummary x = summary(s->current_path());
    EXPECT_EQ(x.packets, 60u);
    EXPECT_EQ(x.covered_end, fs::file_size(s->current_path()));
}

TEST_P(StreamIndex, KeepRemovesIndexesWithTheirFiles) {
    Fixture fx(GetParam(), 16 * 1024);
    FileCounters k;
    FileStore store(fx.set.dir, {index::FileTemplate()}, {.keep_files = 2}, k);
    fx.set.files = &store;
    const auto fr = make_frames(7, packets(600, 24), 10);
    auto s = fx.open();
    s->on_hello(fx.hello(1, 0));
    for (const auto& f : fr.frames) {
        fx.add(*s, f);
        ASSERT_TRUE(s->commit());
    }
    std::size_t indexes = 0;
    for (const auto& e : fs::directory_iterator(fx.dir.path()))
        indexes += e.path().extension() == ".idx";
    EXPECT_EQ(stream_files(fx.dir.path(), 7).size(), 2u);
    EXPECT_EQ(indexes, 2u);
}

TEST_P(StreamIndex, NoIndexWritesNone) {
    Fixture fx(GetParam(), 16 * 1024);
    fx.set.index = false;
    const auto fr = make_frames(7, packets(300, 25), 10);
    auto s = fx.open();
    s->on_hello(fx.hello(1, 0));
    for (const auto& f : fr.frames) {
        fx.add(*s, f);
        ASSERT_TRUE(s->commit());
    }
    s->close_file();
    for (const auto& e : fs::directory_iterator(fx.dir.path()))
        EXPECT_NE(e.path().extension(), ".idx") << e.path();
}

INSTANTIATE_TEST_SUITE_P(Compression, StreamIndex,
                         ::testing::Values(Compression::None, Compression::Zstd),
                         [](const auto& i) {
                             return i.param == Compression::Zstd ? "zstd" : "plain";
                         });

}  // namespace
}  // namespace sluice::collector
