#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tsrunner::serve {

class BodyStream;  // body_stream.h

// One parsed HTTP request, handed to the service; Boost.Beast stays inside http_server.cc.
struct HttpRequest {
  std::string method;                                        // "GET", "POST", ...
  std::string path;                                          // the target without its query
  std::string query;                                         // after '?', undecoded
  std::vector<std::pair<std::string, std::string>> headers;  // names as sent
  std::string body;

  // The first header of that name (case-insensitive), or empty.
  std::string_view header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Set: a streamed answer. The server writes the status and headers at once, then the pieces
  // pushed into the stream as chunks (Transfer-Encoding: chunked; `body` is ignored) until it
  // is closed, and closes the connection after it. While it streams, a client that closes its
  // connection is noticed at once (BodyStream::client_gone).
  std::shared_ptr<BodyStream> stream;
};

// Answers a request exactly once, from any thread.
using Respond = std::function<void(HttpResponse)>;
using Handler = std::function<void(HttpRequest&&, Respond)>;

// What one connection may cost the server.
struct HttpLimits {
  size_t body_bytes = size_t{2} << 20;            // larger: 413 without reading the body
  size_t header_bytes = 16 << 10;                 // request line and headers; larger: 431
  std::chrono::milliseconds read_timeout{30000};  // to receive one whole request
  std::chrono::milliseconds write_timeout{30000};
  std::chrono::milliseconds idle_timeout{60000};  // keep-alive wait for the next request
  size_t max_connections = 4096;                  // more are closed on accept
};

// An HTTP/1.1 server on Boost.Beast: `io_threads` threads run every connection's I/O
// asynchronously; each connection reads one request at a time (bounded as HttpLimits says),
// hands it to the handler and writes the answer when the handler responds, then reads the next
// (keep-alive). Parsing is Beast's; nothing here parses HTTP by hand.
class HttpServer {
 public:
  // Binds and listens (throws std::runtime_error naming the address when it cannot); port 0
  // takes a free port. Serves nothing until start().
  HttpServer(const std::string& host, uint16_t port, HttpLimits limits, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;
  void start(size_t io_threads);
  // Closes the listening socket: no new connection; open ones go on.
  void stop_accepting();
  // Requests read and not yet answered (their response written or failed).
  size_t requests_in_flight() const;
  // Ends every connection and joins the I/O threads.
  void stop();

  struct Impl;  // http_server.cc

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tsrunner::serve
