// rcache.hpp: rcache from C++17, header-only, over the C API of rcache.h.
//
//   #include <rcache.hpp>              // pkg-config --cflags --libs rcache
//
//   rcache::Options options;
//   options.key_prefix = "myapp:";
//   rcache::Client cache("redis://127.0.0.1:6379/0", options);
//   cache.set("greeting", "hello", std::chrono::minutes(1));
//   std::optional<std::string> value = cache.get("greeting");     // std::nullopt on a miss
//   std::string page = cache.get_or_compute("page:1", [] { return render(1); });
//
// Ownership. `Client` and `SessionStore` own their C handle and free it in
// their destructor; they are move-only (a moved-from object holds no handle,
// and calls on it throw InvalidArgumentError). `Buffer` and `BufferArray` own
// bytes the library handed out. Everything else is copied into std::string,
// std::vector and std::map, so nothing returned refers to library memory.
//
// Bytes. Keys, values, tags and field names are std::string_view: binary-safe,
// embedded NULs included (write them as `"a\0b"sv` or std::string). Only the
// URL, the key prefix, the metrics label and session lock owners are C strings
// (NUL-terminated in C), so an embedded NUL there is an InvalidArgumentError.
//
// Errors are exceptions, derived from rcache::Error, which carries the C
// status and the thread's rcache_last_error() message. A miss is not an
// error: reads return std::optional (std::nullopt on a miss) and conditional
// writes return bool, exactly where the C call returns RCACHE_STATUS_MISS.
// Why exceptions: what is left after misses are taken out (the server is
// down, an argument is out of range, a stored value has the wrong type) is
// rarely handled at the call site, and exceptions let the RAII owners above
// clean up on the way out without an error check after every call. The
// classes follow the status families, so a caller can catch just what it can
// act on, e.g. `catch (const rcache::UnavailableError &)` to serve without the
// cache while Redis is unreachable. Destructors and moves never throw.
//
// Threads. A Client may be shared by any number of threads: every method is
// const and calls the thread-safe C API. Moving or destroying it must not
// race with calls on it. The same holds for SessionStore.
//
// Callbacks. get_or_compute runs the caller's function inside the C call; an
// exception it throws is caught before it reaches C, fails the computation
// (nothing is stored, the lock is released) and is rethrown, unchanged, once
// the C call has returned.
#ifndef RCACHE_HPP
#define RCACHE_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "rcache.h"

namespace rcache {

// ---------------------------------------------------------------- errors

// Any failure of an rcache call: the C status and the reason.
class Error : public std::runtime_error {
 public:
  Error(rcache_status status, const std::string &message)
      : std::runtime_error(std::string(rcache_status_name(status)) + ": " + message),
        status_(status),
        message_(message) {}
  // The C status, e.g. RCACHE_STATUS_TIMEOUT.
  rcache_status status() const noexcept { return status_; }
  // The reason alone (what() is "<STATUS NAME>: <reason>").
  const std::string &message() const noexcept { return message_; }

 private:
  rcache_status status_;
  std::string message_;
};

// Bad input: a NULL-like or empty key, a TTL or option out of range, a malformed URL.
class InvalidArgumentError : public Error {
 public:
  using Error::Error;
};
// A key or value over the configured limit (RCACHE_STATUS_TOO_LARGE).
class TooLargeError : public InvalidArgumentError {
 public:
  using InvalidArgumentError::InvalidArgumentError;
};
// The server could not be used: unreachable, or too slow. Worth a retry later.
class UnavailableError : public Error {
 public:
  using Error::Error;
};
// RCACHE_STATUS_CONNECTION: the server could not be reached or the connection broke.
class ConnectionError : public UnavailableError {
 public:
  using UnavailableError::UnavailableError;
};
// RCACHE_STATUS_TIMEOUT: the server did not answer in time (the command may have run).
class TimeoutError : public UnavailableError {
 public:
  using UnavailableError::UnavailableError;
};
// RCACHE_STATUS_SERVER: the server answered with an error.
class ServerError : public Error {
 public:
  using Error::Error;
};
// RCACHE_STATUS_WRONG_TYPE: the stored value has the wrong type for the operation.
class WrongTypeError : public Error {
 public:
  using Error::Error;
};
// RCACHE_STATUS_CORRUPT: stored data could not be decoded; nothing was changed.
class CorruptError : public Error {
 public:
  using Error::Error;
};
// RCACHE_STATUS_FORKED: the handle was created before fork(); make a new one.
class ForkedError : public Error {
 public:
  using Error::Error;
};
// RCACHE_STATUS_UNSUPPORTED: the URL names a feature this build lacks.
class UnsupportedError : public Error {
 public:
  using Error::Error;
};
// RCACHE_STATUS_PANIC: an internal bug of the library; the handle can still be destroyed.
class InternalError : public Error {
 public:
  using Error::Error;
};
// RCACHE_STATUS_COMPUTE_FAILED: a compute callback failed without a C++ exception.
class ComputeError : public Error {
 public:
  using Error::Error;
};
// RCACHE_STATUS_CONFLICT: a versioned session save found a newer version, or
// the session's lock is held by another owner.
class ConflictError : public Error {
 public:
  using Error::Error;
};
// RCACHE_STATUS_UNKNOWN_OUTCOME: the request may have reached the server and its
// reply was lost; the call ran once or not at all and was not sent again.
class UnknownOutcomeError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};

