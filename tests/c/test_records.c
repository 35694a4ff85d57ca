/*
 * The primitives beyond get/set, used as a C program would: get with TTL,
 * compare-and-set, RCACHE_TTL_KEEP, hash records, key listing, locks in the
 * caller's namespace and server info, with NULL pointers and bad input.
 *
 *   test_records URL     e.g. test_records memory://   or   test_records redis://127.0.0.1:PORT/0
 *
 * Keys carry a per-process prefix. The parts that talk to Redis behind the
 * library's back (redis-cli) need RCACHE_TEST_REDIS_PORT (set by
 * tests/with-redis.sh); without it they are skipped.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "rcache.h"

/* A string literal as a (pointer, length) pair, without its terminating NUL. */
#define LIT(text) (const uint8_t *)(text), (sizeof(text) - 1)
/* One rcache_bytes initializer from a string literal. */
#define BYTES(text) {(const uint8_t *)(text), sizeof(text) - 1}

static const char *g_url;
static int g_redis;
static char g_prefix[64];

/* Out-parameter sentinels: a call that must not write them leaves these values. */
static uint8_t g_sentinel_byte;
static const rcache_buffer SENTINEL_BUFFER = {&g_sentinel_byte, 4242};
#define SENTINEL_I64 ((int64_t)0x5EED5EED5EEDLL)
#define SENTINEL_SIZE ((size_t)4242)
static rcache_buffer *const SENTINEL_ARRAY = (rcache_buffer *)&g_sentinel_byte;

static int buffer_is_sentinel(rcache_buffer buffer) {
  return buffer.data == SENTINEL_BUFFER.data && buffer.len == SENTINEL_BUFFER.len;
}

static rcache_client *open_prefixed(const char *prefix) {
  rcache_options options = rcache_options_default();
  rcache_client *client = NULL;
  options.key_prefix = prefix;
  options.max_value_bytes = 1024;
  if (!EXPECT_OK(rcache_client_connect(g_url, &options, &client)) || client == NULL) {
    fprintf(stderr, "cannot connect to %s; giving up\n", g_url);
    exit(check_summary() == 0 ? 2 : 1);
  }
  return client;
}

/* One check: `client` still stores and reads a value. */
static int check_alive(const char *file, int line, rcache_client *client) {
  rcache_buffer out = {NULL, 0};
  int ok = rcache_client_set(client, LIT("alive"), LIT("yes"), RCACHE_TTL_NONE) == RCACHE_STATUS_OK &&
           rcache_client_get(client, LIT("alive"), &out) == RCACHE_STATUS_OK && out.len == 3 &&
           memcmp(out.data, "yes", 3) == 0;
  rcache_buffer_free(&out);
  return check_true(file, line, "client still works after the call above", ok);
}
#define ALIVE(client) check_alive(__FILE__, __LINE__, (client))

/* EXPECT_BAD(client, status, call): `call` fails with `status` and a message, and
 * `client` still works right after it (two checks). */
static int still_alive_after(int call_ok, rcache_client *client, const char *file, int line) {
  int alive = check_alive(file, line, client);
  return call_ok && alive;
}
#define EXPECT_BAD(client, expected, call) \
  still_alive_after(EXPECT_ERROR(expected, call), (client), __FILE__, __LINE__)

/* The value at `key` equals the NUL-terminated `expected` (one check). */
static int check_value(const char *file, int line, rcache_client *client, const uint8_t *key,
                       size_t key_len, const char *expected) {
  rcache_buffer out = SENTINEL_BUFFER;
  rcache_status status = rcache_client_get(client, key, key_len, &out);
  int ok = status == RCACHE_STATUS_OK && out.len == strlen(expected) &&
           memcmp(out.data, expected, out.len) == 0;
  if (!ok) fprintf(stderr, "%s:%d: get returned %s\n", file, line, rcache_status_name(status));
  if (status == RCACHE_STATUS_OK) rcache_buffer_free(&out);
  return check_record(ok);
}
#define CHECK_VALUE(...) check_value(__FILE__, __LINE__, __VA_ARGS__)

/* The remaining TTL of `key` in milliseconds, or a negative status-like value. */
static int64_t ttl_of(rcache_client *client, const uint8_t *key, size_t key_len) {
  int64_t ttl = SENTINEL_I64;
  rcache_status status = rcache_client_ttl(client, key, key_len, &ttl);
  return status == RCACHE_STATUS_OK ? ttl : -100 - (int64_t)status;
}

