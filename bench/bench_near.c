/*
 * bench_near: near-cache hits against plain Redis gets, from one C thread and
 * from 8 C threads sharing one handle, in the same run.
 *
 *   bench_near REDIS_URL [--seconds S] [--keys K] [--value-size B] [--threads T]
 *
 * REDIS_URL is a redis://, redis+sentinel:// or redis+cluster:// URL without
 * query parameters, e.g. redis://127.0.0.1:PORT/0. Two handles are opened on it: one plain, one
 * with "?near_cache=..." added. K keys (default 1000) of B bytes (default
 * 100) are written, the near cache is warmed until every key is a near hit,
 * then the keys are read in turn for S seconds (default 2) per run: through
 * the near cache with rcache_client_get + rcache_buffer_free (op=get) and
 * with rcache_client_near_get into a buffer of the caller's (op=near-get),
 * from one thread and from T threads (default 8) on the same handle; then
 * through the plain handle with rcache_client_get from one thread. Prints a
 * table, the ratios, and one line per run for scripts:
 *   RESULT label=c-near|c-redis op=get|near-get threads=N ops=N seconds=S ops_per_sec=R cpu_us_per_op=C
 * (C: the process's CPU time per get, which a busy machine does not inflate
 * as it does the wall time).
 * Exit status 0, or 1 if a call failed or a read missed.
 */

#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rcache.h"

#define KEY_LEN 32
#define MAX_THREADS 64
#define VALUE_BUF 65536

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

/* The keys, made once: the loops measure the library, not snprintf. */
static char (*g_keys)[KEY_LEN];
static size_t *g_key_lens;

/* One reader: which handle and call, and what it did. */
typedef struct {
  rcache_client *client;
  int near_get; /* 1: rcache_client_near_get; 0: rcache_client_get */
  size_t keys, first;
  double seconds, elapsed;
  long long done; /* gets, or -1 after a failed or missed read */
} reader;

/* Reads the keys round-robin from `first` for `seconds`. */
static void *run(void *argument) {
  reader *r = argument;
  static _Thread_local uint8_t buffer[VALUE_BUF];
  long long done = 0;
  double start = now_seconds(), end = start + r->seconds;
  for (;;) {
    for (int batch = 0; batch < 1024; batch++) {
      size_t index = (r->first + (size_t)done) % r->keys;
      const uint8_t *key = (const uint8_t *)g_keys[index];
      rcache_status status;
      if (r->near_get) {
        size_t length = 0;
        status = rcache_client_near_get(r->client, key, g_key_lens[index], buffer, sizeof buffer, &length);
        if (status == RCACHE_STATUS_OK && length > sizeof buffer) status = RCACHE_STATUS_MISS;
      } else {
        rcache_buffer value = {0};
        status = rcache_client_get(r->client, key, g_key_lens[index], &value);
        rcache_buffer_free(&value);
      }
      if (status != RCACHE_STATUS_OK) {
        fail(r->near_get ? "near get" : "get", status);
        r->done = -1;
        return NULL;
      }
      done++;
    }
    double t = now_seconds();
    if (t >= end) {
      r->elapsed = t - start;
      r->done = done;
      return NULL;
    }
  }
}

/* CPU seconds the process has used. */
static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Gets per second from `threads` readers on one handle (total), or -1 on a failure; the process's CPU seconds in *cpu. */
static double measure(rcache_client *client, int near_get, int threads, size_t keys, double seconds, long long *ops,
                      double *elapsed, double *cpu) {
  reader readers[MAX_THREADS];
  pthread_t ids[MAX_THREADS];
  double cpu_before = cpu_seconds();
  *ops = 0;
  *elapsed = 0;
  for (int i = 0; i < threads; i++) {
    readers[i] = (reader){client, near_get, keys, (size_t)i * keys / (size_t)threads, seconds, 0, 0};
    if (threads == 1) run(&readers[i]);
    else if (pthread_create(&ids[i], NULL, run, &readers[i]) != 0) return -1;
  }
  for (int i = 0; i < threads; i++) {
    if (threads > 1) pthread_join(ids[i], NULL);
    if (readers[i].done < 0) return -1;
    *ops += readers[i].done;
    if (readers[i].elapsed > *elapsed) *elapsed = readers[i].elapsed;
  }
  *cpu = cpu_seconds() - cpu_before;
  return (double)*ops / *elapsed;
}

static void result(const char *label, const char *op, int threads, long long ops, double seconds, double rate,
                   double cpu) {
  printf("RESULT label=%s op=%s threads=%d ops=%lld seconds=%.3f ops_per_sec=%.0f cpu_us_per_op=%.4f\n", label, op,
         threads, ops, seconds, rate, cpu * 1e6 / (double)ops);
}