// Throws the exception of an error status, with this thread's rcache_last_error().
[[noreturn]] inline void throw_error(rcache_status status) {
  const char *last = rcache_last_error();
  std::string message = last != nullptr && last[0] != '\0' ? last : rcache_status_name(status);
  switch (status) {
    case RCACHE_STATUS_INVALID_ARGUMENT: throw InvalidArgumentError(status, message);
    case RCACHE_STATUS_TOO_LARGE: throw TooLargeError(status, message);
    case RCACHE_STATUS_CONNECTION: throw ConnectionError(status, message);
    case RCACHE_STATUS_TIMEOUT: throw TimeoutError(status, message);
    case RCACHE_STATUS_SERVER: throw ServerError(status, message);
    case RCACHE_STATUS_WRONG_TYPE: throw WrongTypeError(status, message);
    case RCACHE_STATUS_CORRUPT: throw CorruptError(status, message);
    case RCACHE_STATUS_FORKED: throw ForkedError(status, message);
    case RCACHE_STATUS_UNSUPPORTED: throw UnsupportedError(status, message);
    case RCACHE_STATUS_PANIC: throw InternalError(status, message);
    case RCACHE_STATUS_COMPUTE_FAILED: throw ComputeError(status, message);
    case RCACHE_STATUS_CONFLICT: throw ConflictError(status, message);
    case RCACHE_STATUS_UNKNOWN_OUTCOME: throw UnknownOutcomeError(status, message);
    default: throw Error(status, message);
  }
}

// `status` when it is RCACHE_STATUS_OK or RCACHE_STATUS_MISS; throws otherwise.
inline rcache_status check(rcache_status status) {
  if (status != RCACHE_STATUS_OK && status != RCACHE_STATUS_MISS) throw_error(status);
  return status;
}

namespace detail {

inline const uint8_t *bytes(std::string_view text) noexcept {
  // A default string_view has no data; C reads NULL as "absent" in places.
  return reinterpret_cast<const uint8_t *>(text.data() != nullptr ? text.data() : "");
}

inline rcache_bytes view(std::string_view text) noexcept { return rcache_bytes{bytes(text), text.size()}; }

inline std::string_view text(const uint8_t *data, size_t len) noexcept {
  return data == nullptr ? std::string_view() : std::string_view(reinterpret_cast<const char *>(data), len);
}

[[noreturn]] inline void invalid(const std::string &message) {
  throw InvalidArgumentError(RCACHE_STATUS_INVALID_ARGUMENT, message);
}

// A C string argument: refuses embedded NULs, which C would cut the text at.
inline const std::string &c_string(const std::string &text, const char *what) {
  if (text.find('\0') != std::string::npos) invalid(std::string(what) + " contains a NUL character");
  return text;
}

inline uint32_t millis_u32(std::chrono::milliseconds duration, const char *what) {
  if (duration.count() < 0 || duration.count() > std::numeric_limits<uint32_t>::max()) {
    invalid(std::string(what) + " is out of range (0 to 4294967295 ms)");
  }
  return static_cast<uint32_t>(duration.count());
}

template <class Range, class = void>
struct is_text_range : std::false_type {};
template <class Range>
struct is_text_range<Range, std::void_t<decltype(std::begin(std::declval<const Range &>())),
                                        decltype(std::end(std::declval<const Range &>()))>>
    : std::is_convertible<decltype(*std::begin(std::declval<const Range &>())), std::string_view> {};

template <class Range, class = void>
struct is_text_pair_range : std::false_type {};
template <class Range>
struct is_text_pair_range<Range, std::void_t<decltype(std::begin(std::declval<const Range &>())->first),
                                             decltype(std::begin(std::declval<const Range &>())->second),
                                             decltype(std::end(std::declval<const Range &>()))>>
    : std::bool_constant<
          std::is_convertible<decltype(std::begin(std::declval<const Range &>())->first), std::string_view>::value &&
          std::is_convertible<decltype(std::begin(std::declval<const Range &>())->second), std::string_view>::value> {};

}  // namespace detail

