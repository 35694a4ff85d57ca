/*
 * Get-or-compute through the C API, as a C program uses it.
 *
 *   test_compute URL
 *
 * 16 threads miss one key whose callback takes 150 ms: the callback runs once
 * and every thread gets its value. A failing callback gives
 * RCACHE_STATUS_COMPUTE_FAILED with its message and stores nothing; the next
 * call computes. Bad arguments are refused. The statistics count it all.
 * Fail-safe: a value past its expiry comes back as RCACHE_STATUS_STALE when
 * the callback fails, and the key is throttled; negative caching gives
 * RCACHE_STATUS_NO_VALUE. Soft and hard timeouts: a callback held past the
 * soft timeout leaves every caller (threads here, and a child process on
 * Redis) with the stale value, runs once on a library thread and stores its
 * value when released; past the hard timeout without a stale value the call
 * returns RCACHE_STATUS_TIMEOUT. free_user_data runs once per call.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "rcache.h"

#define THREADS 16

static rcache_client *g_client;
static atomic_int g_calls;

#define KEY(text) (const uint8_t *)(text), strlen(text)

static bool slow_value(void *user_data, rcache_compute_output *output) {
  const char *value = user_data;
  struct timespec pause = {0, 150 * 1000 * 1000};
  atomic_fetch_add(&g_calls, 1);
  nanosleep(&pause, NULL);
  return rcache_compute_output_set(output, (const uint8_t *)value, strlen(value)) == RCACHE_STATUS_OK;
}

static bool failing(void *user_data, rcache_compute_output *output) {
  (void)user_data;
  atomic_fetch_add(&g_calls, 1);
  rcache_compute_output_fail(output, "the database is down");
  return false;
}

static bool forgets_the_value(void *user_data, rcache_compute_output *output) {
  (void)user_data;
  (void)output;
  return true;
}

static bool no_value(void *user_data, rcache_compute_output *output) {
  (void)user_data;
  atomic_fetch_add(&g_calls, 1);
  return rcache_compute_output_set_none(output) == RCACHE_STATUS_OK;
}

static void sleep_a_little(void) {
  struct timespec pause = {0, 10 * 1000 * 1000};
  nanosleep(&pause, NULL);
}

/* RCACHE_STATUS_STALE and RCACHE_STATUS_NO_VALUE, and the counters behind them. */
static void test_fail_safe(void) {
  rcache_compute_options options = rcache_compute_options_default();
  rcache_failsafe_options failsafe = {60000, 60000, 0};
  rcache_failsafe_stats stats;
  rcache_buffer value = {NULL, 0};
  int status = RCACHE_STATUS_OK, tries;

  options.ttl_ms = 50;
  options.early_refresh_beta = 0;
  EXPECT_OK(rcache_client_get_or_compute_failsafe(g_client, KEY("fs"), &options, &failsafe, slow_value,
                                                  (void *)"good", &value));
  rcache_buffer_free(&value);
  for (tries = 0; tries < 1000 && status != RCACHE_STATUS_MISS; tries++) {
    status = rcache_client_get(g_client, KEY("fs"), &value);
    if (status == RCACHE_STATUS_OK) rcache_buffer_free(&value);
    sleep_a_little();
  }
  CHECK_EQ_INT(status, RCACHE_STATUS_MISS); /* expired: a plain read never sees the stale copy */

  atomic_store(&g_calls, 0);
  if (EXPECT_STATUS(RCACHE_STATUS_STALE, rcache_client_get_or_compute_failsafe(g_client, KEY("fs"), &options, &failsafe,
                                                                              failing, NULL, &value))) {
    CHECK_BYTES(value.data, value.len, "good", 4);
    rcache_buffer_free(&value);
  }
  /* Throttled: the next caller gets the stale value without calling back. */
  if (EXPECT_STATUS(RCACHE_STATUS_STALE, rcache_client_get_or_compute_failsafe(g_client, KEY("fs"), &options, &failsafe,
                                                                              failing, NULL, &value))) {
    CHECK_BYTES(value.data, value.len, "good", 4);
    rcache_buffer_free(&value);
  }
  CHECK_EQ_INT(atomic_load(&g_calls), 1);
  EXPECT_MISS(rcache_client_get(g_client, KEY("fs"), &value));
  /* NULL settings: fail-safe off, the failure is the caller's. */
  EXPECT_ERROR(RCACHE_STATUS_COMPUTE_FAILED,
               rcache_client_get_or_compute_failsafe(g_client, KEY("fs-off"), &options, NULL, failing, NULL, &value));

  /* Negative caching: "no value" is remembered, and is not a value. */
  failsafe.negative_ttl_ms = 60000;
  options.ttl_ms = 60000;
  atomic_store(&g_calls, 0);
  EXPECT_STATUS(RCACHE_STATUS_NO_VALUE, rcache_client_get_or_compute_failsafe(g_client, KEY("none"), &options, &failsafe,
                                                                             no_value, NULL, &value));
  EXPECT_STATUS(RCACHE_STATUS_NO_VALUE, rcache_client_get_or_compute_failsafe(g_client, KEY("none"), &options, &failsafe,
                                                                             slow_value, (void *)"v", &value));
  CHECK(value.data == NULL);
  CHECK_EQ_INT(atomic_load(&g_calls), 1);
  EXPECT_MISS(rcache_client_get(g_client, KEY("none"), &value));
  /* The plain call has no way to return "no value": it is the callback's failure. */
  EXPECT_ERROR(RCACHE_STATUS_COMPUTE_FAILED,
               rcache_client_get_or_compute(g_client, KEY("none2"), &options, no_value, NULL, &value));
  CHECK(strstr(rcache_last_error(), "rcache_client_get_or_compute_failsafe") != NULL);

  if (EXPECT_OK(rcache_client_failsafe_stats(g_client, &stats))) {
    CHECK_EQ_INT(stats.stale_served, 2);
    CHECK_EQ_INT(stats.throttles, 1);
    CHECK_EQ_INT(stats.negative_hits, 1);
  }
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_failsafe_stats(g_client, NULL));
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_failsafe_stats(NULL, &stats));
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_get_or_compute_failsafe(g_client, KEY("k"), NULL, &failsafe,
                                                                                     NULL, NULL, &value));
  CHECK_STR(rcache_status_name(RCACHE_STATUS_STALE), "RCACHE_STATUS_STALE");
  CHECK_STR(rcache_status_name(RCACHE_STATUS_NO_VALUE), "RCACHE_STATUS_NO_VALUE");
}

