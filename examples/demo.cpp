// rcache from C++17 through the header-only wrapper rcache.hpp, step by step.
//
//   demo_cpp [URL]
//
// URL is the first argument, else the RCACHE_URL environment variable, else
// memory:// (the embedded in-process store). For example:
//
//   demo_cpp
//   demo_cpp redis://127.0.0.1:6379/0
//
// Build: make -C tests/c demo   (the program lands in build/c/demo_cpp), or
// against an installed rcache:
//   c++ -std=c++17 demo.cpp $(pkg-config --cflags --libs rcache) -o demo_cpp

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "rcache.hpp"

using namespace std::chrono_literals;

int main(int argc, char **argv) {
  const char *env_url = std::getenv("RCACHE_URL");
  std::string url = argc > 1 ? argv[1] : env_url != nullptr ? env_url : "";
  if (url.empty()) url = "memory://";
  std::cout << "rcache " << rcache::Client::version() << " (ABI " << rcache_abi_version() << ")\n";

  try {
    // 1. Connect. Every key this program uses gets the prefix "demo_cpp:".
    rcache::Options options;
    options.key_prefix = "demo_cpp:";
    options.raw.connect_timeout_ms = 2000;
    rcache::Client cache(url, options);  // freed when `cache` goes out of scope
    std::cout << "Connected to " << url << ".\n";

    // 2. Store a value for one minute, read it back; a miss is std::nullopt.
    cache.set("greeting", "hello from C++", 1min);
    std::cout << "Read \"greeting\": \"" << cache.get("greeting").value_or("(miss)") << "\", expires in "
              << std::chrono::duration_cast<std::chrono::seconds>(cache.ttl("greeting").value_or(0ms)).count()
              << " s.\n";
    std::cout << "Read \"nothing\": " << (cache.get("nothing") ? "a value?!" : "a miss (std::nullopt)") << ".\n";

    // 3. Keys and values are bytes: embedded NULs survive.
    using namespace std::string_literals;
    cache.set("bin\0ary"s, "a\0b"s, 1min);
    std::cout << "A value with a NUL inside comes back with " << cache.get("bin\0ary"s)->size() << " bytes.\n";

    // 4. A counter, created with its TTL in the same atomic step.
    const int64_t visits = cache.incr("visits", 1, 1h);
    std::cout << "Incremented \"visits\": it is now " << visits << ".\n";

    // 5. Get-or-compute: the lambda runs on a miss only; its value is stored.
    int renders = 0;
    auto render = [&renders] {
      renders++;
      std::this_thread::sleep_for(20ms);  // something slow
      return std::string("<h1>report</h1>");
    };
    rcache::ComputeOptions compute_options;
    compute_options.ttl = 30s;
    compute_options.tags = {"reports"};
    cache.get_or_compute("report", render, compute_options);
    const std::string page = cache.get_or_compute("report", render, compute_options);
    std::cout << "get_or_compute twice gave \"" << page << "\", computing it " << renders << " time(s).\n";

    // 6. An exception thrown by the lambda reaches the caller unchanged; nothing is stored.
    try {
      cache.get_or_compute("broken", []() -> std::string { throw std::runtime_error("the database is down"); });
    } catch (const std::runtime_error &error) {
      std::cout << "A failing computation threw back: " << error.what() << ".\n";
    }

    // 7. Tags: invalidating one hides every entry that carries it.
    cache.invalidate_tags({"reports"});
    std::cout << "After invalidating the tag \"reports\", \"report\" is "
              << (cache.get("report") ? "still there?!" : "gone") << ".\n";

    // 8. Sessions: a new id and secret, then a load.
    rcache::SessionStore sessions = cache.sessions("sess:");
    const rcache::NewSession session = sessions.create({{"user", "ada"}}, 30min);
    const std::optional<rcache::Session> loaded = sessions.load(session.id, session.secret);
    std::cout << "Session " << session.id.substr(0, 8) << "... holds user=" << loaded->fields.at("user") << ".\n";
    sessions.destroy(session.id, session.secret);

    // 9. Errors are exceptions carrying the C status.
    try {
      cache.set("", "an empty key");
    } catch (const rcache::InvalidArgumentError &error) {
      std::cout << "An empty key throws " << rcache_status_name(error.status()) << ".\n";
    }

    // 10. The client's statistics, ready for a Prometheus scrape.
    const rcache::Stats stats = cache.stats();
    std::cout << "Stats: " << stats.hits << " hits, " << stats.misses << " misses, " << stats.computations
              << " computations. As Prometheus text:\n"
              << cache.metrics("demo");

    // 11. Clean up what the demo stored (but keep the counter).
    for (const char *key : {"greeting", "report"}) cache.erase(key);
    cache.erase("bin\0ary"s);
    std::cout << "Done.\n";
  } catch (const rcache::Error &error) {
    std::cerr << "rcache: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
