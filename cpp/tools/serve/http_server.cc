#include "http_server.h"

#include <array>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>
#include <stdexcept>
#include <thread>

#include "body_stream.h"

namespace tsrunner::serve {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

std::string_view HttpRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (beast::iequals(beast::string_view(key.data(), key.size()),
                       beast::string_view(name.data(), name.size()))) {
      return value;
    }
  }
  return {};
}

namespace {

// A refusal written before the request reached the handler (no JSON escaping needed: fixed
// texts only).
HttpResponse transport_error(int status, const std::string& message) {
  return {status,
          "application/json",
          "{\"error\":\"" + message + "\",\"error_type\":\"Validation\"}",
          {}};
}

// After a refusal the client may still be sending its body: read and drop up to this much
// (for at most kDrainTime) before closing, so the refusal is not lost to a TCP reset.
constexpr size_t kDrainBytes = size_t{64} << 20;
constexpr std::chrono::seconds kDrainTime{2};

}  // namespace

struct HttpServer::Impl {
  Impl(const std::string& host, uint16_t port, HttpLimits limits_in, Handler handler_in)
      : limits(limits_in), handler(std::move(handler_in)) {
    beast::error_code ec;
    const net::ip::address address = net::ip::make_address(host, ec);
    if (ec) throw std::runtime_error("--host: \"" + host + "\" is not an IP address");
    const tcp::endpoint endpoint(address, port);
    const std::string where = host + ":" + std::to_string(port);
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("cannot listen on " + where + ": " + ec.message());
    bound_port = acceptor.local_endpoint().port();
  }

  void accept();

  // Declared before the I/O objects: sessions still queued in `ioc` use them while it is
  // destroyed.
  HttpLimits limits;
  Handler handler;
  std::atomic<size_t> in_flight{0};
  std::atomic<size_t> connections{0};
  std::atomic<bool> accepting{true};
  uint16_t bound_port = 0;
  net::io_context ioc;
  net::executor_work_guard<net::io_context::executor_type> work{ioc.get_executor()};
  tcp::acceptor acceptor{net::make_strand(ioc)};
  net::steady_timer retry_timer{acceptor.get_executor()};
  std::vector<std::thread> threads;
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, HttpServer::Impl& server)
      : stream_(std::move(socket)), server_(server) {
    ++server_.connections;
  }
  ~Session() { --server_.connections; }

  void start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read_header(); });
  }

 private:
  void read_header() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(server_.limits.header_bytes));
    parser_->body_limit(server_.limits.body_bytes);
    // One deadline for waiting, the headers and the body: a slow or idle client is dropped.
    stream_.expires_after(server_.limits.read_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, size_t) {
    if (ec) return refuse_or_close(ec);
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      // curl asks before sending a body over 1 KiB and waits a second for this answer.
      auto proceed = std::make_shared<http::response<http::empty_body>>(http::status::continue_,
                                                                        parser_->get().version());
      http::async_write(stream_, *proceed,
                        [self = shared_from_this(), proceed](beast::error_code write_ec, size_t) {
                          if (write_ec) return self->close();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  void refuse_or_close(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      return write(transport_error(413, "request body larger than " +
                                            std::to_string(server_.limits.body_bytes) + " bytes"),
                   false);
    }
    if (ec == http::error::header_limit) {
      return write(transport_error(431, "request headers larger than " +
                                            std::to_string(server_.limits.header_bytes) + " bytes"),
                   false);
    }
    // A malformed request (bad start line, bad header, bad chunk): answer once, then close.
    // Anything else (end of stream, timeout, reset, a body cut short) just closes.
    if (&ec.category() == &http::make_error_code(http::error::bad_target).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
      return write(transport_error(400, "malformed HTTP request"), false);
    }
    close();
  }

  void on_read(beast::error_code ec, size_t) {
    if (ec) return refuse_or_close(ec);
    stream_.expires_never();  // the handler may queue for a while; the write sets its own
    http::request<http::string_body> message = parser_->release();
    keep_alive_ = message.keep_alive();
    version_ = message.version();
    HttpRequest request;
    request.method = std::string(message.method_string());
    const std::string_view target(message.target().data(), message.target().size());
    const size_t question = target.find('?');
    request.path = std::string(target.substr(0, question));
    if (question != std::string_view::npos)
      request.query = std::string(target.substr(question + 1));
    for (const auto& field : message) {
      request.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    request.body = std::move(message.body());

    ++server_.in_flight;
    auto answered = std::make_shared<std::atomic<bool>>(false);
    Respond respond = [self = shared_from_this(), answered](HttpResponse response) {
      if (answered->exchange(true)) return;
      net::post(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
        self->write(std::move(response), true);
      });
    };
    try {
      server_.handler(std::move(request), respond);
    } catch (const std::exception& error) {
      respond(transport_error(500, "internal error"));
    }
  }

  // `counted`: the answer to a request the handler took (see requests_in_flight()).
  void write(HttpResponse response, bool counted) {
    if (response.stream) return write_stream(std::move(response));
    auto message = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(response.status), version_);
    message->set(http::field::server, "tsrun");
    message->set(http::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) message->set(name, value);
    message->body() = std::move(response.body);
    const bool keep_alive = counted && keep_alive_ && server_.accepting;
    message->keep_alive(keep_alive);
    message->prepare_payload();
    stream_.expires_after(server_.limits.write_timeout);
    http::async_write(
        stream_, *message,
        [self = shared_from_this(), message, counted, keep_alive](beast::error_code ec, size_t) {
          if (counted) --self->server_.in_flight;
          if (ec) return self->close();
          if (!keep_alive) return self->drain_and_close();
          self->read_header();
        });
  }

  // A streamed answer: the header now, then every piece as a chunk as it comes. A read stays
  // pending meanwhile, so a client that hangs up is seen at once (not at the next failed write).
  void write_stream(HttpResponse response) {
    body_stream_ = std::move(response.stream);
    auto header = std::make_shared<http::response<http::empty_body>>(
        static_cast<http::status>(response.status), version_);
    header->set(http::field::server, "tsrun");
    header->set(http::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) header->set(name, value);
    header->chunked(true);
    header->keep_alive(false);
    auto serializer = std::make_shared<http::response_serializer<http::empty_body>>(*header);
    stream_.expires_after(server_.limits.write_timeout);
    http::async_write_header(
        stream_, *serializer,
        [self = shared_from_this(), header, serializer](beast::error_code ec, size_t) {
          if (ec) return self->end_stream(false);
          self->stream_.expires_never();
          self->watch_for_hangup();
          std::weak_ptr<Session> weak = self;
          self->body_stream_->set_notify([weak] {
            if (auto session = weak.lock()) {
              net::post(session->stream_.get_executor(), [session] { session->write_pieces(); });
            }
          });
          self->write_pieces();
        });
  }

  void watch_for_hangup() {
    stream_.async_read_some(net::buffer(scratch_),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (!ec) return self->watch_for_hangup();  // (pipelined bytes)
                              self->body_stream_->mark_gone();
                              if (self->stream_ended_) return self->close();
                              if (!self->chunk_writing_) self->end_stream(false);
                            });
  }

  void write_pieces() {
    if (chunk_writing_ || stream_ended_) return;
    if (body_stream_->client_gone()) return end_stream(false);
    auto pieces = std::make_shared<std::string>();
    const bool closed = body_stream_->take(*pieces);
    if (pieces->empty() && !closed) return;
    chunk_writing_ = true;
    stream_.expires_after(server_.limits.write_timeout);
    auto written = [self = shared_from_this(), pieces, closed](beast::error_code ec, size_t) {
      self->chunk_writing_ = false;
      self->stream_.expires_never();
      if (ec || self->body_stream_->client_gone()) return self->end_stream(false);
      if (closed) return self->end_stream(true);
      self->write_pieces();
    };
    if (closed) {
      net::async_write(stream_, http::make_chunk_last(), std::move(written));
    } else {
      net::async_write(stream_, http::make_chunk(net::buffer(*pieces)), std::move(written));
    }
  }

  // The streamed answer is over: written whole (`complete`), or cut by the client or an error.
  void end_stream(bool complete) {
    if (stream_ended_) return;
    stream_ended_ = true;
    --server_.in_flight;
    body_stream_->set_notify({});
    if (!complete) {
      body_stream_->mark_gone();
      return close();
    }
    // Stop sending; the pending read closes the socket when the client does (lingering close),
    // or the timer does.
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    linger_ = std::make_unique<net::steady_timer>(stream_.get_executor(), kDrainTime);
    linger_->async_wait([self = shared_from_this()](beast::error_code) { self->close(); });
  }

  // Lingering close: stop sending, then read what the client still sends (a body we refused)
  // until it closes, so the answer already written reaches it.
  void drain_and_close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return close();
    stream_.expires_after(kDrainTime);
    drain();
  }

  void drain() {
    stream_.async_read_some(net::buffer(scratch_),
                            [self = shared_from_this()](beast::error_code ec, size_t bytes) {
                              self->drained_ += bytes;
                              if (ec || self->drained_ > kDrainBytes) return self->close();
                              self->drain();
                            });
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  HttpServer::Impl& server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = false;
  unsigned version_ = 11;
  std::array<char, 16384> scratch_{};
  size_t drained_ = 0;
  // A streamed answer (write_stream).
  std::shared_ptr<BodyStream> body_stream_;
  bool chunk_writing_ = false;
  bool stream_ended_ = false;
  std::unique_ptr<net::steady_timer> linger_;
};

}  // namespace

