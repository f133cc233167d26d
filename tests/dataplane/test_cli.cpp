#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/dataplane/cli.hpp"

using namespace sluice::dataplane;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace {
CliResult parse(std::vector<std::string> args) {
    args.insert(args.begin(), "sluice");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    return parse_cli(static_cast<int>(argv.size()), argv.data());
}
}  // namespace

TEST(Cli, EalArgumentsPassThroughUntouched) {
    auto r = parse({"-l", "2-5", "-a", "0000:3b:00.0", "--in-memory", "--", "--config", "s.toml"});
    ASSERT_TRUE(r.options) << r.error;
    EXPECT_THAT(r.options->eal_args, ElementsAre("-l", "2-5", "-a", "0000:3b:00.0", "--in-memory"));
    EXPECT_EQ(r.options->config_path, "s.toml");
    EXPECT_EQ(r.options->action, Action::Run);
}

TEST(Cli, RunOptions) {
    auto r = parse({"--", "--config", "s.toml", "--stats-interval", "5", "--duration", "2.5",
                    "--packets", "100", "--set", "codec.type=zstd", "--idle-timeout", "1"});
    ASSERT_TRUE(r.options) << r.error;
    EXPECT_DOUBLE_EQ(r.options->duration_s, 2.5);
    EXPECT_EQ(r.options->packets, 100u);
    EXPECT_DOUBLE_EQ(r.options->idle_timeout_s, 1);
    EXPECT_THAT(r.options->overrides, ElementsAre("stats.interval_s=5", "codec.type=zstd"));
}

TEST(Cli, CheckAndPrintConfigNeedNoEal) {
    auto r = parse({"--check-config", "s.toml"});
    ASSERT_TRUE(r.options);
    EXPECT_EQ(r.options->action, Action::CheckConfig);
    EXPECT_EQ(r.options->config_path, "s.toml");
    r = parse({"--print-config", "s.toml", "--set", "batch.frame_size=65536"});
    ASSERT_TRUE(r.options);
    EXPECT_EQ(r.options->action, Action::PrintConfig);
    EXPECT_THAT(r.options->overrides, ElementsAre("batch.frame_size=65536"));
}

TEST(Cli, Mistakes) {
    EXPECT_THAT(parse({"-l", "0,1", "--config", "s.toml"}).error, HasSubstr("missing '--'"));
    EXPECT_THAT(parse({"--"}).error, HasSubstr("missing --config FILE"));
    EXPECT_THAT(parse({"--", "--config", "s", "--bogus"}).error, HasSubstr("unknown option '--bogus'"));
    EXPECT_THAT(parse({"--", "--config", "s", "--duration", "x"}).error,
                HasSubstr("--duration needs seconds"));
    EXPECT_THAT(parse({"--", "--config", "s", "--set", "novalue"}).error,
                HasSubstr("--set needs KEY=VALUE"));
    EXPECT_THAT(parse({"--check-config"}).error, HasSubstr("needs a file"));
}

TEST(Cli, HelpListsExitCodes) {
    const std::string help = usage_text();
    for (const char* code : {"0  success", "2  bad command line", "3  EAL could not start",
                             "4  a configured port"}) {
        EXPECT_THAT(help, HasSubstr(code));
    }
}
