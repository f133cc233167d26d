#include "sluice/index/file_name.hpp"

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include "util.hpp"
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sluice::index {
namespace {

constexpr std::string_view kPcapng = ".pcapng";
constexpr std::string_view kZst = ".zst";
// The longest ending a formatted name gets: extension, ".part", ".idx".
constexpr std::size_t kLongestEnding = 20;  // ".pcapng.zst.part.idx"
constexpr std::size_t kMaxDigits = 20;      // of a u64
constexpr int kMaxDepth = 32;               // directories below the capture directory

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// The digits of the strftime conversions a template may use.
unsigned field_width(char f) {
    switch (f) {
        case 'Y':
            return 4;
        case 'j':
            return 3;
        case 'm':
        case 'd':
        case 'H':
        case 'M':
        case 'S':
        case 'y':
            return 2;
        default:
            return 0;
    }
}

void put_digits(std::string& out, uint64_t v, unsigned min_width) {
    char buf[24];
    const auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
    (void)ec;  // a u64 always fits
    const auto n = static_cast<unsigned>(p - buf);
    if (n < min_width) out.append(min_width - n, '0');
    out.append(buf, p);
}

// Digits at `at`, at most kMaxDigits: their count (0: none, or too many).
std::size_t digits_at(std::string_view s, std::size_t at) {
    std::size_t n = 0;
    while (at + n < s.size() && is_digit(s[at + n]))
        ++n;
    return n <= kMaxDigits ? n : 0;
}

}  // namespace

std::string_view data_extension(Compression c) {
    return c == Compression::Zstd ? ".pcapng.zst" : ".pcapng";
}

std::optional<DataName> split_data_name(std::string_view name) {
    DataName d;
    if (name.ends_with(kPartSuffix)) {
        d.part = true;
        name.remove_suffix(kPartSuffix.size());
    }
    if (name.ends_with(kZst)) {
        d.compression = Compression::Zstd;
        name.remove_suffix(kZst.size());
    }
    if (!name.ends_with(kPcapng)) return std::nullopt;
    name.remove_suffix(kPcapng.size());
    if (name.empty() || name.back() == '/') return std::nullopt;
    d.stem = name;
    return d;
}

FileTemplate::FileTemplate() {
    std::string unused;
    *this = *parse(kDefault, &unused);
}

std::optional<FileTemplate> FileTemplate::parse(std::string_view text, std::string* error) {
    auto fail = [&](const std::string& why) -> std::optional<FileTemplate> {
        *error = "--file-template '" + std::string(text) + "': " + why;
        return std::nullopt;
    };
    FileTemplate t{Unparsed{}};
    t.text_ = std::string(text);
    if (text.empty()) return fail("it is empty; the default is " + std::string(kDefault));
    if (text.front() == '/') return fail("it names a path below --out; leave out the leading '/'");
    unsigned streams = 0, numbers = 0;
    std::size_t longest = 0;
    auto literal = [&](char c) {
        if (t.tokens_.empty() || t.tokens_.back().kind != Kind::Literal)
            t.tokens_.push_back({Kind::Literal, "", 0, 0});
        t.tokens_.back().literal += c;
        ++longest;
    };
    auto field = [&](char f) {
        const unsigned w = field_width(f);
        t.tokens_.push_back({Kind::Field, "", f, w});
        longest += w;
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f)
            return fail("it holds a control character; use printable characters only");
        if (c == '{') {
            const std::string_view rest = text.substr(i);
            if (rest.starts_with("{stream}")) {
                t.tokens_.push_back({Kind::Stream, "", 0, 0});
                ++streams;
                longest += kMaxDigits;
                i += 7;
            } else if (rest.starts_with("{n}")) {
                t.tokens_.push_back({Kind::Number, "", 0, 0});
                ++numbers;
                longest += kMaxDigits;
                i += 2;
            } else {
                return fail("unknown field '" + std::string(rest.substr(0, rest.find('}') + 1)) +
                            "': the fields are {stream} and {n}, and % times");
            }
        } else if (c == '%') {
            if (i + 1 == text.size()) return fail("it ends in a lone '%'; write %% for a '%'");
            const char f = text[++i];
            if (f == '%') {
                literal('%');
            } else if (f == 'F') {
                field('Y');
                literal('-');
                field('m');
                literal('-');
                field('d');
            } else if (f == 's') {
                t.tokens_.push_back({Kind::Seconds, "", 0, 0});
                longest += kMaxDigits;
            } else if (field_width(f)) {
                field(f);
            } else {
                return fail(std::string("%") + f +
                            " is not a time field a name can be read back from: use %Y %m %d "
                            "%H %M %S %j %y %s %F (UTC), and %% for '%'");
            }
        } else {
            literal(c);
        }
    }
    if (streams != 1 || numbers != 1)
        return fail(
            "it needs {stream} and {n} once each, so that no two files of any stream get one "
            "name, e.g. {stream}/%Y%m%d/capture-%H%M%S-{n}");
    // Components: none empty, none hidden (.sluice lives there) or leaving.
    std::size_t start = 0;
    while (true) {
        const std::size_t slash = text.find('/', start);
        const std::string_view comp = text.substr(
            start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
        if (comp.empty()) return fail("it has an empty path component ('//' or a trailing '/')");
        if (comp.front() == '.')
            return fail(
                "a path component begins with '.': such names are hidden and '.sluice' "
                "is the collector's own; begin it otherwise");
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    // Parsed back exactly: a field of variable width ends where the next
    // character is not a digit.
    for (std::size_t k = 0; k < t.tokens_.size(); ++k) {
        const Kind kd = t.tokens_[k].kind;
        if (kd != Kind::Stream && kd != Kind::Number && kd != Kind::Seconds) continue;
        const bool last = k + 1 == t.tokens_.size();
        if (!last &&
            (t.tokens_[k + 1].kind != Kind::Literal || is_digit(t.tokens_[k + 1].literal.front())))
            return fail(
                "{stream}, {n} and %s must be followed by a character that is not a digit "
                "(or end the template), or the name cannot be read back: e.g. '{stream}-{n}'");
    }
    if (longest + kLongestEnding > kMaxName)
        return fail("names could be longer than " + std::to_string(kMaxName) +
                    " bytes with their extension: shorten it");
    return t;
}

std::string FileTemplate::format(uint64_t stream, uint64_t n, uint64_t wall_ns) const {
    const time_t secs = static_cast<time_t>(wall_ns / 1'000'000'000u);
    tm tm{};
    ::gmtime_r(&secs, &tm);
    std::string out;
    for (const Token& k : tokens_) {
        switch (k.kind) {
            case Kind::Literal:
                out += k.literal;
                break;
            case Kind::Stream:
                put_digits(out, stream, 1);
                break;
            case Kind::Number:
                put_digits(out, n, 6);
                break;
            case Kind::Seconds:
                put_digits(out, static_cast<uint64_t>(secs), 1);
                break;
            case Kind::Field: {
                uint64_t v = 0;
                switch (k.field) {
                    case 'Y':
                        v = (static_cast<uint64_t>(tm.tm_year) + 1900) % 10000;
                        break;
                    case 'y':
                        v = (static_cast<uint64_t>(tm.tm_year) + 1900) % 100;
                        break;
                    case 'm':
                        v = static_cast<uint64_t>(tm.tm_mon) + 1;
                        break;
                    case 'd':
                        v = static_cast<uint64_t>(tm.tm_mday);
                        break;
                    case 'H':
                        v = static_cast<uint64_t>(tm.tm_hour);
                        break;
                    case 'M':
                        v = static_cast<uint64_t>(tm.tm_min);
                        break;
                    case 'S':
                        v = static_cast<uint64_t>(tm.tm_sec);
                        break;
                    case 'j':
                        v = static_cast<uint64_t>(tm.tm_yday) + 1;
                        break;
                }
                put_digits(out, v, k.width);
                break;
            }
        }
    }
    return out;
}

std::optional<FileId> FileTemplate::match(std::string_view s) const {
    FileId id;
    std::size_t at = 0;
    for (const Token& k : tokens_) {
        switch (k.kind) {
            case Kind::Literal:
                if (s.substr(at, k.literal.size()) != k.literal) return std::nullopt;
                at += k.literal.size();
                break;
            case Kind::Field:
                for (unsigned i = 0; i < k.width; ++i)
                    if (at + i >= s.size() || !is_digit(s[at + i])) return std::nullopt;
                at += k.width;
                break;
            case Kind::Stream:
            case Kind::Number:
            case Kind::Seconds: {
                const std::size_t n = digits_at(s, at);
                if (n == 0) return std::nullopt;
                uint64_t v = 0;
                const auto [p, ec] = std::from_chars(s.data() + at, s.data() + at + n, v);
                if (ec != std::errc()) return std::nullopt;
                (void)p;
                if (k.kind == Kind::Stream) id.stream = v;
                if (k.kind == Kind::Number) id.n = v;
                at += n;
                break;
            }
        }
    }
    if (at != s.size()) return std::nullopt;
    return id;
}

std::vector<FileTemplate> directory_templates(const std::string& dir,
                                              std::vector<std::string>* warnings) {
    std::vector<FileTemplate> out{FileTemplate()};
    const std::string path = dir + "/" + std::string(kTemplatesFile);
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line.front() == '#') continue;
        std::string why;
        auto t = FileTemplate::parse(line, &why);
        if (!t) {
            if (warnings) {
                std::string line_why = path;
                line_why.append(": ").append(why).append("; its files are not found");
                warnings->push_back(std::move(line_why));
            }
            continue;
        }
        bool known = false;
        for (const FileTemplate& k : out)
            known = known || k.text() == t->text();
        if (!known) out.push_back(std::move(*t));
    }
    return out;
}

bool record_template(const std::string& dir, const FileTemplate& t, unsigned mode,
                     std::string* error) {
    if (t.text() == FileTemplate::kDefault) return true;
    for (const FileTemplate& k : directory_templates(dir, nullptr))
        if (k.text() == t.text()) return true;
    const std::string path = dir + "/" + std::string(kTemplatesFile);
    std::string text;
    {
        std::ifstream in(path);
        std::stringstream ss;
        ss << in.rdbuf();
        text = ss.str();
    }
    if (text.empty())
        text =
            "# The --file-template of every run of sluice-collector on this directory, oldest "
            "first:\n# its files are found by any of them (and by the default).\n";
    if (text.back() != '\n') text += '\n';
    text += t.text() + "\n";
    // Replaced whole: a reader sees the old list or the new one.
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    bool ok = fd >= 0 && ::fchmod(fd, mode) == 0 &&
              ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    if (!ok) *error = detail::errno_message("cannot write", tmp);
    if (fd >= 0) ::close(fd);
    if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) {
        *error = detail::errno_message("cannot rename to", path);
        ok = false;
    }
    if (!ok) ::unlink(tmp.c_str());
    return ok;
}