void HttpServer::Impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (!acceptor.is_open()) return;
    if (ec) {  // out of descriptors, for example: try again shortly instead of spinning
      retry_timer.expires_after(std::chrono::milliseconds(50));
      retry_timer.async_wait([this](beast::error_code) { accept(); });
      return;
    }
    if (connections < limits.max_connections) {
      std::make_shared<Session>(std::move(socket), *this)->start();
    }
    accept();
  });
}

HttpServer::HttpServer(const std::string& host, uint16_t port, HttpLimits limits, Handler handler)
    : impl_(std::make_unique<Impl>(host, port, limits, std::move(handler))) {}

HttpServer::~HttpServer() { stop(); }

uint16_t HttpServer::port() const { return impl_->bound_port; }

void HttpServer::start(size_t io_threads) {
  net::dispatch(impl_->acceptor.get_executor(), [this] { impl_->accept(); });
  for (size_t i = 0; i < std::max<size_t>(io_threads, 1); ++i) {
    impl_->threads.emplace_back([this] { impl_->ioc.run(); });
  }
}

void HttpServer::stop_accepting() {
  impl_->accepting = false;
  net::post(impl_->acceptor.get_executor(), [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
    impl_->retry_timer.cancel();
  });
}

size_t HttpServer::requests_in_flight() const { return impl_->in_flight; }

void HttpServer::stop() {
  impl_->work.reset();
  impl_->ioc.stop();
  for (std::thread& thread : impl_->threads) {
    if (thread.joinable()) thread.join();
  }
  impl_->threads.clear();
}

}  // namespace tsrunner::serve
