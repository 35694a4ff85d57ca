/*
 * Behavioural suite of rcache's C API, used exactly as a C program would.
 *
 *   test_api URL        e.g. test_api memory://   or   test_api redis://127.0.0.1:PORT/0
 *
 * Every key the suite writes carries a per-process prefix, so runs against
 * the same Redis server do not see each other. The Redis-only parts that
 * write with redis-cli (a hash, a damaged tagged entry) need
 * RCACHE_TEST_REDIS_PORT (set by tests/with-redis.sh); without it they are skipped.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "rcache.h"

/* A string literal as a (pointer, length) pair, without its terminating NUL. */
#define LIT(text) (const uint8_t *)(text), (sizeof(text) - 1)
/* A NUL-terminated string as a (pointer, length) pair. */
#define STR(text) (const uint8_t *)(text), strlen(text)

#define ALIVE(client) check_alive(__FILE__, __LINE__, (client))

/* 100 years in milliseconds: the longest TTL the library accepts (the header only says
 * "a TTL out of range" is INVALID_ARGUMENT; src/options.rs has MAX_TTL). */
#define HUNDRED_YEARS_MS (100LL * 365 * 24 * 3600 * 1000)
#define MIB ((size_t)1024 * 1024)

static const char *g_url;
static int g_redis;       /* g_url names a Redis server */
static char g_prefix[64]; /* per-process key prefix of the main clients */

/* Out-parameter sentinels: a call that must not write them leaves these values. */
static uint8_t g_sentinel_byte;
static const rcache_buffer SENTINEL_BUFFER = {&g_sentinel_byte, 4242};
#define SENTINEL_I64 ((int64_t)0x5EED5EED5EEDLL)

static int buffer_is_sentinel(rcache_buffer buffer) {
  return buffer.data == SENTINEL_BUFFER.data && buffer.len == SENTINEL_BUFFER.len;
}

/* Default options with the per-process key prefix. */
static rcache_options test_options(void) {
  rcache_options options = rcache_options_default();
  options.key_prefix = g_prefix;
  return options;
}

/* A client for g_url with `options`; aborts the program if it cannot connect. */
static rcache_client *open_with(const rcache_options *options) {
  rcache_client *client = NULL;
  if (!EXPECT_OK(rcache_client_connect(g_url, options, &client)) || client == NULL) {
    fprintf(stderr, "cannot connect to %s; giving up\n", g_url);
    exit(check_summary() == 0 ? 2 : 1);
  }
  return client;
}

static rcache_client *open_default(void) {
  rcache_options options = test_options();
  return open_with(&options);
}

/* One check: `client` still stores and reads a value. */
static int check_alive(const char *file, int line, rcache_client *client) {
  static const uint8_t key[] = "alive";
  char value[32];
  rcache_buffer out = {NULL, 0};
  int ok;
  snprintf(value, sizeof value, "alive-%d", line);
  ok = rcache_client_set(client, key, sizeof key - 1, (const uint8_t *)value, strlen(value),
                         RCACHE_TTL_NONE) == RCACHE_STATUS_OK &&
       rcache_client_get(client, key, sizeof key - 1, &out) == RCACHE_STATUS_OK &&
       out.len == strlen(value) && memcmp(out.data, value, out.len) == 0;
  rcache_buffer_free(&out);
  return check_true(file, line, "client still works after the call above", ok);
}

/* EXPECT_BAD(client, status, call): `call` fails with `status` and a message, and
 * `client` still works right after it (two checks). */
static int still_alive_after(int call_ok, rcache_client *client, const char *file, int line) {
  int alive = check_alive(file, line, client);
  return call_ok && alive;
}
#define EXPECT_BAD(client, expected, call) \
  still_alive_after(EXPECT_ERROR(expected, call), (client), __FILE__, __LINE__)

/* Polls (bounded) until `key` is gone; 1 if it went within `max_ms`. */
static int wait_until_missing(rcache_client *client, const uint8_t *key, size_t key_len,
                              double max_ms) {
  double start = now_ms();
  for (;;) {
    rcache_status status = rcache_client_exists(client, key, key_len);
    if (status == RCACHE_STATUS_MISS) return 1;
    if (status != RCACHE_STATUS_OK) {
      fprintf(stderr, "exists returned %s: %s\n", rcache_status_name(status), rcache_last_error());
      return 0;
    }
    if (now_ms() - start > max_ms) return 0;
    sleep_ms(5);
  }
}

/* The value at `key` equals the NUL-terminated `expected` (one check). */
static int check_value(const char *file, int line, rcache_client *client, const uint8_t *key,
                       size_t key_len, const char *expected) {
  size_t expected_len = strlen(expected);
  rcache_buffer out = SENTINEL_BUFFER;
  rcache_status status = rcache_client_get(client, key, key_len, &out);
  int ok = status == RCACHE_STATUS_OK && out.data != NULL && out.len == expected_len &&
           memcmp(out.data, expected, expected_len) == 0;
  if (!ok) {
    fprintf(stderr, "%s:%d: get returned %s with %zu bytes, expected OK with \"%.*s\"\n", file,
            line, rcache_status_name(status), status == RCACHE_STATUS_OK ? out.len : 0,
            (int)expected_len, expected);
  }
  if (status == RCACHE_STATUS_OK) rcache_buffer_free(&out);
  return check_record(ok);
}
/* CHECK_VALUE(client, key, key_len, expected string): variadic so that LIT() may give key and length. */
#define CHECK_VALUE(...) check_value(__FILE__, __LINE__, __VA_ARGS__)

/* ------------------------------------------------------------------------ */

static void *last_error_in_new_thread(void *arg) {
  (void)arg;
  return (void *)(uintptr_t)(strcmp(rcache_last_error(), "") == 0);
}

static void test_version_and_names(void) {
  char expected[64];
  pthread_t thread;
  void *fresh_thread_empty = NULL;
  size_t i;
  static const struct {
    rcache_status status;
    const char *name;
  } names[] = {
#define NAME(status) {status, #status}
      NAME(RCACHE_STATUS_OK),           NAME(RCACHE_STATUS_MISS),
      NAME(RCACHE_STATUS_INVALID_ARGUMENT), NAME(RCACHE_STATUS_CONNECTION),
      NAME(RCACHE_STATUS_TIMEOUT),      NAME(RCACHE_STATUS_SERVER),
      NAME(RCACHE_STATUS_WRONG_TYPE),   NAME(RCACHE_STATUS_TOO_LARGE),
      NAME(RCACHE_STATUS_FORKED),       NAME(RCACHE_STATUS_UNSUPPORTED),
      NAME(RCACHE_STATUS_PANIC),        NAME(RCACHE_STATUS_CORRUPT),
#undef NAME
  };

  /* Nothing has failed yet on this thread. */
  CHECK_STR(rcache_last_error(), "");

  snprintf(expected, sizeof expected, "%d.%d.%d", RCACHE_VERSION_MAJOR, RCACHE_VERSION_MINOR,
           RCACHE_VERSION_PATCH);
  CHECK(rcache_version() != NULL);
  CHECK_STR(rcache_version(), expected);
  CHECK(rcache_version() == rcache_version()); /* static */
  CHECK_EQ_INT(rcache_abi_version(), RCACHE_ABI_VERSION);
  CHECK_EQ_INT(RCACHE_TTL_NONE, -1);
  CHECK_EQ_INT(RCACHE_TTL_DEFAULT, 0);

  for (i = 0; i < sizeof names / sizeof names[0]; i++) {
    CHECK_EQ_INT(names[i].status, i); /* the enumerators are 0..11 in order */
    CHECK_STR(rcache_status_name(names[i].status), names[i].name);
  }

  /* rcache_last_error is per thread: a failure here does not show in a new thread. */
  {
    rcache_client *never = NULL;
    EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_connect("nonsense", NULL, &never));
  }
  CHECK(pthread_create(&thread, NULL, last_error_in_new_thread, NULL) == 0);
  CHECK(pthread_join(thread, &fresh_thread_empty) == 0);
  CHECK(fresh_thread_empty != NULL);
}

/* rcache_status_name takes any int: a value outside the enum (say one read from a
 * log, or from a newer library) is "RCACHE_STATUS_UNKNOWN". Called in a child
 * process, so that a crash there is one failed check, not the end of the suite. */
