/*
 * A tiny test helper for the C and C++ tests of rcache's C ABI.
 *
 * Every macro counts one pass or one failure. A failure prints file:line, the
 * expression, and, for status checks, the expected and actual status names
 * (rcache_status_name) and rcache_last_error() of the calling thread.
 * The counters are atomic, so the macros may be used from several threads.
 * A test program ends with `return check_summary();`, which prints
 * "N passed, M failed" and returns non-zero if anything failed.
 *
 *   CHECK(cond)                      a condition
 *   CHECK_EQ_INT(actual, expected)   two integers, printed on failure
 *   CHECK_STR(actual, expected)      two NUL-terminated strings
 *   CHECK_BYTES(ptr, len, exp, elen) a byte range against expected bytes
 *   EXPECT_STATUS(expected, call)    the status of a call
 *   EXPECT_OK(call)                  EXPECT_STATUS(RCACHE_STATUS_OK, call)
 *   EXPECT_MISS(call)                EXPECT_STATUS(RCACHE_STATUS_MISS, call)
 *   EXPECT_ERROR(expected, call)     an error status and a non-empty rcache_last_error()
 *   OPEN_CLIENT(url, prefix)         a client for url with the default options and key_prefix
 *                                    prefix, checked as EXPECT_OK; NULL if it cannot connect
 *
 * C programs also get now_ms() (monotonic milliseconds), sleep_ms(ms), and for
 * the private Redis of tests/with-redis.sh redis_port(what) and redis_cli(port, arguments).
 *
 * Each macro evaluates its arguments once and yields 1 on a pass, 0 on a failure.
 */
#ifndef RCACHE_TEST_CHECK_H
#define RCACHE_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rcache.h"

#ifndef __cplusplus
#include <time.h>

/* Milliseconds on the monotonic clock. (The test programs define
 * _POSIX_C_SOURCE before any include, for clock_gettime and nanosleep.) */
static inline double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static inline void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* The port of the private test server (tests/with-redis.sh), or NULL and a
 * "skipped: what" line when it is not known. */
static inline const char *redis_port(const char *what) {
  const char *port = getenv("RCACHE_TEST_REDIS_PORT");
  if (port == NULL || port[0] == '\0' || strspn(port, "0123456789") != strlen(port)) {
    printf("skipped: %s (RCACHE_TEST_REDIS_PORT is not set)\n", what);
    return NULL;
  }
  return port;
}

/* Runs redis-cli against the private test server; 1 if it succeeded. */
static inline int redis_cli(const char *port, const char *arguments) {
  char command[512];
  snprintf(command, sizeof command, "redis-cli -p %s %s >/dev/null", port, arguments);
  return system(command) == 0;
}
#endif

#ifdef __cplusplus
#include <atomic>
static std::atomic<long> check_passed_count{0};
static std::atomic<long> check_failed_count{0};
#define CHECK_COUNT(counter) ((counter)++)
#define CHECK_LOAD(counter) ((counter).load())
#else
#include <stdatomic.h>
static atomic_long check_passed_count;
static atomic_long check_failed_count;
#define CHECK_COUNT(counter) atomic_fetch_add(&(counter), 1)
#define CHECK_LOAD(counter) atomic_load(&(counter))
#endif

static inline int check_record(int ok) {
  if (ok) {
    CHECK_COUNT(check_passed_count);
  } else {
    CHECK_COUNT(check_failed_count);
  }
  return ok;
}

static inline void check_print_last_error(void) {
  const char *message = rcache_last_error();
  fprintf(stderr, "    rcache_last_error(): \"%s\"\n", message ? message : "(NULL!)");
}

static inline int check_true(const char *file, int line, const char *text, int ok) {
  if (!ok) {
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, text);
    check_print_last_error();
  }
  return check_record(ok);
}

static inline int check_eq_int(const char *file, int line, const char *text, long long actual,
                               long long expected) {
  int ok = actual == expected;
  if (!ok) {
    fprintf(stderr, "%s:%d: CHECK failed: %s\n    got %lld, expected %lld\n", file, line, text,
            actual, expected);
    check_print_last_error();
  }
  return check_record(ok);
}

