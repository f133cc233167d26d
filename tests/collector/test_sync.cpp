// With --sync, a new capture file's name is made durable too: the directory
// is fsync()ed after the file is created, not only the file's data. This
// program counts fsync() calls on directories by defining fsync() itself
// (the collector library is linked in statically, so its calls come here).
#include <atomic>
#include <tuple>

#include "collector_testing.hpp"
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace {
std::atomic<int> g_dir_fsyncs{0};
}

extern "C" int fsync(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) g_dir_fsyncs.fetch_add(1);
    return static_cast<int>(::syscall(SYS_fsync, fd));
}

namespace sluice::collector {
namespace {

using namespace testing;

int files_created_with(bool sync, unsigned mode, mode_t* seen_mode,
                       mode_t* seen_index_mode = nullptr) {
    TempDir dir;
    StreamSettings set;
    set.dir = dir.str();
    set.sync = sync;
    set.file_mode = mode;
    Workspace ws;
    Stream s(3, set, ws);
    s.recover();
    session::Hello h;
    h.session_id = 1;
    h.position.known = true;
    EXPECT_TRUE(s.on_hello(h));
    const auto fr = make_frames(3, packets(10, 1), 10);
    wire::FrameReader reader;
    std::vector<std::byte> scratch(1 << 20);
    const int before = g_dir_fsyncs.load();
    auto v = reader.open(fr.frames[0], scratch);
    EXPECT_TRUE(v.ok());
    EXPECT_EQ(s.add(*v), FrameOutcome::Written);
    EXPECT_TRUE(s.commit());
    const auto files = stream_files(dir.path(), 3);
    EXPECT_EQ(files.size(), 1u);
    struct stat st {};
    ::stat(files.at(0).c_str(), &st);
    *seen_mode = st.st_mode & 0777;
    if (seen_index_mode) {
        st = {};
        EXPECT_EQ(::stat((files.at(0).string() + ".idx").c_str(), &st), 0);
        *seen_index_mode = st.st_mode & 0777;
    }
    return g_dir_fsyncs.load() - before;
}

TEST(Sync, ANewFilesDirectoryIsSyncedWithSyncOnly) {
    mode_t m = 0;
    EXPECT_GE(files_created_with(true, 0640, &m), 1);
    EXPECT_EQ(files_created_with(false, 0640, &m), 0);
}

// Directory fsyncs while a file is created (with `names`) and then finished.
std::pair<int, int> dir_syncs(bool sync, const std::string& names) {
    TempDir dir;
    StreamSettings set;
    set.dir = dir.str();
    set.sync = sync;
    std::string why;
    set.names = *index::FileTemplate::parse(names, &why);
    Workspace ws;
    Stream s(3, set, ws);
    s.recover();
    session::Hello h;
    h.session_id = 1;
    h.position.known = true;
    EXPECT_TRUE(s.on_hello(h));
    const auto fr = make_frames(3, packets(10, 1), 10);
    wire::FrameReader reader;
    std::vector<std::byte> scratch(1 << 20);
    auto v = reader.open(fr.frames[0], scratch);
    EXPECT_TRUE(v.ok());
    const int before = g_dir_fsyncs.load();
    EXPECT_EQ(s.add(*v), FrameOutcome::Written);
    EXPECT_TRUE(s.commit());
    const int created = g_dir_fsyncs.load() - before;
    EXPECT_TRUE(s.finish_file());
    return {created, g_dir_fsyncs.load() - before - created};
}

TEST(Sync, NewDirectoriesAndAFinishedFilesNameAreSyncedWithSyncOnly) {
    // Two directories made (each synced in its parent), the file created.
    auto [created, finished] = dir_syncs(true, "{stream}/x/cap-{n}");
    EXPECT_GE(created, 3);
    EXPECT_GE(finished, 1) << "the rename to the final name";
    std::tie(created, finished) = dir_syncs(false, "{stream}/x/cap-{n}");
    EXPECT_EQ(created, 0);
    EXPECT_EQ(finished, 0);
}

TEST(FileMode, CaptureFilesAndTheirIndexesGetExactlyTheModeWhateverTheUmask) {
    // The index tells which addresses and ports a capture holds: it is
    // readable by exactly who may read the capture.
    const mode_t old = ::umask(077);
    mode_t m = 0, ix = 0;
    files_created_with(false, 0640, &m, &ix);
    EXPECT_EQ(m, 0640u) << "group-readable although the umask says otherwise";
    EXPECT_EQ(ix, 0640u) << "the index";
    ::umask(002);
    files_created_with(false, 0600, &m, &ix);
    EXPECT_EQ(m, 0600u) << "not group-readable although the umask would allow it";
    EXPECT_EQ(ix, 0600u) << "the index is readable by others the capture is not readable by";
    ::umask(old);
}

}  // namespace
}  // namespace sluice::collector