static void test_status_name_out_of_range(void) {
  /* The first is one past RCACHE_STATUS_NO_VALUE, the last status the header declares. */
  static const int outside[] = {(int)RCACHE_STATUS_NO_VALUE + 1, 100, -1, INT_MAX, INT_MIN};
  pid_t pid;
  int status = 0;
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  if (!CHECK(pid >= 0)) return;
  if (pid == 0) {
    size_t i;
    int all_unknown = 1;
    for (i = 0; i < sizeof outside / sizeof outside[0]; i++) {
      const char *name = rcache_status_name(outside[i]);
      if (name == NULL || strcmp(name, "RCACHE_STATUS_UNKNOWN") != 0) {
        fprintf(stderr, "rcache_status_name(%d) = %s\n", outside[i], name ? name : "NULL");
        all_unknown = 0;
      }
    }
    _exit(all_unknown ? 0 : 1);
  }
  CHECK(waitpid(pid, &status, 0) == pid);
  if (!CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    fprintf(stderr, "    rcache_status_name of values outside the enum: the child %s %d\n",
            WIFSIGNALED(status) ? "died of signal" : "exited with",
            WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  }
}

static void test_options_default(void) {
  rcache_options options = rcache_options_default();
  CHECK_EQ_INT(options.connect_timeout_ms, 1000);
  CHECK_EQ_INT(options.response_timeout_ms, 1000);
  CHECK(options.key_prefix == NULL);
  CHECK_EQ_INT(options.default_ttl_ms, 0);
  CHECK_EQ_INT(options.max_key_bytes, 64 * 1024);
  CHECK_EQ_INT(options.max_value_bytes, 64 * MIB);
  CHECK_EQ_INT(options.memory_max_entries, 1000000);
  CHECK_EQ_INT(options.memory_max_bytes, 256 * MIB);
}

static void test_connect_variants(void) {
  rcache_client *a = NULL, *b = NULL, *c = NULL;
  rcache_options zeroed;
  rcache_buffer out = SENTINEL_BUFFER;
  char key[96];
  snprintf(key, sizeof key, "%sconnect-null", g_prefix);

  /* NULL url and NULL options: the embedded store with default options. */
  if (EXPECT_OK(rcache_client_connect(NULL, NULL, &a))) {
    CHECK(a != NULL);
    EXPECT_OK(rcache_client_set(a, STR(key), LIT("v"), RCACHE_TTL_NONE));
    CHECK_VALUE(a, STR(key), "v");
  }
  /* An empty URL is memory:// too; it is a store of its own, not a's. */
  if (EXPECT_OK(rcache_client_connect("", NULL, &b))) {
    EXPECT_MISS(rcache_client_get(b, STR(key), &out));
    CHECK(buffer_is_sentinel(out));
  }
  /* A zeroed options struct means "all defaults", for the URL under test. */
  memset(&zeroed, 0, sizeof zeroed);
  if (EXPECT_OK(rcache_client_connect(g_url, &zeroed, &c))) {
    EXPECT_OK(rcache_client_set(c, STR(key), LIT("zeroed"), RCACHE_TTL_NONE));
    CHECK_VALUE(c, STR(key), "zeroed");
    EXPECT_OK(rcache_client_delete(c, STR(key)));
  }
  rcache_client_free(a);
  rcache_client_free(b);
  rcache_client_free(c);

  /* A NULL-options client on the URL under test. */
  c = NULL;
  if (EXPECT_OK(rcache_client_connect(g_url, NULL, &c))) {
    EXPECT_OK(rcache_client_set(c, STR(key), LIT("null-options"), RCACHE_TTL_NONE));
    CHECK_VALUE(c, STR(key), "null-options");
    EXPECT_OK(rcache_client_delete(c, STR(key)));
    rcache_client_free(c);
  }
}

static void test_set_get_miss(rcache_client *c) {
  rcache_buffer out = SENTINEL_BUFFER;

  EXPECT_MISS(rcache_client_get(c, LIT("sg:missing"), &out));
  CHECK(buffer_is_sentinel(out));

  EXPECT_OK(rcache_client_set(c, LIT("sg:k"), LIT("value one"), RCACHE_TTL_NONE));
  if (EXPECT_OK(rcache_client_get(c, LIT("sg:k"), &out))) {
    CHECK_BYTES(out.data, out.len, "value one", 9);
    rcache_buffer_free(&out);
    CHECK(out.data == NULL && out.len == 0);
  }
  /* Overwrite with a shorter value. */
  EXPECT_OK(rcache_client_set(c, LIT("sg:k"), LIT("2"), RCACHE_TTL_NONE));
  CHECK_VALUE(c, LIT("sg:k"), "2");
  /* 20 MiB, under the default max_value_bytes of 64 MiB, is accepted (memory:// used to
   * refuse anything over a 16th of memory_max_bytes). */
  {
    size_t len = 20 * MIB;
    uint8_t *big = calloc(1, len);
    rcache_status status;
    if (CHECK(big != NULL)) {
      big[len - 1] = 'z';
      status = rcache_client_set(c, LIT("sg:20mib"), big, len, RCACHE_TTL_NONE);
      if (EXPECT_OK(status)) {
        out = SENTINEL_BUFFER;
        if (EXPECT_OK(rcache_client_get(c, LIT("sg:20mib"), &out))) {
          CHECK_BYTES(out.data, out.len, big, len);
          rcache_buffer_free(&out);
        }
        EXPECT_OK(rcache_client_delete(c, LIT("sg:20mib")));
      }
      free(big);
    }
  }
  /* A large value (1 MiB) round-trips. */
  {
    size_t len = MIB, i;
    uint8_t *big = malloc(len);
    CHECK(big != NULL);
    if (big != NULL) {
      for (i = 0; i < len; i++) big[i] = (uint8_t)(i * 131 + 7);
      EXPECT_OK(rcache_client_set(c, LIT("sg:big"), big, len, RCACHE_TTL_NONE));
      out = SENTINEL_BUFFER;
      if (EXPECT_OK(rcache_client_get(c, LIT("sg:big"), &out))) {
        CHECK_BYTES(out.data, out.len, big, len);
        rcache_buffer_free(&out);
      }
      free(big);
    }
  }
}

static void test_binary_safety(rcache_client *c) {
  uint8_t all[256];
  rcache_buffer out = SENTINEL_BUFFER;
  int i;
  for (i = 0; i < 256; i++) all[i] = (uint8_t)i;

  /* Keys differing only after an embedded NUL are different keys. */
  EXPECT_OK(rcache_client_set(c, LIT("bin\0a"), LIT("A"), RCACHE_TTL_NONE));
  EXPECT_OK(rcache_client_set(c, LIT("bin\0b"), LIT("B"), RCACHE_TTL_NONE));
  EXPECT_OK(rcache_client_set(c, LIT("bin"), LIT("plain"), RCACHE_TTL_NONE));
  CHECK_VALUE(c, LIT("bin\0a"), "A");
  CHECK_VALUE(c, LIT("bin\0b"), "B");
  CHECK_VALUE(c, LIT("bin"), "plain");
  EXPECT_MISS(rcache_client_exists(c, LIT("bin\0")));

  /* A value with every byte value, NUL included. */
  EXPECT_OK(rcache_client_set(c, LIT("bin:all"), all, sizeof all, RCACHE_TTL_NONE));
  if (EXPECT_OK(rcache_client_get(c, LIT("bin:all"), &out))) {
    CHECK_BYTES(out.data, out.len, all, sizeof all);
    rcache_buffer_free(&out);
  }
  /* A key with every byte value. */
  EXPECT_OK(rcache_client_set(c, all, sizeof all, LIT("all-key"), RCACHE_TTL_NONE));
  CHECK_VALUE(c, all, sizeof all, "all-key");
  EXPECT_OK(rcache_client_exists(c, all, sizeof all));
  EXPECT_OK(rcache_client_delete(c, all, sizeof all));
  /* A single NUL byte is a valid, non-empty key. */
  EXPECT_OK(rcache_client_set(c, LIT("\0"), LIT("nul"), RCACHE_TTL_NONE));
  CHECK_VALUE(c, LIT("\0"), "nul");
}

static void test_empty_value(rcache_client *c) {
  rcache_buffer out = SENTINEL_BUFFER;
  rcache_bytes keys[2] = {{(const uint8_t *)"empty:a", 7}, {(const uint8_t *)"empty:none", 10}};
  rcache_buffer values[2] = {SENTINEL_BUFFER, SENTINEL_BUFFER};

  /* The value may be NULL when its length is 0. */
  EXPECT_OK(rcache_client_set(c, LIT("empty:a"), NULL, 0, RCACHE_TTL_NONE));
  EXPECT_OK(rcache_client_exists(c, LIT("empty:a")));
  /* The header: data is NULL only in a buffer that holds nothing (a miss in
   * get_many, or a freed buffer), so an empty hit has non-NULL data. */
  if (EXPECT_OK(rcache_client_get(c, LIT("empty:a"), &out))) {
    CHECK_EQ_INT(out.len, 0);
    CHECK(out.data != NULL);
    rcache_buffer_free(&out);
    CHECK(out.data == NULL && out.len == 0);
  }
  /* A non-NULL pointer with length 0 stores the empty value too. */
  EXPECT_OK(rcache_client_set(c, LIT("empty:a"), (const uint8_t *)"ignored", 0, RCACHE_TTL_NONE));
  /* In get_many an empty hit and a miss are told apart by data. */
  if (EXPECT_OK(rcache_client_get_many(c, keys, 2, values))) {
    CHECK(values[0].data != NULL && values[0].len == 0);
    CHECK(values[1].data == NULL && values[1].len == 0);
    rcache_buffers_free(values, 2);
    CHECK(values[0].data == NULL && values[0].len == 0);
  }
}

static void test_ttl_expiry(rcache_client *c) {
  int64_t ttl = SENTINEL_I64;
  rcache_buffer out = SENTINEL_BUFFER;

  /* Long enough to be seen right after the set, short enough to poll for. */
  EXPECT_OK(rcache_client_set(c, LIT("ttl:short"), LIT("x"), 500));
  if (EXPECT_OK(rcache_client_ttl(c, LIT("ttl:short"), &ttl))) {
    CHECK(ttl > 0 && ttl <= 500);
  }
  CHECK_VALUE(c, LIT("ttl:short"), "x");
  CHECK(wait_until_missing(c, LIT("ttl:short"), 3000));
  EXPECT_MISS(rcache_client_get(c, LIT("ttl:short"), &out));
  CHECK(buffer_is_sentinel(out));
  ttl = SENTINEL_I64;
  EXPECT_MISS(rcache_client_ttl(c, LIT("ttl:short"), &ttl));
  CHECK_EQ_INT(ttl, SENTINEL_I64);
  EXPECT_MISS(rcache_client_delete(c, LIT("ttl:short")));

  /* 1 ms, the shortest TTL. */
  EXPECT_OK(rcache_client_set(c, LIT("ttl:1ms"), LIT("x"), 1));
  CHECK(wait_until_missing(c, LIT("ttl:1ms"), 3000));

  /* RCACHE_TTL_NONE: no expiry, reported as -1; it also clears an earlier TTL. */
  EXPECT_OK(rcache_client_set(c, LIT("ttl:none"), LIT("x"), 60000));
  EXPECT_OK(rcache_client_set(c, LIT("ttl:none"), LIT("y"), RCACHE_TTL_NONE));
  ttl = SENTINEL_I64;
  if (EXPECT_OK(rcache_client_ttl(c, LIT("ttl:none"), &ttl))) CHECK_EQ_INT(ttl, RCACHE_TTL_NONE);

  /* RCACHE_TTL_DEFAULT on a client without a default TTL: no expiry. */
  EXPECT_OK(rcache_client_set(c, LIT("ttl:default"), LIT("x"), RCACHE_TTL_DEFAULT));
  ttl = SENTINEL_I64;
  if (EXPECT_OK(rcache_client_ttl(c, LIT("ttl:default"), &ttl))) CHECK_EQ_INT(ttl, -1);

  /* The longest TTL accepted: 100 years. */
  EXPECT_OK(rcache_client_set(c, LIT("ttl:century"), LIT("x"), HUNDRED_YEARS_MS));
  ttl = SENTINEL_I64;
  if (EXPECT_OK(rcache_client_ttl(c, LIT("ttl:century"), &ttl))) {
    CHECK(ttl > HUNDRED_YEARS_MS - 60000 && ttl <= HUNDRED_YEARS_MS);
  }
}

static void test_default_ttl_option(void) {
  rcache_options options = test_options();
  rcache_client *c;
  int64_t ttl = SENTINEL_I64, counter = SENTINEL_I64;

  options.default_ttl_ms = 5000;
  c = open_with(&options);
  EXPECT_OK(rcache_client_set(c, LIT("dttl:a"), LIT("x"), RCACHE_TTL_DEFAULT));
  if (EXPECT_OK(rcache_client_ttl(c, LIT("dttl:a"), &ttl))) CHECK(ttl > 0 && ttl <= 5000);
  /* An explicit TTL and RCACHE_TTL_NONE override the default. */
  EXPECT_OK(rcache_client_set(c, LIT("dttl:b"), LIT("x"), 60000));
  if (EXPECT_OK(rcache_client_ttl(c, LIT("dttl:b"), &ttl))) CHECK(ttl > 5000 && ttl <= 60000);
  EXPECT_OK(rcache_client_set(c, LIT("dttl:c"), LIT("x"), RCACHE_TTL_NONE));
  if (EXPECT_OK(rcache_client_ttl(c, LIT("dttl:c"), &ttl))) CHECK_EQ_INT(ttl, -1);
  /* incr of a new counter and expire with RCACHE_TTL_DEFAULT use it as well. */
  EXPECT_OK(rcache_client_incr(c, LIT("dttl:n"), 1, RCACHE_TTL_DEFAULT, &counter));
  if (EXPECT_OK(rcache_client_ttl(c, LIT("dttl:n"), &ttl))) CHECK(ttl > 0 && ttl <= 5000);
  EXPECT_OK(rcache_client_expire(c, LIT("dttl:c"), RCACHE_TTL_DEFAULT));
  if (EXPECT_OK(rcache_client_ttl(c, LIT("dttl:c"), &ttl))) CHECK(ttl > 0 && ttl <= 5000);
  {
    rcache_bytes keys[1] = {{(const uint8_t *)"dttl:m", 6}};
    rcache_bytes values[1] = {{(const uint8_t *)"x", 1}};
    EXPECT_OK(rcache_client_set_many(c, keys, values, 1, RCACHE_TTL_DEFAULT));
    if (EXPECT_OK(rcache_client_ttl(c, LIT("dttl:m"), &ttl))) CHECK(ttl > 0 && ttl <= 5000);
  }
  rcache_client_free(c);

  /* A short default TTL really expires entries. */
  options.default_ttl_ms = 100;
  c = open_with(&options);
  EXPECT_OK(rcache_client_set(c, LIT("dttl:short"), LIT("x"), RCACHE_TTL_DEFAULT));
  CHECK(wait_until_missing(c, LIT("dttl:short"), 3000));
  rcache_client_free(c);

  /* default_ttl_ms = RCACHE_TTL_NONE keeps entries without expiry, like 0. */
  options.default_ttl_ms = RCACHE_TTL_NONE;
  c = open_with(&options);
  EXPECT_OK(rcache_client_set(c, LIT("dttl:forever"), LIT("x"), RCACHE_TTL_DEFAULT));
  if (EXPECT_OK(rcache_client_ttl(c, LIT("dttl:forever"), &ttl))) CHECK_EQ_INT(ttl, -1);
  rcache_client_free(c);

  /* The longest default TTL accepted. */
  options.default_ttl_ms = HUNDRED_YEARS_MS;
  c = open_with(&options);
  rcache_client_free(c);
}

static void test_ttl_and_expire(rcache_client *c) {
  int64_t ttl = SENTINEL_I64;

  EXPECT_OK(rcache_client_set(c, LIT("exp:k"), LIT("x"), RCACHE_TTL_NONE));
  EXPECT_OK(rcache_client_expire(c, LIT("exp:k"), 5000));
  if (EXPECT_OK(rcache_client_ttl(c, LIT("exp:k"), &ttl))) CHECK(ttl > 0 && ttl <= 5000);
  /* RCACHE_TTL_NONE removes the expiry. */
  EXPECT_OK(rcache_client_expire(c, LIT("exp:k"), RCACHE_TTL_NONE));
  if (EXPECT_OK(rcache_client_ttl(c, LIT("exp:k"), &ttl))) CHECK_EQ_INT(ttl, -1);
  /* ... also on a key that had none. */
  EXPECT_OK(rcache_client_expire(c, LIT("exp:k"), RCACHE_TTL_NONE));
  CHECK_VALUE(c, LIT("exp:k"), "x");
  /* RCACHE_TTL_DEFAULT without a default TTL: no expiry. */
  EXPECT_OK(rcache_client_expire(c, LIT("exp:k"), 5000));
  EXPECT_OK(rcache_client_expire(c, LIT("exp:k"), RCACHE_TTL_DEFAULT));
  if (EXPECT_OK(rcache_client_ttl(c, LIT("exp:k"), &ttl))) CHECK_EQ_INT(ttl, -1);
  /* A short TTL set by expire makes the key go. */
  EXPECT_OK(rcache_client_expire(c, LIT("exp:k"), 50));
  CHECK(wait_until_missing(c, LIT("exp:k"), 3000));
  /* expire and ttl on a missing key: MISS, output untouched. */
  EXPECT_MISS(rcache_client_expire(c, LIT("exp:k"), 5000));
  EXPECT_MISS(rcache_client_expire(c, LIT("exp:k"), RCACHE_TTL_NONE));
  EXPECT_MISS(rcache_client_exists(c, LIT("exp:k")));
  ttl = SENTINEL_I64;
  EXPECT_MISS(rcache_client_ttl(c, LIT("exp:never-set"), &ttl));
  CHECK_EQ_INT(ttl, SENTINEL_I64);
}

static void test_delete_exists(rcache_client *c) {
  EXPECT_MISS(rcache_client_exists(c, LIT("del:k")));
  EXPECT_MISS(rcache_client_delete(c, LIT("del:k")));
  EXPECT_OK(rcache_client_set(c, LIT("del:k"), LIT("x"), RCACHE_TTL_NONE));
  EXPECT_OK(rcache_client_exists(c, LIT("del:k")));
  EXPECT_OK(rcache_client_delete(c, LIT("del:k")));
  EXPECT_MISS(rcache_client_exists(c, LIT("del:k")));
  EXPECT_MISS(rcache_client_delete(c, LIT("del:k")));
  {
    rcache_buffer out = SENTINEL_BUFFER;
    EXPECT_MISS(rcache_client_get(c, LIT("del:k"), &out));
    CHECK(buffer_is_sentinel(out));
  }
}

static void test_get_many(rcache_client *c) {
  rcache_bytes keys[6] = {
      {(const uint8_t *)"gm:1", 4},     {(const uint8_t *)"gm:missing", 10},
      {(const uint8_t *)"gm:2", 4},     {(const uint8_t *)"gm:\0bin", 7},
      {(const uint8_t *)"gm:1", 4}, /* the same key twice */
      {(const uint8_t *)"gm:missing2", 11},
  };
  rcache_buffer values[6];
  size_t i;
  for (i = 0; i < 6; i++) values[i] = SENTINEL_BUFFER;

  EXPECT_OK(rcache_client_set(c, LIT("gm:1"), LIT("one"), RCACHE_TTL_NONE));
  EXPECT_OK(rcache_client_set(c, LIT("gm:2"), LIT("two"), RCACHE_TTL_NONE));
  EXPECT_OK(rcache_client_set(c, LIT("gm:\0bin"), LIT("b\0n"), RCACHE_TTL_NONE));
  if (EXPECT_OK(rcache_client_get_many(c, keys, 6, values))) {
    CHECK_BYTES(values[0].data, values[0].len, "one", 3);
    CHECK(values[1].data == NULL && values[1].len == 0);
    CHECK_BYTES(values[2].data, values[2].len, "two", 3);
    CHECK_BYTES(values[3].data, values[3].len, "b\0n", 3);
    CHECK_BYTES(values[4].data, values[4].len, "one", 3);
    CHECK(values[4].data != values[0].data); /* each buffer is its own */
    CHECK(values[5].data == NULL && values[5].len == 0);
    rcache_buffers_free(values, 6);
    for (i = 0; i < 6; i++) CHECK(values[i].data == NULL && values[i].len == 0);
    /* Freeing again is harmless: the buffers were reset. */
    rcache_buffers_free(values, 6);
  }
  /* All misses. */
  for (i = 0; i < 6; i++) values[i] = SENTINEL_BUFFER;
  if (EXPECT_OK(rcache_client_get_many(c, &keys[1], 1, values))) {
    CHECK(values[0].data == NULL && values[0].len == 0);
    CHECK(buffer_is_sentinel(values[1])); /* only `count` buffers are written */
  }
  /* Nothing to read: NULL arrays are fine with count 0. */
  EXPECT_OK(rcache_client_get_many(c, NULL, 0, NULL));
  EXPECT_OK(rcache_client_get_many(c, keys, 0, values));
  /* Freeing single buffers from get_many one by one works too. */
  if (EXPECT_OK(rcache_client_get_many(c, keys, 3, values))) {
    for (i = 0; i < 3; i++) rcache_buffer_free(&values[i]);
    CHECK(values[0].data == NULL && values[2].data == NULL);
  }
}

static void test_set_many(rcache_client *c) {
  rcache_bytes keys[3] = {{(const uint8_t *)"sm:a", 4}, {(const uint8_t *)"sm:b", 4},
                          {(const uint8_t *)"sm:\0c", 5}};
  rcache_bytes values[3] = {{(const uint8_t *)"A", 1}, {NULL, 0}, {(const uint8_t *)"C\0C", 3}};
  rcache_buffer out[3] = {SENTINEL_BUFFER, SENTINEL_BUFFER, SENTINEL_BUFFER};
  int64_t ttl = SENTINEL_I64;

  EXPECT_OK(rcache_client_set_many(c, keys, values, 3, RCACHE_TTL_NONE));
  if (EXPECT_OK(rcache_client_get_many(c, keys, 3, out))) {
    CHECK_BYTES(out[0].data, out[0].len, "A", 1);
    CHECK(out[1].data != NULL && out[1].len == 0); /* stored empty, not missing */
    CHECK_BYTES(out[2].data, out[2].len, "C\0C", 3);
    rcache_buffers_free(out, 3);
  }
  if (EXPECT_OK(rcache_client_ttl(c, LIT("sm:a"), &ttl))) CHECK_EQ_INT(ttl, -1);
  /* One TTL for all of them. */
  EXPECT_OK(rcache_client_set_many(c, keys, values, 3, 5000));
  ttl = SENTINEL_I64;
  if (EXPECT_OK(rcache_client_ttl(c, LIT("sm:a"), &ttl))) CHECK(ttl > 0 && ttl <= 5000);
  ttl = SENTINEL_I64;
  if (EXPECT_OK(rcache_client_ttl(c, LIT("sm:\0c"), &ttl))) CHECK(ttl > 0 && ttl <= 5000);
  /* A short TTL expires all of them. */
  EXPECT_OK(rcache_client_set_many(c, keys, values, 3, 50));
  CHECK(wait_until_missing(c, LIT("sm:a"), 3000));
  CHECK(wait_until_missing(c, LIT("sm:b"), 3000));
  /* Nothing to store. */
  EXPECT_OK(rcache_client_set_many(c, NULL, NULL, 0, RCACHE_TTL_NONE));
  EXPECT_OK(rcache_client_set_many(c, keys, values, 0, RCACHE_TTL_NONE));
  EXPECT_MISS(rcache_client_exists(c, LIT("sm:a")));
}

static void test_incr(rcache_client *c) {
  int64_t value = SENTINEL_I64, ttl = SENTINEL_I64;

  /* A new counter starts at 0 and gets the TTL. */
  if (EXPECT_OK(rcache_client_incr(c, LIT("incr:a"), 5, 5000, &value))) CHECK_EQ_INT(value, 5);
  if (EXPECT_OK(rcache_client_ttl(c, LIT("incr:a"), &ttl))) CHECK(ttl > 0 && ttl <= 5000);
  /* An existing counter keeps its TTL, whatever TTL the call names. */
  if (EXPECT_OK(rcache_client_incr(c, LIT("incr:a"), 3, 600000, &value))) CHECK_EQ_INT(value, 8);
  if (EXPECT_OK(rcache_client_ttl(c, LIT("incr:a"), &ttl))) CHECK(ttl > 0 && ttl <= 5000);
  if (EXPECT_OK(rcache_client_incr(c, LIT("incr:a"), 1, RCACHE_TTL_NONE, &value))) {
    CHECK_EQ_INT(value, 9);
  }
  if (EXPECT_OK(rcache_client_ttl(c, LIT("incr:a"), &ttl))) CHECK(ttl > 0 && ttl <= 5000);
  /* A negative delta. */
  if (EXPECT_OK(rcache_client_incr(c, LIT("incr:a"), -20, 5000, &value))) CHECK_EQ_INT(value, -11);
  if (EXPECT_OK(rcache_client_incr(c, LIT("incr:a"), 0, 5000, &value))) CHECK_EQ_INT(value, -11);
  if (EXPECT_OK(rcache_client_incr(c, LIT("incr:new-neg"), -3, RCACHE_TTL_NONE, &value))) {
    CHECK_EQ_INT(value, -3);
  }
  /* A new counter without expiry, which a later TTL does not give it. */
  if (EXPECT_OK(rcache_client_incr(c, LIT("incr:b"), 1, RCACHE_TTL_NONE, &value))) {
    CHECK_EQ_INT(value, 1);
  }
  if (EXPECT_OK(rcache_client_incr(c, LIT("incr:b"), 1, 5000, &value))) CHECK_EQ_INT(value, 2);
  if (EXPECT_OK(rcache_client_ttl(c, LIT("incr:b"), &ttl))) CHECK_EQ_INT(ttl, -1);
  /* A counter is a decimal integer value: set can seed it, get reads it. */
  EXPECT_OK(rcache_client_set(c, LIT("incr:c"), LIT("41"), RCACHE_TTL_NONE));
  if (EXPECT_OK(rcache_client_incr(c, LIT("incr:c"), 1, RCACHE_TTL_NONE, &value))) {
    CHECK_EQ_INT(value, 42);
  }
  CHECK_VALUE(c, LIT("incr:c"), "42");
  /* An expired counter starts again from 0, with the new TTL. */
  if (EXPECT_OK(rcache_client_incr(c, LIT("incr:short"), 7, 50, &value))) CHECK_EQ_INT(value, 7);
  CHECK(wait_until_missing(c, LIT("incr:short"), 3000));
  if (EXPECT_OK(rcache_client_incr(c, LIT("incr:short"), 7, 5000, &value))) CHECK_EQ_INT(value, 7);
  if (EXPECT_OK(rcache_client_ttl(c, LIT("incr:short"), &ttl))) CHECK(ttl > 0 && ttl <= 5000);

  /* Not an integer: WRONG_TYPE, output untouched, value left alone. */
  EXPECT_OK(rcache_client_set(c, LIT("incr:text"), LIT("abc"), RCACHE_TTL_NONE));
  value = SENTINEL_I64;
  EXPECT_ERROR(RCACHE_STATUS_WRONG_TYPE,
               rcache_client_incr(c, LIT("incr:text"), 1, RCACHE_TTL_NONE, &value));
  CHECK_EQ_INT(value, SENTINEL_I64);
  EXPECT_ERROR(RCACHE_STATUS_WRONG_TYPE, rcache_client_incr(c, LIT("incr:text"), 1, 5000, &value));
  CHECK_EQ_INT(value, SENTINEL_I64);
  CHECK_VALUE(c, LIT("incr:text"), "abc");
  EXPECT_OK(rcache_client_set(c, LIT("incr:empty"), NULL, 0, RCACHE_TTL_NONE));
  EXPECT_ERROR(RCACHE_STATUS_WRONG_TYPE,
               rcache_client_incr(c, LIT("incr:empty"), 1, RCACHE_TTL_NONE, &value));
  EXPECT_OK(rcache_client_set(c, LIT("incr:float"), LIT("1.5"), RCACHE_TTL_NONE));
  EXPECT_ERROR(RCACHE_STATUS_WRONG_TYPE,
               rcache_client_incr(c, LIT("incr:float"), 1, RCACHE_TTL_NONE, &value));
  CHECK_EQ_INT(value, SENTINEL_I64);
  ALIVE(c);

  /* Only canonical decimal integers are counters, as in Redis: "007", "+5" and "-0" are not. */
  {
    static const char *const odd[] = {"007", "+5", "-0"};
    rcache_status status[3];
    int all_refused = 1;
    size_t i;
    for (i = 0; i < 3; i++) {
      EXPECT_OK(rcache_client_set(c, LIT("incr:odd"), STR(odd[i]), RCACHE_TTL_NONE));
      status[i] = rcache_client_incr(c, LIT("incr:odd"), 1, RCACHE_TTL_NONE, &value);
      all_refused = all_refused && status[i] == RCACHE_STATUS_WRONG_TYPE;
    }
    /* Both backends read counters as Redis does: canonical decimal only. */
    if (!CHECK(all_refused)) {
      for (i = 0; i < 3; i++) {
        fprintf(stderr, "    incr of \"%s\": %s\n", odd[i], rcache_status_name(status[i]));
      }
    }
    value = SENTINEL_I64;
  }

  /* Overflow fails (the header names no status for it), output and value untouched. */
  EXPECT_OK(rcache_client_set(c, LIT("incr:max"), LIT("9223372036854775807"), RCACHE_TTL_NONE));
  {
    rcache_status status = rcache_client_incr(c, LIT("incr:max"), 1, RCACHE_TTL_NONE, &value);
    CHECK(status != RCACHE_STATUS_OK && status != RCACHE_STATUS_MISS &&
          status != RCACHE_STATUS_PANIC);
    CHECK(rcache_last_error()[0] != '\0');
  }
  CHECK_EQ_INT(value, SENTINEL_I64);
  CHECK_VALUE(c, LIT("incr:max"), "9223372036854775807");
  ALIVE(c);
}

static void test_prefix_isolation(void) {
  char prefix_a[80], prefix_b[80], full_key[96];
  rcache_options options = rcache_options_default();
  rcache_client *a, *b, *bare;
  rcache_buffer out = SENTINEL_BUFFER;

  snprintf(prefix_a, sizeof prefix_a, "%sA:", g_prefix);
  snprintf(prefix_b, sizeof prefix_b, "%sB:", g_prefix);
  snprintf(full_key, sizeof full_key, "%sk", prefix_a);

  options.key_prefix = prefix_a;
  a = open_with(&options);
  options.key_prefix = prefix_b;
  b = open_with(&options);
  /* The prefix is copied during connect: changing the caller's string later has no effect. */
  prefix_b[0] = '#';
  options.key_prefix = NULL;
  bare = open_with(&options);

  EXPECT_OK(rcache_client_set(a, LIT("k"), LIT("from a"), RCACHE_TTL_NONE));
  EXPECT_MISS(rcache_client_get(b, LIT("k"), &out));
  CHECK(buffer_is_sentinel(out));
  EXPECT_OK(rcache_client_set(b, LIT("k"), LIT("from b"), RCACHE_TTL_NONE));
  CHECK_VALUE(a, LIT("k"), "from a");
  CHECK_VALUE(b, LIT("k"), "from b");
  EXPECT_OK(rcache_client_delete(b, LIT("k")));
  CHECK_VALUE(a, LIT("k"), "from a");
  EXPECT_MISS(rcache_client_exists(b, LIT("k")));

  if (g_redis) {
    /* On one Redis server the prefix is literally prepended to the key. */
    CHECK_VALUE(bare, STR(full_key), "from a");
    EXPECT_OK(rcache_client_set(bare, STR(full_key), LIT("via bare"), RCACHE_TTL_NONE));
    CHECK_VALUE(a, LIT("k"), "via bare");
  } else {
    /* Each memory:// client is a store of its own. */
    EXPECT_MISS(rcache_client_exists(bare, STR(full_key)));
  }
  rcache_client_free(a);
  rcache_client_free(b);
  rcache_client_free(bare);

  /* Two memory:// clients with the same prefix still do not share entries. */
  if (!g_redis) {
    rcache_client *x = open_default(), *y = open_default();
    EXPECT_OK(rcache_client_set(x, LIT("shared?"), LIT("x"), RCACHE_TTL_NONE));
    EXPECT_MISS(rcache_client_exists(y, LIT("shared?")));
    rcache_client_free(x);
    rcache_client_free(y);
  }
}

/* memory:// only: the size bounds evict the least recently used entries. */
static void test_memory_bounds(void) {
  rcache_options options = rcache_options_default();
  rcache_client *c;
  rcache_buffer out = SENTINEL_BUFFER;
  uint8_t value[512];
  memset(value, 'v', sizeof value);

  options.memory_max_entries = 3;
  c = open_with(&options);
  EXPECT_OK(rcache_client_set(c, LIT("a"), LIT("1"), RCACHE_TTL_NONE));
  EXPECT_OK(rcache_client_set(c, LIT("b"), LIT("2"), RCACHE_TTL_NONE));
  EXPECT_OK(rcache_client_set(c, LIT("c"), LIT("3"), RCACHE_TTL_NONE));
  CHECK_VALUE(c, LIT("a"), "1"); /* a is now the most recently used */
  EXPECT_OK(rcache_client_set(c, LIT("d"), LIT("4"), RCACHE_TTL_NONE));
  EXPECT_MISS(rcache_client_get(c, LIT("b"), &out));
  CHECK(buffer_is_sentinel(out));
  CHECK_VALUE(c, LIT("a"), "1");
  CHECK_VALUE(c, LIT("c"), "3");
  CHECK_VALUE(c, LIT("d"), "4");
  rcache_client_free(c);

  /* The byte bound evicts too: four entries of over 300 bytes do not fit in 1000. */
  options = rcache_options_default();
  options.memory_max_entries = 100;
  options.memory_max_bytes = 1000;
  c = open_with(&options);
  {
    char key[2] = "0";
    int i;
    for (i = 0; i < 4; i++) {
      key[0] = (char)('0' + i);
      EXPECT_OK(rcache_client_set(c, (const uint8_t *)key, 1, value, 300, RCACHE_TTL_NONE));
    }
    EXPECT_MISS(rcache_client_exists(c, LIT("0")));
    EXPECT_OK(rcache_client_exists(c, LIT("3")));
  }
  rcache_client_free(c);

  /* Up to memory_max_entries entries are kept. */
  options = rcache_options_default();
  options.memory_max_entries = 4096;
  c = open_with(&options);
  {
    char key[16];
    int i, kept = 0, stored = 0;
    for (i = 0; i < 4096; i++) {
      snprintf(key, sizeof key, "n%d", i);
      stored += rcache_client_set(c, STR(key), LIT("v"), RCACHE_TTL_NONE) == RCACHE_STATUS_OK;
    }
    CHECK_EQ_INT(stored, 4096);
    for (i = 0; i < 4096; i++) {
      snprintf(key, sizeof key, "n%d", i);
      kept += rcache_client_exists(c, STR(key)) == RCACHE_STATUS_OK;
    }
    CHECK_EQ_INT(kept, 4096);
  }
  rcache_client_free(c);

  /* An entry larger than the whole byte bound is refused, not stored-and-evicted. */
  options = rcache_options_default();
  options.memory_max_entries = 100;
  options.memory_max_bytes = 256;
  c = open_with(&options);
  EXPECT_ERROR(RCACHE_STATUS_TOO_LARGE,
               rcache_client_set(c, LIT("huge"), value, sizeof value, RCACHE_TTL_NONE));
  EXPECT_MISS(rcache_client_exists(c, LIT("huge")));
  ALIVE(c);
  rcache_client_free(c);
}

/* ------------------------------------------------------------------------ */
/* Bad input: each call returns its status, with a message, and the client lives on. */

static void test_null_arguments(rcache_client *c) {
  rcache_buffer out = SENTINEL_BUFFER;
  rcache_buffer many[2] = {SENTINEL_BUFFER, SENTINEL_BUFFER};
  rcache_bytes keys[2] = {{(const uint8_t *)"n:a", 3}, {(const uint8_t *)"n:b", 3}};
  rcache_bytes values[2] = {{(const uint8_t *)"1", 1}, {(const uint8_t *)"2", 1}};
  int64_t number = SENTINEL_I64;
  const rcache_status INVALID = RCACHE_STATUS_INVALID_ARGUMENT;

  /* NULL client. */
  EXPECT_BAD(c, INVALID, rcache_client_get(NULL, LIT("k"), &out));
  CHECK(buffer_is_sentinel(out));
  EXPECT_BAD(c, INVALID, rcache_client_set(NULL, LIT("k"), LIT("v"), RCACHE_TTL_NONE));
  EXPECT_BAD(c, INVALID, rcache_client_delete(NULL, LIT("k")));
  EXPECT_BAD(c, INVALID, rcache_client_exists(NULL, LIT("k")));
  EXPECT_BAD(c, INVALID, rcache_client_ttl(NULL, LIT("k"), &number));
  EXPECT_BAD(c, INVALID, rcache_client_expire(NULL, LIT("k"), 1000));
  EXPECT_BAD(c, INVALID, rcache_client_get_many(NULL, keys, 2, many));
  CHECK(buffer_is_sentinel(many[0]) && buffer_is_sentinel(many[1]));
  EXPECT_BAD(c, INVALID, rcache_client_set_many(NULL, keys, values, 2, RCACHE_TTL_NONE));
  EXPECT_BAD(c, INVALID, rcache_client_incr(NULL, LIT("k"), 1, RCACHE_TTL_NONE, &number));
  CHECK_EQ_INT(number, SENTINEL_I64);

  /* NULL key with a non-zero length. */
  EXPECT_BAD(c, INVALID, rcache_client_get(c, NULL, 3, &out));
  EXPECT_BAD(c, INVALID, rcache_client_set(c, NULL, 3, LIT("v"), RCACHE_TTL_NONE));
  EXPECT_BAD(c, INVALID, rcache_client_delete(c, NULL, 3));
  EXPECT_BAD(c, INVALID, rcache_client_exists(c, NULL, 3));
  EXPECT_BAD(c, INVALID, rcache_client_ttl(c, NULL, 3, &number));
  EXPECT_BAD(c, INVALID, rcache_client_expire(c, NULL, 3, 1000));
  EXPECT_BAD(c, INVALID, rcache_client_incr(c, NULL, 3, 1, RCACHE_TTL_NONE, &number));
  ALIVE(c);

  /* NULL key with length 0, and a non-NULL empty key: an empty key is invalid. */
  EXPECT_BAD(c, INVALID, rcache_client_get(c, NULL, 0, &out));
  EXPECT_BAD(c, INVALID, rcache_client_set(c, NULL, 0, LIT("v"), RCACHE_TTL_NONE));
  EXPECT_BAD(c, INVALID, rcache_client_delete(c, NULL, 0));
  EXPECT_BAD(c, INVALID, rcache_client_exists(c, NULL, 0));
  EXPECT_BAD(c, INVALID, rcache_client_ttl(c, NULL, 0, &number));
  EXPECT_BAD(c, INVALID, rcache_client_expire(c, NULL, 0, 1000));
  EXPECT_BAD(c, INVALID, rcache_client_incr(c, NULL, 0, 1, RCACHE_TTL_NONE, &number));
  EXPECT_BAD(c, INVALID, rcache_client_get(c, (const uint8_t *)"k", 0, &out));
  EXPECT_BAD(c, INVALID, rcache_client_set(c, (const uint8_t *)"k", 0, LIT("v"), RCACHE_TTL_NONE));
  CHECK(buffer_is_sentinel(out));
  CHECK_EQ_INT(number, SENTINEL_I64);
  ALIVE(c);

  /* NULL value with a non-zero length: nothing is stored. */
  EXPECT_BAD(c, INVALID, rcache_client_set(c, LIT("n:v"), NULL, 5, RCACHE_TTL_NONE));
  EXPECT_MISS(rcache_client_exists(c, LIT("n:v")));

  /* NULL out-parameters. The counter must not move when its result cannot be written. */
  EXPECT_OK(rcache_client_set(c, LIT("n:k"), LIT("10"), RCACHE_TTL_NONE));
  EXPECT_BAD(c, INVALID, rcache_client_get(c, LIT("n:k"), NULL));
  EXPECT_BAD(c, INVALID, rcache_client_get(c, LIT("n:missing"), NULL));
  EXPECT_BAD(c, INVALID, rcache_client_ttl(c, LIT("n:k"), NULL));
  EXPECT_BAD(c, INVALID, rcache_client_incr(c, LIT("n:k"), 1, RCACHE_TTL_NONE, NULL));
  CHECK_VALUE(c, LIT("n:k"), "10");
  EXPECT_BAD(c, INVALID, rcache_client_get_many(c, keys, 2, NULL));
  {
    rcache_client *never = (rcache_client *)&g_sentinel_byte;
    EXPECT_BAD(c, INVALID, rcache_client_connect(g_url, NULL, NULL));
    EXPECT_BAD(c, INVALID, rcache_client_connect("nonsense", NULL, &never));
    CHECK(never == (rcache_client *)&g_sentinel_byte);
  }
  ALIVE(c);

  /* NULL arrays with count > 0, and NULL data inside them. */
  EXPECT_BAD(c, INVALID, rcache_client_get_many(c, NULL, 2, many));
  CHECK(buffer_is_sentinel(many[0]) && buffer_is_sentinel(many[1]));
  EXPECT_BAD(c, INVALID, rcache_client_set_many(c, NULL, values, 2, RCACHE_TTL_NONE));
  EXPECT_BAD(c, INVALID, rcache_client_set_many(c, keys, NULL, 2, RCACHE_TTL_NONE));
  EXPECT_MISS(rcache_client_exists(c, LIT("n:a")));
  {
    rcache_bytes bad_keys[2] = {{(const uint8_t *)"n:a", 3}, {NULL, 4}};
    rcache_bytes empty_keys[2] = {{(const uint8_t *)"n:a", 3}, {NULL, 0}};
    rcache_bytes bad_values[2] = {{(const uint8_t *)"1", 1}, {NULL, 1}};
    EXPECT_BAD(c, INVALID, rcache_client_get_many(c, bad_keys, 2, many));
    EXPECT_BAD(c, INVALID, rcache_client_get_many(c, empty_keys, 2, many));
    CHECK(buffer_is_sentinel(many[0]) && buffer_is_sentinel(many[1]));
    /* set_many is all or nothing: the good first entry is not stored either. */
    EXPECT_BAD(c, INVALID, rcache_client_set_many(c, bad_keys, values, 2, RCACHE_TTL_NONE));
    EXPECT_BAD(c, INVALID, rcache_client_set_many(c, empty_keys, values, 2, RCACHE_TTL_NONE));
    EXPECT_BAD(c, INVALID, rcache_client_set_many(c, keys, bad_values, 2, RCACHE_TTL_NONE));
    EXPECT_MISS(rcache_client_exists(c, LIT("n:a")));
  }
  ALIVE(c);
}

/* rcache_last_error: an error status sets it, OK and MISS clear it, and functions
 * without a status leave it as it is. */
static void test_last_error_lifetime(rcache_client *c) {
  rcache_buffer out = SENTINEL_BUFFER;
  rcache_buffer empty = {NULL, 0};

  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_get(c, NULL, 3, &out));
  EXPECT_OK(rcache_client_set(c, LIT("le:k"), LIT("v"), 60000));
  CHECK_STR(rcache_last_error(), "");
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_get(c, NULL, 3, &out));
  EXPECT_MISS(rcache_client_get(c, LIT("le:none"), &out));
  CHECK_STR(rcache_last_error(), "");
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_get(c, NULL, 3, &out));
  rcache_buffer_free(NULL);
  rcache_buffer_free(&empty);
  rcache_buffers_free(NULL, 0);
  CHECK(rcache_version() != NULL);
  CHECK(strstr(rcache_last_error(), "key") != NULL);
  CHECK(buffer_is_sentinel(out));
}

