// rcache.hpp compiles on its own, included twice, as C++17 under -Wall -Wextra
// -Wpedantic -Werror plus -Wshadow -Wold-style-cast -Wconversion
// -Wsign-conversion (see the Makefile's header target), and its templates
// instantiate for the argument types its documentation promises.
#include "rcache.hpp"
#include "rcache.hpp"

#ifndef RCACHE_HPP
#error "rcache.hpp does not define its include guard RCACHE_HPP"
#endif

#include <array>
#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;

static_assert(!std::is_copy_constructible<rcache::Client>::value, "Client is move-only");
static_assert(std::is_nothrow_move_constructible<rcache::Client>::value, "Client moves without throwing");
static_assert(std::is_nothrow_move_assignable<rcache::Client>::value, "Client moves without throwing");
static_assert(!std::is_copy_constructible<rcache::SessionStore>::value, "SessionStore is move-only");
static_assert(std::is_nothrow_move_constructible<rcache::SessionStore>::value, "");
static_assert(!std::is_copy_constructible<rcache::Buffer>::value, "Buffer is move-only");
static_assert(std::is_nothrow_move_constructible<rcache::Buffer>::value, "");
static_assert(!std::is_copy_constructible<rcache::BufferArray>::value, "BufferArray is move-only");
static_assert(std::is_nothrow_destructible<rcache::Client>::value, "");

static_assert(std::is_base_of<std::runtime_error, rcache::Error>::value, "Error is a std::runtime_error");
static_assert(std::is_base_of<rcache::UnavailableError, rcache::ConnectionError>::value, "");
static_assert(std::is_base_of<rcache::UnavailableError, rcache::TimeoutError>::value, "");
static_assert(std::is_base_of<rcache::InvalidArgumentError, rcache::TooLargeError>::value, "");
static_assert(std::is_base_of<rcache::Error, rcache::ConflictError>::value, "");

// TTLs come from durations, never from bare integers.
static_assert(std::is_convertible<std::chrono::seconds, rcache::Ttl>::value, "");
static_assert(std::is_convertible<std::chrono::duration<double>, rcache::Ttl>::value, "");
static_assert(!std::is_convertible<int, rcache::Ttl>::value, "a bare number has no unit");
static_assert(rcache::Ttl().ms() == RCACHE_TTL_DEFAULT, "");
static_assert(rcache::Ttl::none().ms() == RCACHE_TTL_NONE, "");
static_assert(rcache::Ttl::keep().ms() == RCACHE_TTL_KEEP, "");
static_assert(rcache::no_expiry.count() == RCACHE_TTL_NONE, "");

// Byte lists from braced lists and from containers of string-like items.
static_assert(std::is_convertible<std::vector<std::string>, rcache::ByteViews>::value, "");
static_assert(std::is_convertible<std::vector<std::string_view>, rcache::ByteViews>::value, "");
static_assert(std::is_convertible<std::array<const char *, 2>, rcache::ByteViews>::value, "");
static_assert(!std::is_convertible<std::string, rcache::ByteViews>::value, "a string is not a list of strings");
static_assert(!std::is_convertible<std::vector<int>, rcache::ByteViews>::value, "");
static_assert(std::is_convertible<std::map<std::string, std::string>, rcache::ByteViewPairs>::value, "");
static_assert(std::is_convertible<std::vector<std::pair<std::string, std::string_view>>, rcache::ByteViewPairs>::value,
              "");
static_assert(!std::is_convertible<std::vector<std::string>, rcache::ByteViewPairs>::value, "");

// Every member template instantiates (nothing runs).
void rcache_hpp_instantiate(const rcache::Client &client);
void rcache_hpp_instantiate(const rcache::Client &client) {
  const std::string computed = client.get_or_compute("k", [] { return std::string("v"); });
  const std::string from_view = client.get_or_compute("k", []() -> std::string_view { return "v"; });
  const std::string from_c_string = client.get_or_compute("k", [] { return "v"; });
  rcache::ComputeOptions options;
  options.ttl = 5min;
  options.tags = {"a", "b"};
  options.early_refresh_beta = 0.0;
  (void)client.get_or_compute("k", [&computed]() -> const std::string & { return computed; }, options);
  client.set("k", "v", 1.5s);
  client.set_many({{"a", "1"}, {"b", "2"}}, rcache::Ttl::none());
  client.set_tagged("k", "v", std::vector<std::string>{"t"}, 10ms);
  (void)from_view;
  (void)from_c_string;
}