/* The value of field `name` in a hash_get result, or NULL. */
static const rcache_buffer *field(const rcache_buffer *names, const rcache_buffer *values,
                                  size_t count, const char *name) {
  size_t i, len = strlen(name);
  for (i = 0; i < count; i++) {
    if (names[i].len == len && (len == 0 || memcmp(names[i].data, name, len) == 0)) return &values[i];
  }
  return NULL;
}

static int field_is(const rcache_buffer *names, const rcache_buffer *values, size_t count,
                    const char *name, const char *expected) {
  const rcache_buffer *value = field(names, values, count, name);
  return value != NULL && value->len == strlen(expected) &&
         (value->len == 0 || memcmp(value->data, expected, value->len) == 0);
}

/* The key list equals the NUL-terminated names in `expected` (sorted, as the library sorts). */
static int keys_are(rcache_client *client, const uint8_t *pattern, size_t pattern_len,
                    const char *const *expected, size_t expected_count) {
  rcache_buffer *keys = SENTINEL_ARRAY;
  size_t count = SENTINEL_SIZE, i;
  int ok;
  if (!EXPECT_OK(rcache_client_keys(client, pattern, pattern_len, &keys, &count))) return 0;
  ok = count == expected_count && (count > 0 || keys == NULL);
  for (i = 0; ok && i < count; i++) {
    ok = keys[i].len == strlen(expected[i]) && memcmp(keys[i].data, expected[i], keys[i].len) == 0;
  }
  if (!ok) {
    fprintf(stderr, "    listed %zu keys:", count);
    for (i = 0; i < count; i++) fprintf(stderr, " \"%.*s\"", (int)keys[i].len, (const char *)keys[i].data);
    fprintf(stderr, "\n");
  }
  rcache_buffer_array_free(keys, count);
  return CHECK(ok);
}

/* ------------------------------------------------------------------------ */

static void test_get_with_ttl(rcache_client *c) {
  rcache_buffer out = SENTINEL_BUFFER;
  int64_t ttl = SENTINEL_I64;
  rcache_stats before, after;

  EXPECT_OK(rcache_client_stats(c, &before));
  EXPECT_MISS(rcache_client_get_with_ttl(c, LIT("gwt:missing"), &out, &ttl));
  CHECK(buffer_is_sentinel(out));
  CHECK_EQ_INT(ttl, SENTINEL_I64);

  EXPECT_OK(rcache_client_set(c, LIT("gwt:k"), LIT("value"), 100000));
  if (EXPECT_OK(rcache_client_get_with_ttl(c, LIT("gwt:k"), &out, &ttl))) {
    CHECK_BYTES(out.data, out.len, "value", 5);
    CHECK(ttl > 95000 && ttl <= 100000);
    rcache_buffer_free(&out);
  }
  EXPECT_OK(rcache_client_set(c, LIT("gwt:forever"), NULL, 0, RCACHE_TTL_NONE));
  out = SENTINEL_BUFFER;
  if (EXPECT_OK(rcache_client_get_with_ttl(c, LIT("gwt:forever"), &out, &ttl))) {
    CHECK_EQ_INT(out.len, 0);
    CHECK_EQ_INT(ttl, RCACHE_TTL_NONE);
    rcache_buffer_free(&out);
  }
  EXPECT_OK(rcache_client_stats(c, &after));
  CHECK_EQ_INT(after.hits - before.hits, 2);
  CHECK_EQ_INT(after.misses - before.misses, 1);
}

/* A compute callback that always succeeds, counting its calls in *user_data. */
static bool compute_value(void *user_data, rcache_compute_output *output) {
  ++*(int *)user_data;
  return rcache_compute_output_set(output, LIT("computed")) == RCACHE_STATUS_OK;
}