/* A lock owner is stored raw: one that starts like a tagged entry's stored form
 * would later read as one, so it is refused. */
static void test_lock_owner_that_looks_tagged(rcache_client *c) {
  static const uint8_t owner[] = "\0rcache-tags\0" "9:outside";
  EXPECT_BAD(c, RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_lock(c, LIT("le:lock"), owner, sizeof owner - 1, 5000));
  EXPECT_BAD(c, RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_extend_lock(c, LIT("le:lock"), owner, sizeof owner - 1, 5000));
  EXPECT_BAD(c, RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_unlock(c, LIT("le:lock"), owner, sizeof owner - 1));
  EXPECT_MISS(rcache_client_exists(c, LIT("le:lock")));
}

static void test_size_limits(void) {
  rcache_options options = test_options();
  rcache_client *c;
  rcache_buffer out = SENTINEL_BUFFER;
  rcache_buffer many[2] = {SENTINEL_BUFFER, SENTINEL_BUFFER};
  int64_t number = SENTINEL_I64;
  const rcache_status TOO_LARGE = RCACHE_STATUS_TOO_LARGE;
  static const uint8_t key8[] = "12345678", key9[] = "123456789";
  static const uint8_t value16[] = "0123456789abcdef", value17[] = "0123456789abcdefg";

  options.max_key_bytes = 8;
  options.max_value_bytes = 16;
  c = open_with(&options);

  /* At the limit: fine (the prefix does not count against max_key_bytes). */
  CHECK(strlen(g_prefix) > 8);
  EXPECT_OK(rcache_client_set(c, key8, 8, value16, 16, RCACHE_TTL_NONE));
  CHECK_VALUE(c, key8, 8, "0123456789abcdef");

  /* One byte over. */
  EXPECT_BAD(c, TOO_LARGE, rcache_client_set(c, key9, 9, LIT("v"), RCACHE_TTL_NONE));
  EXPECT_BAD(c, TOO_LARGE, rcache_client_set(c, LIT("small"), value17, 17, RCACHE_TTL_NONE));
  EXPECT_MISS(rcache_client_exists(c, LIT("small")));
  EXPECT_BAD(c, TOO_LARGE, rcache_client_get(c, key9, 9, &out));
  CHECK(buffer_is_sentinel(out));
  EXPECT_BAD(c, TOO_LARGE, rcache_client_delete(c, key9, 9));
  EXPECT_BAD(c, TOO_LARGE, rcache_client_exists(c, key9, 9));
  EXPECT_BAD(c, TOO_LARGE, rcache_client_ttl(c, key9, 9, &number));
  EXPECT_BAD(c, TOO_LARGE, rcache_client_expire(c, key9, 9, 1000));
  EXPECT_BAD(c, TOO_LARGE, rcache_client_incr(c, key9, 9, 1, RCACHE_TTL_NONE, &number));
  CHECK_EQ_INT(number, SENTINEL_I64);
  /* The value limit also applies to values set_many stores, all or nothing. */
  {
    rcache_bytes keys[2] = {{(const uint8_t *)"lim:a", 5}, {key9, 9}};
    rcache_bytes keys_ok[2] = {{(const uint8_t *)"lim:a", 5}, {(const uint8_t *)"lim:b", 5}};
    rcache_bytes values[2] = {{(const uint8_t *)"1", 1}, {value17, 17}};
    rcache_bytes values_ok[2] = {{(const uint8_t *)"1", 1}, {(const uint8_t *)"2", 1}};
    EXPECT_BAD(c, TOO_LARGE, rcache_client_get_many(c, keys, 2, many));
    CHECK(buffer_is_sentinel(many[0]) && buffer_is_sentinel(many[1]));
    EXPECT_BAD(c, TOO_LARGE, rcache_client_set_many(c, keys, values_ok, 2, RCACHE_TTL_NONE));
    EXPECT_BAD(c, TOO_LARGE, rcache_client_set_many(c, keys_ok, values, 2, RCACHE_TTL_NONE));
    EXPECT_MISS(rcache_client_exists(c, LIT("lim:a")));
  }
  ALIVE(c);
  rcache_client_free(c);

  /* The largest max_value_bytes allowed is 512 MiB; one more is invalid. */
  options = test_options();
  options.max_value_bytes = 512 * MIB;
  c = open_with(&options);
  {
    rcache_client *never = (rcache_client *)&g_sentinel_byte;
    options.max_value_bytes = 512 * MIB + 1;
    EXPECT_BAD(c, RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_connect(g_url, &options, &never));
    CHECK(never == (rcache_client *)&g_sentinel_byte);
    options.max_value_bytes = SIZE_MAX;
    EXPECT_BAD(c, RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_connect(g_url, &options, &never));
    CHECK(never == (rcache_client *)&g_sentinel_byte);
  }
  rcache_client_free(c);
}