namespace {

void walk(const std::string& root, const std::string& rel, int depth,
          const std::vector<FileTemplate>& templates, std::vector<FoundFile>& out,
          std::vector<std::string>* warnings) {
    const std::string path = rel.empty() ? root : root + "/" + rel;
    DIR* d = ::opendir(path.c_str());
    if (!d) {
        if (warnings) warnings->push_back(detail::errno_message("cannot read", path));
        return;
    }
    std::vector<std::string> subdirs;
    while (const dirent* e = ::readdir(d)) {
        const std::string_view name = e->d_name;
        if (name.empty() || name.front() == '.') continue;
        unsigned char type = e->d_type;
        if (type == DT_UNKNOWN) {
            struct stat st {};
            const std::string full = path + "/" + std::string(name);
            if (::lstat(full.c_str(), &st) != 0) continue;
            type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
        }
        const std::string rel_name =
            rel.empty() ? std::string(name) : rel + "/" + std::string(name);
        if (type == DT_DIR) {
            subdirs.push_back(rel_name);
            continue;
        }
        if (type != DT_REG) continue;
        const auto dn = split_data_name(rel_name);
        if (!dn) continue;
        for (const FileTemplate& t : templates) {
            if (auto id = t.match(dn->stem)) {
                out.push_back({rel_name, *id, dn->compression, dn->part});
                break;
            }
        }
    }
    ::closedir(d);
    if (depth >= kMaxDepth) return;
    for (const std::string& s : subdirs)
        walk(root, s, depth + 1, templates, out, warnings);
}

}  // namespace

bool find_data_files(const std::string& dir, const std::vector<FileTemplate>& templates,
                     std::vector<FoundFile>& out, std::vector<std::string>* warnings,
                     std::string* error) {
    struct stat st {};
    const bool exists = ::stat(dir.c_str(), &st) == 0;
    if (!exists || !S_ISDIR(st.st_mode)) {
        if (exists) errno = ENOTDIR;
        *error = detail::errno_message("cannot read", dir);
        return false;
    }
    bool nested = false;
    for (const FileTemplate& t : templates)
        nested = nested || t.has_directories();
    // Without a template that makes directories, only the top level holds
    // capture files: a large tree of the operator's own is not walked.
    walk(dir, "", nested ? 0 : kMaxDepth, templates, out, warnings);
    return true;
}

}  // namespace sluice::index
