// Replays every input kept under tests/fuzz/regressions/<target>/ (crashers
// the fuzzer found, and inputs for paths worth pinning) through the fuzz
// target's own entry point, in the normal and the ASan builds. Built once per
// target, SLUICE_FUZZ_TARGET naming it (tests/fuzz/meson.build).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include <gtest/gtest.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;

std::vector<fs::path> inputs(const char* target) {
    const char* root = std::getenv("SLUICE_SOURCE_ROOT");
    std::vector<fs::path> v;
    if (!root) return v;
    const fs::path dir = fs::path(root) / "tests/fuzz/regressions" / target;
    if (!fs::is_directory(dir)) return v;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file() && e.path().filename() != "README.md") v.push_back(e.path());
    std::sort(v.begin(), v.end());
    return v;
}

TEST(FuzzRegressions, ReplayEveryKeptInput) {
    ASSERT_NE(std::getenv("SLUICE_SOURCE_ROOT"), nullptr) << "run through meson test";
    const auto files = inputs(SLUICE_FUZZ_TARGET);
    EXPECT_FALSE(files.empty()) << "tests/fuzz/regressions/" SLUICE_FUZZ_TARGET "/ holds no inputs";
    for (const auto& f : files) {
        SCOPED_TRACE(f.string());
        std::fprintf(stderr, "replaying %s\n", f.c_str());  // named even if it crashes
        std::ifstream in(f, std::ios::binary);
        const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                      std::istreambuf_iterator<char>());
        // A crash or trap fails the whole test program, naming the file above.
        EXPECT_EQ(
            LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
            0);
    }
}

}  // namespace
