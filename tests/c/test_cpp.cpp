// rcache's C API from C++17, through a small RAII wrapper: the client and the
// buffers the library hands out are owned by std::unique_ptr with custom
// deleters, errors become exceptions that carry the status.
//
//   test_cpp URL

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "check.h"
#include "rcache.h"

namespace rc {

struct ClientDeleter {
  void operator()(rcache_client *client) const noexcept { rcache_client_free(client); }
};
using ClientPtr = std::unique_ptr<rcache_client, ClientDeleter>;

// One buffer filled by the library, released with rcache_buffer_free.
struct BufferDeleter {
  void operator()(rcache_buffer *buffer) const noexcept {
    rcache_buffer_free(buffer);
    delete buffer;
  }
};
using BufferPtr = std::unique_ptr<rcache_buffer, BufferDeleter>;

// An array of `count` buffers filled by rcache_client_get_many.
struct BuffersDeleter {
  size_t count = 0;
  void operator()(rcache_buffer *buffers) const noexcept {
    rcache_buffers_free(buffers, count);
    delete[] buffers;
  }
};
using BuffersPtr = std::unique_ptr<rcache_buffer[], BuffersDeleter>;

class Error : public std::runtime_error {
 public:
  Error(rcache_status status, const std::string &what)
      : std::runtime_error(std::string(rcache_status_name(status)) + ": " + what), status_(status) {}
  rcache_status status() const noexcept { return status_; }

 private:
  rcache_status status_;
};

// OK and MISS pass through; any other status throws with rcache_last_error().
inline rcache_status check(rcache_status status) {
  if (status != RCACHE_STATUS_OK && status != RCACHE_STATUS_MISS) {
    throw Error(status, rcache_last_error());
  }
  return status;
}

inline const uint8_t *bytes(std::string_view text) {
  return reinterpret_cast<const uint8_t *>(text.data());
}

class Cache {
 public:
  explicit Cache(const std::string &url, const std::string &prefix = "") {
    rcache_options options = rcache_options_default();
    options.key_prefix = prefix.empty() ? nullptr : prefix.c_str();
    rcache_client *raw = nullptr;
    check(rcache_client_connect(url.c_str(), &options, &raw));
    client_.reset(raw);
  }

  void set(std::string_view key, std::string_view value, int64_t ttl_ms = RCACHE_TTL_NONE) const {
    check(rcache_client_set(client_.get(), bytes(key), key.size(), bytes(value), value.size(), ttl_ms));
  }

  std::optional<std::string> get(std::string_view key) const {
    BufferPtr buffer(new rcache_buffer{nullptr, 0});
    if (check(rcache_client_get(client_.get(), bytes(key), key.size(), buffer.get())) ==
        RCACHE_STATUS_MISS) {
      return std::nullopt;
    }
    return std::string(reinterpret_cast<const char *>(buffer->data), buffer->len);
  }

  std::vector<std::optional<std::string>> get_many(const std::vector<std::string_view> &keys) const {
    std::vector<rcache_bytes> list;
    for (std::string_view key : keys) list.push_back({bytes(key), key.size()});
    BuffersPtr buffers(new rcache_buffer[keys.size()](), BuffersDeleter{keys.size()});
    check(rcache_client_get_many(client_.get(), list.data(), list.size(), buffers.get()));
    std::vector<std::optional<std::string>> values;
    for (size_t i = 0; i < keys.size(); i++) {
      if (buffers[i].data == nullptr) {
        values.emplace_back(std::nullopt);
      } else {
        values.emplace_back(std::string(reinterpret_cast<const char *>(buffers[i].data), buffers[i].len));
      }
    }
    return values;
  }

  int64_t incr(std::string_view key, int64_t delta = 1, int64_t ttl_ms = RCACHE_TTL_NONE) const {
    int64_t value = 0;
    check(rcache_client_incr(client_.get(), bytes(key), key.size(), delta, ttl_ms, &value));
    return value;
  }

  bool erase(std::string_view key) const {
    return check(rcache_client_delete(client_.get(), bytes(key), key.size())) == RCACHE_STATUS_OK;
  }

  rcache_client *handle() const noexcept { return client_.get(); }

 private:
  ClientPtr client_;
};

}  // namespace rc

using namespace std::string_literals;