// ---------------------------------------------------------------- byte lists

// A list of byte strings (keys, tags, field names) borrowed for one call, as
// the C API's rcache_bytes arrays: from a braced list, `{"a", "b"}`, or from
// any container of string-like items (std::vector<std::string>, ...). It
// points into those items: pass it straight to the call, don't keep it.
class ByteViews {
 public:
  ByteViews() = default;
  ByteViews(std::initializer_list<std::string_view> items) {
    for (std::string_view item : items) items_.push_back(detail::view(item));
  }
  template <class Range, std::enable_if_t<detail::is_text_range<Range>::value, int> = 0>
  ByteViews(const Range &items) {  // NOLINT(google-explicit-constructor): converts like a braced list
    for (const auto &item : items) items_.push_back(detail::view(std::string_view(item)));
  }
  const rcache_bytes *data() const noexcept { return items_.empty() ? nullptr : items_.data(); }
  size_t size() const noexcept { return items_.size(); }

 private:
  std::vector<rcache_bytes> items_;
};

// (name, value) pairs borrowed for one call, as two parallel rcache_bytes
// arrays: from a braced list, `{{"a", "1"}, {"b", "2"}}`, or from any
// container of pairs of string-like items (std::map<std::string, std::string>, ...).
class ByteViewPairs {
 public:
  ByteViewPairs() = default;
  ByteViewPairs(std::initializer_list<std::pair<std::string_view, std::string_view>> items) {
    for (const auto &item : items) add(item.first, item.second);
  }
  template <class Range, std::enable_if_t<detail::is_text_pair_range<Range>::value, int> = 0>
  ByteViewPairs(const Range &items) {  // NOLINT(google-explicit-constructor)
    for (const auto &item : items) add(item.first, item.second);
  }
  const rcache_bytes *names() const noexcept { return names_.empty() ? nullptr : names_.data(); }
  const rcache_bytes *values() const noexcept { return values_.empty() ? nullptr : values_.data(); }
  size_t size() const noexcept { return names_.size(); }

 private:
  void add(std::string_view name, std::string_view value) {
    names_.push_back(detail::view(name));
    values_.push_back(detail::view(value));
  }
  std::vector<rcache_bytes> names_;
  std::vector<rcache_bytes> values_;
};

// ---------------------------------------------------------------- buffers

// Bytes the library handed out (an rcache_buffer), released with
// rcache_buffer_free when the Buffer goes. Move-only.
class Buffer {
 public:
  Buffer() noexcept = default;
  Buffer(const Buffer &) = delete;
  Buffer &operator=(const Buffer &) = delete;
  Buffer(Buffer &&other) noexcept : raw_(std::exchange(other.raw_, rcache_buffer{nullptr, 0})) {}
  Buffer &operator=(Buffer &&other) noexcept {
    if (this != &other) {
      reset();
      raw_ = std::exchange(other.raw_, rcache_buffer{nullptr, 0});
    }
    return *this;
  }
  ~Buffer() { reset(); }

  const uint8_t *data() const noexcept { return raw_.data; }
  size_t size() const noexcept { return raw_.len; }
  bool empty() const noexcept { return raw_.len == 0; }
  // The bytes, valid while the Buffer holds them.
  std::string_view view() const noexcept { return detail::text(raw_.data, raw_.len); }
  std::string str() const { return std::string(view()); }

  // Frees the bytes now.
  void reset() noexcept { rcache_buffer_free(&raw_); }
  // An empty rcache_buffer for a C call to fill (what it held is freed first).
  rcache_buffer *out() noexcept {
    reset();
    return &raw_;
  }

 private:
  rcache_buffer raw_{nullptr, 0};
};

// An array of buffers the library allocated (rcache_client_keys,
// rcache_client_hash_get), released with rcache_buffer_array_free. Move-only.
class BufferArray {
 public:
  BufferArray() noexcept = default;
  BufferArray(const BufferArray &) = delete;
  BufferArray &operator=(const BufferArray &) = delete;
  BufferArray(BufferArray &&other) noexcept
      : items_(std::exchange(other.items_, nullptr)), count_(std::exchange(other.count_, 0)) {}
  BufferArray &operator=(BufferArray &&other) noexcept {
    if (this != &other) {
      reset();
      items_ = std::exchange(other.items_, nullptr);
      count_ = std::exchange(other.count_, 0);
    }
    return *this;
  }
  ~BufferArray() { reset(); }

