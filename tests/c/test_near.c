/*
 * The near cache through the C API: URL parameters, the rcache_stats fields
 * it fills, changes made by another handle reaching it, and
 * rcache_client_near_get (answers from the near cache alone).
 *
 *   test_near URL        e.g. test_near memory://   or   test_near redis://127.0.0.1:PORT/0
 *
 * On memory:// only the refusals and the zero near_* fields are checked. On
 * Redis the URL must have no query parameters: the test adds its own.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "rcache.h"

#define LIT(text) (const uint8_t *)(text), (sizeof(text) - 1)
/* How long a change may take to reach another handle's near cache. */
#define DELIVERY_MS 2000

static const char *g_url;
static char g_prefix[64];

static rcache_stats stats_of(rcache_client *client) {
  rcache_stats stats;
  memset(&stats, 0xAB, sizeof stats);
  EXPECT_OK(rcache_client_stats(client, &stats));
  return stats;
}

/* 1 when `key` reads as `expected` (NULL: a miss). */
static int reads_as(rcache_client *client, const uint8_t *key, size_t key_len, const char *expected) {
  rcache_buffer value = {NULL, 0};
  rcache_status status = rcache_client_get(client, key, key_len, &value);
  int same;
  if (status == RCACHE_STATUS_MISS) return expected == NULL;
  if (status != RCACHE_STATUS_OK) return 0;
  same = expected != NULL && value.len == strlen(expected) && memcmp(value.data, expected, value.len) == 0;
  rcache_buffer_free(&value);
  return same;
}

/* Polls until `key` reads as `expected`, at most DELIVERY_MS. */
static int eventually_reads_as(rcache_client *client, const uint8_t *key, size_t key_len, const char *expected) {
  double deadline = now_ms() + DELIVERY_MS;
  while (now_ms() < deadline) {
    if (reads_as(client, key, key_len, expected)) return 1;
    sleep_ms(5);
  }
  return reads_as(client, key, key_len, expected);
}

/* Reads `key` until the near cache answers, at most DELIVERY_MS. */
static int eventually_near_hit(rcache_client *client, const uint8_t *key, size_t key_len, const char *expected) {
  double deadline = now_ms() + DELIVERY_MS;
  while (now_ms() < deadline) {
    uint64_t before = stats_of(client).near_hits;
    if (!reads_as(client, key, key_len, expected)) return 0;
    if (stats_of(client).near_hits > before) return 1;
    sleep_ms(1);
  }
  return 0;
}

/* Bad arguments of rcache_client_near_get: an error status and message, outputs untouched. */
static void test_near_get_arguments(rcache_client *client) {
  uint8_t buffer[8] = "ABCDEFG";
  size_t length = 12345;
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_near_get(NULL, LIT("k"), buffer, sizeof buffer, &length));
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_near_get(client, NULL, 3, buffer, sizeof buffer, &length));
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_near_get(client, LIT(""), buffer, sizeof buffer, &length));
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT,
               rcache_client_near_get(client, LIT("__rcache_tag:x"), buffer, sizeof buffer, &length));
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_near_get(client, LIT("k"), buffer, sizeof buffer, NULL));
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_near_get(client, LIT("k"), NULL, 4, &length));
  CHECK(strstr(rcache_last_error(), "value_buf") != NULL);
  CHECK_EQ_INT(length, 12345);
  CHECK_BYTES(buffer, 7, "ABCDEFG", 7);
}

/* A handle without a near cache holds nothing: every near get is a miss, counted nowhere. */
static void test_near_get_without_near_cache(rcache_client *client) {
  uint8_t buffer[8] = "ABCDEFG";
  size_t length = 12345;
  rcache_stats before, after;
  EXPECT_OK(rcache_client_set(client, LIT("held?"), LIT("v"), 60000));
  before = stats_of(client);
  EXPECT_MISS(rcache_client_near_get(client, LIT("held?"), buffer, sizeof buffer, &length));
  EXPECT_MISS(rcache_client_near_get(client, LIT("held?"), NULL, 0, &length));
  after = stats_of(client);
  CHECK_EQ_INT(length, 12345);
  CHECK_BYTES(buffer, 7, "ABCDEFG", 7);
  CHECK_EQ_INT(after.hits, before.hits);
  CHECK_EQ_INT(after.misses, before.misses);
  CHECK_STR(rcache_last_error(), "");
}

