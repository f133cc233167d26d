// The pre-shared key file: what is read, what is refused and how it is
// explained; the one HMAC helper.
#include <cstring>
#include <fstream>
#include <set>

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "sluice/session/key.hpp"

namespace sluice::session {
namespace {

class KeyFile : public ::testing::Test {
  protected:
    std::string path = ::testing::TempDir() + "/sluice-test.key";
    void write(const std::string& s, mode_t mode = 0600) {
        std::ofstream(path, std::ios::binary) << s;
        ::chmod(path.c_str(), mode);
    }
    void TearDown() override { std::remove(path.c_str()); }
};

TEST_F(KeyFile, OneTrailingNewlineIsNotPartOfTheKey) {
    write("0123456789abcdef0123\n");
    const auto k = read_key_file(path);
    EXPECT_EQ(k.size(), 20u);
    write("0123456789abcdef0123\r\n");
    EXPECT_EQ(read_key_file(path).size(), 20u);
    write("0123456789abcdef0123 \n");
    EXPECT_EQ(read_key_file(path).size(), 21u) << "only the line ending goes";
}

TEST_F(KeyFile, ShortMissingAndOpenKeysAreExplained) {
    write("short\n");
    try {
        read_key_file(path);
        FAIL();
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("at least 16"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("head -c 32 /dev/urandom"), std::string::npos);
    }
    try {
        read_key_file(path + ".missing");
        FAIL();
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("cannot read key file"), std::string::npos);
    }
    // Readable by others: refused, not warned about.
    for (mode_t m : {0644, 0640, 0604, 0660}) {
        write("0123456789abcdef0123", m);
        try {
            read_key_file(path);
            FAIL() << std::oct << m;
        } catch (const std::runtime_error& e) {
            EXPECT_NE(std::string(e.what()).find("chmod 600"), std::string::npos) << e.what();
        }
    }
    write("0123456789abcdef0123", 0400);
    EXPECT_EQ(read_key_file(path).size(), 20u);
}

TEST(Hmac, IsHmacSha256OfThePartsInOrder) {
    // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
    const std::string k = "Jefe";
    const std::vector<std::byte> key(reinterpret_cast<const std::byte*>(k.data()),
                                     reinterpret_cast<const std::byte*>(k.data()) + k.size());
    const Proof p = hmac_sha256(key, {label("what do ya "), label("want for nothing?")});
    const uint8_t want[32] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24,
                              0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27,
                              0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    EXPECT_EQ(std::memcmp(p.data(), want, 32), 0);
    EXPECT_TRUE(proofs_equal(p, hmac_sha256(key, {label("what do ya want for nothing?")})));
    EXPECT_FALSE(proofs_equal(p, hmac_sha256(key, {label("what do ya want for nothing!")})));
}

TEST(Random, NonZeroAndDifferent) {
    EXPECT_NE(random_u64(), 0u);
    EXPECT_NE(random_u64(), random_u64());
}

}  // namespace
}  // namespace sluice::session