  size_t size() const noexcept { return count_; }
  // Item `index` (< size()), valid while the array holds it.
  std::string_view operator[](size_t index) const noexcept {
    return detail::text(items_[index].data, items_[index].len);
  }
  std::vector<std::string> strings() const {
    std::vector<std::string> result;
    result.reserve(count_);
    for (size_t i = 0; i < count_; i++) result.emplace_back((*this)[i]);
    return result;
  }

  void reset() noexcept {
    rcache_buffer_array_free(items_, count_);
    items_ = nullptr;
    count_ = 0;
  }
  // For a C call to fill: the array pointer and its count (what it held is freed first).
  rcache_buffer **out_items() noexcept {
    reset();
    return &items_;
  }
  size_t *out_count() noexcept { return &count_; }

 private:
  rcache_buffer *items_ = nullptr;
  size_t count_ = 0;
};

// ---------------------------------------------------------------- settings

// How long a written entry lives. Converts from any positive std::chrono
// duration (rounded up to whole milliseconds, at most RCACHE_TTL_MAX ms);
// a default-constructed Ttl is the client's default TTL.
class Ttl {
 public:
  constexpr Ttl() noexcept = default;
  template <class Rep, class Period>
  Ttl(std::chrono::duration<Rep, Period> after) : ms_(positive_millis(after)) {}  // NOLINT: implicit on purpose

  // The client's default TTL (RCACHE_TTL_DEFAULT).
  static constexpr Ttl client_default() noexcept { return Ttl(); }
  // No expiry (RCACHE_TTL_NONE).
  static constexpr Ttl none() noexcept { return Ttl(RCACHE_TTL_NONE, Raw{}); }
  // Keep the key's current expiry (RCACHE_TTL_KEEP): set, compare_and_set and hash_set only.
  static constexpr Ttl keep() noexcept { return Ttl(RCACHE_TTL_KEEP, Raw{}); }

  // The C API's ttl_ms.
  constexpr int64_t ms() const noexcept { return ms_; }

 private:
  struct Raw {};
  constexpr Ttl(int64_t ms, Raw) noexcept : ms_(ms) {}
  template <class Rep, class Period>
  static int64_t positive_millis(std::chrono::duration<Rep, Period> after) {
    const double ms = std::chrono::duration<double, std::milli>(after).count();
    if (!(ms > 0)) detail::invalid("a TTL must be positive; use rcache::Ttl::none() for no expiry");
    if (ms > static_cast<double>(RCACHE_TTL_MAX)) detail::invalid("a TTL may be at most RCACHE_TTL_MAX ms (100 years)");
    return std::chrono::ceil<std::chrono::milliseconds>(after).count();
  }
  int64_t ms_ = RCACHE_TTL_DEFAULT;
};

// What Client::ttl and Client::get_with_ttl report for a key without expiry.
inline constexpr std::chrono::milliseconds no_expiry{RCACHE_TTL_NONE};

// Settings of Client's constructor.
struct Options {
  // Prepended to every key, e.g. "myapp:"; copied by the constructor.
  std::string key_prefix;
  // Every other setting, as in C (its key_prefix field is ignored): start
  // from the library's defaults and change fields, e.g. raw.fail_open = true.
  rcache_options raw = rcache_options_default();
};

// Settings of one Client::get_or_compute call.
struct ComputeOptions {
  // TTL of the stored value.
  Ttl ttl;
  // Tags recorded with the stored value, as Client::set_tagged.
  std::vector<std::string> tags;
  // Lease of the compute lock, renewed while the function runs; 0: the default (10 s).
  std::chrono::milliseconds lock_lease{0};
  // Longest wait for another caller's computation; 0: the default (10 s).
  std::chrono::milliseconds wait_timeout{0};
  // After wait_timeout: false computes here, true throws TimeoutError.
  bool fail_on_wait_timeout = false;
  // Early refresh (XFetch) factor; unset: the default (1.0); 0 turns it off.
  std::optional<double> early_refresh_beta;
};

// A value read with its remaining lifetime (rcache::no_expiry for none).
struct Entry {
  std::string value;
  std::chrono::milliseconds ttl;
};

// The fields of a hash record or a session, by name.
using Fields = std::map<std::string, std::string>;

// A client's counters (see rcache_stats in rcache.h).
using Stats = rcache_stats;

// A new session's identity: 32 hex characters each; keep the secret with the id.
struct NewSession {
  std::string id;
  std::string secret;
};

// A loaded session.
struct Session {
  uint64_t version = 0;     // bumped by every save: pass it to save to detect conflicts
  uint64_t touched_ms = 0;  // last save or touch, in ms since the UNIX epoch
  Fields fields;
};

namespace detail {

// The compute function and what it threw, for the C callback.
template <class Compute>
struct ComputeCall {
  Compute *compute;
  std::exception_ptr error;

