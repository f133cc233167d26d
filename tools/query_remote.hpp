// sluice-query across collectors: each answer (a collector's GET /query
// fetched with libcurl, or the query over local directories) is written by
// a thread of its own into a pipe, and index::merge_answers reads the pipes
// in time order (docs/query.md, "Several collectors"). A pipe holds what the
// merge has not taken yet, so memory stays bounded whatever the answers'
// sizes; a source the merge stops reading blocks, nothing piles up.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "sluice/index/query.hpp"
#include "sluice/index/request.hpp"

namespace sluice::query_tool {

struct RemoteAuth {
    std::string token;           // "Authorization: Bearer TOKEN" when not empty
    std::string ca;              // trust these CAs for https:// (default: the system's)
    std::string cert, key;       // a client certificate for https://
    long stall_timeout_s = 300;  // no byte for this long: the fetch fails
};

// "http://HOST:PORT" (or https, or ending in /query) -> the /query URL
// without its parameters; nullopt for anything but http:// and https://.
std::optional<std::string> query_url(const std::string& url);

class AnswerSource {
  public:
    // GET `url`/query with the query's filter, range, streams and inner.
    static std::unique_ptr<AnswerSource> fetch(const std::string& url, const index::QuerySpec& spec,
                                               const RemoteAuth& auth);
    // Runs `q` over its directories as sluice-query writes it.
    static std::unique_ptr<AnswerSource> local(index::Query q, const index::SectionHeader& shb);
    ~AnswerSource();

    const std::string& name() const { return name_; }
    int fd() const { return read_fd_; }
    // Stops reading (the writer's next write fails), waits for the thread;
    // "" or what went wrong at the source (an HTTP status and the
    // collector's one-line reason, a connection error, a directory).
    std::string finish();
    const std::vector<std::string>& warnings() const { return warnings_; }

  private:
    AnswerSource(std::string name);
    std::string name_;
    int read_fd_ = -1, write_fd_ = -1;
    std::thread thread_;
    std::string error_;
    std::vector<std::string> warnings_;
    bool finished_ = false;
};

}  // namespace sluice::query_tool