static void test_keep_ttl(rcache_client *c) {
  const rcache_status INVALID = RCACHE_STATUS_INVALID_ARGUMENT;
  rcache_bytes keys[1] = {BYTES("keep:many")}, values[1] = {BYTES("v")}, tags[1] = {BYTES("t")};
  int64_t number = SENTINEL_I64, ttl;

  EXPECT_OK(rcache_client_set(c, LIT("keep:k"), LIT("one"), 100000));
  EXPECT_OK(rcache_client_set(c, LIT("keep:k"), LIT("two"), RCACHE_TTL_KEEP));
  CHECK_VALUE(c, LIT("keep:k"), "two");
  ttl = ttl_of(c, LIT("keep:k"));
  CHECK(ttl > 90000 && ttl <= 100000);
  EXPECT_OK(rcache_client_set(c, LIT("keep:new"), LIT("v"), RCACHE_TTL_KEEP));
  CHECK_EQ_INT(ttl_of(c, LIT("keep:new")), RCACHE_TTL_NONE);

  /* Nothing else takes it, and nothing changes. */
  EXPECT_BAD(c, INVALID, rcache_client_expire(c, LIT("keep:k"), RCACHE_TTL_KEEP));
  EXPECT_BAD(c, INVALID, rcache_client_incr(c, LIT("keep:n"), 1, RCACHE_TTL_KEEP, &number));
  CHECK_EQ_INT(number, SENTINEL_I64);
  EXPECT_BAD(c, INVALID, rcache_client_set_many(c, keys, values, 1, RCACHE_TTL_KEEP));
  EXPECT_BAD(c, INVALID, rcache_client_set_tagged(c, LIT("keep:t"), LIT("v"), RCACHE_TTL_KEEP, tags, 1));
  {
    rcache_compute_options options = rcache_compute_options_default();
    rcache_buffer out = SENTINEL_BUFFER;
    int calls = 0;
    options.ttl_ms = RCACHE_TTL_KEEP;
    EXPECT_BAD(c, INVALID, rcache_client_get_or_compute(c, LIT("keep:c"), &options, compute_value, &calls, &out));
    CHECK(buffer_is_sentinel(out));
    CHECK_EQ_INT(calls, 0);
  }
  {
    rcache_session_store *store = NULL;
    rcache_session_new session;
    if (EXPECT_OK(rcache_session_store_open(c, LIT("keep:sess:"), &store))) {
      EXPECT_BAD(c, INVALID, rcache_session_create(store, NULL, NULL, 0, RCACHE_TTL_KEEP, &session));
      rcache_session_store_free(store);
    }
  }
  EXPECT_MISS(rcache_client_exists(c, LIT("keep:n")));
  EXPECT_MISS(rcache_client_exists(c, LIT("keep:many")));
  EXPECT_MISS(rcache_client_exists(c, LIT("keep:t")));
  EXPECT_MISS(rcache_client_exists(c, LIT("keep:c")));
  ttl = ttl_of(c, LIT("keep:k"));
  CHECK(ttl > 90000 && ttl <= 100000);
}

static void test_compare_and_set(rcache_client *c) {
  int64_t ttl;
  EXPECT_MISS(rcache_client_compare_and_set(c, LIT("cas:k"), NULL, 0, LIT("v"), 60000));
  EXPECT_MISS(rcache_client_exists(c, LIT("cas:k")));
  EXPECT_OK(rcache_client_set(c, LIT("cas:k"), LIT("a"), 100000));
  EXPECT_MISS(rcache_client_compare_and_set(c, LIT("cas:k"), LIT("b"), LIT("c"), 60000));
  EXPECT_MISS(rcache_client_compare_and_set(c, LIT("cas:k"), LIT("a\0"), LIT("c"), 60000));
  CHECK_VALUE(c, LIT("cas:k"), "a");
  EXPECT_OK(rcache_client_compare_and_set(c, LIT("cas:k"), LIT("a"), LIT("b"), RCACHE_TTL_KEEP));
  CHECK_VALUE(c, LIT("cas:k"), "b");
  ttl = ttl_of(c, LIT("cas:k"));
  CHECK(ttl > 90000 && ttl <= 100000);
  EXPECT_OK(rcache_client_compare_and_set(c, LIT("cas:k"), LIT("b"), NULL, 0, RCACHE_TTL_NONE));
  CHECK_EQ_INT(ttl_of(c, LIT("cas:k")), RCACHE_TTL_NONE);
  EXPECT_OK(rcache_client_compare_and_set(c, LIT("cas:k"), NULL, 0, LIT("d"), 5000));
  ttl = ttl_of(c, LIT("cas:k"));
  CHECK(ttl > 0 && ttl <= 5000);
  CHECK_VALUE(c, LIT("cas:k"), "d");

  /* A tagged entry compares by its value and becomes plain. */
  {
    rcache_bytes tags[1] = {BYTES("cas-tag")};
    EXPECT_OK(rcache_client_set_tagged(c, LIT("cas:tagged"), LIT("x"), 60000, tags, 1));
    EXPECT_OK(rcache_client_compare_and_set(c, LIT("cas:tagged"), LIT("x"), LIT("y"), 60000));
    EXPECT_OK(rcache_client_invalidate_tags(c, tags, 1));
    CHECK_VALUE(c, LIT("cas:tagged"), "y");
  }
}