static void test_bad_ttls(rcache_client *c) {
  static const int64_t bad[] = {-3, -1000, INT64_MIN, HUNDRED_YEARS_MS + 1, INT64_MAX};
  const rcache_status INVALID = RCACHE_STATUS_INVALID_ARGUMENT;
  rcache_bytes keys[1] = {{(const uint8_t *)"bt:many", 7}};
  rcache_bytes values[1] = {{(const uint8_t *)"x", 1}};
  int64_t number = SENTINEL_I64, ttl = SENTINEL_I64;
  size_t i;

  EXPECT_OK(rcache_client_set(c, LIT("bt:k"), LIT("x"), 60000));
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    EXPECT_BAD(c, INVALID, rcache_client_set(c, LIT("bt:new"), LIT("x"), bad[i]));
    EXPECT_BAD(c, INVALID, rcache_client_expire(c, LIT("bt:k"), bad[i]));
    EXPECT_BAD(c, INVALID, rcache_client_set_many(c, keys, values, 1, bad[i]));
    EXPECT_BAD(c, INVALID, rcache_client_incr(c, LIT("bt:ctr"), 1, bad[i], &number));
  }
  /* RCACHE_TTL_KEEP (-2) is only for writes that replace a whole value (rcache_client_set and
   * the calls tested in test_records.c). */
  EXPECT_BAD(c, INVALID, rcache_client_expire(c, LIT("bt:k"), RCACHE_TTL_KEEP));
  EXPECT_BAD(c, INVALID, rcache_client_set_many(c, keys, values, 1, RCACHE_TTL_KEEP));
  EXPECT_BAD(c, INVALID, rcache_client_incr(c, LIT("bt:ctr"), 1, RCACHE_TTL_KEEP, &number));
  /* Nothing was stored, and the TTL of bt:k did not change. */
  EXPECT_MISS(rcache_client_exists(c, LIT("bt:new")));
  EXPECT_MISS(rcache_client_exists(c, LIT("bt:many")));
  EXPECT_MISS(rcache_client_exists(c, LIT("bt:ctr")));
  CHECK_EQ_INT(number, SENTINEL_I64);
  if (EXPECT_OK(rcache_client_ttl(c, LIT("bt:k"), &ttl))) CHECK(ttl > 0 && ttl <= 60000);
  ALIVE(c);

  /* Bad default TTLs. */
  {
    static const int64_t bad_default[] = {-2, INT64_MIN, HUNDRED_YEARS_MS + 1, INT64_MAX};
    rcache_options options = test_options();
    for (i = 0; i < sizeof bad_default / sizeof bad_default[0]; i++) {
      rcache_client *never = (rcache_client *)&g_sentinel_byte;
      options.default_ttl_ms = bad_default[i];
      EXPECT_BAD(c, INVALID, rcache_client_connect(g_url, &options, &never));
      CHECK(never == (rcache_client *)&g_sentinel_byte);
    }
  }
}