int main(int argc, char **argv) {
  if (argc < 2 || strstr(argv[1], "?") != NULL) {
    fprintf(stderr, "usage: bench_near REDIS_URL [--seconds S] [--keys K] [--value-size B] [--threads T]\n");
    return 2;
  }
  double seconds = 2.0;
  size_t keys = 1000, value_size = 100;
  int threads = 8;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--seconds") == 0) seconds = atof(argv[i + 1]);
    else if (strcmp(argv[i], "--keys") == 0) keys = (size_t)strtoull(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--value-size") == 0) value_size = (size_t)strtoull(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--threads") == 0) threads = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "bench_near: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (keys == 0 || seconds <= 0 || threads < 1 || threads > MAX_THREADS) return 2;

  char near_url[512];
  snprintf(near_url, sizeof near_url, "%s?near_cache=%zu", argv[1], keys * 2);
  rcache_options options = rcache_options_default();
  options.key_prefix = "bench-near:";
  rcache_client *plain = NULL, *near = NULL;
  rcache_status status = rcache_client_connect(argv[1], &options, &plain);
  if (status != RCACHE_STATUS_OK) return fail("connect", status);
  status = rcache_client_connect(near_url, &options, &near);
  if (status != RCACHE_STATUS_OK) return fail("connect with near_cache", status);

  g_keys = malloc(keys * sizeof *g_keys);
  g_key_lens = malloc(keys * sizeof *g_key_lens);
  uint8_t *value = malloc(value_size ? value_size : 1);
  if (g_keys == NULL || g_key_lens == NULL || value == NULL) return 1;
  memset(value, 'v', value_size);
  for (size_t i = 0; i < keys; i++) {
    key_of(g_keys[i], i);
    g_key_lens[i] = strlen(g_keys[i]);
    status = rcache_client_set(plain, (const uint8_t *)g_keys[i], g_key_lens[i], value, value_size, 600000);
    if (status != RCACHE_STATUS_OK) return fail("set", status);
  }
  free(value);

  /* Warm up: read every key until a whole pass is answered by the near cache. */
  rcache_stats stats;
  long long ops;
  double elapsed, cpu;
  for (int pass = 0;; pass++) {
    if (pass == 100) {
      fprintf(stderr, "bench_near: the near cache did not warm up\n");
      return 1;
    }
    rcache_client_stats(near, &stats);
    uint64_t before = stats.near_hits;
    if (measure(near, 0, 1, keys, 1e-9, &ops, &elapsed, &cpu) < 0) return 1;
    rcache_client_stats(near, &stats);
    if (stats.near_hits - before >= 1024) break;
  }

  /* [near_get][one thread or many]: rate, ops, seconds. */
  double rate[2][2], took[2][2], used[2][2];
  long long done[2][2];
  for (int near_get = 0; near_get < 2; near_get++) {
    for (int many = 0; many < 2; many++) {
      rate[near_get][many] = measure(near, near_get, many ? threads : 1, keys, seconds, &done[near_get][many],
                                     &took[near_get][many], &used[near_get][many]);
      if (rate[near_get][many] < 0) return 1;
    }
  }
  long long plain_ops;
  double plain_seconds, plain_cpu, plain_rate = measure(plain, 0, 1, keys, seconds, &plain_ops, &plain_seconds, &plain_cpu);
  if (plain_rate < 0) return 1;
  rcache_client_stats(near, &stats);

  printf("rcache %s, %zu keys of %zu bytes, one handle\n", rcache_version(), keys, value_size);
  printf("  near-cache get, 1 thread             %12.0f gets/s  %8.3f us/get\n", rate[0][0], 1e6 / rate[0][0]);
  printf("  near-cache get, %2d threads           %12.0f gets/s  %8.2fx 1 thread\n", threads, rate[0][1],
         rate[0][1] / rate[0][0]);
  printf("  near get (caller's buffer), 1 thread %12.0f gets/s  %8.3f us/get\n", rate[1][0], 1e6 / rate[1][0]);
  printf("  near get (caller's buffer), %2d thr.  %12.0f gets/s  %8.2fx 1 thread\n", threads, rate[1][1],
         rate[1][1] / rate[1][0]);
  printf("  plain Redis get, 1 thread            %12.0f gets/s  %8.3f us/get\n", plain_rate, 1e6 / plain_rate);
  printf("  near-cache get vs plain get, 1 thread %11.1fx\n", rate[0][0] / plain_rate);
  printf("  near cache: %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64 " entries, %" PRIu64 " bytes\n",
         stats.near_hits, stats.near_misses, stats.near_entries, stats.near_bytes);
  for (int near_get = 0; near_get < 2; near_get++) {
    for (int many = 0; many < 2; many++) {
      result("c-near", near_get ? "near-get" : "get", many ? threads : 1, done[near_get][many], took[near_get][many],
             rate[near_get][many], used[near_get][many]);
    }
  }
  result("c-redis", "get", 1, plain_ops, plain_seconds, plain_rate, plain_cpu);

  rcache_client_clear(plain, NULL, 0, NULL);
  rcache_client_free(near);
  rcache_client_free(plain);
  free(g_keys);
  free(g_key_lens);
  return 0;
}
