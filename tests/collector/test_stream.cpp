// Stream: frames to pcapng, sequencing (duplicates, gaps, sessions), the
// state file, rotation, and recovery after a crash at every point of a
// commit: data written but no state saved, a torn state slot, a rotation
// begun but not recorded, files removed behind the collector's back.
#include <csignal>
#include <set>

#include "collector_testing.hpp"
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include "sluice/collector/files.hpp"
#include "sluice/collector/state.hpp"

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
    // A fresh Stream object on the same directory: what a restarted
    // collector builds (the previous one may have been killed anywhere).
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
    session::Hello hello(uint64_t session, std::optional<uint64_t> position = std::nullopt) {
        session::Hello h;
        h.session_id = session;
        // As a listener passes it once the sender proved the session's
        // secret (for a session the stream does not hold, a new one starts).
        h.resume = true;
        h.secret[0] = std::byte{static_cast<uint8_t>(session)};
        if (position) {
            h.position.known = true;
            h.position.sequence = *position;
        }
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

TEST(Stream, FramesBecomeExactPcapngWithOneInterfacePerPortAndQueue) {
    Fixture fx;
    const auto pk = packets(500, 1, 2, 3);
    const auto fr = make_frames(7, pk, 64);
    auto s = fx.open();
    ASSERT_TRUE(s->on_hello(fx.hello(11, 0)));
    for (const auto& f : fr.frames)
        EXPECT_EQ(fx.add(*s, f), FrameOutcome::Written);
    ASSERT_TRUE(s->commit());
    EXPECT_EQ(s->acknowledged(), fr.frames.size());
    const auto files = stream_files(fx.dir.path(), 7);
    ASSERT_EQ(files.size(), 1u);
    const Pcapng p = read_pcapng(files[0]);
    EXPECT_EQ(p.user_application, "sluice-collector test");
    EXPECT_EQ(p.comment, "sluice stream 7");
    EXPECT_EQ(p.packets, pk);
    EXPECT_EQ(p.interfaces.size(), 6u);
    for (const auto& i : p.interfaces) {
        EXPECT_EQ(i.tsresol, 9);
        EXPECT_EQ(i.link_type, pcapng::kLinkTypeEthernet);
        EXPECT_NE(i.description.find("sluice stream 7 port "), std::string::npos);
    }
    EXPECT_EQ(s->run().packets_written, 500u);
    EXPECT_EQ(s->saved().file_offset, fs::file_size(files[0]));
}

TEST(Stream, DuplicatesAreDiscardedAndGapsCounted) {
    Fixture fx;
    const auto pk = packets(60, 2);
    const auto fr = make_frames(7, pk, 10);  // 6 frames, 10 packets each
    auto s = fx.open();
    s->on_hello(fx.hello(1, 0));
    EXPECT_EQ(fx.add(*s, fr.frames[0]), FrameOutcome::Written);
    EXPECT_EQ(fx.add(*s, fr.frames[1]), FrameOutcome::Written);
    EXPECT_EQ(fx.add(*s, fr.frames[1]), FrameOutcome::Duplicate);
    EXPECT_EQ(fx.add(*s, fr.frames[0]), FrameOutcome::Duplicate);
    EXPECT_EQ(fx.add(*s, fr.frames[4]), FrameOutcome::Gap);  // 2 and 3 never come
    EXPECT_EQ(s->last_gap_frames(), 2u);
    EXPECT_EQ(s->last_gap_packets(), 20u);
    EXPECT_EQ(fx.add(*s, fr.frames[3]), FrameOutcome::Duplicate) << "too late: counted lost";
    EXPECT_EQ(fx.add(*s, fr.frames[5]), FrameOutcome::Written);
    ASSERT_TRUE(s->commit());
    const auto& t = s->saved().totals;
    EXPECT_EQ(t.frames_written, 4u);
    EXPECT_EQ(t.packets_written, 40u);
    EXPECT_EQ(t.frames_duplicate, 3u);
    EXPECT_EQ(t.frames_lost, 2u);
    EXPECT_EQ(t.packets_lost, 20u);
    EXPECT_EQ(t.gaps, 1u);
    EXPECT_EQ(s->acknowledged(), 6u);
    std::vector<Packet> want(pk.begin(), pk.begin() + 20);
    want.insert(want.end(), pk.begin() + 40, pk.end());
    EXPECT_EQ(read_stream(fx.dir.path(), 7), want);
}

// A sender ends its stream with a frame of no packets that carries the next
// sequence and packet index, so packets it dropped after its last delivered
// frame show as a gap. Such a frame writes no bytes, but the gap and the new
// position must be saved before they are acknowledged: a restarted collector
// (and the resume point it gives) must agree with what was acknowledged.
TEST(Stream, AFrameWithoutPacketsClosingAGapIsSaved) {
    Fixture fx;
    const auto pk = packets(30, 4);
    const auto fr = make_frames(7, pk, 10);  // sequences 0, 1, 2
    auto s = fx.open();
    s->on_hello(fx.hello(1, 0));
    EXPECT_EQ(fx.add(*s, fr.frames[0]), FrameOutcome::Written);
    ASSERT_TRUE(s->commit());
    // Frames 1 and 2 (20 packets) were dropped by the sender; then the end marker.
    std::vector<std::byte> raw(1 << 16), out(wire::FrameEncoder::max_sealed_size(1 << 16));
    wire::FrameBuilder b({1 << 16, 1500});
    b.begin(raw, 7, 3, 30);
    wire::FrameEncoder enc({.codec = wire::Codec::None, .max_raw_frame_bytes = 1 << 16});
    auto sealed = enc.seal(b.finish(), out);
    ASSERT_TRUE(sealed.ok());
    const std::vector<std::byte> marker(sealed->frame.begin(), sealed->frame.end());
    EXPECT_EQ(fx.add(*s, marker), FrameOutcome::Gap);
    ASSERT_TRUE(s->commit());
    EXPECT_EQ(s->acknowledged(), 4u);
    EXPECT_EQ(s->saved().totals.frames_lost, 2u);
    EXPECT_EQ(s->saved().totals.packets_lost, 20u);
    // What a collector restarted now would know and offer.
    s.reset();
    auto again = fx.open();
    EXPECT_EQ(again->saved().next_sequence, 4u);
    EXPECT_EQ(again->saved().totals.packets_lost, 20u);
    auto v = again->on_hello(fx.hello(1, 0));
    ASSERT_TRUE(v);
    EXPECT_EQ(v->resume_sequence, 4u);
}

TEST(Stream, OnlyAProvenResumeContinuesASessionAndItsSecretSurvivesARestart) {
    Fixture fx;
    const auto fr = make_frames(7, packets(30, 3), 10);
    {
        auto s = fx.open();
        EXPECT_FALSE(s->resume_ticket(1)) << "no session yet";
        session::Hello h = fx.hello(1, 0);
        h.resume = false;  // a new sender
        h.secret[5] = std::byte{0x5e};
        h.key_name.set("rack1");
        ASSERT_TRUE(s->on_hello(h));
        fx.add(*s, fr.frames[0]);
        fx.add(*s, fr.frames[1]);
        ASSERT_TRUE(s->commit());
        const auto t = s->resume_ticket(1);
        ASSERT_TRUE(t);
        EXPECT_EQ(t->secret, h.secret);
        EXPECT_EQ(t->key_name.view(), "rack1");
        EXPECT_FALSE(s->resume_ticket(2)) << "only the stream's current session";
    }
    // A restarted collector still knows what the sender must prove.
    auto s = fx.open();
    const auto t = s->resume_ticket(1);
    ASSERT_TRUE(t);
    EXPECT_EQ(t->secret[5], std::byte{0x5e});
    EXPECT_EQ(t->key_name.view(), "rack1");
    // Someone who saw the session id in clear but proved nothing more: a
    // hello without `resume` is a new session, whatever id it names, and
    // its frames never make the real sender's look like duplicates.
    session::Hello forged = fx.hello(1, 100);
    forged.resume = false;
    forged.secret[0] = std::byte{0xee};
    auto v = s->on_hello(forged);
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->new_session);
    EXPECT_EQ(v->resume_sequence, 100u);
    EXPECT_EQ(s->resume_ticket(1)->secret[0], std::byte{0xee}) << "the new session's secret";
}