static void test_hash_records(rcache_client *c) {
  rcache_buffer *names = SENTINEL_ARRAY, *values = SENTINEL_ARRAY;
  size_t count = SENTINEL_SIZE;
  rcache_bytes first_names[3] = {BYTES("a"), BYTES("b"), BYTES("")};
  rcache_bytes first_values[3] = {BYTES("1"), BYTES("2"), BYTES("empty name")};
  rcache_bytes more_names[2] = {BYTES("b"), BYTES("c")};
  rcache_bytes more_values[2] = {BYTES("3"), {NULL, 0}};
  rcache_buffer out = SENTINEL_BUFFER;
  int64_t ttl;

  EXPECT_MISS(rcache_client_hash_get(c, LIT("h:rec"), &names, &values, &count));
  CHECK(names == SENTINEL_ARRAY && values == SENTINEL_ARRAY && count == SENTINEL_SIZE);
  EXPECT_OK(rcache_client_hash_set(c, LIT("h:rec"), first_names, first_values, 3, 100000,
                                   RCACHE_WRITE_ALWAYS));
  EXPECT_OK(rcache_client_hash_set(c, LIT("h:rec"), more_names, more_values, 2, RCACHE_TTL_KEEP,
                                   RCACHE_WRITE_IF_EXISTS));
  if (EXPECT_OK(rcache_client_hash_get(c, LIT("h:rec"), &names, &values, &count))) {
    CHECK_EQ_INT(count, 4);
    CHECK(field_is(names, values, count, "a", "1"));
    CHECK(field_is(names, values, count, "b", "3"));
    CHECK(field_is(names, values, count, "c", ""));
    CHECK(field_is(names, values, count, "", "empty name"));
    rcache_buffer_array_free(names, count);
    rcache_buffer_array_free(values, count);
  }
  ttl = ttl_of(c, LIT("h:rec"));
  CHECK(ttl > 90000 && ttl <= 100000);

  /* Conditions. */
  EXPECT_MISS(rcache_client_hash_set(c, LIT("h:rec"), more_names, more_values, 1, 1000,
                                     RCACHE_WRITE_IF_ABSENT));
  ttl = ttl_of(c, LIT("h:rec"));
  CHECK(ttl > 90000);
  EXPECT_MISS(rcache_client_hash_set(c, LIT("h:new"), more_names, more_values, 2, 60000,
                                     RCACHE_WRITE_IF_EXISTS));
  EXPECT_MISS(rcache_client_exists(c, LIT("h:new")));
  EXPECT_OK(rcache_client_hash_set(c, LIT("h:new"), more_names, more_values, 2, RCACHE_TTL_KEEP,
                                   RCACHE_WRITE_IF_ABSENT));
  CHECK_EQ_INT(ttl_of(c, LIT("h:new")), RCACHE_TTL_NONE);

  /* Records and values are different types. */
  EXPECT_OK(rcache_client_set(c, LIT("h:string"), LIT("text"), 60000));
  EXPECT_BAD(c, RCACHE_STATUS_WRONG_TYPE, rcache_client_get(c, LIT("h:rec"), &out));
  CHECK(buffer_is_sentinel(out));
  EXPECT_BAD(c, RCACHE_STATUS_WRONG_TYPE,
             rcache_client_compare_and_set(c, LIT("h:rec"), LIT("1"), LIT("2"), 60000));
  names = values = SENTINEL_ARRAY;
  count = SENTINEL_SIZE;
  EXPECT_BAD(c, RCACHE_STATUS_WRONG_TYPE,
             rcache_client_hash_get(c, LIT("h:string"), &names, &values, &count));
  CHECK(names == SENTINEL_ARRAY && values == SENTINEL_ARRAY && count == SENTINEL_SIZE);
  EXPECT_BAD(c, RCACHE_STATUS_WRONG_TYPE,
             rcache_client_hash_set(c, LIT("h:string"), more_names, more_values, 2, 60000,
                                    RCACHE_WRITE_ALWAYS));
  EXPECT_MISS(rcache_client_hash_set(c, LIT("h:string"), more_names, more_values, 2, 60000,
                                     RCACHE_WRITE_IF_ABSENT));
  CHECK_VALUE(c, LIT("h:string"), "text");
  {
    rcache_bytes keys[2] = {BYTES("h:rec"), BYTES("h:string")};
    rcache_buffer many[2] = {SENTINEL_BUFFER, SENTINEL_BUFFER};
    if (EXPECT_OK(rcache_client_get_many(c, keys, 2, many))) {
      CHECK(many[0].data == NULL && many[0].len == 0);
      CHECK_BYTES(many[1].data, many[1].len, "text", 4);
      rcache_buffers_free(many, 2);
    }
  }
  EXPECT_OK(rcache_client_exists(c, LIT("h:rec")));
  EXPECT_OK(rcache_client_expire(c, LIT("h:rec"), 30000));
  EXPECT_OK(rcache_client_delete(c, LIT("h:rec")));
  EXPECT_MISS(rcache_client_hash_get(c, LIT("h:rec"), &names, &values, &count));
}