/* Soft and hard timeouts. The timed callback blocks on g_gate while the test
 * holds it, counts its runs in the cache ("runs"), and produces the string its
 * heap-allocated user data names; free_user_data releases that and counts. */
static pthread_mutex_t g_gate = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_freed;
static const char *g_url;
static char g_prefix[64];

struct produce {
  const char *value;
};

static struct produce *produce(const char *value) {
  struct produce *job = malloc(sizeof *job);
  job->value = value;
  return job;
}

static void free_produce(void *user_data) {
  free(user_data);
  atomic_fetch_add(&g_freed, 1);
}

static bool held_value(void *user_data, rcache_compute_output *output) {
  const struct produce *job = user_data;
  int64_t runs = 0;
  rcache_client_incr(g_client, KEY("runs"), 1, 0, &runs);
  pthread_mutex_lock(&g_gate);
  pthread_mutex_unlock(&g_gate);
  return rcache_compute_output_set(output, (const uint8_t *)job->value, strlen(job->value)) == RCACHE_STATUS_OK;
}

static bool must_not_run(void *user_data, rcache_compute_output *output) {
  (void)user_data;
  rcache_compute_output_fail(output, "another caller computes this key");
  CHECK(!"the waiter's callback ran");
  return false;
}

static const rcache_failsafe_options g_timed_failsafe = {60000, 0, 0};
static const rcache_timeout_options g_soft = {100, 60000};