TEST(Stream, SessionsDecideWhereToResume) {
    Fixture fx;
    const auto fr = make_frames(7, packets(30, 3), 10);
    auto s = fx.open();
    auto v = s->on_hello(fx.hello(1, 0));
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->new_session);
    EXPECT_FALSE(v->had_session);
    EXPECT_EQ(v->resume_sequence, 0u);
    fx.add(*s, fr.frames[0]);
    fx.add(*s, fr.frames[1]);
    s->commit();
    // The same sender reconnects: resume after what is written.
    v = s->on_hello(fx.hello(1, 1));
    EXPECT_FALSE(v->new_session);
    EXPECT_EQ(v->resume_sequence, 2u);
    // A restarted sender (new session) numbering from 0 again is believed.
    v = s->on_hello(fx.hello(2, 0));
    EXPECT_TRUE(v->new_session);
    EXPECT_TRUE(v->had_session);
    EXPECT_EQ(v->previous_next_sequence, 2u);
    EXPECT_EQ(v->resume_sequence, 0u);
    EXPECT_EQ(fx.add(*s, fr.frames[0]), FrameOutcome::Written) << "not a duplicate: a new session";
    // A new session with no frames yet: the first frame sets the position.
    v = s->on_hello(fx.hello(3));
    EXPECT_EQ(v->resume_sequence, 0u);
    EXPECT_EQ(fx.add(*s, fr.frames[2]), FrameOutcome::Written);
    EXPECT_EQ(s->acknowledged(), 0u) << "nothing acknowledged before a commit";
    ASSERT_TRUE(s->commit());
    EXPECT_EQ(s->acknowledged(), 3u);
}