/* Near gets answer what a read filled, count hits but not misses, and stop at another handle's write. */
static void test_near_get_on_redis(void) {
  char url[512];
  uint8_t buffer[16];
  size_t length = 0;
  rcache_client *near, *other;
  rcache_stats before, after;
  rcache_status status;

  snprintf(url, sizeof url, "%s?near_cache=1000", g_url);
  near = OPEN_CLIENT(url, g_prefix);
  other = OPEN_CLIENT(g_url, g_prefix);
  if (near == NULL || other == NULL) return;
  test_near_get_arguments(near);
  EXPECT_OK(rcache_client_set(other, LIT("ng"), LIT("first value"), 60000));

  /* Not held before a read fills it; the miss is left for rcache_client_get to count. */
  before = stats_of(near);
  EXPECT_MISS(rcache_client_near_get(near, LIT("ng"), buffer, sizeof buffer, &length));
  CHECK_EQ_INT(stats_of(near).near_misses, before.near_misses);
  CHECK(eventually_near_hit(near, LIT("ng"), "first value"));

  /* Held: copied into the caller's buffer and counted as one near hit. */
  before = stats_of(near);
  memset(buffer, 0, sizeof buffer);
  if (EXPECT_OK(rcache_client_near_get(near, LIT("ng"), buffer, sizeof buffer, &length))) {
    CHECK_BYTES(buffer, length, "first value", 11);
  }
  after = stats_of(near);
  CHECK_EQ_INT(after.near_hits, before.near_hits + 1);
  CHECK_EQ_INT(after.near_misses, before.near_misses);

  /* A buffer too short (or none): the length only, nothing copied or counted. */
  memset(buffer, '#', sizeof buffer);
  length = 0;
  EXPECT_OK(rcache_client_near_get(near, LIT("ng"), buffer, 4, &length));
  CHECK_EQ_INT(length, 11);
  CHECK_BYTES(buffer, 4, "####", 4);
  length = 0;
  EXPECT_OK(rcache_client_near_get(near, LIT("ng"), NULL, 0, &length));
  CHECK_EQ_INT(length, 11);
  CHECK_EQ_INT(stats_of(near).near_hits, after.near_hits);

  /* Another handle's write: near gets give the old value until its report arrives, then nothing. */
  EXPECT_OK(rcache_client_set(other, LIT("ng"), LIT("second"), 60000));
  double deadline = now_ms() + DELIVERY_MS;
  while ((status = rcache_client_near_get(near, LIT("ng"), buffer, sizeof buffer, &length)) == RCACHE_STATUS_OK &&
         now_ms() < deadline) {
    CHECK_BYTES(buffer, length, "first value", 11);
    sleep_ms(1);
  }
  EXPECT_STATUS(RCACHE_STATUS_MISS, status);
  CHECK(eventually_near_hit(near, LIT("ng"), "second"));
  if (EXPECT_OK(rcache_client_near_get(near, LIT("ng"), buffer, sizeof buffer, &length))) {
    CHECK_BYTES(buffer, length, "second", 6);
  }

  /* Its own delete: gone at once. */
  EXPECT_OK(rcache_client_delete(near, LIT("ng")));
  EXPECT_MISS(rcache_client_near_get(near, LIT("ng"), buffer, sizeof buffer, &length));
  rcache_client_free(near);
  rcache_client_free(other);
}

static void test_stats_layout(void) {
  /* Seven near-cache counters were appended to the fifteen older ones. */
  CHECK_EQ_INT(sizeof(rcache_stats), 22 * sizeof(uint64_t));
  CHECK_EQ_INT(RCACHE_ABI_VERSION, 2);
  CHECK_EQ_INT(rcache_abi_version(), RCACHE_ABI_VERSION);
}

static void test_refused_urls(void) {
  static const char *bad[] = {
      "memory://?near_cache=100",
      "redis://127.0.0.1:1/0?near_cache=lots",
      "redis://127.0.0.1:1/0?near_cache_bytes=1000",
      "redis://127.0.0.1:1/0?near_cache=10&near_cache=20",
      "redis://127.0.0.1:1/0?near_cache=10&near_cache_bytes=0",
      "redis://127.0.0.1:1/0?near_cache_staleness_ms=100",
      "redis://127.0.0.1:1/0?near_cache=10&near_cache_staleness_ms=5",
      "redis://127.0.0.1:1/0?near_cache=10&near_cache_mode=sometimes",
      "redis+sentinel://127.0.0.1:1/mymaster?near_cache=lots",
      "redis+cluster://127.0.0.1:1?near_cache_bytes=1000",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rcache_client *client = (rcache_client *)&g_url; /* must stay untouched */
    if (!EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_connect(bad[i], NULL, &client))) {
      fprintf(stderr, "    url: %s\n", bad[i]);
    }
    CHECK(client == (rcache_client *)&g_url);
  }
}

