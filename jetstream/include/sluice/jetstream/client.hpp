// A connection to a NATS server with JetStream, as both ends of sluice use it:
// the servers to try, the credentials and TLS settings an operator gives, and
// errors that say what to check. The NATS client library (libnats) runs its
// own threads for reading, flushing and callbacks; a Client is used from one
// thread of sluice's (its owner), never shared.
//
// The library never reconnects on its own here: a broken connection is
// closed(), and the owner decides what that means (the sender's SenderCore
// backs off and replays; the collector settles its streams again). That keeps
// one recovery path for every failure, the one the tests exercise.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nats/nats.h>

#include "sluice/report/result.hpp"

namespace sluice::jetstream {

struct ClientOptions {
    std::vector<std::string>
        servers;             // "nats://HOST:PORT" (session::parse_nats_servers), tried in turn
    std::string name;        // shown by the server (connz): "sluice stream 7"
    std::string creds_file;  // NATS credentials (user JWT and NKey seed, nsc's .creds)
    std::string user;        // user name, with the password read from password_file
    std::string password_file;
    std::string token_file;      // an authentication token, read from this file
    bool tls = false;            // TLS to the server (implied by tls://, or a CA or certificate)
    std::string tls_ca;          // CA certificates to verify the server with (PEM)
    std::string tls_cert;        // this client's certificate chain (PEM), for servers that verify
    std::string tls_key;         // ... and its key
    uint32_t timeout_ms = 2000;  // connecting to one server; each JetStream API request
};

// What the library said about its last failure, for messages.
std::string last_error(natsStatus s);

class Client {
  public:
    // Connects (blocking, at most timeout_ms per server) and checks that
    // JetStream answers. `js_options` (optional) configures the JetStream
    // context (publish acknowledgement callbacks). The error says which
    // servers were tried and what to check.
    static report::Result<std::unique_ptr<Client>> connect(const ClientOptions& o,
                                                           const jsOptions* js_options = nullptr);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    natsConnection* nc() const { return nc_; }
    jsCtx* js() const { return js_; }
    // The connection is gone (the server went away or closed it): make a new one.
    bool closed() const;
    // Why the connection went, as the library knows it ("stale connection",
    // "Slow Consumer", ...); empty when it does not say.
    std::string close_reason() const;
    const std::string& server() const { return server_; }  // the URL connected to
    const ClientOptions& options() const { return opt_; }

  private:
    Client() = default;
    ClientOptions opt_;
    natsOptions* nopts_ = nullptr;
    natsConnection* nc_ = nullptr;
    jsCtx* js_ = nullptr;
    std::string server_;
};

}  // namespace sluice::jetstream