// A crash after the data was written but before the state was saved: the
// bytes after the saved offset are cut, and the replay writes them again.
TEST(Stream, RecoveryCutsWhatWasWrittenAfterTheLastCommit) {
    for (Compression c : {Compression::None, Compression::Zstd}) {
        SCOPED_TRACE(c == Compression::Zstd ? "zstd" : "plain");
        Fixture fx(c);
        const auto pk = packets(300, 4, 1, 4);
        const auto fr = make_frames(7, pk, 50);  // 6 frames
        {
            auto s = fx.open();
            s->on_hello(fx.hello(9, 0));
            for (int i = 0; i < 3; ++i)
                fx.add(*s, fr.frames[i]);
            ASSERT_TRUE(s->commit());
            // Frames 3 and 4 reach the file, the process dies before the state.
            fx.add(*s, fr.frames[3]);
            fx.add(*s, fr.frames[4]);
            const auto path = s->current_path();
            std::ofstream(path, std::ios::binary | std::ios::app)
                << std::string(fx.ws.batch.size(), 'x');
            fx.ws.batch.clear();
        }
        auto s = fx.open();
        // The cut, the index catching up with the committed frames its
        // open block held only in memory, and the file finished.
        ASSERT_EQ(fx.log.size(), 3u);
        EXPECT_NE(fx.log[0].find("cut "), std::string::npos) << fx.log[0];
        EXPECT_NE(fx.log[0].find("resends those frames from sequence 3"), std::string::npos);
        EXPECT_NE(fx.log[1].find("(150 packets)"), std::string::npos) << fx.log[1];
        EXPECT_NE(fx.log[2].find("left by the previous run"), std::string::npos) << fx.log[2];
        EXPECT_EQ(s->current_path(), "");
        auto v = s->on_hello(fx.hello(9, 3));
        EXPECT_EQ(v->resume_sequence, 3u);
        for (int i = 3; i < 6; ++i)
            EXPECT_EQ(fx.add(*s, fr.frames[i]), FrameOutcome::Written);
        ASSERT_TRUE(s->commit());
        EXPECT_EQ(read_stream(fx.dir.path(), 7), pk);
        EXPECT_EQ(s->saved().totals.packets_written, 300u);
        EXPECT_EQ(s->run().packets_written, 150u);
    }
}

// A crash between the state save and the ACK: the sender replays frames the
// collector already wrote; they are duplicates.
TEST(Stream, ReplayOfWrittenButUnacknowledgedFramesIsDiscarded) {
    Fixture fx;
    const auto pk = packets(40, 5);
    const auto fr = make_frames(7, pk, 10);
    {
        auto s = fx.open();
        s->on_hello(fx.hello(9, 0));
        fx.add(*s, fr.frames[0]);
        fx.add(*s, fr.frames[1]);
        ASSERT_TRUE(s->commit());
    }
    auto s = fx.open();
    auto v = s->on_hello(fx.hello(9, 0));  // the sender never saw the ACK
    EXPECT_EQ(v->resume_sequence, 2u);
    EXPECT_EQ(fx.add(*s, fr.frames[1]), FrameOutcome::Duplicate);  // a replay in flight
    EXPECT_EQ(fx.add(*s, fr.frames[2]), FrameOutcome::Written);
    EXPECT_EQ(fx.add(*s, fr.frames[3]), FrameOutcome::Written);
    ASSERT_TRUE(s->commit());
    EXPECT_EQ(read_stream(fx.dir.path(), 7), pk);
}