static void test_no_near_cache_means_zero_fields(rcache_client *client) {
  rcache_stats stats;
  EXPECT_OK(rcache_client_set(client, LIT("plain"), LIT("v"), 60000));
  CHECK(reads_as(client, LIT("plain"), "v"));
  stats = stats_of(client);
  CHECK_EQ_INT(stats.near_hits, 0);
  CHECK_EQ_INT(stats.near_misses, 0);
  CHECK_EQ_INT(stats.near_invalidations, 0);
  CHECK_EQ_INT(stats.near_evictions, 0);
  CHECK_EQ_INT(stats.near_flushes, 0);
  CHECK_EQ_INT(stats.near_entries, 0);
  CHECK_EQ_INT(stats.near_bytes, 0);
  CHECK(stats.hits >= 1);
}

static void test_near_cache_on_redis(void) {
  char url[512];
  rcache_client *near, *other;
  rcache_stats stats;
  rcache_bytes tag = {(const uint8_t *)"t", 1};

  snprintf(url, sizeof url, "%s?near_cache=1000&near_cache_bytes=1000000", g_url);
  near = OPEN_CLIENT(url, g_prefix);
  other = OPEN_CLIENT(g_url, g_prefix);
  if (near == NULL || other == NULL) return;
  test_no_near_cache_means_zero_fields(other);

  /* Filled by a read, then answered from memory. */
  EXPECT_OK(rcache_client_set(other, LIT("k"), LIT("one"), 60000));
  CHECK(eventually_near_hit(near, LIT("k"), "one"));
  stats = stats_of(near);
  CHECK(stats.near_hits >= 1);
  CHECK(stats.near_misses >= 1);
  CHECK(stats.hits >= stats.near_hits);
  CHECK(stats.near_entries >= 1);
  CHECK(stats.near_bytes > 0 && stats.near_bytes <= 1000000);

  /* Another handle's write reaches it once reported. */
  EXPECT_OK(rcache_client_set(other, LIT("k"), LIT("two"), 60000));
  CHECK(eventually_reads_as(near, LIT("k"), "two"));
  CHECK(stats_of(near).near_invalidations >= 1);

  /* Its own writes at once. */
  CHECK(eventually_near_hit(near, LIT("k"), "two"));
  EXPECT_OK(rcache_client_set(near, LIT("k"), LIT("three"), 60000));
  CHECK(reads_as(near, LIT("k"), "three"));

  /* A tag invalidated by another handle. */
  EXPECT_OK(rcache_client_set_tagged(other, LIT("tagged"), LIT("v"), 60000, &tag, 1));
  CHECK(eventually_near_hit(near, LIT("tagged"), "v"));
  EXPECT_OK(rcache_client_invalidate_tags(other, &tag, 1));
  CHECK(eventually_reads_as(near, LIT("tagged"), NULL));

  rcache_client_free(near);
  rcache_client_free(other);
}

static void test_bounds_on_redis(void) {
  char url[512], key[32];
  rcache_client *near, *other;
  rcache_stats stats;
  uint8_t value[200];

  snprintf(url, sizeof url, "%s?near_cache=50&near_cache_bytes=8000", g_url);
  near = OPEN_CLIENT(url, g_prefix);
  other = OPEN_CLIENT(g_url, g_prefix);
  if (near == NULL || other == NULL) return;
  memset(value, 'x', sizeof value);
  for (int i = 0; i < 200; i++) {
    snprintf(key, sizeof key, "bound:%d", i);
    EXPECT_OK(rcache_client_set(other, (const uint8_t *)key, strlen(key), value, sizeof value, 60000));
  }
  for (int i = 0; i < 200; i++) {
    rcache_buffer out = {NULL, 0};
    snprintf(key, sizeof key, "bound:%d", i);
    if (EXPECT_OK(rcache_client_get(near, (const uint8_t *)key, strlen(key), &out))) rcache_buffer_free(&out);
  }
  stats = stats_of(near);
  CHECK(stats.near_entries <= 50);
  CHECK(stats.near_bytes <= 8000);
  CHECK(stats.near_evictions >= 100);
  rcache_client_free(near);
  rcache_client_free(other);
}

int main(int argc, char **argv) {
  rcache_client *client;
  int redis;

  if (argc != 2) {
    fprintf(stderr, "usage: %s URL   (e.g. memory:// or redis://127.0.0.1:PORT/0)\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  alarm(120);
  g_url = argv[1];
  redis = strncmp(g_url, "redis", 5) == 0;
  snprintf(g_prefix, sizeof g_prefix, "test_near:%ld:", (long)getpid());
  printf("test_near against %s (%s backend)\n", g_url, redis ? "Redis" : "memory");

  test_stats_layout();
  test_refused_urls();
  if (redis) {
    test_near_cache_on_redis();
    test_bounds_on_redis();
    test_near_get_on_redis();
  }
  client = OPEN_CLIENT(g_url, g_prefix);
  if (client != NULL) {
    if (!redis) test_no_near_cache_means_zero_fields(client);
    test_near_get_arguments(client);
    test_near_get_without_near_cache(client);
  }
  rcache_client_free(client);
  return check_summary();
}