static void test_hash_bad_input(rcache_client *c) {
  const rcache_status INVALID = RCACHE_STATUS_INVALID_ARGUMENT;
  rcache_bytes names[1] = {BYTES("f")}, values[1] = {BYTES("v")};
  rcache_bytes null_names[1] = {{NULL, 1}};
  rcache_buffer *names_out = SENTINEL_ARRAY, *values_out = SENTINEL_ARRAY;
  size_t count = SENTINEL_SIZE;
  uint8_t big[1025];
  rcache_bytes big_values[1] = {{big, sizeof big}};
  memset(big, 'x', sizeof big);

  EXPECT_BAD(c, INVALID, rcache_client_hash_set(c, LIT("hb:k"), names, values, 0, 60000, RCACHE_WRITE_ALWAYS));
  EXPECT_BAD(c, INVALID, rcache_client_hash_set(c, LIT("hb:k"), NULL, NULL, 0, 60000, RCACHE_WRITE_ALWAYS));
  EXPECT_BAD(c, INVALID, rcache_client_hash_set(c, LIT("hb:k"), NULL, values, 1, 60000, RCACHE_WRITE_ALWAYS));
  EXPECT_BAD(c, INVALID, rcache_client_hash_set(c, LIT("hb:k"), names, NULL, 1, 60000, RCACHE_WRITE_ALWAYS));
  EXPECT_BAD(c, INVALID, rcache_client_hash_set(c, LIT("hb:k"), null_names, values, 1, 60000, RCACHE_WRITE_ALWAYS));
  EXPECT_BAD(c, INVALID, rcache_client_hash_set(c, LIT("hb:k"), names, values, 1, 60000, 3));
  EXPECT_BAD(c, INVALID, rcache_client_hash_set(c, LIT("hb:k"), names, values, 1, 60000, -1));
  EXPECT_BAD(c, INVALID, rcache_client_hash_set(c, LIT("hb:k"), names, values, 1, -3, RCACHE_WRITE_ALWAYS));
  EXPECT_BAD(c, INVALID, rcache_client_hash_set(c, NULL, 2, names, values, 1, 60000, RCACHE_WRITE_ALWAYS));
  EXPECT_BAD(c, INVALID, rcache_client_hash_set(c, LIT("__rcache_x"), names, values, 1, 60000, RCACHE_WRITE_ALWAYS));
  EXPECT_BAD(c, RCACHE_STATUS_TOO_LARGE,
             rcache_client_hash_set(c, LIT("hb:k"), names, big_values, 1, 60000, RCACHE_WRITE_ALWAYS));
  EXPECT_MISS(rcache_client_exists(c, LIT("hb:k")));

  EXPECT_OK(rcache_client_hash_set(c, LIT("hb:k"), names, values, 1, 60000, RCACHE_WRITE_ALWAYS));
  EXPECT_BAD(c, INVALID, rcache_client_hash_get(c, LIT("hb:k"), NULL, &values_out, &count));
  EXPECT_BAD(c, INVALID, rcache_client_hash_get(c, LIT("hb:k"), &names_out, NULL, &count));
  EXPECT_BAD(c, INVALID, rcache_client_hash_get(c, LIT("hb:k"), &names_out, &values_out, NULL));
  EXPECT_BAD(c, INVALID, rcache_client_hash_get(c, NULL, 4, &names_out, &values_out, &count));
  EXPECT_BAD(c, INVALID, rcache_client_hash_get(c, NULL, 0, &names_out, &values_out, &count));
  CHECK(names_out == SENTINEL_ARRAY && values_out == SENTINEL_ARRAY && count == SENTINEL_SIZE);
}

