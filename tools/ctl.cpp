// sluice-ctl: talks to a running sluice through DPDK's telemetry socket
// (the one dpdk-telemetry.py uses): shows or changes capture.filter without a
// restart, and prints sluice's telemetry commands' JSON.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace {

constexpr int kExitOk = 0, kExitFailed = 1, kExitUsage = 2;
constexpr std::size_t kMaxReply = 64 * 1024;
// The telemetry socket reads a command of at most 1024 bytes.
constexpr std::size_t kMaxCommand = 1023;

const char* kUsage =
    R"(usage: sluice-ctl [--file-prefix NAME | --socket PATH] filter [EXPRESSION...]
       sluice-ctl [--file-prefix NAME | --socket PATH] stats|rings|pools
       sluice-ctl [--file-prefix NAME | --socket PATH] raw COMMAND[,PARAMS]

Talks to a running sluice through DPDK's telemetry socket ([stats]
telemetry = true, the default).

  filter              print the capture filter in use
  filter EXPRESSION   change it (tcpdump syntax, like capture.filter; the
                      word none keeps every packet). sluice compiles it off
                      the capture lcores and they take it between two bursts;
                      an expression libpcap refuses changes nothing. The
                      change lasts until sluice stops: put it in the
                      configuration file to keep it.
  stats|rings|pools   the JSON of /sluice/stats, /sluice/rings, /sluice/pools
  raw COMMAND         any telemetry command, e.g. /ethdev/xstats,0

  --file-prefix NAME  the EAL --file-prefix sluice runs with (default rte)
  --socket PATH       the telemetry socket itself (default
                      /var/run/dpdk/NAME/dpdk_telemetry.v2 for root,
                      $XDG_RUNTIME_DIR/dpdk/NAME/... otherwise)
  --help, --version

Exit codes: 0 done; 1 sluice could not be reached or refused the change;
2 bad command line. See docs/operations.md.
)";

int usage_error(const std::string& m) {
    std::fprintf(stderr, "sluice-ctl: %s (see --help)\n", m.c_str());
    return kExitUsage;
}

std::string socket_path(const std::string& prefix) {
    std::string dir = "/var/run";
    if (::getuid() != 0) {
        const char* x = std::getenv("XDG_RUNTIME_DIR");
        dir = x && *x ? x : "/tmp";
    }
    return dir + "/dpdk/" + prefix + "/dpdk_telemetry.v2";
}

// One message (SOCK_SEQPACKET keeps them whole).
bool receive(int fd, std::string& out) {
    out.assign(kMaxReply, '\0');
    const ssize_t n = ::recv(fd, out.data(), out.size(), 0);
    if (n <= 0) return false;
    out.resize(static_cast<std::size_t>(n));
    return true;
}

// The string value of a reply {"COMMAND": "TEXT"}: sluice's replies need no
// JSON escapes (telemetry.cpp replaces quotes and backslashes).
bool string_value(const std::string& reply, std::string& text) {
    const auto colon = reply.find("\":\"");
    if (colon == std::string::npos) return false;
    const auto end = reply.rfind("\"}");
    if (end == std::string::npos || end < colon + 3) return false;
    text = reply.substr(colon + 3, end - colon - 3);
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    std::string prefix = "rte", path;
    std::vector<std::string> words;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            std::fputs(kUsage, stdout);
            return kExitOk;
        }
        if (a == "--version") {
            std::printf("sluice-ctl %s\n", SLUICE_VERSION);
            return kExitOk;
        }
        if (words.empty() && (a == "--file-prefix" || a == "--socket")) {
            if (i + 1 >= argc) return usage_error(a + " needs a value");
            (a == "--socket" ? path : prefix) = argv[++i];
            continue;
        }
        if (words.empty() && a.size() > 1 && a[0] == '-') return usage_error("unknown option " + a);
        words.push_back(a);
    }
    if (words.empty()) return usage_error("no command");
    const std::string& what = words[0];
    std::string command;
    bool filter = false;
    if (what == "filter") {
        filter = true;
        command = "/sluice/filter";
        std::string expr;
        for (std::size_t i = 1; i < words.size(); ++i)
            (expr += expr.empty() ? "" : " ") += words[i];
        if (!expr.empty()) command += "," + expr;
    } else if (what == "stats" || what == "rings" || what == "pools") {
        if (words.size() != 1) return usage_error(what + " takes no argument");
        command = "/sluice/" + what;
    } else if (what == "raw") {
        if (words.size() != 2) return usage_error("raw takes one COMMAND[,PARAMS]");
        command = words[1];
        if (command.empty() || command[0] != '/')
            return usage_error("a telemetry command starts with /, e.g. /sluice/stats");
    } else {
        return usage_error("unknown command " + what);
    }
    if (command.size() > kMaxCommand)
        return usage_error("the command is longer than the telemetry socket takes (1023 bytes)");
    if (path.empty()) path = socket_path(prefix);

    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return usage_error("socket path too long: " + path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        std::fprintf(stderr,
                     "sluice-ctl: cannot reach sluice at %s: %s. Is sluice running with this "
                     "--file-prefix (--file-prefix NAME) and [stats] telemetry = true?\n",
                     path.c_str(), std::strerror(errno));
        return kExitFailed;
    }
    std::string reply;
    // The socket greets each client with its version and limits first.
    if (!receive(fd, reply) || ::send(fd, command.data(), command.size(), 0) < 0 ||
        !receive(fd, reply)) {
        std::fprintf(stderr, "sluice-ctl: %s closed the connection without an answer%s\n",
                     path.c_str(), reply.empty() ? " (more clients than the socket takes?)" : "");
        ::close(fd);
        return kExitFailed;
    }
    ::close(fd);
    if (!filter) {
        if (reply.find(":null}") != std::string::npos) {
            std::fprintf(stderr, "sluice-ctl: %s: no such telemetry command here\n",
                         command.c_str());
            return kExitFailed;
        }
        std::printf("%s\n", reply.c_str());
        return kExitOk;
    }
    std::string text;
    if (!string_value(reply, text)) {
        std::fprintf(stderr,
                     "sluice-ctl: the process at %s does not answer /sluice/filter (not sluice, "
                     "or an older one): %s\n",
                     path.c_str(), reply.c_str());
        return kExitFailed;
    }
    const auto sep = text.find(": ");
    const std::string outcome = text.substr(0, sep);
    const std::string message = sep == std::string::npos ? "" : text.substr(sep + 2);
    if (outcome == "current" || outcome == "changed") {
        std::printf("%s\n", message.c_str());
        return kExitOk;
    }
    std::fprintf(stderr, "sluice-ctl: %s\n", message.c_str());
    return kExitFailed;
}
