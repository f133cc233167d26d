// Replays every input kept under tests/fuzz/regressions/collector_stream/
// (crashers the fuzzer found, and the hand-made sessions fuzz_collector_seeds
// writes) through the fuzz target's own entry point, in the normal and the
// ASan builds.
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

TEST(FuzzRegressions, CollectorStream) {
    const char* root = std::getenv("SLUICE_SOURCE_ROOT");
    ASSERT_NE(root, nullptr) << "run through meson test";
    const fs::path dir = fs::path(root) / "tests/fuzz/regressions/collector_stream";
    std::vector<fs::path> files;
    if (fs::is_directory(dir))
        for (const auto& e : fs::directory_iterator(dir))
            if (e.is_regular_file() && e.path().filename() != "README.md")
                files.push_back(e.path());
    std::sort(files.begin(), files.end());
    EXPECT_GE(files.size(), 10u) << dir << " lost its inputs";
    for (const auto& f : files) {
        SCOPED_TRACE(f.string());
        std::fprintf(stderr, "replaying %s\n", f.c_str());  // named even if it crashes
        std::ifstream in(f, std::ios::binary);
        const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                      std::istreambuf_iterator<char>());
        EXPECT_EQ(
            LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
            0);
    }
}

}  // namespace