static void test_keys(void) {
  static const char *const all[] = {"a*b", "held", "record", "tagged", "user:1", "user:10", "user:2"};
  static const char *const users[] = {"user:1", "user:2"};
  static const char *const star[] = {"a*b"};
  char prefix[96];
  rcache_client *listing;
  rcache_bytes tags[1] = {BYTES("keys-tag")}, gone[1] = {BYTES("keys-gone")};
  rcache_bytes names[1] = {BYTES("f")}, values[1] = {BYTES("v")};

  /* A client of its own, so that the namespace holds only what this test writes. */
  snprintf(prefix, sizeof prefix, "%skeys:", g_prefix);
  listing = open_prefixed(prefix);
  keys_are(listing, NULL, 0, NULL, 0);
  EXPECT_OK(rcache_client_set(listing, LIT("user:1"), LIT("v"), 60000));
  EXPECT_OK(rcache_client_set(listing, LIT("user:2"), LIT("v"), 60000));
  EXPECT_OK(rcache_client_set(listing, LIT("user:10"), LIT("v"), 60000));
  EXPECT_OK(rcache_client_set(listing, LIT("a*b"), LIT("v"), 60000));
  EXPECT_OK(rcache_client_hash_set(listing, LIT("record"), names, values, 1, 60000, RCACHE_WRITE_ALWAYS));
  EXPECT_OK(rcache_client_set_tagged(listing, LIT("tagged"), LIT("v"), 60000, tags, 1));
  EXPECT_OK(rcache_client_set_tagged(listing, LIT("invalid"), LIT("v"), 60000, gone, 1));
  EXPECT_OK(rcache_client_invalidate_tags(listing, gone, 1));
  EXPECT_OK(rcache_client_lock(listing, LIT("held"), LIT("me"), 60000));
  keys_are(listing, NULL, 0, all, sizeof all / sizeof all[0]);
  keys_are(listing, LIT("user:?"), users, 2);
  keys_are(listing, LIT("a\\*b"), star, 1);
  keys_are(listing, LIT("__rcache_*"), NULL, 0);
  keys_are(listing, LIT("nothing*"), NULL, 0);
  {
    rcache_buffer *keys = SENTINEL_ARRAY;
    size_t count = SENTINEL_SIZE;
    EXPECT_BAD(listing, RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_keys(listing, NULL, 0, NULL, &count));
    EXPECT_BAD(listing, RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_keys(listing, NULL, 0, &keys, NULL));
    EXPECT_BAD(listing, RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_keys(NULL, NULL, 0, &keys, &count));
    /* NULL with a length is a bad argument, never "every key". */
    EXPECT_BAD(listing, RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_keys(listing, NULL, 3, &keys, &count));
    CHECK(keys == SENTINEL_ARRAY && count == SENTINEL_SIZE);
  }
  rcache_client_free(listing);

  /* Glob characters in the prefix: unescaped, "...[1]*:" would match the keys of "...1:" too. */
  {
    char mine_prefix[96], theirs_prefix[96];
    rcache_client *mine, *theirs;
    static const char *const mine_keys[] = {"k", "x?y"};
    static const char *const theirs_keys[] = {"other"};
    snprintf(mine_prefix, sizeof mine_prefix, "%sglob[1]*:", g_prefix);
    snprintf(theirs_prefix, sizeof theirs_prefix, "%sglob1:", g_prefix);
    mine = open_prefixed(mine_prefix);
    theirs = open_prefixed(theirs_prefix);
    EXPECT_OK(rcache_client_set(mine, LIT("k"), LIT("v"), 60000));
    EXPECT_OK(rcache_client_set(mine, LIT("x?y"), LIT("v"), 60000));
    EXPECT_OK(rcache_client_set(theirs, LIT("other"), LIT("v"), 60000));
    keys_are(mine, NULL, 0, mine_keys, 2);
    keys_are(mine, LIT("x\\?y"), mine_keys + 1, 1);
    keys_are(theirs, NULL, 0, theirs_keys, 1);
    rcache_client_free(mine);
    rcache_client_free(theirs);
  }
}