static void test_bad_urls(void) {
  static const struct {
    const char *url;
    rcache_status status;
  } cases[] = {
      {"nonsense", RCACHE_STATUS_INVALID_ARGUMENT},
      {"redis://:badport", RCACHE_STATUS_INVALID_ARGUMENT},
      {"redis://127.0.0.1:notaport/0", RCACHE_STATUS_INVALID_ARGUMENT},
      {"ftp://x", RCACHE_STATUS_INVALID_ARGUMENT},
      {"memory://somehost", RCACHE_STATUS_INVALID_ARGUMENT},
      {"\xff\xfe://x", RCACHE_STATUS_INVALID_ARGUMENT}, /* not UTF-8 */
      {"redis+sentinel://127.0.0.1:1", RCACHE_STATUS_INVALID_ARGUMENT},      /* no service name */
      {"redis+cluster://127.0.0.1:1/2", RCACHE_STATUS_INVALID_ARGUMENT},     /* a Cluster has db 0 only */
      {"redis+cluster://127.0.0.1:1?tls_ca=x", RCACHE_STATUS_INVALID_ARGUMENT}, /* TLS files need rediss+ */
      {"redis+sentinel://127.0.0.1:1/mymaster", RCACHE_STATUS_CONNECTION}, /* no sentinel listening */
      {"redis+cluster://127.0.0.1:1", RCACHE_STATUS_CONNECTION},           /* no node listening */
  };
  size_t i;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    rcache_client *never = (rcache_client *)&g_sentinel_byte;
    if (!EXPECT_ERROR(cases[i].status, rcache_client_connect(cases[i].url, NULL, &never))) {
      fprintf(stderr, "    (url was \"%s\")\n", cases[i].url);
    }
    CHECK(never == (rcache_client *)&g_sentinel_byte);
  }
}

/* A loopback port nobody listens on: bind an ephemeral port, then release it. */
static int free_port(void) {
  struct sockaddr_in addr;
  socklen_t len = sizeof addr;
  int port = -1, fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
      getsockname(fd, (struct sockaddr *)&addr, &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

static void test_unreachable_server(void) {
  rcache_options options = rcache_options_default();
  rcache_client *never = (rcache_client *)&g_sentinel_byte;
  char url[64];
  int port = free_port();
  double start, elapsed;
  rcache_status status;

  options.connect_timeout_ms = 500;
  options.response_timeout_ms = 500;

  /* Nobody listens: refused at once, or at worst a timeout. */
  CHECK(port > 0);
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
  start = now_ms();
  status = rcache_client_connect(url, &options, &never);
  elapsed = now_ms() - start;
  if (!CHECK(status == RCACHE_STATUS_CONNECTION || status == RCACHE_STATUS_TIMEOUT)) {
    fprintf(stderr, "    connect to a closed port returned %s\n", rcache_status_name(status));
  }
  CHECK(rcache_last_error()[0] != '\0');
  CHECK(never == (rcache_client *)&g_sentinel_byte);
  CHECK(elapsed < 5000);

  /* Something listens but never answers (its backlog accepts the TCP handshake):
   * connect gives up after about connect_timeout_ms. */
  {
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
              getsockname(fd, (struct sockaddr *)&addr, &len) == 0 && listen(fd, 16) == 0)) {
      snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", ntohs(addr.sin_port));
      start = now_ms();
      status = rcache_client_connect(url, &options, &never);
      elapsed = now_ms() - start;
      if (status == RCACHE_STATUS_OK) {
        /* The handshake sends nothing: then the first call must time out instead. */
        rcache_client *c = never;
        rcache_buffer out = SENTINEL_BUFFER;
        start = now_ms();
        EXPECT_ERROR(RCACHE_STATUS_TIMEOUT, rcache_client_get(c, LIT("k"), &out));
        elapsed = now_ms() - start;
        CHECK(buffer_is_sentinel(out));
        rcache_client_free(c);
      } else {
        if (!CHECK(status == RCACHE_STATUS_TIMEOUT || status == RCACHE_STATUS_CONNECTION)) {
          fprintf(stderr, "    connect to a silent server returned %s\n",
                  rcache_status_name(status));
        }
        CHECK(rcache_last_error()[0] != '\0');
        CHECK(never == (rcache_client *)&g_sentinel_byte);
      }
      CHECK(elapsed < 5000);
    }
    if (fd >= 0) close(fd);
  }
}

static void test_free_noops(rcache_client *c) {
  rcache_buffer buffer = SENTINEL_BUFFER, empty = {NULL, 0};
  rcache_client_free(NULL);
  rcache_buffer_free(NULL);
  rcache_buffers_free(NULL, 3);
  rcache_buffers_free(&empty, 0);
  rcache_buffer_free(&empty);
  CHECK(empty.data == NULL && empty.len == 0);
  /* A buffer freed twice: the first call resets it, the second is a no-op. */
  EXPECT_OK(rcache_client_set(c, LIT("free:k"), LIT("twice"), RCACHE_TTL_NONE));
  if (EXPECT_OK(rcache_client_get(c, LIT("free:k"), &buffer))) {
    rcache_buffer_free(&buffer);
    CHECK(buffer.data == NULL && buffer.len == 0);
    rcache_buffer_free(&buffer);
    CHECK(buffer.data == NULL && buffer.len == 0);
  }
  /* An empty hit's buffer, freed twice. */
  EXPECT_OK(rcache_client_set(c, LIT("free:e"), NULL, 0, RCACHE_TTL_NONE));
  buffer = SENTINEL_BUFFER;
  if (EXPECT_OK(rcache_client_get(c, LIT("free:e"), &buffer))) {
    rcache_buffer_free(&buffer);
    rcache_buffer_free(&buffer);
    CHECK(buffer.data == NULL && buffer.len == 0);
  }
  ALIVE(c);
}