static inline int check_str(const char *file, int line, const char *text, const char *actual,
                            const char *expected) {
  int ok = actual != NULL && expected != NULL && strcmp(actual, expected) == 0;
  if (!ok) {
    fprintf(stderr, "%s:%d: CHECK failed: %s\n    got \"%s\", expected \"%s\"\n", file, line,
            text, actual ? actual : "(NULL)", expected ? expected : "(NULL)");
  }
  return check_record(ok);
}

static inline int check_bytes(const char *file, int line, const char *text, const void *actual,
                              size_t actual_len, const void *expected, size_t expected_len) {
  int ok = actual_len == expected_len &&
           (expected_len == 0 || (actual != NULL && memcmp(actual, expected, expected_len) == 0));
  if (!ok) {
    fprintf(stderr, "%s:%d: CHECK failed: %s\n    got %zu bytes at %p, expected %zu bytes\n", file,
            line, text, actual_len, actual, expected_len);
  }
  return check_record(ok);
}

static inline int check_status(const char *file, int line, const char *text,
                               rcache_status expected, rcache_status actual) {
  int ok = actual == expected;
  if (!ok) {
    fprintf(stderr, "%s:%d: %s\n    returned %s, expected %s\n", file, line, text,
            rcache_status_name(actual), rcache_status_name(expected));
    check_print_last_error();
  }
  return check_record(ok);
}

/* An error status other than the expected one, or an empty message, is a failure. */
static inline int check_error(const char *file, int line, const char *text,
                              rcache_status expected, rcache_status actual) {
  const char *message = rcache_last_error();
  int has_message = message != NULL && message[0] != '\0';
  int ok = actual == expected && has_message;
  if (!ok) {
    fprintf(stderr, "%s:%d: %s\n    returned %s, expected %s%s\n", file, line, text,
            rcache_status_name(actual), rcache_status_name(expected),
            has_message ? "" : " with a non-empty rcache_last_error()");
    check_print_last_error();
  }
  return check_record(ok);
}

static inline rcache_client *check_open_client(const char *file, int line, const char *text,
                                               const char *url, const char *prefix) {
  rcache_options options = rcache_options_default();
  rcache_client *client = NULL;
  options.key_prefix = prefix;
  rcache_status status = rcache_client_connect(url, &options, &client);
  return check_status(file, line, text, RCACHE_STATUS_OK, status) ? client : NULL;
}

/* Prints the summary line and gives the process exit status. */
static inline int check_summary(void) {
  long passed = CHECK_LOAD(check_passed_count);
  long failed = CHECK_LOAD(check_failed_count);
  fflush(stderr);
  printf("%ld passed, %ld failed\n", passed, failed);
  fflush(stdout);
  return failed == 0 ? 0 : 1;
}

#define CHECK(cond) check_true(__FILE__, __LINE__, #cond, (cond) ? 1 : 0)
#define CHECK_EQ_INT(actual, expected)                                                  \
  check_eq_int(__FILE__, __LINE__, #actual " == " #expected, (long long)(actual), \
               (long long)(expected))
#define CHECK_STR(actual, expected) \
  check_str(__FILE__, __LINE__, #actual " == " #expected, (actual), (expected))
#define CHECK_BYTES(ptr, len, expected, expected_len)                                    \
  check_bytes(__FILE__, __LINE__, #ptr "[0.." #len "] == " #expected, (ptr), (len), \
              (expected), (expected_len))
#define EXPECT_STATUS(expected, call) check_status(__FILE__, __LINE__, #call, (expected), (call))
#define EXPECT_OK(call) EXPECT_STATUS(RCACHE_STATUS_OK, call)
#define EXPECT_MISS(call) EXPECT_STATUS(RCACHE_STATUS_MISS, call)
#define EXPECT_ERROR(expected, call) check_error(__FILE__, __LINE__, #call, (expected), (call))
#define OPEN_CLIENT(url, prefix)                                                            \
  check_open_client(__FILE__, __LINE__, "rcache_client_connect(" #url ", key_prefix " #prefix ")", \
                    (url), (prefix))

#endif /* RCACHE_TEST_CHECK_H */
