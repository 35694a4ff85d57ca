// The C++ wrapper, bindings/cpp/rcache.hpp, used as a C++17 program would:
// RAII owners, std::string_view arguments with embedded NULs, std::optional
// for misses, exceptions by status family, get-or-compute with lambdas that
// throw, tags, counters, batches, hash records, keys, locks, sessions, stats
// and metrics; and the C API alone with std::unique_ptr owners.
//
//   test_cpp URL

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "check.h"
#include "rcache.h"
#include "rcache.hpp"

using namespace std::string_literals;
using namespace std::string_view_literals;
using namespace std::chrono_literals;

namespace {

std::string g_url;
std::string g_prefix;
bool g_redis = false;

rcache::Options prefixed(const std::string &suffix = "") {
  rcache::Options options;
  options.key_prefix = g_prefix + suffix;
  return options;
}

// Runs `call`, which must throw `Expected`; checks its status and message.
template <class Expected, class Call>
bool expect_throw(const char *what, rcache_status status, Call &&call) {
  try {
    call();
  } catch (const Expected &error) {
    bool ok = CHECK(error.status() == status);
    ok = CHECK(!error.message().empty()) && ok;
    ok = CHECK(std::string(error.what()).rfind(rcache_status_name(status), 0) == 0) && ok;
    if (!ok) std::fprintf(stderr, "    in %s: %s\n", what, error.what());
    return ok;
  } catch (const std::exception &error) {
    std::fprintf(stderr, "    %s threw another exception: %s\n", what, error.what());
    return CHECK(!"the expected exception type");
  }
  std::fprintf(stderr, "    %s did not throw\n", what);
  return CHECK(!"an exception");
}
#define EXPECT_THROW(type, status, ...) expect_throw<type>(#__VA_ARGS__, status, [&] { __VA_ARGS__; })

void test_values() {
  rcache::Client cache(g_url, prefixed());

  CHECK(!cache.get("missing").has_value());
  cache.set("a", "alpha");
  CHECK(cache.get("a") == "alpha"s);
  CHECK(cache.exists("a"));
  CHECK(!cache.exists("missing"));

  // Keys and values with embedded NULs, as string_view and std::string.
  const std::string key = "k\0ey"s, value = "v\0a\0l"s;
  cache.set(key, value);
  CHECK(cache.get(key) == value);
  CHECK(!cache.get("k"sv).has_value());
  CHECK(cache.get("k\0ey"sv) == value);

  // An empty value is a hit, not a miss.
  cache.set("empty", "");
  auto empty = cache.get("empty");
  CHECK(empty.has_value() && empty->empty());

  // The library's buffer itself, without a copy.
  std::optional<rcache::Buffer> buffer = cache.get_buffer(key);
  if (CHECK(buffer.has_value())) {
    CHECK(buffer->view() == value);
    CHECK_EQ_INT(buffer->size(), value.size());
    rcache::Buffer moved = std::move(*buffer);
    CHECK(buffer->data() == nullptr && buffer->empty());
    CHECK(moved.str() == value);
  }
  CHECK(!cache.get_buffer("missing").has_value());

  // TTLs from std::chrono durations.
  cache.set("ttl", "x", 60s);
  auto left = cache.ttl("ttl");
  CHECK(left.has_value() && *left > 55s && *left <= 60s);
  cache.set("forever", "x", rcache::Ttl::none());
  CHECK(cache.ttl("forever") == rcache::no_expiry);
  CHECK(!cache.ttl("missing").has_value());
  CHECK(cache.expire("forever", 2min));
  left = cache.ttl("forever");
  CHECK(left.has_value() && *left > 100s && *left <= 120s);
  CHECK(!cache.expire("missing", 1s));
  cache.set("forever", "y", rcache::Ttl::keep());
  left = cache.ttl("forever");
  CHECK(left.has_value() && *left > 100s);
  cache.set("sub-ms", "x", 1us);  // rounded up to 1 ms, not "the default"
  CHECK(rcache::Ttl(1us).ms() == 1 && rcache::Ttl(1500us).ms() == 2 && rcache::Ttl(0.25s).ms() == 250);

  auto entry = cache.get_with_ttl("ttl");
  if (CHECK(entry.has_value())) {
    CHECK(entry->value == "x");
    CHECK(entry->ttl > 55s && entry->ttl <= 60s);
  }
  entry = cache.get_with_ttl("a");
  CHECK(entry.has_value() && entry->ttl == rcache::no_expiry);
  CHECK(!cache.get_with_ttl("missing").has_value());

  CHECK(cache.compare_and_set("a", "alpha", "beta"));
  CHECK(!cache.compare_and_set("a", "alpha", "gamma"));
  CHECK(!cache.compare_and_set("missing", "", "x"));
  CHECK(cache.get("a") == "beta"s);

  CHECK(cache.erase("a"));
  CHECK(!cache.erase("a"));
  cache.clear();
}

void test_batches_and_counters() {
  rcache::Client cache(g_url, prefixed());
  const std::string nul_key = "n\0ul"s;

  cache.set_many({{"r", "#f00"}, {"g", "#0f0"}, {nul_key, "\0"sv}}, 1min);
  auto values = cache.get_many({"r", "missing", nul_key, "g"});
  if (CHECK_EQ_INT(values.size(), 4)) {
    CHECK(values[0] == "#f00"s);
    CHECK(!values[1].has_value());
    CHECK(values[2] == "\0"s);
    CHECK(values[3] == "#0f0"s);
  }
  CHECK(cache.get_many({}).empty());

  // Containers of std::string work as key lists and entry lists.
  std::map<std::string, std::string> entries = {{"m1", "one"}, {"m2", "two"}};
  cache.set_many(entries);
  std::vector<std::string> keys = {"m2", "m1", "m3"};
  values = cache.get_many(keys);
  CHECK(values.size() == 3 && values[0] == "two"s && values[1] == "one"s && !values[2]);

  CHECK_EQ_INT(cache.incr("n"), 1);
  CHECK_EQ_INT(cache.incr("n", 41), 42);
  CHECK_EQ_INT(cache.incr("n", -50, 1h), -8);
  CHECK(cache.get("n") == "-8"s);
  EXPECT_THROW(rcache::WrongTypeError, RCACHE_STATUS_WRONG_TYPE, cache.incr("r"));
  cache.clear();
}

void test_tags_keys_and_clear() {
  rcache::Client cache(g_url, prefixed());

  cache.set_tagged("user:1", "Ada", {"users", "team:a"});
  cache.set_tagged("user:2", "Bob", std::vector<std::string>{"users"}, 1min);
  cache.set("plain", "p");
  CHECK(cache.add_tags("plain", {"misc"}));
  CHECK(!cache.add_tags("missing", {"misc"}));
  CHECK(cache.get("user:1") == "Ada"s);

  CHECK(cache.keys() == (std::vector<std::string>{"plain", "user:1", "user:2"}));
  CHECK(cache.keys("user:*") == (std::vector<std::string>{"user:1", "user:2"}));
  CHECK(cache.keys("nothing*").empty());

  cache.invalidate_tags({"team:a"});
  CHECK(!cache.get("user:1").has_value());
  CHECK(cache.get("user:2") == "Bob"s);
  cache.invalidate_tags({"misc", "users"});
  CHECK(!cache.get("user:2").has_value());
  CHECK(!cache.get("plain").has_value());

  cache.set("x:1", "1");
  cache.set("x:2", "2");
  cache.set("y:1", "1");
  CHECK_EQ_INT(cache.clear("x:*"), 2);
  CHECK(cache.keys() == (std::vector<std::string>{"y:1"}));
  CHECK(cache.clear() >= 1);
  CHECK(cache.keys().empty());
}

void test_records_locks_and_info() {
  rcache::Client cache(g_url, prefixed());

  CHECK(cache.hash_set("rec", {{"name", "Ada"}, {"bin\0"sv, "\0\1"sv}}, 1h));
  auto record = cache.hash_get("rec");
  if (CHECK(record.has_value())) {
    CHECK_EQ_INT(record->size(), 2);
    CHECK(record->at("name") == "Ada");
    CHECK(record->at("bin\0"s) == "\0\1"s);
  }
  CHECK(!cache.hash_get("missing").has_value());
  CHECK(!cache.hash_set("rec", {{"x", "1"}}, rcache::Ttl(), RCACHE_WRITE_IF_ABSENT));
  CHECK(!cache.hash_set("missing", {{"x", "1"}}, rcache::Ttl(), RCACHE_WRITE_IF_EXISTS));
  CHECK(cache.hash_set("rec", std::map<std::string, std::string>{{"name", "Bea"}}, rcache::Ttl::keep(),
                       RCACHE_WRITE_IF_EXISTS));
  CHECK(cache.hash_get("rec")->at("name") == "Bea");
  cache.set("string", "s");
  EXPECT_THROW(rcache::WrongTypeError, RCACHE_STATUS_WRONG_TYPE, cache.hash_get("string"));
  EXPECT_THROW(rcache::WrongTypeError, RCACHE_STATUS_WRONG_TYPE, cache.get("rec"));

  CHECK(cache.lock("job", "worker-1", 10s));
  CHECK(!cache.lock("job", "worker-2", 10s));
  CHECK(cache.extend_lock("job", "worker-1", 20s));
  CHECK(!cache.extend_lock("job", "worker-2", 20s));
  CHECK(!cache.unlock("job", "worker-2"));
  CHECK(cache.unlock("job", "worker-1"));
  CHECK(cache.lock("job", "worker-2", 10s));
  EXPECT_THROW(rcache::InvalidArgumentError, RCACHE_STATUS_INVALID_ARGUMENT,
               cache.lock("job2", "w", std::chrono::milliseconds(-1)));

  const std::string info = cache.server_info();
  CHECK(info.find(g_redis ? "redis_version:" : "rcache_backend:memory") != std::string::npos);
  cache.clear();
}

struct Oops : std::runtime_error {
  int code;
  explicit Oops(int c) : std::runtime_error("oops"), code(c) {}
};

void test_get_or_compute() {
  rcache::Client cache(g_url, prefixed());
  int calls = 0;

  auto compute = [&calls] {
    calls++;
    return "com\0puted"s;
  };
  CHECK(cache.get_or_compute("c", compute) == "com\0puted"s);
  CHECK(cache.get_or_compute("c", compute) == "com\0puted"s);
  CHECK_EQ_INT(calls, 1);
  CHECK(cache.get("c") == "com\0puted"s);

  // An exception thrown by the function comes back as it is; nothing is stored.
  try {
    cache.get_or_compute("fails", []() -> std::string { throw Oops(7); });
    CHECK(!"the exception must propagate");
  } catch (const Oops &error) {
    CHECK_EQ_INT(error.code, 7);
  }
  CHECK(!cache.get("fails").has_value());
  try {
    cache.get_or_compute("fails", []() -> std::string { throw 42; });
    CHECK(!"a non-standard exception must propagate");
  } catch (int thrown) {
    CHECK_EQ_INT(thrown, 42);
  }
  // An rcache error inside the function, from a nested call on the same client.
  EXPECT_THROW(rcache::WrongTypeError, RCACHE_STATUS_WRONG_TYPE, cache.get_or_compute("nested", [&cache] {
    cache.set("text", "not a number");
    return std::to_string(cache.incr("text"));
  }));
  CHECK(!cache.get("nested").has_value());
  // After a failure the key is free: the next caller computes.
  CHECK(cache.get_or_compute("fails", [] { return "recovered"; }) == "recovered");

  // Options: TTL and tags of the stored value.
  rcache::ComputeOptions options;
  options.ttl = 30s;
  options.tags = {"computed"};
  options.early_refresh_beta = 0.0;
  options.lock_lease = 5s;
  CHECK(cache.get_or_compute("tagged", [] { return std::string_view("t"); }, options) == "t");
  auto left = cache.ttl("tagged");
  CHECK(left.has_value() && *left > 25s && *left <= 30s);
  cache.invalidate_tags({"computed"});
  CHECK(!cache.get("tagged").has_value());
  options.lock_lease = std::chrono::milliseconds(1LL << 40);
  EXPECT_THROW(rcache::InvalidArgumentError, RCACHE_STATUS_INVALID_ARGUMENT,
               cache.get_or_compute("tagged", [] { return "t"; }, options));

  // Threads sharing one client: one computation, every thread gets its value.
  std::atomic<int> computations{0};
  std::vector<std::thread> threads;
  std::vector<std::string> results(8);
  for (size_t i = 0; i < results.size(); i++) {
    threads.emplace_back([&, i] {
      try {
        results[i] = cache.get_or_compute("stampede", [&computations] {
          computations++;
          std::this_thread::sleep_for(100ms);
          return "once"s;
        });
      } catch (const std::exception &error) {
        results[i] = error.what();
      }
    });
  }
  for (auto &thread : threads) thread.join();
  CHECK_EQ_INT(computations.load(), 1);
  for (const auto &result : results) CHECK(result == "once");
  cache.clear();
}

void test_sessions() {
  rcache::Client cache(g_url, prefixed());
  rcache::SessionStore store = cache.sessions("sess:");

  rcache::NewSession made = store.create({{"user", "ada"}, {"blob", "\0\xff"sv}}, 1h);
  CHECK_EQ_INT(made.id.size(), 32);
  CHECK_EQ_INT(made.secret.size(), 32);
  auto session = store.load(made.id, made.secret);
  if (CHECK(session.has_value())) {
    CHECK(session->fields.at("user") == "ada");
    CHECK(session->fields.at("blob") == "\0\xff"s);
    CHECK(session->version >= 1 && session->touched_ms > 0);
  }
  CHECK(!store.load(made.id, "0123456789abcdef0123456789abcdef").has_value());
  CHECK(!store.load("not-an-id", made.secret).has_value());

  const uint64_t version = session ? session->version : 0;
  auto saved = store.save(made.id, made.secret, {{"cart", "3"}}, {"blob"}, version, 1h);
  CHECK(saved.has_value() && *saved > version);
  EXPECT_THROW(rcache::ConflictError, RCACHE_STATUS_CONFLICT,
               store.save(made.id, made.secret, {{"cart", "4"}}, {}, version, 1h));
  session = store.load(made.id, made.secret, rcache::Ttl(2h));
  if (CHECK(session.has_value())) {
    CHECK(session->fields == (rcache::Fields{{"cart", "3"}, {"user", "ada"}}));
  }
  CHECK(!store.save(made.id, "wrong", {{"x", "1"}}).has_value());

  auto owner = store.lock(made.id, made.secret, 10s);
  if (CHECK(owner.has_value())) {
    CHECK_EQ_INT(owner->size(), 32);
    EXPECT_THROW(rcache::ConflictError, RCACHE_STATUS_CONFLICT, store.lock(made.id, made.secret, 10s));
    CHECK(store.unlock(made.id, *owner));
    CHECK(!store.unlock(made.id, *owner));
  }
  CHECK(!store.lock(made.id, "wrong", 10s).has_value());
  EXPECT_THROW(rcache::InvalidArgumentError, RCACHE_STATUS_INVALID_ARGUMENT, store.unlock(made.id, "a\0b"s));

  CHECK(store.touch(made.id, made.secret, 1h));
  CHECK(!store.touch(made.id, "wrong"));
  CHECK_EQ_INT(store.purge(1h), 0);
  CHECK(store.destroy(made.id, made.secret));
  CHECK(!store.destroy(made.id, made.secret));
  CHECK(!store.load(made.id, made.secret).has_value());

  rcache::NewSession idle = store.create();
  std::this_thread::sleep_for(20ms);
  CHECK_EQ_INT(store.purge(1ms), 1);
  CHECK(!store.load(idle.id, idle.secret).has_value());

  rcache::SessionStore moved = std::move(store);
  CHECK(store.handle() == nullptr && moved.handle() != nullptr);
  EXPECT_THROW(rcache::InvalidArgumentError, RCACHE_STATUS_INVALID_ARGUMENT, store.create());
  CHECK(moved.create({{"k", "v"}}).id.size() == 32);
  cache.clear();
}

void test_stats_and_metrics() {
  rcache::Client cache(g_url, prefixed());
  cache.set("a", "1");
  (void)cache.get("a");
  (void)cache.get("a");
  (void)cache.get("missing");

  const rcache::Stats stats = cache.stats();
  CHECK_EQ_INT(stats.hits, 2);
  CHECK_EQ_INT(stats.misses, 1);
  const std::string text = cache.metrics("cpp");
  CHECK(text.find("# TYPE rcache_hits_total counter\n") != std::string::npos);
  CHECK(text.find("\nrcache_hits_total{client=\"cpp\"} 2\n") != std::string::npos);
  CHECK(text.find("\nrcache_misses_total{client=\"cpp\"} 1\n") != std::string::npos);
  CHECK(text.find("\nrcache_errors_total{client=\"cpp\",kind=\"other\"} 0\n") != std::string::npos);
  CHECK(!text.empty() && text.back() == '\n');
  CHECK(cache.metrics().find("\nrcache_hits_total 2\n") != std::string::npos);
  EXPECT_THROW(rcache::InvalidArgumentError, RCACHE_STATUS_INVALID_ARGUMENT, cache.metrics("a\0b"s));
  cache.clear();
}

void test_errors_and_moves() {
  EXPECT_THROW(rcache::InvalidArgumentError, RCACHE_STATUS_INVALID_ARGUMENT, rcache::Client("ftp://example"));
  EXPECT_THROW(rcache::InvalidArgumentError, RCACHE_STATUS_INVALID_ARGUMENT, rcache::Client("redis+sentinel://127.0.0.1:1"));
  EXPECT_THROW(rcache::ConnectionError, RCACHE_STATUS_CONNECTION, rcache::Client("redis+sentinel://127.0.0.1:1/m"));
  EXPECT_THROW(rcache::ConnectionError, RCACHE_STATUS_CONNECTION, rcache::Client("redis+cluster://127.0.0.1:1"));
  EXPECT_THROW(rcache::InvalidArgumentError, RCACHE_STATUS_INVALID_ARGUMENT, rcache::Client("memory://\0x"s));
  rcache::Options bad_prefix;
  bad_prefix.key_prefix = "a\0b"s;
  EXPECT_THROW(rcache::InvalidArgumentError, RCACHE_STATUS_INVALID_ARGUMENT, rcache::Client("memory://", bad_prefix));

  // A server that is not there: an UnavailableError, caught by its family.
  rcache::Options quick = prefixed();
  quick.raw.connect_timeout_ms = 200;
  try {
    rcache::Client nowhere("redis://127.0.0.1:1/0", quick);
    CHECK(!"connecting to a closed port must throw");
  } catch (const rcache::UnavailableError &error) {
    CHECK(error.status() == RCACHE_STATUS_CONNECTION || error.status() == RCACHE_STATUS_TIMEOUT);
  }

  rcache::Options small = prefixed();
  small.raw.max_value_bytes = 8;
  rcache::Client cache(g_url, small);
  EXPECT_THROW(rcache::InvalidArgumentError, RCACHE_STATUS_INVALID_ARGUMENT, cache.set("", "x"));
  EXPECT_THROW(rcache::InvalidArgumentError, RCACHE_STATUS_INVALID_ARGUMENT, cache.set("__rcache_x", "x"));
  EXPECT_THROW(rcache::TooLargeError, RCACHE_STATUS_TOO_LARGE, cache.set("big", "123456789"));
  try {
    cache.set("big", "123456789");
  } catch (const rcache::InvalidArgumentError &) {
    CHECK(true);  // TooLargeError is an InvalidArgumentError
  }
  EXPECT_THROW(rcache::InvalidArgumentError, RCACHE_STATUS_INVALID_ARGUMENT, cache.set("k", "v", -1s));
  EXPECT_THROW(rcache::InvalidArgumentError, RCACHE_STATUS_INVALID_ARGUMENT, cache.set("k", "v", 0s));
  EXPECT_THROW(rcache::InvalidArgumentError, RCACHE_STATUS_INVALID_ARGUMENT, cache.set("k", "v", 200000h * 24));
  EXPECT_THROW(rcache::InvalidArgumentError, RCACHE_STATUS_INVALID_ARGUMENT, cache.expire("k", rcache::Ttl::keep()));
  // The handle lives on after errors.
  cache.set("after", "fine");
  CHECK(cache.get("after") == "fine"s);
  CHECK(std::string(rcache::Client::version()) == rcache_version());

  // Moves: the moved-to client owns the handle; the moved-from one throws.
  rcache_client *raw = cache.handle();
  rcache::Client moved = std::move(cache);
  CHECK(moved.handle() == raw && cache.handle() == nullptr);
  CHECK(moved.get("after") == "fine"s);
  EXPECT_THROW(rcache::InvalidArgumentError, RCACHE_STATUS_INVALID_ARGUMENT, cache.get("after"));
  rcache::Client other(g_url, prefixed());
  other = std::move(moved);  // frees other's own handle first
  CHECK(other.get("after") == "fine"s);
  rcache::Client &self = other;
  other = std::move(self);
  CHECK(other.get("after") == "fine"s);
  other.clear();
}

// The raw unique_ptr pieces on their own, as a program without the wrapper would use them.
struct ClientDeleter {
  void operator()(rcache_client *client) const noexcept { rcache_client_free(client); }
};

void test_raw_owners() {
  rcache_options options = rcache_options_default();
  options.key_prefix = g_prefix.c_str();
  rcache_client *raw = nullptr;
  if (!EXPECT_OK(rcache_client_connect(g_url.c_str(), &options, &raw))) return;
  std::unique_ptr<rcache_client, ClientDeleter> client(raw);
  const auto *key = reinterpret_cast<const uint8_t *>("raw");
  EXPECT_OK(rcache_client_set(client.get(), key, 3, reinterpret_cast<const uint8_t *>("value"), 5, 60000));
  rcache::Buffer buffer;
  if (EXPECT_OK(rcache_client_get(client.get(), key, 3, buffer.out()))) {
    CHECK_BYTES(buffer.data(), buffer.size(), "value", 5);
  }
  // Releasing early and again at scope exit is safe: rcache_buffer_free resets the buffer.
  buffer.reset();
  CHECK(buffer.data() == nullptr && buffer.size() == 0);
  EXPECT_OK(rcache_client_delete(client.get(), key, 3));
  client.reset();
  CHECK(client == nullptr);
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s URL\n", argv[0]);
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  alarm(120);
  g_url = argv[1];
  g_redis = g_url.rfind("redis", 0) == 0 || g_url.rfind("unix", 0) == 0;
  g_prefix = "test_cpp:" + std::to_string(getpid()) + ":";
  std::printf("test_cpp against %s\n", g_url.c_str());
  try {
    test_values();
    test_batches_and_counters();
    test_tags_keys_and_clear();
    test_records_locks_and_info();
    test_get_or_compute();
    test_sessions();
    test_stats_and_metrics();
    test_errors_and_moves();
    test_raw_owners();
  } catch (const std::exception &error) {
    CHECK(!"unexpected exception");
    std::fprintf(stderr, "    %s\n", error.what());
  }
  return check_summary();
}