/* A caller of "timed" that expects the stale value "good" at the soft timeout. */
static void *stale_at_soft_timeout(void *arg) {
  rcache_compute_options options = rcache_compute_options_default();
  rcache_buffer value = {NULL, 0};
  (void)arg;
  options.ttl_ms = 60000;
  if (EXPECT_STATUS(RCACHE_STATUS_STALE,
                    rcache_client_get_or_compute_timed(g_client, KEY("timed"), &options, &g_timed_failsafe, &g_soft,
                                                       held_value, produce("new"), free_produce, &value))) {
    CHECK_BYTES(value.data, value.len, "good", 4);
    rcache_buffer_free(&value);
  }
  return NULL;
}

/* In a child process, on its own client: a waiter gets the stale value too. */
static int stale_in_another_process(void) {
  rcache_options client_options = rcache_options_default();
  rcache_compute_options options = rcache_compute_options_default();
  rcache_client *client = NULL;
  rcache_buffer value = {NULL, 0};
  long failed = CHECK_LOAD(check_failed_count);
  client_options.key_prefix = g_prefix;
  if (EXPECT_OK(rcache_client_connect(g_url, &client_options, &client))) {
    if (EXPECT_STATUS(RCACHE_STATUS_STALE, rcache_client_get_or_compute_timed(client, KEY("timed"), &options,
                                                                             &g_timed_failsafe, &g_soft, must_not_run,
                                                                             NULL, NULL, &value))) {
      CHECK_BYTES(value.data, value.len, "good", 4);
      rcache_buffer_free(&value);
    }
    rcache_client_free(client);
  }
  return CHECK_LOAD(check_failed_count) == failed ? 0 : 1;
}

/* Polls key until it holds expected (the background computation stored it). */
static void check_stored_later(const char *key, const char *expected) {
  rcache_buffer value = {NULL, 0};
  int tries, found = 0;
  for (tries = 0; tries < 1000 && !found; tries++) {
    if (rcache_client_get(g_client, (const uint8_t *)key, strlen(key), &value) == RCACHE_STATUS_OK) {
      found = value.len == strlen(expected) && memcmp(value.data, expected, value.len) == 0;
      rcache_buffer_free(&value);
    }
    if (!found) sleep_a_little();
  }
  CHECK(found);
}