  static bool run(void *user_data, rcache_compute_output *output) noexcept {
    auto *call = static_cast<ComputeCall *>(user_data);
    try {
      decltype(auto) value = (*call->compute)();
      const std::string_view bytes_out(value);
      return rcache_compute_output_set(output, bytes(bytes_out), bytes_out.size()) == RCACHE_STATUS_OK;
    } catch (...) {
      // Nothing may unwind into C: keep the exception for the caller's thread.
      call->error = std::current_exception();
      try {
        std::rethrow_exception(call->error);
      } catch (const std::exception &error) {
        rcache_compute_output_fail(output, error.what());
      } catch (...) {
        rcache_compute_output_fail(output, "the compute function threw a non-standard exception");
      }
      return false;
    }
  }
};

}  // namespace detail

// ---------------------------------------------------------------- client

class SessionStore;

// An open cache client (an rcache_client handle), freed by the destructor.
class Client {
 public:
  // Connects to `url`: "memory://" (the embedded store; also ""), "redis://...",
  // "rediss://..." or "unix://..." (see rcache_client_connect).
  explicit Client(const std::string &url = "memory://", const Options &options = Options()) {
    rcache_options raw = options.raw;
    raw.key_prefix = options.key_prefix.empty() ? nullptr : detail::c_string(options.key_prefix, "key_prefix").c_str();
    check(rcache_client_connect(detail::c_string(url, "url").c_str(), &raw, &handle_));
  }
  Client(const Client &) = delete;
  Client &operator=(const Client &) = delete;
  Client(Client &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  Client &operator=(Client &&other) noexcept {
    if (this != &other) {
      rcache_client_free(handle_);
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  ~Client() { rcache_client_free(handle_); }

  // The C handle, still owned by this Client (for calls into rcache.h).
  rcache_client *handle() const noexcept { return handle_; }
  // The library version, e.g. "0.1.0".
  static const char *version() noexcept { return rcache_version(); }

  // The value of `key`, or std::nullopt on a miss.
  std::optional<std::string> get(std::string_view key) const {
    Buffer value;
    if (check(rcache_client_get(handle_, detail::bytes(key), key.size(), value.out())) == RCACHE_STATUS_MISS) {
      return std::nullopt;
    }
    return value.str();
  }

  // As get, without copying: the library's buffer itself.
  std::optional<Buffer> get_buffer(std::string_view key) const {
    Buffer value;
    if (check(rcache_client_get(handle_, detail::bytes(key), key.size(), value.out())) == RCACHE_STATUS_MISS) {
      return std::nullopt;
    }
    return std::optional<Buffer>(std::move(value));
  }

  // The value of `key` and its remaining TTL in one round trip, or std::nullopt.
  std::optional<Entry> get_with_ttl(std::string_view key) const {
    Buffer value;
    int64_t ttl_ms = 0;
    if (check(rcache_client_get_with_ttl(handle_, detail::bytes(key), key.size(), value.out(), &ttl_ms)) ==
        RCACHE_STATUS_MISS) {
      return std::nullopt;
    }
    return Entry{value.str(), std::chrono::milliseconds(ttl_ms)};
  }

  // Stores `value` under `key`.
  void set(std::string_view key, std::string_view value, Ttl ttl = Ttl()) const {
    check(rcache_client_set(handle_, detail::bytes(key), key.size(), detail::bytes(value), value.size(), ttl.ms()));
  }

  // Stores `value` only if `key` holds exactly `expected`; false when it does not (or is missing).
  bool compare_and_set(std::string_view key, std::string_view expected, std::string_view value,
                       Ttl ttl = Ttl()) const {
    return check(rcache_client_compare_and_set(handle_, detail::bytes(key), key.size(), detail::bytes(expected),
                                               expected.size(), detail::bytes(value), value.size(), ttl.ms())) ==
           RCACHE_STATUS_OK;
  }

  // Deletes `key`; false when it did not exist.
  bool erase(std::string_view key) const {
    return check(rcache_client_delete(handle_, detail::bytes(key), key.size())) == RCACHE_STATUS_OK;
  }

  bool exists(std::string_view key) const {
    return check(rcache_client_exists(handle_, detail::bytes(key), key.size())) == RCACHE_STATUS_OK;
  }

  // The remaining TTL of `key` (rcache::no_expiry for none), or std::nullopt when it is missing.
  std::optional<std::chrono::milliseconds> ttl(std::string_view key) const {
    int64_t ttl_ms = 0;
    if (check(rcache_client_ttl(handle_, detail::bytes(key), key.size(), &ttl_ms)) == RCACHE_STATUS_MISS) {
      return std::nullopt;
    }
    return std::chrono::milliseconds(ttl_ms);
  }

  // Gives an existing `key` a new TTL (Ttl::none() removes the expiry); false when it is missing.
  bool expire(std::string_view key, Ttl ttl) const {
    return check(rcache_client_expire(handle_, detail::bytes(key), key.size(), ttl.ms())) == RCACHE_STATUS_OK;
  }

  // The values of `keys` in one round trip, std::nullopt for each miss.
  std::vector<std::optional<std::string>> get_many(const ByteViews &keys) const {
    struct Filled {  // releases what the library put in the caller's array
      std::vector<rcache_buffer> buffers;
      ~Filled() { rcache_buffers_free(buffers.data(), buffers.size()); }
    } filled{std::vector<rcache_buffer>(keys.size(), rcache_buffer{nullptr, 0})};
    check(rcache_client_get_many(handle_, keys.data(), keys.size(), filled.buffers.data()));
    std::vector<std::optional<std::string>> values;
    values.reserve(keys.size());
    for (const rcache_buffer &buffer : filled.buffers) {
      if (buffer.data == nullptr) {
        values.emplace_back(std::nullopt);
      } else {
        values.emplace_back(std::string(detail::text(buffer.data, buffer.len)));
      }
    }
    return values;
  }

  // Stores every (key, value) of `entries` with one TTL, all or nothing, in one round trip.
  void set_many(const ByteViewPairs &entries, Ttl ttl = Ttl()) const {
    check(rcache_client_set_many(handle_, entries.names(), entries.values(), entries.size(), ttl.ms()));
  }

  // Adds `delta` to the counter at `key` (created at 0 with `ttl`) and returns the new value.
  int64_t incr(std::string_view key, int64_t delta = 1, Ttl ttl = Ttl()) const {
    int64_t value = 0;
    check(rcache_client_incr(handle_, detail::bytes(key), key.size(), delta, ttl.ms(), &value));
    return value;
  }

  // Stores `value` under `key` tagged with `tags`: invalidating any of them hides it.
  void set_tagged(std::string_view key, std::string_view value, const ByteViews &tags, Ttl ttl = Ttl()) const {
    check(rcache_client_set_tagged(handle_, detail::bytes(key), key.size(), detail::bytes(value), value.size(),
                                   ttl.ms(), tags.data(), tags.size()));
  }

  // Adds tags to the existing entry at `key`; false when it is missing.
  bool add_tags(std::string_view key, const ByteViews &tags) const {
    return check(rcache_client_add_tags(handle_, detail::bytes(key), key.size(), tags.data(), tags.size())) ==
           RCACHE_STATUS_OK;
  }

  // Hides, from every client, each entry that carries any of `tags`.
  void invalidate_tags(const ByteViews &tags) const {
    check(rcache_client_invalidate_tags(handle_, tags.data(), tags.size()));
  }

  // Deletes the namespace's keys matching the glob `pattern` (every key
  // when std::nullopt) and returns how many it deleted.
  uint64_t clear(std::optional<std::string_view> pattern = std::nullopt) const {
    uint64_t deleted = 0;
    check(rcache_client_clear(handle_, pattern ? detail::bytes(*pattern) : nullptr, pattern ? pattern->size() : 0,
                              &deleted));
    return deleted;
  }

  // The namespace's keys matching the glob `pattern` (every key when
  // std::nullopt), without the prefix, in byte order.
  std::vector<std::string> keys(std::optional<std::string_view> pattern = std::nullopt) const {
    BufferArray listed;
    check(rcache_client_keys(handle_, pattern ? detail::bytes(*pattern) : nullptr, pattern ? pattern->size() : 0,
                             listed.out_items(), listed.out_count()));
    return listed.strings();
  }

  // The server's INFO text (memory:// answers in the same format).
  std::string server_info() const {
    Buffer info;
    check(rcache_client_server_info(handle_, info.out()));
    return info.str();
  }

  // Takes the lock `key` for `owner` for `lease`; false when it is taken.
  bool lock(std::string_view key, std::string_view owner, std::chrono::milliseconds lease) const {
    return check(rcache_client_lock(handle_, detail::bytes(key), key.size(), detail::bytes(owner), owner.size(),
                                    detail::millis_u32(lease, "lease"))) == RCACHE_STATUS_OK;
  }

  // Renews the lease of the lock `key` if `owner` holds it; false when it does not.
  bool extend_lock(std::string_view key, std::string_view owner, std::chrono::milliseconds lease) const {
    return check(rcache_client_extend_lock(handle_, detail::bytes(key), key.size(), detail::bytes(owner),
                                           owner.size(), detail::millis_u32(lease, "lease"))) == RCACHE_STATUS_OK;
  }

  // Releases the lock `key` if `owner` holds it; false when it does not.
  bool unlock(std::string_view key, std::string_view owner) const {
    return check(rcache_client_unlock(handle_, detail::bytes(key), key.size(), detail::bytes(owner),
                                      owner.size())) == RCACHE_STATUS_OK;
  }

  // Every field of the hash record at `key`, or std::nullopt when it is missing.
  std::optional<Fields> hash_get(std::string_view key) const {
    BufferArray names, values;
    size_t count = 0;
    if (check(rcache_client_hash_get(handle_, detail::bytes(key), key.size(), names.out_items(),
                                     values.out_items(), &count)) == RCACHE_STATUS_MISS) {
      return std::nullopt;
    }
    *names.out_count() = count;
    *values.out_count() = count;
    Fields fields;
    for (size_t i = 0; i < count; i++) fields.emplace(names[i], values[i]);
    return fields;
  }

  // Merges `fields` into the hash record at `key` and sets its expiry, if
  // `condition` holds; false (nothing written) when it does not.
  bool hash_set(std::string_view key, const ByteViewPairs &fields, Ttl ttl = Ttl(),
                rcache_write_condition condition = RCACHE_WRITE_ALWAYS) const {
    return check(rcache_client_hash_set(handle_, detail::bytes(key), key.size(), fields.names(), fields.values(),
                                        fields.size(), ttl.ms(), static_cast<int>(condition))) == RCACHE_STATUS_OK;
  }

  // The value of `key`; on a miss, `compute()` makes it (one caller at a
  // time across threads and processes, the others wait for its value) and
  // it is stored with `options`. `compute` returns anything a
  // std::string_view can be made from (std::string, ...). An exception it
  // throws stores nothing and is rethrown here; ComputeError is only for
  // failures without one.
  template <class Compute>
  std::string get_or_compute(std::string_view key, Compute &&compute,
                             const ComputeOptions &options = ComputeOptions()) const {
    using Call = detail::ComputeCall<std::remove_reference_t<Compute>>;
    rcache_compute_options raw = rcache_compute_options_default();
    const ByteViews tags(options.tags);
    raw.ttl_ms = options.ttl.ms();
    raw.tags = tags.data();
    raw.tag_count = tags.size();
    if (options.lock_lease.count() != 0) raw.lock_lease_ms = detail::millis_u32(options.lock_lease, "lock_lease");
    if (options.wait_timeout.count() != 0) {
      raw.wait_timeout_ms = detail::millis_u32(options.wait_timeout, "wait_timeout");
    }
    raw.fail_on_wait_timeout = options.fail_on_wait_timeout;
    if (options.early_refresh_beta) raw.early_refresh_beta = *options.early_refresh_beta;
    Call call{&compute, nullptr};
    Buffer value;
    const rcache_status status =
        rcache_client_get_or_compute(handle_, detail::bytes(key), key.size(), &raw, &Call::run, &call, value.out());
    if (call.error) std::rethrow_exception(call.error);
    check(status);
    return value.str();
  }

  // The client's counters so far.
  Stats stats() const {
    Stats counters{};
    check(rcache_client_stats(handle_, &counters));
    return counters;
  }

  // The counters in the Prometheus text format, each sample labelled
  // client="<label>" unless `label` is empty (see rcache_client_metrics).
  std::string metrics(const std::string &label = std::string()) const {
    Buffer text;
    check(rcache_client_metrics(handle_, detail::c_string(label, "label").c_str(), text.out()));
    return text.str();
  }

  // The session store kept under `namespace_` (see SessionStore).
  SessionStore sessions(std::string_view namespace_) const;

 private:
  rcache_client *handle_ = nullptr;
};

// ---------------------------------------------------------------- sessions

// The sessions of one namespace of a client (an rcache_session_store).
// Destroy it before the Client whose handle it uses (declare it after).
class SessionStore {
 public:
  SessionStore(const Client &client, std::string_view namespace_) {
    check(rcache_session_store_open(client.handle(), detail::bytes(namespace_), namespace_.size(), &store_));
  }
  SessionStore(const SessionStore &) = delete;
  SessionStore &operator=(const SessionStore &) = delete;
  SessionStore(SessionStore &&other) noexcept : store_(std::exchange(other.store_, nullptr)) {}
  SessionStore &operator=(SessionStore &&other) noexcept {
    if (this != &other) {
      rcache_session_store_free(store_);
      store_ = std::exchange(other.store_, nullptr);
    }
    return *this;
  }
  ~SessionStore() { rcache_session_store_free(store_); }

  rcache_session_store *handle() const noexcept { return store_; }

  // Creates a session holding `fields` (names: UTF-8, not starting with "__"), living `ttl`.
  NewSession create(const ByteViewPairs &fields = ByteViewPairs(), Ttl ttl = Ttl()) const {
    rcache_session_new made{};
    check(rcache_session_create(store_, fields.names(), fields.values(), fields.size(), ttl.ms(), &made));
    return NewSession{made.id, made.secret};
  }

  // The session, or std::nullopt when the id is unknown or the secret wrong.
  // `slide`, when given, renews its expiry.
  std::optional<Session> load(std::string_view id, std::string_view secret,
                              std::optional<Ttl> slide = std::nullopt) const {
    struct Record {  // frees the loaded record
      rcache_session_record *raw = nullptr;
      ~Record() { rcache_session_record_free(raw); }
    } record;
    if (check(rcache_session_load(store_, detail::bytes(id), id.size(), detail::bytes(secret), secret.size(),
                                  slide ? slide->ms() : RCACHE_SESSION_NO_SLIDE, &record.raw)) ==
        RCACHE_STATUS_MISS) {
      return std::nullopt;
    }
    Session session;
    session.version = rcache_session_record_version(record.raw);
    session.touched_ms = rcache_session_record_touched_ms(record.raw);
    const size_t count = rcache_session_record_field_count(record.raw);
    for (size_t i = 0; i < count; i++) {
      rcache_bytes name{nullptr, 0}, value{nullptr, 0};
      check(rcache_session_record_field(record.raw, i, &name, &value));
      session.fields.emplace(detail::text(name.data, name.len), detail::text(value.data, value.len));
    }
    return session;
  }

  // Sets `fields`, deletes the fields named in `deleted`, renews the expiry
  // to `ttl`, in one atomic step; returns the new version, or std::nullopt
  // when the id or secret is wrong or the session expired. With
  // `expected_version` (a loaded Session's version; 0 for none), throws
  // ConflictError and saves nothing when the session moved on since.
  std::optional<uint64_t> save(std::string_view id, std::string_view secret, const ByteViewPairs &fields,
                               const ByteViews &deleted = ByteViews(), uint64_t expected_version = 0,
                               Ttl ttl = Ttl()) const {
    uint64_t version = 0;
    if (check(rcache_session_save(store_, detail::bytes(id), id.size(), detail::bytes(secret), secret.size(),
                                  expected_version, fields.names(), fields.values(), fields.size(), deleted.data(),
                                  deleted.size(), ttl.ms(), &version)) == RCACHE_STATUS_MISS) {
      return std::nullopt;
    }
    return version;
  }

  // Renews the session's expiry; false when the id or secret is wrong.
  bool touch(std::string_view id, std::string_view secret, Ttl ttl = Ttl()) const {
    return check(rcache_session_touch(store_, detail::bytes(id), id.size(), detail::bytes(secret), secret.size(),
                                      ttl.ms())) == RCACHE_STATUS_OK;
  }

  // Deletes the session; false when the id or secret is wrong.
  bool destroy(std::string_view id, std::string_view secret) const {
    return check(rcache_session_destroy(store_, detail::bytes(id), id.size(), detail::bytes(secret),
                                        secret.size())) == RCACHE_STATUS_OK;
  }

  // Deletes the sessions idle for `idle` and returns how many.
  uint64_t purge(std::chrono::milliseconds idle) const {
    if (idle.count() < 0) detail::invalid("idle must not be negative");
    uint64_t purged = 0;
    check(rcache_session_purge(store_, static_cast<uint64_t>(idle.count()), &purged));
    return purged;
  }

  // Takes the session's exclusive lock for `lease` and returns the owner
  // token; std::nullopt when the id or secret is wrong; ConflictError when
  // another owner holds it.
  std::optional<std::string> lock(std::string_view id, std::string_view secret,
                                  std::chrono::milliseconds lease) const {
    rcache_session_owner owner{};
    if (check(rcache_session_lock(store_, detail::bytes(id), id.size(), detail::bytes(secret), secret.size(),
                                  detail::millis_u32(lease, "lease"), &owner)) == RCACHE_STATUS_MISS) {
      return std::nullopt;
    }
    return std::string(owner.token);
  }

  // Releases a lock taken with lock(); false when `owner` no longer holds it.
  bool unlock(std::string_view id, const std::string &owner) const {
    return check(rcache_session_unlock(store_, detail::bytes(id), id.size(),
                                       detail::c_string(owner, "owner").c_str())) == RCACHE_STATUS_OK;
  }

 private:
  rcache_session_store *store_ = nullptr;
};

inline SessionStore Client::sessions(std::string_view namespace_) const { return SessionStore(*this, namespace_); }

}  // namespace rcache

#endif  // RCACHE_HPP