TEST(Stream, RotationKeepsEveryFrameInOneFileAndFilesUnderTheLimit) {
    Fixture fx(Compression::None, 64 * 1024);
    const auto pk = packets(2000, 6, 2, 2);
    const auto fr = make_frames(7, pk, 20);
    auto s = fx.open();
    s->on_hello(fx.hello(1, 0));
    for (std::size_t i = 0; i < fr.frames.size(); ++i) {
        fx.add(*s, fr.frames[i]);
        if (i % 5 == 4) {
            ASSERT_TRUE(s->commit());
        }
    }
    ASSERT_TRUE(s->commit());
    const auto files = stream_files(fx.dir.path(), 7);
    ASSERT_GE(files.size(), 10u);
    std::vector<Packet> all;
    for (const auto& f : files) {
        EXPECT_LE(fs::file_size(f), 64u * 1024) << f;
        const auto p = read_pcapng(f);
        EXPECT_EQ(p.packets.size() % 20, 0u) << "whole frames per file";
        all.insert(all.end(), p.packets.begin(), p.packets.end());
    }
    EXPECT_EQ(all, pk);
    EXPECT_EQ(s->files_opened(), files.size());
    EXPECT_EQ(s->current_path(), files.back().string());
}

// Packets each on its own (port, queue): port i / 1000, queue i % 1000.
std::vector<Packet> one_interface_each(std::size_t n, uint64_t seed) {
    auto pk = packets(n, seed, 1, 1);
    for (std::size_t i = 0; i < pk.size(); ++i) {
        pk[i].port = static_cast<uint16_t>(i / 1000);
        pk[i].queue = static_cast<uint16_t>(i % 1000);
        pk[i].data.resize(60);
        pk[i].orig_len = 60;
    }
    return pk;
}

TEST(Stream, AFrameNamingMoreInterfacesThanAFileHoldsIsRefusedAndNothingKept) {
    // A peer chooses (port, queue) freely: 3000 of them in one frame used to
    // write past the interface table.
    Fixture fx;
    const auto good = packets(50, 3, 2, 2);
    const auto bad = one_interface_each(3000, 4);
    auto s = fx.open();
    ASSERT_TRUE(s->on_hello(fx.hello(1, 0)));
    const auto f0 = make_frames(7, good, 50, wire::Codec::None, 0);
    const auto f1 = make_frames(7, bad, 3000, wire::Codec::None, 1);
    EXPECT_EQ(fx.add(*s, f0.frames[0]), FrameOutcome::Written);
    EXPECT_EQ(fx.add(*s, f1.frames[0]), FrameOutcome::TooManyInterfaces);
    ASSERT_TRUE(s->commit());
    EXPECT_EQ(s->acknowledged(), 1u) << "the refused frame is not acknowledged";
    EXPECT_EQ(read_stream(fx.dir.path(), 7), good);
    // The stream goes on: the next good frame lands after the first.
    const auto f2 = make_frames(7, good, 50, wire::Codec::None, 1);
    EXPECT_EQ(fx.add(*s, f2.frames[0]), FrameOutcome::Written);
    ASSERT_TRUE(s->commit());
    const auto all = read_stream(fx.dir.path(), 7);
    ASSERT_EQ(all.size(), 100u);
    EXPECT_EQ(read_pcapng(stream_files(fx.dir.path(), 7)[0]).interfaces.size(), 4u);
}

TEST(Stream, AFrameOfExactlyAFileOfInterfacesStartsANewFile) {
    Fixture fx;
    auto first = packets(10, 5, 1, 3);  // 3 interfaces in the first file, on port 9
    for (auto& p : first)
        p.port = 9;
    const auto many = one_interface_each(StreamState::kMaxInterfaces, 6);
    // The batch points into the frames until commit(): keep them.
    const auto f0 = make_frames(7, first, 10, wire::Codec::None, 0);
    const auto f1 = make_frames(7, many, many.size(), wire::Codec::None, 1);
    auto s = fx.open();
    ASSERT_TRUE(s->on_hello(fx.hello(1, 0)));
    EXPECT_EQ(fx.add(*s, f0.frames[0]), FrameOutcome::Written);
    EXPECT_EQ(fx.add(*s, f1.frames[0]), FrameOutcome::Written);
    ASSERT_TRUE(s->commit());
    const auto files = stream_files(fx.dir.path(), 7);
    ASSERT_EQ(files.size(), 2u);
    const auto a = read_pcapng(files[0]), b = read_pcapng(files[1]);
    EXPECT_EQ(a.packets, first);
    EXPECT_EQ(b.packets, many);
    EXPECT_EQ(b.interfaces.size(), StreamState::kMaxInterfaces);
    // The same interfaces again: found in the table, no new file, no new IDB.
    const auto again = one_interface_each(StreamState::kMaxInterfaces, 7);
    const auto f2 = make_frames(7, again, again.size(), wire::Codec::None, 2);
    EXPECT_EQ(fx.add(*s, f2.frames[0]), FrameOutcome::Written);
    ASSERT_TRUE(s->commit());
    ASSERT_EQ(stream_files(fx.dir.path(), 7).size(), 2u);
    EXPECT_EQ(read_pcapng(files[1]).interfaces.size(), StreamState::kMaxInterfaces);
    EXPECT_EQ(read_pcapng(files[1]).packets.size(), 2 * StreamState::kMaxInterfaces);
}