static void test_timeouts(bool shared_server) {
  rcache_compute_options options = rcache_compute_options_default();
  rcache_failsafe_options no_fail_safe = {0, 0, 0};
  rcache_timeout_options hard = {0, 100}, backwards = {500, 100};
  rcache_buffer value = {NULL, 0};
  pthread_t threads[4];
  int t, child_status = -1, allocated = 0;
  pid_t child;

  options.early_refresh_beta = 0;
  options.ttl_ms = 50;
  EXPECT_OK(rcache_client_get_or_compute_failsafe(g_client, KEY("timed"), &options, &g_timed_failsafe, slow_value,
                                                  (void *)"good", &value));
  rcache_buffer_free(&value);
  while (rcache_client_get(g_client, KEY("timed"), &value) == RCACHE_STATUS_OK) {
    rcache_buffer_free(&value);
    sleep_a_little();
  }

  /* Past the soft timeout: the stale value at once, for every caller; one computation. */
  pthread_mutex_lock(&g_gate);
  for (t = 0; t < 4; t++) CHECK(pthread_create(&threads[t], NULL, stale_at_soft_timeout, NULL) == 0);
  for (t = 0; t < 4; t++) CHECK(pthread_join(threads[t], NULL) == 0);
  allocated += 4;
  if (shared_server) {
    child = fork();
    if (child == 0) _exit(stale_in_another_process());
    CHECK(child > 0 && waitpid(child, &child_status, 0) == child);
    CHECK(WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0);
  }
  EXPECT_MISS(rcache_client_get(g_client, KEY("timed"), &value));
  pthread_mutex_unlock(&g_gate);
  check_stored_later("timed", "new");
  if (EXPECT_OK(rcache_client_get(g_client, KEY("runs"), &value))) {
    CHECK_BYTES(value.data, value.len, "1", 1);
    rcache_buffer_free(&value);
  }

  /* Past the hard timeout without a stale value: RCACHE_STATUS_TIMEOUT; stored later. */
  options.ttl_ms = 60000;
  pthread_mutex_lock(&g_gate);
  EXPECT_ERROR(RCACHE_STATUS_TIMEOUT, rcache_client_get_or_compute_timed(g_client, KEY("timed-hard"), &options, NULL, &hard,
                                                                         held_value, produce("late"), free_produce, &value));
  CHECK(strstr(rcache_last_error(), "hard timeout") != NULL);
  allocated++;
  pthread_mutex_unlock(&g_gate);
  check_stored_later("timed-hard", "late");

  /* A hit never calls back, and still releases the user data. */
  EXPECT_OK(rcache_client_get_or_compute_timed(g_client, KEY("timed-hard"), &options, NULL, &hard, must_not_run,
                                               produce("unused"), free_produce, &value));
  rcache_buffer_free(&value);
  allocated++;

  /* Bad settings are refused, and the user data released all the same. */
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT,
               rcache_client_get_or_compute_timed(g_client, KEY("k"), &options, &no_fail_safe, &g_soft, held_value,
                                                  produce("x"), free_produce, &value));
  CHECK(strstr(rcache_last_error(), "fail-safe") != NULL);
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT,
               rcache_client_get_or_compute_timed(g_client, KEY("k"), &options, &g_timed_failsafe, &backwards, held_value,
                                                  produce("x"), free_produce, &value));
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT,
               rcache_client_get_or_compute_timed(g_client, KEY("k"), &options, NULL, NULL, NULL, produce("x"),
                                                  free_produce, &value));
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT,
               rcache_client_get_or_compute_timed(NULL, KEY("k"), &options, NULL, NULL, held_value, produce("x"),
                                                  free_produce, &value));
  allocated += 4;
  CHECK_EQ_INT(atomic_load(&g_freed), allocated);
}

/* TTL jitter shortens TTLs by up to the percentage; over 100 is refused. */
static void test_ttl_jitter(void) {
  int64_t ttl_ms = 0;
  EXPECT_OK(rcache_client_set_ttl_jitter(g_client, 50));
  EXPECT_OK(rcache_client_set(g_client, KEY("jittered"), (const uint8_t *)"v", 1, 60000));
  if (EXPECT_OK(rcache_client_ttl(g_client, KEY("jittered"), &ttl_ms))) CHECK(ttl_ms <= 60000 && ttl_ms >= 29000);
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_set_ttl_jitter(g_client, 101));
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_set_ttl_jitter(NULL, 10));
  EXPECT_OK(rcache_client_set_ttl_jitter(g_client, 0));
}

static void *stampede(void *arg) {
  rcache_buffer value = {NULL, 0};
  (void)arg;
  if (EXPECT_OK(rcache_client_get_or_compute(g_client, KEY("stampede"), NULL, slow_value, (void *)"computed once", &value))) {
    CHECK_BYTES(value.data, value.len, "computed once", strlen("computed once"));
    rcache_buffer_free(&value);
  }
  return NULL;
}

/* A callback that leaves its thread by a forced unwind: pthread_exit, or pthread_cancel
 * while it waits. The unwind passes through the library; the thread ends, the process
 * lives on, nothing is stored and the lock is released. */
struct leaving_job {
  const char *key;
  rcache_compute_fn compute;
  atomic_int entered;
  atomic_int returned;
  /* The call's arguments live here rather than on the leaving thread's stack: a
   * cancellation unwinds frames without ASan unpoisoning their redzones. */
  rcache_compute_options options;
  rcache_buffer value;
};

static bool exits_its_thread(void *user_data, rcache_compute_output *output) {
  struct leaving_job *job = user_data;
  (void)output;
  atomic_store(&job->entered, 1);
  pthread_exit(NULL);
  return false; /* not reached */
}