static void test_locks(rcache_client *c) {
  const rcache_status INVALID = RCACHE_STATUS_INVALID_ARGUMENT;
  int64_t ttl;
  double start;

  EXPECT_OK(rcache_client_lock(c, LIT("lk:job"), LIT("alice"), 5000));
  EXPECT_MISS(rcache_client_lock(c, LIT("lk:job"), LIT("bob"), 5000));
  EXPECT_MISS(rcache_client_extend_lock(c, LIT("lk:job"), LIT("bob"), 5000));
  EXPECT_MISS(rcache_client_unlock(c, LIT("lk:job"), LIT("bob")));
  CHECK_VALUE(c, LIT("lk:job"), "alice");
  EXPECT_OK(rcache_client_extend_lock(c, LIT("lk:job"), LIT("alice"), 60000));
  ttl = ttl_of(c, LIT("lk:job"));
  CHECK(ttl > 50000 && ttl <= 60000);
  EXPECT_OK(rcache_client_unlock(c, LIT("lk:job"), LIT("alice")));
  EXPECT_MISS(rcache_client_unlock(c, LIT("lk:job"), LIT("alice")));
  EXPECT_OK(rcache_client_lock(c, LIT("lk:job"), LIT("bob"), 5000));

  /* A lease that runs out frees the lock for the next owner. */
  EXPECT_OK(rcache_client_lock(c, LIT("lk:brief"), LIT("alice"), 100));
  start = now_ms();
  while (rcache_client_lock(c, LIT("lk:brief"), LIT("bob"), 5000) == RCACHE_STATUS_MISS &&
         now_ms() - start < 3000) {
    sleep_ms(5);
  }
  CHECK(now_ms() - start < 3000);
  EXPECT_MISS(rcache_client_extend_lock(c, LIT("lk:brief"), LIT("alice"), 5000));
  EXPECT_MISS(rcache_client_unlock(c, LIT("lk:brief"), LIT("alice")));
  EXPECT_OK(rcache_client_unlock(c, LIT("lk:brief"), LIT("bob")));

  /* Bad input. */
  EXPECT_BAD(c, INVALID, rcache_client_lock(c, LIT("lk:x"), NULL, 0, 5000));
  EXPECT_BAD(c, INVALID, rcache_client_lock(c, LIT("lk:x"), NULL, 3, 5000));
  EXPECT_BAD(c, INVALID, rcache_client_lock(c, LIT("lk:x"), LIT("me"), 0));
  EXPECT_BAD(c, INVALID, rcache_client_extend_lock(c, LIT("lk:x"), LIT("me"), 0));
  EXPECT_BAD(c, INVALID, rcache_client_unlock(c, LIT("lk:x"), NULL, 0));
  EXPECT_BAD(c, INVALID, rcache_client_lock(c, LIT("__rcache_lock:x"), LIT("me"), 5000));
  EXPECT_BAD(c, INVALID, rcache_client_lock(c, NULL, 0, LIT("me"), 5000));
  EXPECT_BAD(c, INVALID, rcache_client_lock(NULL, LIT("lk:x"), LIT("me"), 5000));
  EXPECT_BAD(c, INVALID, rcache_client_extend_lock(NULL, LIT("lk:x"), LIT("me"), 5000));
  EXPECT_BAD(c, INVALID, rcache_client_unlock(NULL, LIT("lk:x"), LIT("me")));
  EXPECT_MISS(rcache_client_exists(c, LIT("lk:x")));
}

static void test_server_info(rcache_client *c) {
  rcache_buffer info = SENTINEL_BUFFER;
  if (EXPECT_OK(rcache_client_server_info(c, &info))) {
    /* The text has no NUL; copy it to search it as a string. */
    char *text = malloc(info.len + 1);
    if (CHECK(text != NULL)) {
      memcpy(text, info.data, info.len);
      text[info.len] = '\0';
      CHECK(strncmp(text, "# ", 2) == 0);
      CHECK(strstr(text, "\r\nused_memory:") != NULL);
      if (g_redis) {
        CHECK(strstr(text, "redis_version:") != NULL);
        CHECK(strstr(text, "# Keyspace\r\n") != NULL);
      } else {
        CHECK(strstr(text, "\r\nrcache_backend:memory\r\n") != NULL);
        CHECK(strstr(text, "\r\nkeys:") != NULL);
      }
      free(text);
    }
    rcache_buffer_free(&info);
  }
  info = SENTINEL_BUFFER;
  EXPECT_BAD(c, RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_server_info(c, NULL));
  EXPECT_BAD(c, RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_server_info(NULL, &info));
  CHECK(buffer_is_sentinel(info));
}

static void test_null_arguments(rcache_client *c) {
  const rcache_status INVALID = RCACHE_STATUS_INVALID_ARGUMENT;
  rcache_buffer out = SENTINEL_BUFFER;
  int64_t ttl = SENTINEL_I64;
  rcache_bytes names[1] = {BYTES("f")}, values[1] = {BYTES("v")};

  EXPECT_OK(rcache_client_set(c, LIT("null:k"), LIT("v"), 60000));
  EXPECT_BAD(c, INVALID, rcache_client_get_with_ttl(NULL, LIT("null:k"), &out, &ttl));
  EXPECT_BAD(c, INVALID, rcache_client_get_with_ttl(c, LIT("null:k"), NULL, &ttl));
  EXPECT_BAD(c, INVALID, rcache_client_get_with_ttl(c, LIT("null:k"), &out, NULL));
  EXPECT_BAD(c, INVALID, rcache_client_get_with_ttl(c, LIT("null:missing"), &out, NULL));
  EXPECT_BAD(c, INVALID, rcache_client_get_with_ttl(c, NULL, 6, &out, &ttl));
  CHECK(buffer_is_sentinel(out));
  CHECK_EQ_INT(ttl, SENTINEL_I64);

  EXPECT_BAD(c, INVALID, rcache_client_compare_and_set(NULL, LIT("null:k"), LIT("v"), LIT("w"), 60000));
  EXPECT_BAD(c, INVALID, rcache_client_compare_and_set(c, LIT("null:k"), NULL, 1, LIT("w"), 60000));
  EXPECT_BAD(c, INVALID, rcache_client_compare_and_set(c, LIT("null:k"), LIT("v"), NULL, 1, 60000));
  EXPECT_BAD(c, INVALID, rcache_client_compare_and_set(c, LIT("null:k"), LIT("v"), LIT("w"), -3));
  EXPECT_BAD(c, INVALID, rcache_client_compare_and_set(c, NULL, 0, LIT("v"), LIT("w"), 60000));
  CHECK_VALUE(c, LIT("null:k"), "v");

  EXPECT_BAD(c, INVALID, rcache_client_hash_set(NULL, LIT("null:h"), names, values, 1, 60000, RCACHE_WRITE_ALWAYS));
  EXPECT_BAD(c, INVALID, rcache_client_hash_get(NULL, LIT("null:h"), NULL, NULL, NULL));
  EXPECT_MISS(rcache_client_exists(c, LIT("null:h")));
}