/* Redis only: a key holding a hash, written behind the library's back. */
static void test_wrong_type_on_redis(rcache_client *c) {
  const char *port = redis_port("wrong-type test");
  char arguments[256];
  rcache_buffer out = SENTINEL_BUFFER;
  int64_t number = SENTINEL_I64;

  if (port == NULL) return;
  snprintf(arguments, sizeof arguments, "HSET '%shash' f v", g_prefix);
  if (!CHECK(redis_cli(port, arguments))) return;

  EXPECT_BAD(c, RCACHE_STATUS_WRONG_TYPE, rcache_client_get(c, LIT("hash"), &out));
  CHECK(buffer_is_sentinel(out));
  ALIVE(c);
  EXPECT_BAD(c, RCACHE_STATUS_WRONG_TYPE,
               rcache_client_incr(c, LIT("hash"), 1, RCACHE_TTL_NONE, &number));
  EXPECT_BAD(c, RCACHE_STATUS_WRONG_TYPE, rcache_client_incr(c, LIT("hash"), 1, 5000, &number));
  CHECK_EQ_INT(number, SENTINEL_I64);
  ALIVE(c);
  /* get_many reads it as a miss (MGET semantics, as the header says). */
  {
    rcache_bytes keys[2] = {{(const uint8_t *)"hash", 4}, {(const uint8_t *)"alive", 5}};
    rcache_buffer values[2] = {SENTINEL_BUFFER, SENTINEL_BUFFER};
    if (EXPECT_OK(rcache_client_get_many(c, keys, 2, values))) {
      CHECK(values[0].data == NULL && values[0].len == 0);
      CHECK(values[1].data != NULL);
      rcache_buffers_free(values, 2);
    }
  }
  /* Type-agnostic operations work on it. */
  EXPECT_OK(rcache_client_exists(c, LIT("hash")));
  if (EXPECT_OK(rcache_client_ttl(c, LIT("hash"), &number))) CHECK_EQ_INT(number, -1);
  EXPECT_OK(rcache_client_delete(c, LIT("hash")));
  EXPECT_MISS(rcache_client_exists(c, LIT("hash")));
  ALIVE(c);
}

/* ------------------------------------------------------------------------ */
/* Tags and clear. */

/* One tag from a string literal, as an rcache_bytes initializer. */
#define TAG(text) {(const uint8_t *)(text), sizeof(text) - 1}
/* A (tags, tag_count) argument pair from TAG() initializers. */
#define TAGS(...)                                   \
  (const rcache_bytes[]){__VA_ARGS__},              \
      sizeof((const rcache_bytes[]){__VA_ARGS__}) / sizeof(rcache_bytes)
/* The header caps one call at 256 tags (its RCACHE_MAX_TAGS). */
#define MOST_TAGS 256

static void test_tag_invalidation(rcache_client *c) {
  rcache_buffer out = SENTINEL_BUFFER;
  rcache_bytes keys[3] = {{(const uint8_t *)"tg:profile:1", 12},
                          {(const uint8_t *)"tg:profile:2", 12},
                          {(const uint8_t *)"tg:plain", 8}};
  rcache_buffer values[3] = {SENTINEL_BUFFER, SENTINEL_BUFFER, SENTINEL_BUFFER};

  EXPECT_OK(rcache_client_set_tagged(c, LIT("tg:profile:1"), LIT("ada"), 60000,
                                     TAGS(TAG("user:1"), TAG("profiles"))));
  EXPECT_OK(rcache_client_set_tagged(c, LIT("tg:profile:2"), LIT("bob"), 60000,
                                     TAGS(TAG("user:2"), TAG("profiles"))));
  EXPECT_OK(rcache_client_set_tagged(c, LIT("tg:avatar:1"), LIT("png"), 60000, TAGS(TAG("user:1"))));
  EXPECT_OK(rcache_client_set(c, LIT("tg:plain"), LIT("untouched"), 60000));
  CHECK_VALUE(c, LIT("tg:profile:1"), "ada");

  EXPECT_OK(rcache_client_invalidate_tags(c, TAGS(TAG("user:1"))));
  EXPECT_MISS(rcache_client_get(c, LIT("tg:profile:1"), &out));
  CHECK(buffer_is_sentinel(out));
  EXPECT_MISS(rcache_client_get(c, LIT("tg:avatar:1"), &out));
  EXPECT_MISS(rcache_client_exists(c, LIT("tg:avatar:1")));
  CHECK_VALUE(c, LIT("tg:profile:2"), "bob");
  if (EXPECT_OK(rcache_client_get_many(c, keys, 3, values))) {
    CHECK(values[0].data == NULL);
    CHECK_BYTES(values[1].data, values[1].len, "bob", 3);
    CHECK_BYTES(values[2].data, values[2].len, "untouched", 9);
    rcache_buffers_free(values, 3);
  }

  /* Several tags at once, one of them never used. */
  EXPECT_OK(rcache_client_invalidate_tags(c, TAGS(TAG("profiles"), TAG("never-used"))));
  EXPECT_MISS(rcache_client_get(c, LIT("tg:profile:2"), &out));
  CHECK_VALUE(c, LIT("tg:plain"), "untouched");
  /* Tags named like keys have nothing to do with those keys. */
  EXPECT_OK(rcache_client_invalidate_tags(c, TAGS(TAG("tg:plain"))));
  CHECK_VALUE(c, LIT("tg:plain"), "untouched");

  /* A write after the invalidation is valid. */
  EXPECT_OK(rcache_client_set_tagged(c, LIT("tg:profile:1"), LIT("ada again"), 60000,
                                     TAGS(TAG("user:1"))));
  CHECK_VALUE(c, LIT("tg:profile:1"), "ada again");
  /* An untagged write replaces a tagged entry, and the tag no longer applies. */
  EXPECT_OK(rcache_client_set(c, LIT("tg:profile:1"), LIT("plain now"), 60000));
  EXPECT_OK(rcache_client_invalidate_tags(c, TAGS(TAG("user:1"))));
  CHECK_VALUE(c, LIT("tg:profile:1"), "plain now");

  /* No tags: NULL with count 0 is rcache_client_set, and invalidating nothing is fine. */
  EXPECT_OK(rcache_client_set_tagged(c, LIT("tg:none"), LIT("v"), RCACHE_TTL_NONE, NULL, 0));
  CHECK_VALUE(c, LIT("tg:none"), "v");
  EXPECT_OK(rcache_client_invalidate_tags(c, NULL, 0));
  CHECK_VALUE(c, LIT("tg:none"), "v");
  ALIVE(c);
}

static void test_tag_ttls_and_add_tags(rcache_client *c) {
  int64_t ttl = SENTINEL_I64;
  rcache_buffer out = SENTINEL_BUFFER;

  /* A tagged entry has the TTL it was given, and expires. */
  EXPECT_OK(rcache_client_set_tagged(c, LIT("tt:long"), LIT("v"), 100000, TAGS(TAG("t"))));
  if (EXPECT_OK(rcache_client_ttl(c, LIT("tt:long"), &ttl))) CHECK(ttl > 90000 && ttl <= 100000);
  EXPECT_OK(rcache_client_set_tagged(c, LIT("tt:forever"), LIT("v"), RCACHE_TTL_NONE, TAGS(TAG("t"))));
  if (EXPECT_OK(rcache_client_ttl(c, LIT("tt:forever"), &ttl))) CHECK_EQ_INT(ttl, -1);
  EXPECT_OK(rcache_client_set_tagged(c, LIT("tt:default"), LIT("v"), RCACHE_TTL_DEFAULT, TAGS(TAG("t"))));
  if (EXPECT_OK(rcache_client_ttl(c, LIT("tt:default"), &ttl))) CHECK_EQ_INT(ttl, -1);
  EXPECT_OK(rcache_client_set_tagged(c, LIT("tt:short"), LIT("v"), 100, TAGS(TAG("t"))));
  CHECK(wait_until_missing(c, LIT("tt:short"), 3000));
  CHECK_VALUE(c, LIT("tt:long"), "v");

  /* add_tags: MISS for a missing key, output-free; keeps value and TTL. */
  EXPECT_MISS(rcache_client_add_tags(c, LIT("tt:absent"), TAGS(TAG("a"))));
  EXPECT_MISS(rcache_client_exists(c, LIT("tt:absent")));
  EXPECT_OK(rcache_client_set(c, LIT("tt:k"), LIT("value"), 100000));
  EXPECT_OK(rcache_client_add_tags(c, LIT("tt:k"), TAGS(TAG("a"))));
  EXPECT_OK(rcache_client_add_tags(c, LIT("tt:k"), TAGS(TAG("a"), TAG("b"))));
  if (EXPECT_OK(rcache_client_ttl(c, LIT("tt:k"), &ttl))) CHECK(ttl > 90000 && ttl <= 100000);
  CHECK_VALUE(c, LIT("tt:k"), "value");
  EXPECT_OK(rcache_client_add_tags(c, LIT("tt:forever"), TAGS(TAG("c"))));
  if (EXPECT_OK(rcache_client_ttl(c, LIT("tt:forever"), &ttl))) CHECK_EQ_INT(ttl, -1);
  /* No tags to add: the entry stays as it is. */
  EXPECT_OK(rcache_client_add_tags(c, LIT("tt:k"), NULL, 0));
  CHECK_VALUE(c, LIT("tt:k"), "value");

  /* An added tag invalidates, and the original ones still count. */
  EXPECT_OK(rcache_client_invalidate_tags(c, TAGS(TAG("b"))));
  EXPECT_MISS(rcache_client_get(c, LIT("tt:k"), &out));
  CHECK(buffer_is_sentinel(out));
  EXPECT_MISS(rcache_client_add_tags(c, LIT("tt:k"), TAGS(TAG("c")))); /* invalidated: missing */
  CHECK_VALUE(c, LIT("tt:forever"), "v");
  EXPECT_OK(rcache_client_invalidate_tags(c, TAGS(TAG("t"))));
  EXPECT_MISS(rcache_client_get(c, LIT("tt:forever"), &out));
  EXPECT_MISS(rcache_client_get(c, LIT("tt:long"), &out));
  CHECK(buffer_is_sentinel(out));
  ALIVE(c);
}

static void test_binary_tags(rcache_client *c) {
  uint8_t all[256];
  rcache_buffer out = SENTINEL_BUFFER;
  rcache_bytes tags[3] = {{(const uint8_t *)"t\0:x", 4}, {NULL, 40}, {NULL, 256}};
  int i;
  for (i = 0; i < 256; i++) all[i] = (uint8_t)i;
  tags[1].data = all;
  tags[2].data = all;

  EXPECT_OK(rcache_client_set_tagged(c, LIT("bt:bin"), all, sizeof all, 60000, tags, 3));
  if (EXPECT_OK(rcache_client_get(c, LIT("bt:bin"), &out))) {
    CHECK_BYTES(out.data, out.len, all, sizeof all);
    rcache_buffer_free(&out);
  }
  /* An empty tagged value is a hit, with non-NULL data. */
  EXPECT_OK(rcache_client_set_tagged(c, LIT("bt:empty"), NULL, 0, RCACHE_TTL_NONE, &tags[0], 1));
  out = SENTINEL_BUFFER;
  if (EXPECT_OK(rcache_client_get(c, LIT("bt:empty"), &out))) {
    CHECK(out.data != NULL && out.len == 0);
    rcache_buffer_free(&out);
  }
  /* "t" is not "t\0:x", and a 40-byte prefix of the 256-byte tag is another tag. */
  EXPECT_OK(rcache_client_invalidate_tags(c, TAGS(TAG("t"))));
  EXPECT_OK(rcache_client_invalidate_tags(c, &tags[2], 1));
  EXPECT_MISS(rcache_client_get(c, LIT("bt:bin"), &out));
  EXPECT_OK(rcache_client_exists(c, LIT("bt:empty")));
  EXPECT_OK(rcache_client_invalidate_tags(c, &tags[0], 1));
  EXPECT_MISS(rcache_client_exists(c, LIT("bt:empty")));
  ALIVE(c);
}

