/*
 * One rcache handle shared by 16 threads.
 *
 *   test_threads URL
 *
 * Each thread does thousands of set/get/incr/get_many on keys of its own with
 * values that name the thread and the iteration, and checks that every reply
 * is the answer to its own request. All threads also increment one shared
 * counter: its final value must be exact, and the values the increments
 * return must be all different (each increment saw its own result).
 * Finally every thread fails a call with a message of its own and checks,
 * after all the others have failed theirs, that rcache_last_error() still
 * gives its own message.
 *
 * Then tagged writers race tag invalidations: a write that returned before an
 * invalidation started must be unreadable once the invalidation has returned.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "rcache.h"

#define THREADS 16
#define ITERATIONS 2000
#define KEYS_PER_THREAD 8
#define MAX_KEY_BYTES 64
/* Mismatches printed per thread; the rest are only counted. */
#define REPORT_LIMIT 5
/* The invalidation race: writer threads, and invalidations checked. */
#define RACE_WRITERS 3
#define RACE_ROUNDS 200

static rcache_client *g_client;
static pthread_barrier_t g_barrier;
/* g_seen[v - 1] is set when an increment of the shared counter returned v. */
static atomic_char g_seen[THREADS * ITERATIONS];

struct worker {
  int id;
  long mismatches; /* replies that were not the answer to this thread's request */
  long errors;     /* calls that failed */
  int own_error_kept;
};

static void report(struct worker *w, const char *what, int iteration, rcache_status status) {
  if (w->mismatches + w->errors <= REPORT_LIMIT) {
    fprintf(stderr, "thread %d, iteration %d: %s (%s: %s)\n", w->id, iteration, what,
            rcache_status_name(status), status == RCACHE_STATUS_OK ? "" : rcache_last_error());
  }
}