// Each file describes each of its interfaces once: across a reconnect (the
// file goes on, its table rebuilt from the state) and a restart (the file is
// finished; the next one describes its interfaces anew).
TEST(Stream, EachFileDescribesEachInterfaceOnceAcrossReconnectsAndRestarts) {
    Fixture fx;
    const auto pk = packets(300, 8, 4, 4);
    const auto fr = make_frames(7, pk, 50);
    {
        auto s = fx.open();
        ASSERT_TRUE(s->on_hello(fx.hello(1, 0)));
        EXPECT_EQ(fx.add(*s, fr.frames[0]), FrameOutcome::Written);
        EXPECT_EQ(fx.add(*s, fr.frames[1]), FrameOutcome::Written);
        ASSERT_TRUE(s->commit());
        s->close_file();  // the sender went away, and comes back
        ASSERT_TRUE(s->on_hello(fx.hello(1, 2)));
        EXPECT_EQ(fx.add(*s, fr.frames[2]), FrameOutcome::Written);
        EXPECT_EQ(fx.add(*s, fr.frames[3]), FrameOutcome::Written);
        ASSERT_TRUE(s->commit());
    }
    auto s = fx.open();  // a restart
    ASSERT_TRUE(s->on_hello(fx.hello(1, 4)));
    EXPECT_EQ(fx.add(*s, fr.frames[4]), FrameOutcome::Written);
    EXPECT_EQ(fx.add(*s, fr.frames[5]), FrameOutcome::Written);
    ASSERT_TRUE(s->commit());
    const auto files = stream_files(fx.dir.path(), 7);
    ASSERT_EQ(files.size(), 2u);
    const auto a = read_pcapng(files[0]), b = read_pcapng(files[1]);
    EXPECT_EQ(a.packets, std::vector<Packet>(pk.begin(), pk.begin() + 200));
    EXPECT_EQ(b.packets, std::vector<Packet>(pk.begin() + 200, pk.end()));
    for (const auto& p : {a, b}) {
        std::set<std::string> names;
        for (const auto& i : p.interfaces)
            EXPECT_TRUE(names.insert(i.name).second) << i.name << " described twice";
        EXPECT_EQ(p.interfaces.size(), 16u);
    }
}

TEST(Stream, KeepRemovesTheOldestFiles) {
    Fixture fx(Compression::None, 16 * 1024);
    FileCounters k;
    FileStore store(fx.set.dir, {index::FileTemplate()}, {.keep_files = 3}, k);
    fx.set.files = &store;
    const auto fr = make_frames(7, packets(1000, 7), 10);
    auto s = fx.open();
    s->on_hello(fx.hello(1, 0));
    for (const auto& f : fr.frames) {
        fx.add(*s, f);
        ASSERT_TRUE(s->commit());
    }
    const auto files = stream_files(fx.dir.path(), 7);
    ASSERT_EQ(files.size(), 3u);
    EXPECT_EQ(parse_output_file_index(files.back().filename().string(), 7), s->saved().file_index);
    EXPECT_EQ(k.files_deleted_keep.get() + 3, s->files_opened());
}

// A rotation creates the next file before the state names it: a crash in
// between leaves a file with only a section header, removed at recovery.
TEST(Stream, AnUnrecordedRotationIsUndone) {
    Fixture fx;
    const auto pk = packets(20, 8);
    const auto fr = make_frames(7, pk, 10);
    {
        auto s = fx.open();
        s->on_hello(fx.hello(1, 0));
        fx.add(*s, fr.frames[0]);
        ASSERT_TRUE(s->commit());
    }
    const std::string orphan =
        (fx.dir.path() / output_file_name(7, 2, 0, Compression::None)).string();
    std::ofstream(orphan) << "SHB only";
    std::ofstream(orphan + ".idx") << "its index";
    auto s = fx.open();
    EXPECT_FALSE(fs::exists(orphan));
    EXPECT_FALSE(fs::exists(orphan + ".idx"));
    // The index of the current file catches up, the file is finished, then this.
    ASSERT_EQ(fx.log.size(), 3u);
    EXPECT_NE(fx.log[2].find("begun by a rotation"), std::string::npos);
    s->on_hello(fx.hello(1, 1));
    fx.add(*s, fr.frames[1]);
    ASSERT_TRUE(s->commit());
    EXPECT_EQ(read_stream(fx.dir.path(), 7), pk);
    EXPECT_EQ(stream_files(fx.dir.path(), 7).size(), 2u);
}