static void test_tag_bad_input(rcache_client *c) {
  const rcache_status INVALID = RCACHE_STATUS_INVALID_ARGUMENT;
  static rcache_bytes many[MOST_TAGS + 1];
  static char names[MOST_TAGS + 1][8];
  rcache_bytes empty_tag[2] = {TAG("fine"), {(const uint8_t *)"x", 0}};
  rcache_bytes null_empty_tag[1] = {{NULL, 0}};
  rcache_bytes null_tag[2] = {TAG("fine"), {NULL, 3}};
  rcache_buffer out = SENTINEL_BUFFER;
  uint64_t deleted = 0x5EED;
  size_t i;

  for (i = 0; i <= MOST_TAGS; i++) {
    snprintf(names[i], sizeof names[i], "m%zu", i);
    many[i].data = (const uint8_t *)names[i];
    many[i].len = strlen(names[i]);
  }
  EXPECT_OK(rcache_client_set(c, LIT("tb:k"), LIT("before"), RCACHE_TTL_NONE));

  /* NULL client. */
  EXPECT_BAD(c, INVALID, rcache_client_set_tagged(NULL, LIT("tb:k"), LIT("v"), 1000, TAGS(TAG("t"))));
  EXPECT_BAD(c, INVALID, rcache_client_add_tags(NULL, LIT("tb:k"), TAGS(TAG("t"))));
  EXPECT_BAD(c, INVALID, rcache_client_invalidate_tags(NULL, TAGS(TAG("t"))));
  EXPECT_BAD(c, INVALID, rcache_client_clear(NULL, LIT("*"), &deleted));
  EXPECT_BAD(c, INVALID, rcache_client_clear(NULL, NULL, 0, NULL));
  CHECK_EQ_INT(deleted, 0x5EED);

  /* NULL or empty key, NULL value with a length, a bad TTL. */
  EXPECT_BAD(c, INVALID, rcache_client_set_tagged(c, NULL, 3, LIT("v"), 1000, TAGS(TAG("t"))));
  EXPECT_BAD(c, INVALID, rcache_client_set_tagged(c, NULL, 0, LIT("v"), 1000, TAGS(TAG("t"))));
  EXPECT_BAD(c, INVALID, rcache_client_add_tags(c, NULL, 3, TAGS(TAG("t"))));
  EXPECT_BAD(c, INVALID, rcache_client_add_tags(c, (const uint8_t *)"k", 0, TAGS(TAG("t"))));
  EXPECT_BAD(c, INVALID, rcache_client_set_tagged(c, LIT("tb:k"), NULL, 5, 1000, TAGS(TAG("t"))));
  EXPECT_BAD(c, INVALID, rcache_client_set_tagged(c, LIT("tb:k"), LIT("v"), -2, TAGS(TAG("t"))));
  EXPECT_BAD(c, INVALID,
             rcache_client_set_tagged(c, LIT("tb:k"), LIT("v"), HUNDRED_YEARS_MS + 1, TAGS(TAG("t"))));

  /* A NULL tags array with count > 0. */
  EXPECT_BAD(c, INVALID, rcache_client_set_tagged(c, LIT("tb:k"), LIT("v"), 1000, NULL, 2));
  EXPECT_BAD(c, INVALID, rcache_client_add_tags(c, LIT("tb:k"), NULL, 2));
  EXPECT_BAD(c, INVALID, rcache_client_invalidate_tags(c, NULL, 2));

  /* An empty tag (NULL or not), or NULL data with a length, anywhere in the array. */
  EXPECT_BAD(c, INVALID, rcache_client_set_tagged(c, LIT("tb:k"), LIT("v"), 1000, empty_tag, 2));
  EXPECT_BAD(c, INVALID, rcache_client_add_tags(c, LIT("tb:k"), empty_tag, 2));
  EXPECT_BAD(c, INVALID, rcache_client_invalidate_tags(c, empty_tag, 2));
  EXPECT_BAD(c, INVALID, rcache_client_set_tagged(c, LIT("tb:k"), LIT("v"), 1000, null_empty_tag, 1));
  EXPECT_BAD(c, INVALID, rcache_client_invalidate_tags(c, null_empty_tag, 1));
  EXPECT_BAD(c, INVALID, rcache_client_set_tagged(c, LIT("tb:k"), LIT("v"), 1000, null_tag, 2));
  EXPECT_BAD(c, INVALID, rcache_client_add_tags(c, LIT("tb:k"), null_tag, 2));
  EXPECT_BAD(c, INVALID, rcache_client_invalidate_tags(c, null_tag, 2));

  /* One tag too many. */
  EXPECT_BAD(c, INVALID, rcache_client_set_tagged(c, LIT("tb:k"), LIT("v"), 1000, many, MOST_TAGS + 1));
  EXPECT_BAD(c, INVALID, rcache_client_add_tags(c, LIT("tb:k"), many, MOST_TAGS + 1));
  EXPECT_BAD(c, INVALID, rcache_client_invalidate_tags(c, many, MOST_TAGS + 1));
  /* Nothing above changed the entry. */
  CHECK_VALUE(c, LIT("tb:k"), "before");

  /* Keys starting with "__rcache_tag:" are reserved; the text elsewhere in a key is fine. */
  EXPECT_BAD(c, INVALID, rcache_client_set(c, LIT("__rcache_tag:x"), LIT("v"), RCACHE_TTL_NONE));
  EXPECT_BAD(c, INVALID,
             rcache_client_set_tagged(c, LIT("__rcache_tag:x"), LIT("v"), 1000, TAGS(TAG("t"))));
  EXPECT_BAD(c, INVALID, rcache_client_set_tagged(c, LIT("__rcache_tag:"), LIT("v"), 1000, NULL, 0));
  EXPECT_BAD(c, INVALID, rcache_client_add_tags(c, LIT("__rcache_tag:x"), TAGS(TAG("t"))));
  EXPECT_BAD(c, INVALID, rcache_client_get(c, LIT("__rcache_tag:x"), &out));
  EXPECT_BAD(c, INVALID, rcache_client_delete(c, LIT("__rcache_tag:t")));
  CHECK(buffer_is_sentinel(out));
  EXPECT_OK(rcache_client_set(c, LIT("x__rcache_tag:y"), LIT("fine"), RCACHE_TTL_NONE));
  CHECK_VALUE(c, LIT("x__rcache_tag:y"), "fine");

  /* The most tags allowed. */
  EXPECT_OK(rcache_client_set_tagged(c, LIT("tb:most"), LIT("v"), 60000, many, MOST_TAGS));
  EXPECT_OK(rcache_client_add_tags(c, LIT("tb:most"), many, MOST_TAGS));
  CHECK_VALUE(c, LIT("tb:most"), "v");
  /* The limit is per entry, across calls: one more tag is refused, and adds nothing. */
  if (EXPECT_ERROR(INVALID, rcache_client_add_tags(c, LIT("tb:most"), &many[MOST_TAGS], 1))) {
    CHECK(strstr(rcache_last_error(), "tags per entry") != NULL);
  }
  EXPECT_OK(rcache_client_invalidate_tags(c, &many[MOST_TAGS], 1));
  CHECK_VALUE(c, LIT("tb:most"), "v");
  EXPECT_OK(rcache_client_invalidate_tags(c, &many[MOST_TAGS - 1], 1));
  EXPECT_MISS(rcache_client_exists(c, LIT("tb:most")));
  ALIVE(c);

  /* Tags count against max_key_bytes like keys; values against max_value_bytes. */
  {
    rcache_options options = test_options();
    rcache_client *small;
    options.max_key_bytes = 8;
    options.max_value_bytes = 16; /* room for ALIVE's values */
    small = open_with(&options);
    EXPECT_OK(rcache_client_set_tagged(small, LIT("k"), LIT("v"), 60000, TAGS(TAG("12345678"))));
    EXPECT_BAD(small, RCACHE_STATUS_TOO_LARGE,
               rcache_client_set_tagged(small, LIT("k2"), LIT("v"), 60000, TAGS(TAG("123456789"))));
    EXPECT_BAD(small, RCACHE_STATUS_TOO_LARGE,
               rcache_client_add_tags(small, LIT("k"), TAGS(TAG("fine"), TAG("123456789"))));
    EXPECT_BAD(small, RCACHE_STATUS_TOO_LARGE,
               rcache_client_invalidate_tags(small, TAGS(TAG("123456789"))));
    EXPECT_BAD(small, RCACHE_STATUS_TOO_LARGE,
               rcache_client_set_tagged(small, LIT("k3"), LIT("0123456789abcdefg"), 60000,
                                        TAGS(TAG("t"))));
    EXPECT_MISS(rcache_client_exists(small, LIT("k2")));
    EXPECT_MISS(rcache_client_exists(small, LIT("k3")));
    CHECK_VALUE(small, LIT("k"), "v");
    EXPECT_OK(rcache_client_invalidate_tags(small, TAGS(TAG("12345678"))));
    EXPECT_MISS(rcache_client_exists(small, LIT("k")));
    rcache_client_free(small);
  }
}

/* The keys of `names` that exist, as a bit mask (bit i for names[i]). */
static unsigned existing(rcache_client *c, const char *const *names, size_t count) {
  unsigned mask = 0;
  size_t i;
  for (i = 0; i < count; i++) {
    if (rcache_client_exists(c, STR(names[i])) == RCACHE_STATUS_OK) mask |= 1u << i;
  }
  return mask;
}

static void test_clear(void) {
  static const char *const names[] = {"user:1", "user:2", "user:10", "a1",  "b2",
                                      "ab",     "a*b",    "c3",      "*",   "post:1"};
  enum { USER_1, USER_2, USER_10, A1, B2, AB, A_STAR_B, C3, STAR, POST_1, COUNT };
  char prefix[96];
  rcache_options options = rcache_options_default();
  rcache_client *c;
  uint64_t deleted = 0x5EED;
  size_t i;

  snprintf(prefix, sizeof prefix, "%sclear:", g_prefix);
  options.key_prefix = prefix;
  c = open_with(&options);
  for (i = 0; i < COUNT; i++) EXPECT_OK(rcache_client_set(c, STR(names[i]), LIT("v"), 60000));
  EXPECT_OK(rcache_client_set_tagged(c, LIT("user:3"), LIT("v"), 60000, TAGS(TAG("t"))));

  if (EXPECT_OK(rcache_client_clear(c, LIT("user:?"), &deleted))) CHECK_EQ_INT(deleted, 3);
  EXPECT_MISS(rcache_client_exists(c, LIT("user:3")));
  CHECK_EQ_INT(existing(c, names, COUNT), ((1u << COUNT) - 1) & ~(1u << USER_1 | 1u << USER_2));

  if (EXPECT_OK(rcache_client_clear(c, LIT("[ab]*"), &deleted))) CHECK_EQ_INT(deleted, 4);
  CHECK_EQ_INT(existing(c, names, COUNT), 1u << USER_10 | 1u << C3 | 1u << STAR | 1u << POST_1);
  /* "\*" is the key "*" only. */
  if (EXPECT_OK(rcache_client_clear(c, LIT("\\*"), &deleted))) CHECK_EQ_INT(deleted, 1);
  CHECK_EQ_INT(existing(c, names, COUNT), 1u << USER_10 | 1u << C3 | 1u << POST_1);
  /* deleted_out may be NULL. */
  EXPECT_OK(rcache_client_clear(c, LIT("post:*"), NULL));
  EXPECT_MISS(rcache_client_exists(c, LIT("post:1")));
  if (EXPECT_OK(rcache_client_clear(c, LIT("nothing*"), &deleted))) CHECK_EQ_INT(deleted, 0);
  /* An empty pattern (not NULL) matches no key: keys are never empty. */
  deleted = 0x5EED;
  if (EXPECT_OK(rcache_client_clear(c, (const uint8_t *)"", 0, &deleted))) CHECK_EQ_INT(deleted, 0);
  CHECK_EQ_INT(existing(c, names, COUNT), 1u << USER_10 | 1u << C3);

  /* NULL with a length is a bad argument, never "everything". */
  deleted = 0x5EED;
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_clear(c, NULL, 2, &deleted));
  CHECK_EQ_INT(deleted, 0x5EED);
  CHECK_EQ_INT(existing(c, names, COUNT), 1u << USER_10 | 1u << C3);

  /* NULL: the whole namespace, tags included. */
  if (EXPECT_OK(rcache_client_clear(c, NULL, 0, &deleted))) CHECK(deleted >= 2);
  CHECK_EQ_INT(existing(c, names, COUNT), 0);
  if (EXPECT_OK(rcache_client_clear(c, NULL, 0, &deleted))) CHECK_EQ_INT(deleted, 0);
  EXPECT_OK(rcache_client_clear(c, NULL, 0, NULL));
  /* Tags work afresh after a clear. */
  EXPECT_OK(rcache_client_set_tagged(c, LIT("k"), LIT("v"), 60000, TAGS(TAG("t"))));
  CHECK_VALUE(c, LIT("k"), "v");
  EXPECT_OK(rcache_client_invalidate_tags(c, TAGS(TAG("t"))));
  EXPECT_MISS(rcache_client_exists(c, LIT("k")));
  ALIVE(c);
  rcache_client_free(c);
}