static void *work(void *arg) {
  struct worker *w = arg;
  unsigned seed = (unsigned)w->id * 7919u + 17u;
  char keys[KEYS_PER_THREAD][32], counter_key[32], value[64];
  rcache_bytes key_list[KEYS_PER_THREAD];
  /* What this thread last stored under each of its keys. */
  char expected[KEYS_PER_THREAD][64];
  int i, k;

  snprintf(counter_key, sizeof counter_key, "t%d:counter", w->id);
  for (k = 0; k < KEYS_PER_THREAD; k++) {
    snprintf(keys[k], sizeof keys[k], "t%d:k%d", w->id, k);
    key_list[k].data = (const uint8_t *)keys[k];
    key_list[k].len = strlen(keys[k]);
    expected[k][0] = '\0';
  }

  for (i = 0; i < ITERATIONS; i++) {
    rcache_buffer out = {NULL, 0};
    int64_t number = 0;
    rcache_status status;
    k = i % KEYS_PER_THREAD;

    /* set, then get: the value must be the one just stored by this thread. */
    snprintf(value, sizeof value, "thread %d iteration %d nonce %d", w->id, i, rand_r(&seed));
    status = rcache_client_set(g_client, key_list[k].data, key_list[k].len, (const uint8_t *)value,
                               strlen(value), RCACHE_TTL_NONE);
    if (status != RCACHE_STATUS_OK) {
      w->errors++;
      report(w, "set failed", i, status);
      continue;
    }
    strcpy(expected[k], value);
    status = rcache_client_get(g_client, key_list[k].data, key_list[k].len, &out);
    if (status != RCACHE_STATUS_OK) {
      w->errors++;
      report(w, "get failed", i, status);
    } else if (out.len != strlen(value) || memcmp(out.data, value, out.len) != 0) {
      w->mismatches++;
      report(w, "get returned another value", i, status);
    }
    rcache_buffer_free(&out);

    /* This thread's own counter counts its iterations exactly. */
    status = rcache_client_incr(g_client, (const uint8_t *)counter_key, strlen(counter_key), 1,
                                RCACHE_TTL_NONE, &number);
    if (status != RCACHE_STATUS_OK) {
      w->errors++;
      report(w, "incr of own counter failed", i, status);
    } else if (number != i + 1) {
      w->mismatches++;
      report(w, "own counter has a wrong value", i, status);
    }

    /* The shared counter: every increment must return a value no other one returned. */
    status = rcache_client_incr(g_client, (const uint8_t *)"shared", 6, 1, RCACHE_TTL_NONE, &number);
    if (status != RCACHE_STATUS_OK) {
      w->errors++;
      report(w, "incr of the shared counter failed", i, status);
    } else if (number < 1 || number > THREADS * ITERATIONS ||
               atomic_exchange(&g_seen[number - 1], 1) != 0) {
      w->mismatches++;
      report(w, "shared counter returned an impossible or repeated value", i, status);
    }

    /* Now and then all keys at once: each value is the last one this thread stored. */
    if (i % 50 == 49) {
      rcache_buffer values[KEYS_PER_THREAD];
      status = rcache_client_get_many(g_client, key_list, KEYS_PER_THREAD, values);
      if (status != RCACHE_STATUS_OK) {
        w->errors++;
        report(w, "get_many failed", i, status);
        continue;
      }
      for (k = 0; k < KEYS_PER_THREAD; k++) {
        size_t len = strlen(expected[k]);
        int hit = values[k].data != NULL;
        if (hit != (len > 0) || values[k].len != len || (hit && memcmp(values[k].data, expected[k], len) != 0)) {
          w->mismatches++;
          report(w, "get_many returned another value", i, status);
        }
      }
      rcache_buffers_free(values, KEYS_PER_THREAD);
    }
  }

  /* rcache_last_error is per thread: each thread's failure names its own key length. */
  {
    uint8_t long_key[MAX_KEY_BYTES + THREADS + 1];
    rcache_buffer out = {NULL, 0};
    size_t len = MAX_KEY_BYTES + 1 + (size_t)w->id;
    char own[32];
    memset(long_key, 'x', sizeof long_key);
    snprintf(own, sizeof own, "%zu bytes", len);
    if (rcache_client_get(g_client, long_key, len, &out) != RCACHE_STATUS_TOO_LARGE) w->errors++;
    pthread_barrier_wait(&g_barrier); /* every thread has failed its call */
    w->own_error_kept = strstr(rcache_last_error(), own) != NULL;
    if (!w->own_error_kept) {
      fprintf(stderr, "thread %d: last error \"%s\" does not mention \"%s\"\n", w->id,
              rcache_last_error(), own);
    }
  }
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Tagged writes racing invalidations. */

/* g_landed[w]: the last sequence number whose tagged write by writer w has returned. */
static atomic_ullong g_landed[RACE_WRITERS];
static atomic_int g_race_stop;
static const rcache_bytes RACE_TAG = {(const uint8_t *)"race", 4};

struct racer {
  int id;
  long errors;
};

static void race_key(char *key, size_t size, int writer) { snprintf(key, size, "race:%d", writer); }

static void *race_writer(void *arg) {
  struct racer *r = arg;
  char key[24], value[32];
  unsigned long long sequence = 0;
  race_key(key, sizeof key, r->id);
  while (!atomic_load(&g_race_stop)) {
    rcache_status status;
    sequence++;
    snprintf(value, sizeof value, "%llu", sequence);
    status = rcache_client_set_tagged(g_client, (const uint8_t *)key, strlen(key),
                                      (const uint8_t *)value, strlen(value), 60000, &RACE_TAG, 1);
    if (status != RCACHE_STATUS_OK) {
      if (r->errors++ < REPORT_LIMIT) {
        fprintf(stderr, "race writer %d: set_tagged failed (%s: %s)\n", r->id,
                rcache_status_name(status), rcache_last_error());
      }
      if (r->errors > 100) break;
      continue;
    }
    atomic_store(&g_landed[r->id], sequence);
  }
  return NULL;
}

/* Each round: note what had landed, invalidate, then every key must be a miss or
 * hold a sequence number written after the note was taken. */
static void check_invalidation_race(void) {
  struct racer racers[RACE_WRITERS];
  pthread_t threads[RACE_WRITERS];
  long stale = 0, failures = 0, rounds_with_hits = 0;
  int w, round, created = 0, started;

  for (w = 0; w < RACE_WRITERS; w++) {
    racers[w].id = w;
    racers[w].errors = 0;
  }
  while (created < RACE_WRITERS &&
         CHECK(pthread_create(&threads[created], NULL, race_writer, &racers[created]) == 0)) {
    created++;
  }
  started = created == RACE_WRITERS;
  /* Let every writer land a first write (bounded), so the rounds race real writes. */
  for (round = 0; started && round < 100000; round++) {
    int all = 1;
    for (w = 0; w < RACE_WRITERS; w++) all &= atomic_load(&g_landed[w]) > 0;
    if (all) break;
    sched_yield();
  }
  for (round = 0; started && round < RACE_ROUNDS; round++) {
    unsigned long long before[RACE_WRITERS];
    rcache_status status;
    int hits = 0;
    for (w = 0; w < RACE_WRITERS; w++) before[w] = atomic_load(&g_landed[w]);
    status = rcache_client_invalidate_tags(g_client, &RACE_TAG, 1);
    if (status != RCACHE_STATUS_OK) {
      if (failures++ < REPORT_LIMIT) {
        fprintf(stderr, "race round %d: invalidate failed (%s: %s)\n", round,
                rcache_status_name(status), rcache_last_error());
      }
      continue;
    }
    for (w = 0; w < RACE_WRITERS; w++) {
      char key[24], text[32];
      rcache_buffer out = {NULL, 0};
      race_key(key, sizeof key, w);
      status = rcache_client_get(g_client, (const uint8_t *)key, strlen(key), &out);
      if (status == RCACHE_STATUS_MISS) continue;
      if (status != RCACHE_STATUS_OK || out.len == 0 || out.len >= sizeof text) {
        if (failures++ < REPORT_LIMIT) {
          fprintf(stderr, "race round %d: get of %s failed (%s: %s)\n", round, key,
                  rcache_status_name(status),
                  status == RCACHE_STATUS_OK ? "bad length" : rcache_last_error());
        }
        if (status == RCACHE_STATUS_OK) rcache_buffer_free(&out);
        continue;
      }
      hits = 1;
      memcpy(text, out.data, out.len);
      text[out.len] = '\0';
      rcache_buffer_free(&out);
      if (strtoull(text, NULL, 10) <= before[w] && stale++ < REPORT_LIMIT) {
        fprintf(stderr, "race round %d: writer %d: read %s, but invalidated up to %llu\n", round,
                w, text, before[w]);
      }
    }
    rounds_with_hits += hits;
  }
  atomic_store(&g_race_stop, 1);
  for (w = 0; w < created; w++) CHECK(pthread_join(threads[w], NULL) == 0);

  printf("invalidation race: %d rounds, %ld with writes landing after the invalidation\n",
         RACE_ROUNDS, rounds_with_hits);
  CHECK_EQ_INT(stale, 0);
  CHECK_EQ_INT(failures, 0);
  for (w = 0; w < RACE_WRITERS; w++) {
    CHECK_EQ_INT(racers[w].errors, 0);
    CHECK(atomic_load(&g_landed[w]) > 0); /* every writer took part */
  }
}

int main(int argc, char **argv) {
  struct worker workers[THREADS];
  pthread_t threads[THREADS];
  rcache_options options = rcache_options_default();
  char prefix[64];
  int64_t total = 0;
  long seen = 0;
  int t;

  if (argc != 2) {
    fprintf(stderr, "usage: %s URL\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  alarm(240);
  printf("test_threads against %s: %d threads x %d iterations on one handle\n", argv[1], THREADS,
         ITERATIONS);

  snprintf(prefix, sizeof prefix, "test_threads:%ld:", (long)getpid());
  options.key_prefix = prefix;
  options.max_key_bytes = MAX_KEY_BYTES;
  if (!EXPECT_OK(rcache_client_connect(argv[1], &options, &g_client))) return check_summary();
  CHECK(pthread_barrier_init(&g_barrier, NULL, THREADS) == 0);

  for (t = 0; t < THREADS; t++) {
    workers[t].id = t;
    workers[t].mismatches = workers[t].errors = 0;
    workers[t].own_error_kept = 0;
    CHECK(pthread_create(&threads[t], NULL, work, &workers[t]) == 0);
  }
  for (t = 0; t < THREADS; t++) CHECK(pthread_join(threads[t], NULL) == 0);

  for (t = 0; t < THREADS; t++) {
    if (!CHECK(workers[t].mismatches == 0 && workers[t].errors == 0)) {
      fprintf(stderr, "    thread %d: %ld mismatched replies, %ld failed calls\n", t,
              workers[t].mismatches, workers[t].errors);
    }
    CHECK(workers[t].own_error_kept);
  }

  /* The shared counter is exact, and every value from 1 to its total was returned once. */
  if (EXPECT_OK(rcache_client_incr(g_client, (const uint8_t *)"shared", 6, 0, RCACHE_TTL_NONE, &total))) {
    CHECK_EQ_INT(total, THREADS * ITERATIONS);
  }
  for (t = 0; t < THREADS * ITERATIONS; t++) seen += atomic_load(&g_seen[t]) != 0;
  CHECK_EQ_INT(seen, THREADS * ITERATIONS);

  check_invalidation_race();

  pthread_barrier_destroy(&g_barrier);
  rcache_client_free(g_client);
  return check_summary();
}