static bool waits_to_be_cancelled(void *user_data, rcache_compute_output *output) {
  struct leaving_job *job = user_data;
  (void)output;
  atomic_store(&job->entered, 1);
  for (;;) sleep_ms(1); /* nanosleep is a cancellation point */
  return false;          /* not reached */
}

static void *compute_and_leave(void *arg) {
  struct leaving_job *job = arg;
  job->options = rcache_compute_options_default();
  job->options.lock_lease_ms = 60000;
  rcache_client_get_or_compute(g_client, KEY(job->key), &job->options, job->compute, job, &job->value);
  atomic_store(&job->returned, 1);
  return NULL;
}

static void check_left_cleanly(struct leaving_job *job) {
  rcache_compute_options options = rcache_compute_options_default();
  rcache_buffer value = {NULL, 0};
  CHECK(atomic_load(&job->entered) && !atomic_load(&job->returned));
  EXPECT_MISS(rcache_client_get(g_client, KEY(job->key), &value));
  /* The lock is free: a caller that would rather fail than wait computes at once. */
  options.wait_timeout_ms = 1;
  options.fail_on_wait_timeout = true;
  if (EXPECT_OK(rcache_client_get_or_compute(g_client, KEY(job->key), &options, slow_value, (void *)"after", &value))) {
    CHECK_BYTES(value.data, value.len, "after", 5);
    rcache_buffer_free(&value);
  }
}

/* Freeing the client inside its own compute callback frees nothing: the call still
 * runs on it. The library says so in rcache_last_error() and the call completes. */
static bool frees_its_client(void *user_data, rcache_compute_output *output) {
  (void)user_data;
  rcache_client_free(g_client);
  CHECK(strstr(rcache_last_error(), "inside a compute callback") != NULL);
  return rcache_compute_output_set(output, (const uint8_t *)"kept", 4) == RCACHE_STATUS_OK;
}

static void test_free_inside_the_callback(void) {
  rcache_buffer value = {NULL, 0};
  if (EXPECT_OK(rcache_client_get_or_compute(g_client, KEY("free-inside"), NULL, frees_its_client, NULL, &value))) {
    CHECK_BYTES(value.data, value.len, "kept", 4);
    rcache_buffer_free(&value);
  }
  if (EXPECT_OK(rcache_client_get(g_client, KEY("free-inside"), &value))) rcache_buffer_free(&value);
}

static void test_callback_thread_exit_and_cancel(void) {
  static struct leaving_job exiting, cancelled;
  pthread_t thread;
  void *result = NULL;

  exiting.key = "left:exit";
  exiting.compute = exits_its_thread;
  cancelled.key = "left:cancel";
  cancelled.compute = waits_to_be_cancelled;
  if (CHECK(pthread_create(&thread, NULL, compute_and_leave, &exiting) == 0)) {
    CHECK(pthread_join(thread, &result) == 0);
    CHECK(result == NULL);
    check_left_cleanly(&exiting);
  }
  if (CHECK(pthread_create(&thread, NULL, compute_and_leave, &cancelled) == 0)) {
    while (!atomic_load(&cancelled.entered)) sleep_ms(1);
    CHECK(pthread_cancel(thread) == 0);
    CHECK(pthread_join(thread, &result) == 0);
    CHECK(result == PTHREAD_CANCELED);
    check_left_cleanly(&cancelled);
  }
}