/* Redis only: clear() of one namespace leaves other prefixes' keys on the same server. */
static void test_clear_namespaces_on_redis(void) {
  char prefix_one[96], prefix_two[96], prefix_glob[96], raw_key[96];
  rcache_options options = rcache_options_default();
  rcache_client *one, *two, *glob, *bare;
  uint64_t deleted = 0;

  snprintf(prefix_one, sizeof prefix_one, "%sns:one:", g_prefix);
  snprintf(prefix_two, sizeof prefix_two, "%sns:two:", g_prefix);
  /* Glob characters in a prefix are matched literally. */
  snprintf(prefix_glob, sizeof prefix_glob, "%sns:[ot]*:", g_prefix);
  snprintf(raw_key, sizeof raw_key, "%sns:raw", g_prefix);
  options.key_prefix = prefix_one;
  one = open_with(&options);
  options.key_prefix = prefix_two;
  two = open_with(&options);
  options.key_prefix = prefix_glob;
  glob = open_with(&options);
  options.key_prefix = NULL;
  bare = open_with(&options);

  EXPECT_OK(rcache_client_set(bare, STR(raw_key), LIT("raw"), RCACHE_TTL_NONE));
  EXPECT_OK(rcache_client_set(one, LIT("k"), LIT("one"), RCACHE_TTL_NONE));
  EXPECT_OK(rcache_client_set_tagged(one, LIT("tagged"), LIT("one"), RCACHE_TTL_NONE, TAGS(TAG("t"))));
  EXPECT_OK(rcache_client_set(two, LIT("k"), LIT("two"), RCACHE_TTL_NONE));
  EXPECT_OK(rcache_client_set_tagged(two, LIT("tagged"), LIT("two"), RCACHE_TTL_NONE, TAGS(TAG("t"))));
  EXPECT_OK(rcache_client_set(glob, LIT("k"), LIT("glob"), RCACHE_TTL_NONE));

  if (EXPECT_OK(rcache_client_clear(glob, NULL, 0, &deleted))) CHECK_EQ_INT(deleted, 1);
  if (EXPECT_OK(rcache_client_clear(one, NULL, 0, &deleted))) CHECK_EQ_INT(deleted, 3);
  EXPECT_MISS(rcache_client_exists(one, LIT("k")));
  EXPECT_MISS(rcache_client_exists(one, LIT("tagged")));
  CHECK_VALUE(two, LIT("k"), "two");
  CHECK_VALUE(two, LIT("tagged"), "two");
  CHECK_VALUE(bare, STR(raw_key), "raw");
  /* A tag is per namespace: one's "t" is not two's. */
  EXPECT_OK(rcache_client_set_tagged(one, LIT("tagged"), LIT("one"), RCACHE_TTL_NONE, TAGS(TAG("t"))));
  EXPECT_OK(rcache_client_invalidate_tags(one, TAGS(TAG("t"))));
  CHECK_VALUE(two, LIT("tagged"), "two");
  EXPECT_OK(rcache_client_invalidate_tags(two, TAGS(TAG("t"))));
  EXPECT_MISS(rcache_client_exists(two, LIT("tagged")));
  /* Another client on the same namespace sees the invalidation at once. */
  {
    rcache_client *again;
    options.key_prefix = prefix_two;
    again = open_with(&options);
    EXPECT_OK(rcache_client_set_tagged(two, LIT("tagged"), LIT("two"), RCACHE_TTL_NONE, TAGS(TAG("u"))));
    CHECK_VALUE(again, LIT("tagged"), "two");
    EXPECT_OK(rcache_client_invalidate_tags(again, TAGS(TAG("u"))));
    EXPECT_MISS(rcache_client_exists(two, LIT("tagged")));
    rcache_client_free(again);
  }
  EXPECT_OK(rcache_client_clear(two, NULL, 0, NULL));
  EXPECT_OK(rcache_client_delete(bare, STR(raw_key)));
  rcache_client_free(one);
  rcache_client_free(two);
  rcache_client_free(glob);
  rcache_client_free(bare);
}

/* Redis only: a damaged tagged entry, written behind the library's back. */
static void test_corrupt_tagged_on_redis(rcache_client *c) {
  const char *port = redis_port("corrupt tagged entry test");
  char command[512];
  rcache_buffer out = SENTINEL_BUFFER;
  rcache_buffer values[1] = {SENTINEL_BUFFER};
  rcache_bytes keys[1] = {{(const uint8_t *)"cor:good", 8}};

  if (port == NULL) return;
  /* The tagged-entry marker followed by garbage instead of a tag header. */
  snprintf(command, sizeof command,
           "printf '\\000rcache-tags\\000garbage' | redis-cli -p %s -x SET '%scor:bad' >/dev/null",
           port, g_prefix);
  if (!CHECK(system(command) == 0)) return;
  EXPECT_OK(rcache_client_set_tagged(c, LIT("cor:good"), LIT("good"), 60000, TAGS(TAG("cor"))));

  EXPECT_BAD(c, RCACHE_STATUS_CORRUPT, rcache_client_get(c, LIT("cor:bad"), &out));
  CHECK(buffer_is_sentinel(out));
  EXPECT_BAD(c, RCACHE_STATUS_CORRUPT, rcache_client_add_tags(c, LIT("cor:bad"), TAGS(TAG("cor"))));
  /* Nothing was changed: it reads as damaged as before. */
  EXPECT_BAD(c, RCACHE_STATUS_CORRUPT, rcache_client_get(c, LIT("cor:bad"), &out));
  CHECK(buffer_is_sentinel(out));
  /* Other entries, tags and calls are unaffected. */
  CHECK_VALUE(c, LIT("cor:good"), "good");
  if (EXPECT_OK(rcache_client_get_many(c, keys, 1, values))) {
    CHECK_BYTES(values[0].data, values[0].len, "good", 4);
    rcache_buffers_free(values, 1);
  }
  EXPECT_OK(rcache_client_invalidate_tags(c, TAGS(TAG("cor"))));
  EXPECT_MISS(rcache_client_exists(c, LIT("cor:good")));
  ALIVE(c);
  /* The damaged entry can be deleted, or overwritten. */
  EXPECT_OK(rcache_client_delete(c, LIT("cor:bad")));
  EXPECT_MISS(rcache_client_get(c, LIT("cor:bad"), &out));
  CHECK(system(command) == 0);
  EXPECT_OK(rcache_client_set_tagged(c, LIT("cor:bad"), LIT("fresh"), 60000, TAGS(TAG("cor"))));
  CHECK_VALUE(c, LIT("cor:bad"), "fresh");
  EXPECT_OK(rcache_client_delete(c, LIT("cor:bad")));
  ALIVE(c);
}

/* The reply of one redis-cli command, as text, in `out`; 1 when it ran. */
static int redis_cli_reply(const char *port, const char *args, char *out, size_t size) {
  char command[512];
  FILE *pipe;
  size_t got;
  snprintf(command, sizeof command, "redis-cli -p %s %s", port, args);
  pipe = popen(command, "r");
  if (pipe == NULL) return 0;
  got = fread(out, 1, size - 1, pipe);
  out[got] = '\0';
  return pclose(pipe) == 0;
}

/* Redis only: an entry written by another program whose tag record names a
 * key outside the client's tag space is refused by every call, and that key
 * is neither read nor extended. */
static void test_foreign_tag_key_on_redis(rcache_client *c) {
  const char *port = redis_port("foreign tag key test");
  char command[768], foreign[128], reply[128], expected[512];
  int64_t ttl = SENTINEL_I64;

  if (port == NULL) return;
  snprintf(foreign, sizeof foreign, "%sforeign:elsewhere", g_prefix);
  snprintf(command, sizeof command,
           "printf '\\000rcache-tags\\0001:%zu:%s0123456789abcdefpayload' | redis-cli -p %s -x SET '%sforeign:k' >/dev/null",
           strlen(foreign), foreign, port, g_prefix);
  if (!CHECK(system(command) == 0)) return;
  snprintf(command, sizeof command, "SET '%s' 0123456789abcdef PX 100000", foreign);
  if (!CHECK(redis_cli_reply(port, command, reply, sizeof reply))) return;

  EXPECT_BAD(c, RCACHE_STATUS_CORRUPT, rcache_client_expire(c, LIT("foreign:k"), RCACHE_TTL_NONE));
  EXPECT_BAD(c, RCACHE_STATUS_CORRUPT, rcache_client_expire(c, LIT("foreign:k"), 60000));
  EXPECT_BAD(c, RCACHE_STATUS_CORRUPT, rcache_client_add_tags(c, LIT("foreign:k"), TAGS(TAG("t"))));
  EXPECT_BAD(c, RCACHE_STATUS_CORRUPT, rcache_client_delete(c, LIT("foreign:k")));
  EXPECT_BAD(c, RCACHE_STATUS_CORRUPT,
             rcache_client_compare_and_set(c, LIT("foreign:k"), LIT("payload"), LIT("new"), 60000));
  EXPECT_BAD(c, RCACHE_STATUS_CORRUPT, rcache_client_exists(c, LIT("foreign:k")));
  EXPECT_BAD(c, RCACHE_STATUS_CORRUPT, rcache_client_ttl(c, LIT("foreign:k"), &ttl));
  CHECK(ttl == SENTINEL_I64);

  /* Nothing changed: the entry is still there, the foreign key keeps its expiry. */
  snprintf(command, sizeof command, "STRLEN '%sforeign:k'", g_prefix);
  /* The marker (13 bytes), "1:", the key's length and ':', the key, the token (16), "payload". */
  snprintf(expected, sizeof expected, "%zu\n",
           13 + 2 + (size_t)snprintf(NULL, 0, "%zu", strlen(foreign)) + 1 + strlen(foreign) + 16 + 7);
  if (CHECK(redis_cli_reply(port, command, reply, sizeof reply))) CHECK(strcmp(reply, expected) == 0);
  snprintf(command, sizeof command, "PTTL '%s'", foreign);
  if (CHECK(redis_cli_reply(port, command, reply, sizeof reply))) CHECK(atol(reply) > 0 && atol(reply) <= 100000);
  snprintf(command, sizeof command, "DEL '%s' '%sforeign:k'", foreign, g_prefix);
  CHECK(redis_cli_reply(port, command, reply, sizeof reply));
  ALIVE(c);
}

/* Redis only: the connection is killed under the client, then the server stalls. */
static void test_connection_trouble_on_redis(void) {
  const char *port = redis_port("connection trouble test");
  rcache_options options = test_options();
  rcache_client *c;
  rcache_buffer out = SENTINEL_BUFFER;
  rcache_status status;
  int64_t number = SENTINEL_I64;
  double start, elapsed;
  const long pause_ms = 1000;

  if (port == NULL) return;
  options.connect_timeout_ms = 300;
  options.response_timeout_ms = 300;
  c = open_with(&options);
  EXPECT_OK(rcache_client_set(c, LIT("trouble:1"), LIT("one"), RCACHE_TTL_NONE));
  EXPECT_OK(rcache_client_set(c, LIT("trouble:2"), LIT("two"), RCACHE_TTL_NONE));

  /* The server drops the connection: a call fails with CONNECTION or succeeds on a
   * new one, and the client reconnects by itself. */
  CHECK(redis_cli(port, "CLIENT KILL TYPE normal"));
  status = rcache_client_get(c, LIT("trouble:1"), &out);
  CHECK(status == RCACHE_STATUS_OK || status == RCACHE_STATUS_CONNECTION);
  if (status == RCACHE_STATUS_OK) {
    CHECK_BYTES(out.data, out.len, "one", 3);
    rcache_buffer_free(&out);
  }
  ALIVE(c);
  /* An increment is never sent twice: on a connection the server closed, the
   * client cannot tell a request never read from one whose reply was lost. */
  CHECK(redis_cli(port, "CLIENT KILL TYPE normal"));
  status = rcache_client_incr(c, LIT("trouble:n"), 1, RCACHE_TTL_NONE, &number);
  CHECK(status == RCACHE_STATUS_OK || status == RCACHE_STATUS_CONNECTION || status == RCACHE_STATUS_UNKNOWN_OUTCOME);
  ALIVE(c);

  /* The server stops answering for a second (CLIENT PAUSE): TIMEOUT, well before
   * the pause ends or at worst soon after... */
  out = SENTINEL_BUFFER;
  CHECK(redis_cli(port, "CLIENT PAUSE 1000 ALL"));
  start = now_ms();
  status = rcache_client_get(c, LIT("trouble:1"), &out);
  elapsed = now_ms() - start;
  EXPECT_ERROR(RCACHE_STATUS_TIMEOUT, status);
  CHECK(buffer_is_sentinel(out));
  CHECK(elapsed < 5000);
  if (elapsed < (double)pause_ms) sleep_ms(pause_ms - (long)elapsed + 100);
  /* ... and once it answers again, every reply is the one to its own request: the
   * late reply to the timed-out GET of trouble:1 is not taken for another one. */
  CHECK_VALUE(c, LIT("trouble:2"), "two");
  CHECK_VALUE(c, LIT("trouble:1"), "one");
  CHECK_VALUE(c, LIT("trouble:2"), "two");
  ALIVE(c);
  rcache_client_free(c);
}

int main(int argc, char **argv) {
  rcache_client *c;

  if (argc != 2) {
    fprintf(stderr, "usage: %s URL   (e.g. memory:// or redis://127.0.0.1:PORT/0)\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  alarm(120); /* a hang is a failure, not a stuck test run */
  g_url = argv[1];
  g_redis = strncmp(g_url, "redis", 5) == 0 || strncmp(g_url, "unix", 4) == 0;
  snprintf(g_prefix, sizeof g_prefix, "test_api:%ld:", (long)getpid());
  printf("test_api against %s (%s backend)\n", g_url, g_redis ? "Redis" : "memory");

  test_version_and_names();
  test_status_name_out_of_range();
  test_options_default();
  test_connect_variants();

  c = open_default();
  test_set_get_miss(c);
  test_binary_safety(c);
  test_empty_value(c);
  test_ttl_expiry(c);
  test_default_ttl_option();
  test_ttl_and_expire(c);
  test_delete_exists(c);
  test_get_many(c);
  test_set_many(c);
  test_incr(c);
  test_prefix_isolation();
  if (!g_redis) test_memory_bounds();

  test_null_arguments(c);
  test_last_error_lifetime(c);
  test_lock_owner_that_looks_tagged(c);
  test_size_limits();
  test_bad_ttls(c);
  test_bad_urls();
  test_unreachable_server();
  test_free_noops(c);
  test_tag_invalidation(c);
  test_tag_ttls_and_add_tags(c);
  test_binary_tags(c);
  test_tag_bad_input(c);
  test_clear();
  if (g_redis) test_clear_namespaces_on_redis();
  if (g_redis) test_wrong_type_on_redis(c);
  if (g_redis) test_corrupt_tagged_on_redis(c);
  if (g_redis) test_foreign_tag_key_on_redis(c);
  if (g_redis) test_connection_trouble_on_redis();
  ALIVE(c);
  rcache_client_free(c);

  return check_summary();
}
