/*
 * bench_near: near-cache hits against plain Redis gets, from one C thread,
 * in the same run.
 *
 *   bench_near REDIS_URL [--seconds S] [--keys K] [--value-size B]
 *
 * REDIS_URL is a plain redis:// URL without query parameters, e.g.
 * redis://127.0.0.1:PORT/0. Two handles are opened on it: one plain, one
 * with "?near_cache=..." added. K keys (default 1000) of B bytes (default
 * 100) are written, the near cache is warmed until every key is a near hit,
 * then each handle reads the keys in turn for S seconds (default 2) with
 * rcache_client_get + rcache_buffer_free. Prints a table, the ratio, and one
 * line per run for scripts:
 *   RESULT label=c-near|c-redis op=get threads=1 ops=N seconds=S ops_per_sec=R
 * Exit status 0, or 1 if a call failed or a read missed.
 */

#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rcache.h"

#define KEY_LEN 32

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, rcache_status status) {
  fprintf(stderr, "bench_near: %s: %s: %s\n", what, rcache_status_name(status), rcache_last_error());
  return 1;
}

static void key_of(char *key, size_t index) { snprintf(key, KEY_LEN, "bench:near:%07zu", index); }

/* Reads the keys round-robin for `seconds`; the number of gets, or -1 on a failed or missed read. */
static long long run(rcache_client *client, size_t keys, double seconds, double *elapsed) {
  char key[KEY_LEN];
  long long done = 0;
  double start = now_seconds(), end = start + seconds;
  for (;;) {
    for (int batch = 0; batch < 1024; batch++) {
      key_of(key, (size_t)done % keys);
      rcache_buffer value = {0};
      rcache_status status = rcache_client_get(client, (const uint8_t *)key, strlen(key), &value);
      if (status != RCACHE_STATUS_OK) {
        fail("get", status);
        return -1;
      }
      rcache_buffer_free(&value);
      done++;
    }
    double t = now_seconds();
    if (t >= end) {
      *elapsed = t - start;
      return done;
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 2 || strstr(argv[1], "?") != NULL) {
    fprintf(stderr, "usage: bench_near REDIS_URL [--seconds S] [--keys K] [--value-size B]\n");
    return 2;
  }
  double seconds = 2.0;
  size_t keys = 1000, value_size = 100;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--seconds") == 0) seconds = atof(argv[i + 1]);
    else if (strcmp(argv[i], "--keys") == 0) keys = (size_t)strtoull(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--value-size") == 0) value_size = (size_t)strtoull(argv[i + 1], NULL, 10);
    else {
      fprintf(stderr, "bench_near: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (keys == 0 || seconds <= 0) return 2;

  char near_url[512];
  snprintf(near_url, sizeof near_url, "%s?near_cache=%zu", argv[1], keys * 2);
  rcache_options options = rcache_options_default();
  options.key_prefix = "bench-near:";
  rcache_client *plain = NULL, *near = NULL;
  rcache_status status = rcache_client_connect(argv[1], &options, &plain);
  if (status != RCACHE_STATUS_OK) return fail("connect", status);
  status = rcache_client_connect(near_url, &options, &near);
  if (status != RCACHE_STATUS_OK) return fail("connect with near_cache", status);

  char key[KEY_LEN];
  uint8_t *value = malloc(value_size ? value_size : 1);
  memset(value, 'v', value_size);
  for (size_t i = 0; i < keys; i++) {
    key_of(key, i);
    status = rcache_client_set(plain, (const uint8_t *)key, strlen(key), value, value_size, 600000);
    if (status != RCACHE_STATUS_OK) return fail("set", status);
  }
  free(value);

  /* Warm up: read every key until a whole pass is answered by the near cache. */
  rcache_stats stats;
  for (int pass = 0;; pass++) {
    if (pass == 100) {
      fprintf(stderr, "bench_near: the near cache did not warm up\n");
      return 1;
    }
    rcache_client_stats(near, &stats);
    uint64_t before = stats.near_hits;
    double ignored;
    if (run(near, keys, 1e-9, &ignored) < 0) return 1;
    rcache_client_stats(near, &stats);
    if (stats.near_hits - before >= 1024) break;
  }

  double near_seconds = 0, plain_seconds = 0;
  long long near_ops = run(near, keys, seconds, &near_seconds);
  long long plain_ops = run(plain, keys, seconds, &plain_seconds);
  if (near_ops < 0 || plain_ops < 0) return 1;
  rcache_client_stats(near, &stats);

  double near_rate = (double)near_ops / near_seconds, plain_rate = (double)plain_ops / plain_seconds;
  printf("rcache %s, one C thread, %zu keys of %zu bytes\n", rcache_version(), keys, value_size);
  printf("  near-cache get   %12.0f gets/s  %8.3f us/get\n", near_rate, 1e6 / near_rate);
  printf("  plain Redis get  %12.0f gets/s  %8.3f us/get\n", plain_rate, 1e6 / plain_rate);
  printf("  ratio            %12.1fx\n", near_rate / plain_rate);
  printf("  near cache: %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64 " entries, %" PRIu64 " bytes\n",
         stats.near_hits, stats.near_misses, stats.near_entries, stats.near_bytes);
  printf("RESULT label=c-near op=get threads=1 ops=%lld seconds=%.3f ops_per_sec=%.0f\n", near_ops, near_seconds, near_rate);
  printf("RESULT label=c-redis op=get threads=1 ops=%lld seconds=%.3f ops_per_sec=%.0f\n", plain_ops, plain_seconds,
         plain_rate);

  rcache_client_clear(plain, NULL, 0, NULL);
  rcache_client_free(near);
  rcache_client_free(plain);
  return 0;
}