TEST(Stream, AMissingFileIsReportedAndWritingGoesOn) {
    Fixture fx;
    const auto fr = make_frames(7, packets(20, 9), 10);
    std::string first;
    {
        auto s = fx.open();
        s->on_hello(fx.hello(1, 0));
        fx.add(*s, fr.frames[0]);
        ASSERT_TRUE(s->commit());
        first = s->current_path();
    }
    fs::remove(first);
    auto s = fx.open();
    ASSERT_EQ(fx.log.size(), 1u);
    EXPECT_NE(fx.log[0].find("is missing"), std::string::npos);
    EXPECT_NE(fx.log[0].find("acknowledged to the sender are gone"), std::string::npos);
    s->on_hello(fx.hello(1, 1));
    EXPECT_EQ(fx.add(*s, fr.frames[1]), FrameOutcome::Written);
    ASSERT_TRUE(s->commit());
    EXPECT_NE(s->current_path(), first);
    EXPECT_EQ(read_stream(fx.dir.path(), 7).size(), 10u);
    // The same while the collector runs (the stream's sender disconnected).
    const std::string second = s->current_path();
    s->close_file();
    fs::remove(second);
    s->on_hello(fx.hello(1, 2));
    const auto more = make_frames(7, packets(10, 11), 10, wire::Codec::None, 2);
    EXPECT_EQ(fx.add(*s, more.frames[0]), FrameOutcome::Written);
    ASSERT_TRUE(s->commit());
    EXPECT_NE(s->current_path(), second);
    EXPECT_EQ(read_stream(fx.dir.path(), 7).size(), 10u);
}

// A write that fails (here: the file size limit, EFBIG; a full disk is the
// same path) undoes the batch: nothing counts, nothing is acknowledged, the
// file is back at its committed size, and the sender's replay then succeeds.
TEST(Stream, AFailedWriteUndoesTheBatch) {
    Fixture fx;
    const auto pk = packets(60, 10);
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
    EXPECT_EQ(fx.add(*s, fr.frames[4]), FrameOutcome::Written);
    const bool ok = s->commit();
    ::setrlimit(RLIMIT_FSIZE, &old);
    ASSERT_FALSE(ok);
    EXPECT_NE(s->last_error().find("cannot write"), std::string::npos) << s->last_error();
    EXPECT_EQ(s->acknowledged(), 4u);
    EXPECT_EQ(s->saved().totals.frames_written, 4u);
    EXPECT_EQ(fs::file_size(s->current_path()), size);
    // The sender replays from the acknowledged point.
    EXPECT_EQ(fx.add(*s, fr.frames[4]), FrameOutcome::Written);
    EXPECT_EQ(fx.add(*s, fr.frames[5]), FrameOutcome::Written);
    ASSERT_TRUE(s->commit());
    EXPECT_EQ(read_stream(fx.dir.path(), 7), pk);
}

// ---- a collector group's stream (docs/scale-out.md) ---------------------------------