static void test_free_noops(void) {
  rcache_buffer_array_free(NULL, 0);
  rcache_buffer_array_free(NULL, 5);
  CHECK(1);
}

/* ------------------------------------------------------------------------ */
/* Redis only: other clients of the same server. */

static void test_other_clients_on_redis(rcache_client *c) {
  const char *port = redis_port("other-client tests");
  char arguments[256];
  rcache_buffer *names = NULL, *values = NULL;
  size_t count = 0;

  if (port == NULL) return;
  /* A lock taken the classic way by another client. */
  snprintf(arguments, sizeof arguments, "SET '%sother:job' theirs NX PX 30000", g_prefix);
  if (!CHECK(redis_cli(port, arguments))) return;
  EXPECT_MISS(rcache_client_lock(c, LIT("other:job"), LIT("mine"), 30000));
  EXPECT_OK(rcache_client_extend_lock(c, LIT("other:job"), LIT("theirs"), 60000));
  EXPECT_OK(rcache_client_unlock(c, LIT("other:job"), LIT("theirs")));
  EXPECT_MISS(rcache_client_exists(c, LIT("other:job")));

  /* A hash another client wrote is a record; a list is neither a record nor a value. */
  snprintf(arguments, sizeof arguments, "HSET '%sother:hash' f v g w", g_prefix);
  if (!CHECK(redis_cli(port, arguments))) return;
  if (EXPECT_OK(rcache_client_hash_get(c, LIT("other:hash"), &names, &values, &count))) {
    CHECK_EQ_INT(count, 2);
    CHECK(field_is(names, values, count, "f", "v"));
    CHECK(field_is(names, values, count, "g", "w"));
    rcache_buffer_array_free(names, count);
    rcache_buffer_array_free(values, count);
  }
  snprintf(arguments, sizeof arguments, "RPUSH '%sother:list' a", g_prefix);
  if (!CHECK(redis_cli(port, arguments))) return;
  {
    rcache_bytes field_names[1] = {BYTES("f")}, field_values[1] = {BYTES("v")};
    EXPECT_BAD(c, RCACHE_STATUS_WRONG_TYPE,
               rcache_client_hash_get(c, LIT("other:list"), &names, &values, &count));
    EXPECT_BAD(c, RCACHE_STATUS_WRONG_TYPE,
               rcache_client_hash_set(c, LIT("other:list"), field_names, field_values, 1, 60000,
                                      RCACHE_WRITE_ALWAYS));
    EXPECT_MISS(rcache_client_unlock(c, LIT("other:list"), LIT("a")));
  }
  EXPECT_OK(rcache_client_delete(c, LIT("other:list")));
  EXPECT_OK(rcache_client_delete(c, LIT("other:hash")));
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
  snprintf(g_prefix, sizeof g_prefix, "test_records:%ld:", (long)getpid());
  printf("test_records against %s (%s backend)\n", g_url, g_redis ? "Redis" : "memory");

  c = open_prefixed(g_prefix);
  test_get_with_ttl(c);
  test_keep_ttl(c);
  test_compare_and_set(c);
  test_hash_records(c);
  test_hash_bad_input(c);
  test_keys();
  test_locks(c);
  test_server_info(c);
  test_null_arguments(c);
  test_free_noops();
  if (g_redis) test_other_clients_on_redis(c);
  ALIVE(c);
  rcache_client_free(c);

  return check_summary();
}