static void test_wrapper(const std::string &url, const std::string &prefix) {
  rc::Cache cache(url, prefix);

  CHECK(!cache.get("cpp:missing").has_value());
  cache.set("cpp:a", "alpha");
  CHECK(cache.get("cpp:a") == "alpha"s);

  // std::string keys and values with embedded NULs.
  const std::string key = "cpp:\0key"s, value = "v\0a\0l"s;
  cache.set(key, value);
  CHECK(cache.get(key) == value);
  CHECK(!cache.get("cpp:").has_value());

  // An empty value is a hit, not a miss.
  cache.set("cpp:empty", "");
  auto empty = cache.get("cpp:empty");
  CHECK(empty.has_value() && empty->empty());

  auto values = cache.get_many({"cpp:a", "cpp:missing", key, "cpp:empty"});
  CHECK(values.size() == 4);
  if (values.size() == 4) {
    CHECK(values[0] == "alpha"s);
    CHECK(!values[1].has_value());
    CHECK(values[2] == value);
    CHECK(values[3].has_value() && values[3]->empty());
  }
  CHECK(cache.get_many({}).empty());

  CHECK_EQ_INT(cache.incr("cpp:n"), 1);
  CHECK_EQ_INT(cache.incr("cpp:n", 41), 42);
  CHECK_EQ_INT(cache.incr("cpp:n", -50), -8);
  CHECK(cache.get("cpp:n") == "-8"s);

  CHECK(cache.erase("cpp:a"));
  CHECK(!cache.erase("cpp:a"));

  // Errors become exceptions carrying the status, and the handle lives on.
  try {
    cache.set("", "x");
    CHECK(!"an empty key must throw");
  } catch (const rc::Error &error) {
    CHECK_EQ_INT(error.status(), RCACHE_STATUS_INVALID_ARGUMENT);
    CHECK(std::string(error.what()).find("RCACHE_STATUS_INVALID_ARGUMENT") == 0);
  }
  cache.set("cpp:text", "not a number");
  try {
    cache.incr("cpp:text");
    CHECK(!"incr of text must throw");
  } catch (const rc::Error &error) {
    CHECK_EQ_INT(error.status(), RCACHE_STATUS_WRONG_TYPE);
  }
  try {
    cache.set("cpp:a", "x", -5);
    CHECK(!"a negative TTL must throw");
  } catch (const rc::Error &error) {
    CHECK_EQ_INT(error.status(), RCACHE_STATUS_INVALID_ARGUMENT);
  }
  cache.set("cpp:after", "fine");
  CHECK(cache.get("cpp:after") == "fine"s);

  // The client handle can be moved; the moved-to wrapper owns it.
  rc::Cache moved = std::move(cache);
  CHECK(moved.handle() != nullptr);
  CHECK(moved.get("cpp:after") == "fine"s);
}

static void test_connect_errors() {
  try {
    rc::Cache cache("ftp://example");
    CHECK(!"an unknown scheme must throw");
  } catch (const rc::Error &error) {
    CHECK_EQ_INT(error.status(), RCACHE_STATUS_INVALID_ARGUMENT);
  }
  try {
    rc::Cache cache("redis+sentinel://127.0.0.1:1");
    CHECK(!"a Sentinel URL without its service name must throw");
  } catch (const rc::Error &error) {
    CHECK_EQ_INT(error.status(), RCACHE_STATUS_INVALID_ARGUMENT);
  }
  try {
    rc::Cache cache("redis+sentinel://127.0.0.1:1/master");
    CHECK(!"no sentinel listening must throw");
  } catch (const rc::Error &error) {
    CHECK_EQ_INT(error.status(), RCACHE_STATUS_CONNECTION);
  }
  try {
    rc::Cache cache("redis+cluster://127.0.0.1:1");
    CHECK(!"no cluster node listening must throw");
  } catch (const rc::Error &error) {
    CHECK_EQ_INT(error.status(), RCACHE_STATUS_CONNECTION);
  }
}

// The raw unique_ptr pieces on their own, as a program without the wrapper would use them.
static void test_raw_owners(const std::string &url, const std::string &prefix) {
  rcache_options options = rcache_options_default();
  options.key_prefix = prefix.c_str();
  rcache_client *raw = nullptr;
  if (!EXPECT_OK(rcache_client_connect(url.c_str(), &options, &raw))) return;
  rc::ClientPtr client(raw);
  EXPECT_OK(rcache_client_set(client.get(), rc::bytes("raw"), 3, rc::bytes("value"), 5, 60000));
  rc::BufferPtr buffer(new rcache_buffer{nullptr, 0});
  if (EXPECT_OK(rcache_client_get(client.get(), rc::bytes("raw"), 3, buffer.get()))) {
    CHECK_BYTES(buffer->data, buffer->len, "value", 5);
  }
  // Releasing early and again at scope exit is safe: rcache_buffer_free resets the buffer.
  rcache_buffer_free(buffer.get());
  CHECK(buffer->data == nullptr && buffer->len == 0);
  client.reset();
  CHECK(client == nullptr);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s URL\n", argv[0]);
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  alarm(60);
  const std::string url = argv[1];
  const std::string prefix = "test_cpp:" + std::to_string(getpid()) + ":";
  std::printf("test_cpp against %s\n", url.c_str());
  try {
    test_wrapper(url, prefix);
    test_connect_errors();
    test_raw_owners(url, prefix);
  } catch (const std::exception &error) {
    CHECK(!"unexpected exception");
    std::fprintf(stderr, "    %s\n", error.what());
  }
  return check_summary();
}