// A group's commit is written and saved pending; the group's lease update
// decides: confirmed, it counts; refused, it is cut back out of the file.
TEST(GroupStream, ACommitCountsOnlyOnceConfirmedAndIsUndoneOtherwise) {
    for (Compression c : {Compression::None, Compression::Zstd}) {
        SCOPED_TRACE(c == Compression::Zstd ? "zstd" : "plain");
        Fixture fx(c);
        const auto pk = packets(60, 11);
        const auto fr = make_frames(7, pk, 10);
        auto s = fx.open();
        s->set_group_commits(true);
        session::Hello h = fx.hello(5, 0);
        h.authoritative = true;
        ASSERT_TRUE(s->on_hello(h));
        for (int i = 0; i < 2; ++i)
            EXPECT_EQ(fx.add(*s, fr.frames[i]), FrameOutcome::Written);
        s->set_source_position(20);
        ASSERT_TRUE(s->commit());
        EXPECT_TRUE(s->pending());
        ASSERT_TRUE(s->confirm_commit());
        EXPECT_FALSE(s->pending());
        const auto size = fs::file_size(s->current_path());
        for (int i = 2; i < 4; ++i)
            EXPECT_EQ(fx.add(*s, fr.frames[i]), FrameOutcome::Written);
        s->set_source_position(40);
        ASSERT_TRUE(s->commit());
        EXPECT_GT(fs::file_size(s->current_path()), size);
        ASSERT_TRUE(s->undo_commit()) << s->last_error();
        EXPECT_FALSE(s->pending());
        EXPECT_EQ(fs::file_size(s->current_path()), size);
        EXPECT_EQ(s->saved().next_sequence, 2u);
        EXPECT_EQ(s->saved().source_position, 20u);
        EXPECT_EQ(s->saved().totals.packets_written, 20u);
        EXPECT_EQ(s->run().packets_written, 20u);
        // The stream goes on from there, in whoever's hands.
        for (int i = 2; i < 6; ++i)
            EXPECT_EQ(fx.add(*s, fr.frames[i]), FrameOutcome::Written);
        ASSERT_TRUE(s->commit());
        ASSERT_TRUE(s->confirm_commit());
        EXPECT_EQ(read_stream(fx.dir.path(), 7), pk);
    }
}

// Killed between saving a pending commit and hearing the group's verdict: a
// restarted collector finds the commit pending, bytes included, and settles it.
TEST(GroupStream, APendingCommitSurvivesACrashAndIsSettledAfterIt) {
    for (const bool counts : {true, false}) {
        SCOPED_TRACE(counts ? "the group took it" : "the group did not take it");
        Fixture fx;
        const auto pk = packets(40, 12);
        const auto fr = make_frames(7, pk, 10);
        uint64_t committed_size = 0;
        {
            auto s = fx.open();
            s->set_group_commits(true);
            session::Hello h = fx.hello(5, 0);
            h.authoritative = true;
            s->on_hello(h);
            fx.add(*s, fr.frames[0]);
            ASSERT_TRUE(s->commit());
            ASSERT_TRUE(s->confirm_commit());
            committed_size = fs::file_size(s->current_path());
            fx.add(*s, fr.frames[1]);
            fx.add(*s, fr.frames[2]);
            s->set_source_position(3);
            ASSERT_TRUE(s->commit());  // and the process dies
        }
        auto s = fx.open();
        ASSERT_TRUE(s->pending());
        EXPECT_EQ(s->saved().source_position, 3u);
        EXPECT_EQ(s->saved().next_sequence, 3u);
        if (counts) {
            ASSERT_TRUE(s->confirm_commit());
            EXPECT_EQ(read_stream(fx.dir.path(), 7),
                      std::vector<Packet>(pk.begin(), pk.begin() + 30));
        } else {
            ASSERT_TRUE(s->undo_commit());
            EXPECT_EQ(fs::file_size(s->current_path()), committed_size);
            EXPECT_EQ(s->saved().next_sequence, 1u);
            EXPECT_EQ(read_stream(fx.dir.path(), 7),
                      std::vector<Packet>(pk.begin(), pk.begin() + 10));
        }
        // A restart after the verdict finds nothing pending.
        s.reset();
        s = fx.open();
        EXPECT_FALSE(s->pending());
    }
}

// The lease says where the previous owner stopped; this collector may have
// written the stream before, further back or further on: the lease wins.
TEST(GroupStream, AnAuthoritativeHelloSetsThePositionWhateverWasBefore) {
    Fixture fx;
    const auto pk = packets(60, 13);
    const auto fr = make_frames(7, pk, 10);
    auto s = fx.open();
    s->on_hello(fx.hello(5, 0));
    fx.add(*s, fr.frames[0]);
    ASSERT_TRUE(s->commit());
    session::Hello h = fx.hello(5, 4);  // another member wrote 1..3
    h.position.packet_index = 40;
    h.authoritative = true;
    const auto v = s->on_hello(h);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->resume_sequence, 4u);
    EXPECT_EQ(fx.add(*s, fr.frames[3]), FrameOutcome::Duplicate);
    EXPECT_EQ(fx.add(*s, fr.frames[4]), FrameOutcome::Written);
    ASSERT_TRUE(s->commit());
    EXPECT_EQ(s->saved().totals.frames_lost, 0u) << "no gap: the lease said where to go on";
}