int main(int argc, char **argv) {
  pthread_t threads[THREADS];
  rcache_compute_options options = rcache_compute_options_default();
  rcache_buffer value = {NULL, 0};
  rcache_stats stats;
  char prefix[64];
  rcache_options client_options = rcache_options_default();
  int t;

  if (argc != 2) {
    fprintf(stderr, "usage: %s URL\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  alarm(120);
  printf("test_compute against %s\n", argv[1]);
  snprintf(prefix, sizeof prefix, "test_compute:%ld:", (long)getpid());
  client_options.key_prefix = prefix;
  g_url = argv[1];
  memcpy(g_prefix, prefix, sizeof g_prefix);
  if (!EXPECT_OK(rcache_client_connect(argv[1], &client_options, &g_client))) return check_summary();

  CHECK(options.early_refresh_beta == 1.0);
  CHECK(options.lock_lease_ms == 10000 && options.wait_timeout_ms == 10000 && !options.fail_on_wait_timeout);

  for (t = 0; t < THREADS; t++) CHECK(pthread_create(&threads[t], NULL, stampede, NULL) == 0);
  for (t = 0; t < THREADS; t++) CHECK(pthread_join(threads[t], NULL) == 0);
  CHECK_EQ_INT(atomic_load(&g_calls), 1);

  /* A failure propagates with its message and stores nothing. */
  atomic_store(&g_calls, 0);
  EXPECT_ERROR(RCACHE_STATUS_COMPUTE_FAILED,
               rcache_client_get_or_compute(g_client, KEY("fails"), &options, failing, NULL, &value));
  CHECK(strstr(rcache_last_error(), "the database is down") != NULL);
  CHECK(value.data == NULL);
  EXPECT_MISS(rcache_client_get(g_client, KEY("fails"), &value));
  EXPECT_ERROR(RCACHE_STATUS_COMPUTE_FAILED,
               rcache_client_get_or_compute(g_client, KEY("fails"), &options, forgets_the_value, NULL, &value));
  CHECK(strstr(rcache_last_error(), "without rcache_compute_output_set") != NULL);
  options.ttl_ms = 60000;
  if (EXPECT_OK(rcache_client_get_or_compute(g_client, KEY("fails"), &options, slow_value, (void *)"second try", &value))) {
    CHECK_BYTES(value.data, value.len, "second try", strlen("second try"));
    rcache_buffer_free(&value);
  }

  /* Tags given in the options are recorded with the value. */
  {
    rcache_bytes tag = {(const uint8_t *)"reports", 7};
    options.tags = &tag;
    options.tag_count = 1;
    EXPECT_OK(rcache_client_get_or_compute(g_client, KEY("tagged"), &options, slow_value, (void *)"v1", &value));
    rcache_buffer_free(&value);
    EXPECT_OK(rcache_client_invalidate_tags(g_client, &tag, 1));
    EXPECT_MISS(rcache_client_get(g_client, KEY("tagged"), &value));
    options.tags = NULL;
    options.tag_count = 0;
  }

  /* Bad arguments. */
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT,
               rcache_client_get_or_compute(g_client, KEY("k"), NULL, NULL, NULL, &value));
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT,
               rcache_client_get_or_compute(g_client, KEY("k"), NULL, slow_value, (void *)"v", NULL));
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT,
               rcache_client_get_or_compute(NULL, KEY("k"), NULL, slow_value, (void *)"v", &value));
  options.tag_count = 2; /* tags still NULL */
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT,
               rcache_client_get_or_compute(g_client, KEY("k"), &options, slow_value, (void *)"v", &value));
  options.tag_count = 0;
  options.early_refresh_beta = -1.0;
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT,
               rcache_client_get_or_compute(g_client, KEY("k"), &options, slow_value, (void *)"v", &value));
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_stats(g_client, NULL));

  test_callback_thread_exit_and_cancel();
  test_free_inside_the_callback();
  test_fail_safe();
  test_ttl_jitter();
  test_timeouts(strncmp(argv[1], "memory", 6) != 0);

  if (EXPECT_OK(rcache_client_stats(g_client, &stats))) {
    CHECK(stats.computations >= 4);
    CHECK(stats.lock_waits >= 1);
    CHECK(stats.hits >= 1 && stats.misses >= 1);
    CHECK(stats.latency_p50_us <= stats.latency_p99_us && stats.latency_p99_us <= stats.latency_max_us);
  }
  rcache_client_free(g_client);
  return check_summary();
}
