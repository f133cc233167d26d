// --on-rotate: each finished file's command runs once with the file as one
// argument whatever its name holds (no shell), at most N at once, without
// blocking the caller; failures are counted; a stop lets waiting ones run
// and counts those it cannot wait for.
#include "collector_testing.hpp"
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/collector/on_rotate.hpp"
#include "sluice/session/clock.hpp"

namespace sluice::collector {
namespace {

using namespace testing;

std::vector<std::string> lines(const fs::path& p) {
    std::ifstream in(p);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);)
        out.push_back(l);
    return out;
}

// A script that appends its last argument and $SLUICE_STREAM to LOG.
fs::path recorder(const fs::path& dir, const std::string& extra = "") {
    const fs::path p = dir / "record.sh";
    std::ofstream(p) << "#!/bin/sh\n"
                     << extra << "\nprintf '%s|%s|%s\\n' \"$1\" \"$2\" \"$SLUICE_STREAM\" >> '"
                     << (dir / "log").string() << "'\n";
    ::chmod(p.c_str(), 0755);
    return p;
}

void run_until_idle(RotateCommand& c) {
    const uint64_t deadline = session::monotonic_ns() + 30'000'000'000ull;
    while ((c.running() || c.waiting()) && session::monotonic_ns() < deadline) {
        ::usleep(5000);
        c.poll();
    }
}

TEST(OnRotate, TheCommandLineIsWordsWithoutAShell) {
    std::string why;
    auto w = RotateCommand::parse("  /usr/bin/ship  --to  archive  ", &why);
    ASSERT_TRUE(w);
    EXPECT_EQ(*w, (std::vector<std::string>{"/usr/bin/ship", "--to", "archive"}));
    EXPECT_FALSE(RotateCommand::parse("   ", &why));
    EXPECT_NE(why.find("needs a program"), std::string::npos) << why;
}

TEST(OnRotate, EachFileOnceAsOneArgumentWhateverItsNameHolds) {
    TempDir d;
    FileCounters k;
    RotateCommand c({recorder(d.path()).string(), "first-argument"}, 2, k);
    // Names a shell would take apart or run.
    const std::vector<std::string> files = {
        (d.path() / "plain.pcapng").string(),
        (d.path() / "spaces and 'quotes' \"too\".pcapng").string(),
        (d.path() / "$(touch pwned1);touch pwned2;`touch pwned3`.pcapng").string(),
        (d.path() / "-dash.pcapng").string(),
    };
    for (std::size_t i = 0; i < files.size(); ++i)
        c.add(40 + i, files[i]);
    EXPECT_LE(c.running(), 2u) << "at most --on-rotate-jobs at once";
    run_until_idle(c);
    std::vector<std::string> want;
    for (std::size_t i = 0; i < files.size(); ++i)
        want.push_back("first-argument|" + files[i] + "|" + std::to_string(40 + i));
    auto got = lines(d.path() / "log");
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    EXPECT_EQ(got, want);
    for (const char* p : {"pwned1", "pwned2", "pwned3"}) {
        EXPECT_FALSE(fs::exists(d.path() / p)) << p;
        EXPECT_FALSE(fs::exists(p)) << p;
    }
    EXPECT_EQ(k.on_rotate_started.get(), 4u);
    EXPECT_EQ(k.on_rotate_failed.get(), 0u);
}

TEST(OnRotate, AddingNeverWaitsForACommand) {
    TempDir d;
    FileCounters k;
    // Runs until the test lets it end.
    const fs::path go = d.path() / "go";
    RotateCommand c(
        {recorder(d.path(), "while [ ! -e '" + go.string() + "' ]; do sleep 0.02; done").string()},
        1, k);
    for (int i = 0; i < 3; ++i)
        c.add(1, "f" + std::to_string(i));
    c.poll();
    // Back with the first command still running and two waiting.
    EXPECT_EQ(c.running(), 1u);
    EXPECT_EQ(c.waiting(), 2u);
    // A stop that cannot wait: the waiting ones are counted as not run.
    c.drain(50);
    EXPECT_EQ(k.on_rotate_dropped.get(), 2u);
    EXPECT_EQ(c.waiting(), 0u);
    std::ofstream(go) << "";
    run_until_idle(c);
    EXPECT_EQ(lines(d.path() / "log").size(), 1u);
}

TEST(OnRotate, FailuresAreCounted) {
    TempDir d;
    FileCounters k;
    {
        RotateCommand c({(d.path() / "no-such-program").string()}, 4, k);
        c.add(1, "a.pcapng");
        EXPECT_EQ(k.on_rotate_failed.get(), 1u);
        EXPECT_EQ(k.on_rotate_started.get(), 0u);
    }
    {
        RotateCommand c({recorder(d.path(), "exit 3").string()}, 4, k);
        c.add(1, "b.pcapng");
        run_until_idle(c);
        EXPECT_EQ(k.on_rotate_failed.get(), 2u);
        EXPECT_EQ(k.on_rotate_started.get(), 1u);
    }
    {
        RotateCommand c({recorder(d.path(), "kill -9 $$").string()}, 4, k);
        c.add(1, "c.pcapng");
        run_until_idle(c);
        EXPECT_EQ(k.on_rotate_failed.get(), 3u);
    }
}

TEST(OnRotate, AStopRunsWhatWaits) {
    TempDir d;
    FileCounters k;
    RotateCommand c({recorder(d.path()).string()}, 1, k);
    for (int i = 0; i < 5; ++i)
        c.add(1, "file" + std::to_string(i));
    c.drain(30'000);
    EXPECT_EQ(lines(d.path() / "log").size(), 5u);
    EXPECT_EQ(k.on_rotate_dropped.get(), 0u);
    EXPECT_EQ(c.running() + c.waiting(), 0u);
}

}  // namespace
}  // namespace sluice::collector