// A group's commit never spans a rotation: the frame that needs a new file
// waits until what came before is committed and confirmed.
TEST(GroupStream, RotationWaitsForTheCommitBeforeIt) {
    Fixture fx(Compression::None, 40000);
    const auto pk = packets(200, 14);
    const auto fr = make_frames(7, pk, 10);
    auto s = fx.open();
    s->set_group_commits(true);
    session::Hello h = fx.hello(5, 0);
    h.authoritative = true;
    s->on_hello(h);
    std::size_t commits = 0;
    for (const auto& f : fr.frames) {
        FrameOutcome o = fx.add(*s, f);
        if (o == FrameOutcome::CommitFirst) {
            ASSERT_TRUE(s->commit());
            ASSERT_TRUE(s->confirm_commit());
            ++commits;
            o = fx.add(*s, f);
        }
        EXPECT_EQ(o, FrameOutcome::Written);
    }
    ASSERT_TRUE(s->commit());
    ASSERT_TRUE(s->confirm_commit());
    EXPECT_GT(commits, 0u);
    EXPECT_GT(stream_files(fx.dir.path(), 7).size(), 1u);
    EXPECT_EQ(read_stream(fx.dir.path(), 7), pk);
}

// ---- the state file ----------------------------------------------------------------

TEST(StateFile, SlotsRoundTripAndTheNewestValidOneWins) {
    TempDir dir;
    const std::string path = (dir.path() / ".sluice" / "stream-3.state").string();
    StreamState s;
    s.stream_id = 3;
    s.session_id = 99;
    s.position_known = true;
    s.next_sequence = 1234;
    s.next_packet_index = 55555;
    s.file_index = 4;
    s.file_offset = 1 << 20;
    s.set_file("stream-3-000004-x.pcapng");
    s.interface_count = 2;
    s.interfaces[0] = {0, 1};
    s.interfaces[1] = {3, 7};
    s.totals.packets_lost = 8;
    s.source_position = 777;
    s.pending = true;
    s.undo = CommitUndo{true, 98, 1200, 55000, 4096, 700, 1, {1, 2, 3, 4, 5, 6, 7}};
    {
        StateFile f(path);
        ASSERT_TRUE(f.save(s, false));
        s.next_sequence = 1235;
        ASSERT_TRUE(f.save(s, true));
    }
    StateFile f(path);
    std::string err;
    auto got = f.load(&err);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->next_sequence, 1235u);
    EXPECT_EQ(got->file(), "stream-3-000004-x.pcapng");
    EXPECT_EQ(got->interface_count, 2u);
    EXPECT_EQ(got->interfaces[1], (InterfaceKey{3, 7}));
    EXPECT_EQ(got->totals.packets_lost, 8u);
    EXPECT_TRUE(got->position_known);
    EXPECT_EQ(got->source_position, 777u);
    EXPECT_TRUE(got->pending);
    EXPECT_EQ(got->undo, s.undo);

    // The newest slot torn by a crash: the previous one is used.
    {
        std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
        io.seekp(0 * kStateSlotSize + 100);  // generation 2 lives in slot 0
        io.put('!');
    }
    StateFile g(path);
    got = g.load(&err);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->next_sequence, 1234u);
    // Both torn: no state, and a message saying what to do.
    {
        std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
        io.seekp(kStateSlotSize + 100);
        io.put('!');
    }
    StateFile h(path);
    EXPECT_FALSE(h.load(&err));
    EXPECT_NE(err.find("no valid slot"), std::string::npos);
}

TEST(StateFile, ANewFileHasNoStateAndNoError) {
    TempDir dir;
    StateFile f((dir.path() / ".sluice" / "stream-1.state").string());
    std::string err;
    EXPECT_FALSE(f.load(&err));
    EXPECT_TRUE(err.empty());
}

TEST(OutputFileName, RoundTripsAndRejectsOthers) {
    const std::string n =
        output_file_name(42, 17, 1700000000ull * 1000000000ull, Compression::Zstd);
    EXPECT_EQ(n, "stream-42-000017-20231114T221320Z.pcapng.zst");
    EXPECT_EQ(parse_output_file_index(n, 42), 17u);
    EXPECT_FALSE(parse_output_file_index(n, 4));
    EXPECT_FALSE(parse_output_file_index("stream-42-x-1.pcapng", 42));
    EXPECT_FALSE(parse_output_file_index("stream-42-000001-1.txt", 42));
    EXPECT_FALSE(parse_output_file_index(n + ".idx", 42)) << "an index is not a data file";
    EXPECT_EQ(parse_output_file_index(n + ".part", 42), 17u) << "a file being written is one";
    EXPECT_FALSE(parse_output_file_index("stream-42-000003-1.pcapng", 42)) << "not our time";
}

}  // namespace
}  // namespace sluice::collector
