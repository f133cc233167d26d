#include "sluice/jetstream/client.hpp"

#include <cerrno>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace sluice::jetstream {
namespace {

// The library keeps the text of its last failure per thread.
std::string library_error() {
    const char* e = nats_GetLastError(nullptr);
    return e ? std::string(e) : std::string();
}

report::Result<std::string> read_secret(const std::string& path, const char* what) {
    std::ifstream f(path);
    if (!f) return report::Error{ENOENT, fmt::format("cannot read the {} file {}", what, path)};
    std::stringstream ss;
    ss << f.rdbuf();
    std::string s = ss.str();
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
        s.pop_back();
    if (s.empty()) return report::Error{EINVAL, fmt::format("the {} file {} is empty", what, path)};
    return s;
}

std::string join(const std::vector<std::string>& urls) {
    std::string s;
    for (const auto& u : urls)
        s += (s.empty() ? "" : ", ") + u;
    return s;
}

// One natsStatus check in the set-up sequence.
struct Step {
    natsStatus s;
    const char* what;
};

}  // namespace

std::string last_error(natsStatus s) {
    std::string detail = library_error();
    if (detail.empty()) return natsStatus_GetText(s);
    return detail;
}

report::Result<std::unique_ptr<Client>> Client::connect(const ClientOptions& o,
                                                        const jsOptions* js_options) {
    std::unique_ptr<Client> c(new Client());
    c->opt_ = o;
    if (o.servers.empty()) return report::Error{EINVAL, "no NATS server given"};
    std::vector<const char*> urls;
    bool tls = o.tls || !o.tls_ca.empty() || !o.tls_cert.empty();
    for (const auto& u : o.servers) {
        urls.push_back(u.c_str());
        tls = tls || u.rfind("tls://", 0) == 0;
    }
    std::string password, token;
    if (!o.password_file.empty()) {
        auto p = read_secret(o.password_file, "NATS password");
        if (!p) return p.error();
        password = *p;
    }
    if (!o.token_file.empty()) {
        auto t = read_secret(o.token_file, "NATS token");
        if (!t) return t.error();
        token = *t;
    }
    auto fail = [&](const std::string& what, natsStatus s) -> report::Error {
        return report::Error{EIO, fmt::format("{}: {}", what, last_error(s))};
    };
    natsStatus s = natsOptions_Create(&c->nopts_);
    if (s != NATS_OK) return fail("cannot set up the NATS client", s);
    const Step steps[] = {
        {natsOptions_SetServers(c->nopts_, urls.data(), static_cast<int>(urls.size())),
         "NATS servers"},
        {natsOptions_SetTimeout(c->nopts_, o.timeout_ms), "NATS timeout"},
        {natsOptions_SetName(c->nopts_, o.name.empty() ? "sluice" : o.name.c_str()), "name"},
        // Sluice recovers from a broken connection itself (see the header).
        {natsOptions_SetAllowReconnect(c->nopts_, false), "reconnect"},
        {natsOptions_SetPingInterval(c->nopts_, 2000), "ping interval"},
        {natsOptions_SetMaxPingsOut(c->nopts_, 2), "pings"},
    };
    for (const Step& st : steps) {
        if (st.s != NATS_OK) return fail(fmt::format("NATS option {}", st.what), st.s);
    }
    if (!o.user.empty() &&
        (s = natsOptions_SetUserInfo(c->nopts_, o.user.c_str(), password.c_str())) != NATS_OK)
        return fail("NATS user", s);
    if (!token.empty() && (s = natsOptions_SetToken(c->nopts_, token.c_str())) != NATS_OK)
        return fail("NATS token", s);
    if (!o.creds_file.empty() && (s = natsOptions_SetUserCredentialsFromFiles(
                                      c->nopts_, o.creds_file.c_str(), nullptr)) != NATS_OK)
        return fail(fmt::format("NATS credentials {}", o.creds_file), s);
    if (tls) {
        if ((s = natsOptions_SetSecure(c->nopts_, true)) != NATS_OK) return fail("TLS", s);
        if (!o.tls_ca.empty() &&
            (s = natsOptions_LoadCATrustedCertificates(c->nopts_, o.tls_ca.c_str())) != NATS_OK)
            return fail(fmt::format("TLS CA file {}", o.tls_ca), s);
        if (!o.tls_cert.empty() &&
            (s = natsOptions_LoadCertificatesChain(c->nopts_, o.tls_cert.c_str(),
                                                   o.tls_key.c_str())) != NATS_OK)
            return fail(fmt::format("TLS certificate {} / key {}", o.tls_cert, o.tls_key), s);
    }

    s = natsConnection_Connect(&c->nc_, c->nopts_);
    if (s != NATS_OK) {
        const std::string why = last_error(s);
        if (s == NATS_NO_SERVER || s == NATS_TIMEOUT || s == NATS_IO_ERROR) {
            return report::Error{
                ECONNREFUSED,
                fmt::format("no NATS server answered at {} ({}): check that nats-server runs "
                            "there and listens on that port",
                            join(o.servers), why)};
        }
        if (s == NATS_NOT_PERMITTED || why.find("uthoriz") != std::string::npos) {
            return report::Error{EACCES,
                                 fmt::format("the NATS server at {} refused the credentials ({}): "
                                             "check the user, password, token or creds file",
                                             join(o.servers), why)};
        }
        return report::Error{EIO,
                             fmt::format("cannot connect to NATS at {}: {}", join(o.servers), why)};
    }
    char url[256] = {};
    if (natsConnection_GetConnectedUrl(c->nc_, url, sizeof url) == NATS_OK) c->server_ = url;

    jsOptions jo;
    jsOptions_Init(&jo);
    if (js_options) jo = *js_options;
    jo.Wait = o.timeout_ms;
    s = natsConnection_JetStream(&c->js_, c->nc_, &jo);
    if (s != NATS_OK) return fail("cannot use JetStream on the NATS connection", s);
    jsAccountInfo* ai = nullptr;
    jsErrCode je = static_cast<jsErrCode>(0);
    s = js_GetAccountInfo(&ai, c->js_, nullptr, &je);
    if (ai) jsAccountInfo_Destroy(ai);
    if (s == NATS_NO_RESPONDERS) {
        return report::Error{ENOTSUP, fmt::format("the NATS server {} has no JetStream: enable it "
                                                  "(a jetstream {{}} block in its configuration)",
                                                  c->server_)};
    }
    if (s != NATS_OK) {
        return report::Error{EAGAIN,
                             fmt::format("JetStream at {} does not answer yet ({}): a cluster "
                                         "elects its leader in a few seconds after a start",
                                         c->server_, last_error(s))};
    }
    return c;
}

Client::~Client() {
    if (js_) jsCtx_Destroy(js_);
    if (nc_) {
        natsConnection_Close(nc_);
        natsConnection_Destroy(nc_);
    }
    if (nopts_) natsOptions_Destroy(nopts_);
}

std::string Client::close_reason() const {
    const char* text = nullptr;
    const natsStatus s = nc_ ? natsConnection_GetLastError(nc_, &text) : NATS_OK;
    if (s == NATS_OK) return "";
    return text && *text ? std::string(text) : std::string(natsStatus_GetText(s));
}

bool Client::closed() const {
    return !nc_ || natsConnection_IsClosed(nc_);
}

}  // namespace sluice::jetstream
