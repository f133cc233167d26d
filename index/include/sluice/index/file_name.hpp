// How the collector names its capture files, and how whatever reads a
// capture directory finds them again (the collector's recovery and
// retention, sluice-query): a template of the file's path below the
// directory (docs/collector.md, "Output").
//
//   stream-{stream}-{n}-%Y%m%dT%H%M%SZ          the default
//   {stream}/%Y/%m/%d/capture-%H%M%S-{n}         a directory per stream and day
//
// {stream} is the stream id, {n} the file's number in its stream (at least
// six digits), % fields the file's creation time in UTC. The collector adds
// the extension (.pcapng or .pcapng.zst) and, while it writes the file,
// ".part": a file appears under its final name only when complete.
//
// A template is parsed back exactly: every field has digits only, a field of
// variable width is followed by a character that is not a digit, and
// {stream} and {n} occur once each, so no two files get one name and a name
// gives back its stream and number. The templates a directory ever used are
// recorded in DIR/.sluice/file-templates, so files named by an earlier one
// are still found.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/index/format.hpp"

namespace sluice::index {

inline constexpr std::string_view kPartSuffix = ".part";
inline constexpr std::string_view kTemplatesFile = ".sluice/file-templates";

// ".pcapng" or ".pcapng.zst".
std::string_view data_extension(Compression c);

// A data file's name taken apart: STEM.pcapng[.zst][.part].
struct DataName {
    std::string_view stem;
    Compression compression = Compression::None;
    bool part = false;  // still being written
};
std::optional<DataName> split_data_name(std::string_view name);

struct FileId {
    uint64_t stream = 0;
    uint64_t n = 0;  // the file's number in its stream
    bool operator==(const FileId&) const = default;
};

class FileTemplate {
  public:
    static constexpr std::string_view kDefault = "stream-{stream}-{n}-%Y%m%dT%H%M%SZ";
    // The most a formatted name (with the longest extension, ".part" and
    // ".idx") may take: one file name of the file system, and the state
    // file's room for the current file's name.
    static constexpr std::size_t kMaxName = 255;

    FileTemplate();  // kDefault
    // nullopt and `error` (what is wrong and what to write instead) for a
    // template that could name two files alike, cannot be parsed back, or
    // leaves the directory.
    static std::optional<FileTemplate> parse(std::string_view text, std::string* error);

    const std::string& text() const { return text_; }
    bool has_directories() const { return text_.find('/') != std::string::npos; }
    // The path below the directory, without extension.
    std::string format(uint64_t stream, uint64_t n, uint64_t wall_ns) const;
    // The stream and number of a path below the directory, without
    // extension; nullopt for a name this template does not give.
    std::optional<FileId> match(std::string_view stem) const;

  private:
    struct Unparsed {};
    explicit FileTemplate(Unparsed) {}
    enum class Kind : uint8_t { Literal, Stream, Number, Seconds, Field };
    struct Token {
        Kind kind;
        std::string literal;  // Literal
        char field = 0;       // Field: the strftime conversion
        unsigned width = 0;   // Field: its digits
    };
    std::string text_;
    std::vector<Token> tokens_;
};

// The templates the files of `dir` were named with: the default and those
// recorded in DIR/.sluice/file-templates, oldest first. An unreadable or
// damaged record is skipped with a warning.
std::vector<FileTemplate> directory_templates(const std::string& dir,
                                              std::vector<std::string>* warnings);
// Records `t` in DIR/.sluice/file-templates unless it is there (or is the
// default). False and `error` when the file cannot be written.
bool record_template(const std::string& dir, const FileTemplate& t, unsigned mode,
                     std::string* error);

struct FoundFile {
    std::string path;  // below the directory, with its extension
    FileId id;
    Compression compression = Compression::None;
    bool part = false;
};
// Every data file below `dir` that one of `templates` names, in no
// particular order. Directories whose name begins with '.' and symbolic
// links are not entered. False and `error` when `dir` cannot be read;
// subdirectories that cannot be read are skipped with a warning.
bool find_data_files(const std::string& dir, const std::vector<FileTemplate>& templates,
                     std::vector<FoundFile>& out, std::vector<std::string>* warnings,
                     std::string* error);

}  // namespace sluice::index
