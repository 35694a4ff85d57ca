/*
 * A seeded randomized test of the C ABI: several threads call the exports in
 * random order with valid, NULL, zero, huge and mismatched arguments, on one
 * client, and check that every call returns a documented status:
 *
 *   - arguments the header documents as invalid give RCACHE_STATUS_INVALID_ARGUMENT;
 *   - otherwise the status is one the function documents;
 *   - rcache_last_error() is "" after OK or MISS and a message after an error;
 *   - out-parameters are untouched unless the call succeeded.
 *
 * Under ASan/UBSan (tests/c/Makefile builds both) no sanitizer may fire.
 * The seed is printed first; set RCACHE_TEST_SEED to replay a run.
 *
 *   test_abi_random URL   (run by `make -C tests/c check`, plain and ASan/UBSan)
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "rcache.h"

#define THREADS 4
#define CALLS_PER_THREAD 1500

static rcache_client *g_client;
static uint64_t g_seed;
static int g_redis;

/* xorshift64*: a small generator whose sequence the seed fixes. */
static uint64_t next(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 2685821657736338717ULL;
}

static unsigned pick(uint64_t *state, unsigned n) { return (unsigned)(next(state) % n); }

/* A byte-string argument and whether the header calls it invalid. */
typedef struct {
  const uint8_t *data;
  size_t len;
  int bad;
} arg;

static const char *const KEYS[] = {"k0", "k1", "k2", "k3", "hash", "counter"};
static const uint8_t SOME[] = "value bytes";

static arg any_key(uint64_t *state) {
  switch (pick(state, 10)) {
    case 0: return (arg){NULL, 0, 1};              /* empty key */
    case 1: return (arg){NULL, 7, 1};              /* NULL with a length */
    case 2: return (arg){NULL, SIZE_MAX, 1};       /* NULL with a huge length */
    case 3: return (arg){(const uint8_t *)"", 0, 1}; /* empty, not NULL */
    default: {
      const char *key = KEYS[pick(state, sizeof KEYS / sizeof KEYS[0])];
      return (arg){(const uint8_t *)key, strlen(key), 0};
    }
  }
}

static arg any_value(uint64_t *state) {
  switch (pick(state, 8)) {
    case 0: return (arg){NULL, 0, 0}; /* an empty value is fine */
    case 1: return (arg){NULL, 9, 1};
    case 2: return (arg){NULL, SIZE_MAX, 1};
    case 3: return (arg){(const uint8_t *)"12", 2, 0};
    default: return (arg){SOME, 1 + pick(state, sizeof SOME - 1), 0};
  }
}

/* A TTL and whether it is invalid; keep_ok: RCACHE_TTL_KEEP is accepted. */
static int64_t any_ttl(uint64_t *state, int keep_ok, int *bad) {
  switch (pick(state, 9)) {
    case 0: *bad = 1; return INT64_MIN;
    case 1: *bad = 1; return -3;
    case 2: *bad = 1; return INT64_MAX;
    case 3: *bad = 0; return RCACHE_TTL_NONE;
    case 4: *bad = 0; return RCACHE_TTL_DEFAULT;
    case 5: *bad = !keep_ok; return RCACHE_TTL_KEEP;
    default: *bad = 0; return 1 + (int64_t)pick(state, 100000);
  }
}

/* `bad` for a call with invalid arguments and an oversized value. */
#define TOO_LARGE_TOO 2
#define MAX_VALUE 8

/* bad, raised to TOO_LARGE_TOO when value is over MAX_VALUE. */
static int or_large(int bad, arg value) { return bad && !value.bad && value.len > MAX_VALUE ? TOO_LARGE_TOO : bad; }

static const rcache_status NETWORK[] = {RCACHE_STATUS_CONNECTION, RCACHE_STATUS_TIMEOUT,
                                         RCACHE_STATUS_UNKNOWN_OUTCOME};

/* 1 if status is in the allowed list (or a network status, on Redis). */
static int allowed(rcache_status status, const rcache_status *list, size_t count) {
  size_t i;
  for (i = 0; i < count; i++)
    if (list[i] == status) return 1;
  if (g_redis)
    for (i = 0; i < sizeof NETWORK / sizeof NETWORK[0]; i++)
      if (NETWORK[i] == status) return 1;
  return 0;
}

/* Checks one call's status; the name and call number identify it for a replay. */
static void verify(const char *name, unsigned thread, unsigned call, rcache_status status, int bad,
                   const rcache_status *list, size_t count) {
  const char *message = rcache_last_error();
  int ok = 1;
  if (bad) {
    /* With an oversized value as well, either error may be reported first. */
    ok = status == RCACHE_STATUS_INVALID_ARGUMENT || (bad == TOO_LARGE_TOO && status == RCACHE_STATUS_TOO_LARGE);
  } else {
    ok = allowed(status, list, count);
  }
  if (status == RCACHE_STATUS_OK || status == RCACHE_STATUS_MISS) {
    ok = ok && message != NULL && message[0] == '\0';
  } else {
    ok = ok && message != NULL && message[0] != '\0';
  }
  if (!check_true(__FILE__, __LINE__, name, ok)) {
    fprintf(stderr, "    seed %" PRIu64 ", thread %u, call %u: %s returned %s with %s arguments; last error \"%s\"\n",
            g_seed, thread, call, name, rcache_status_name(status), bad ? "invalid" : "valid", message ? message : "(NULL)");
  }
}

#define LIST(...) ((const rcache_status[]){__VA_ARGS__}), (sizeof((const rcache_status[]){__VA_ARGS__}) / sizeof(rcache_status))
#define S_OK RCACHE_STATUS_OK
#define S_MISS RCACHE_STATUS_MISS
#define S_WRONG RCACHE_STATUS_WRONG_TYPE
#define S_INVALID RCACHE_STATUS_INVALID_ARGUMENT

static bool compute_value(void *user_data, rcache_compute_output *output) {
  (void)user_data;
  return rcache_compute_output_set(output, SOME, 5) == RCACHE_STATUS_OK;
}

static bool compute_failure(void *user_data, rcache_compute_output *output) {
  (void)user_data;
  rcache_compute_output_fail(output, "no value today");
  return false;
}

static const rcache_buffer UNTOUCHED = {(uint8_t *)SOME, 77};

static int untouched(rcache_buffer buffer) { return buffer.data == UNTOUCHED.data && buffer.len == UNTOUCHED.len; }

static void one_call(unsigned thread, unsigned call, uint64_t *state, rcache_session_store *store) {
  rcache_client *c = pick(state, 40) == 0 ? NULL : g_client;
  arg key = any_key(state), value = any_value(state), other = any_value(state);
  int ttl_bad = 0, bad;
  int64_t ttl;
  rcache_buffer buffer = UNTOUCHED;
  rcache_status status;
  int null_out = pick(state, 12) == 0;

  switch (pick(state, 22)) {
    case 0:
      status = rcache_client_get(c, key.data, key.len, null_out ? NULL : &buffer);
      bad = !c || key.bad || null_out;
      verify("get", thread, call, status, bad, LIST(S_OK, S_MISS, S_WRONG));
      if (status == S_OK) rcache_buffer_free(&buffer);
      else check_true(__FILE__, __LINE__, "get leaves the buffer untouched", untouched(buffer));
      break;
    case 1:
      ttl = any_ttl(state, 1, &ttl_bad);
      status = rcache_client_set(c, key.data, key.len, value.data, value.len, ttl);
      verify("set", thread, call, status, or_large(!c || key.bad || value.bad || ttl_bad, value),
             LIST(S_OK, RCACHE_STATUS_TOO_LARGE));
      break;
    case 2: {
      int64_t left = 42;
      status = rcache_client_get_with_ttl(c, key.data, key.len, null_out ? NULL : &buffer, &left);
      verify("get_with_ttl", thread, call, status, !c || key.bad || null_out, LIST(S_OK, S_MISS, S_WRONG));
      if (status == S_OK) rcache_buffer_free(&buffer);
      else check_true(__FILE__, __LINE__, "get_with_ttl leaves its outputs untouched", untouched(buffer) && left == 42);
      break;
    }
    case 3:
      ttl = any_ttl(state, 1, &ttl_bad);
      status = rcache_client_compare_and_set(c, key.data, key.len, other.data, other.len, value.data, value.len, ttl);
      verify("compare_and_set", thread, call, status,
             or_large(or_large(!c || key.bad || value.bad || other.bad || ttl_bad, value), other),
             LIST(S_OK, S_MISS, S_WRONG, RCACHE_STATUS_TOO_LARGE));
      break;
    case 4:
      status = rcache_client_delete(c, key.data, key.len);
      verify("delete", thread, call, status, !c || key.bad, LIST(S_OK, S_MISS));
      break;
    case 5:
      status = rcache_client_exists(c, key.data, key.len);
      verify("exists", thread, call, status, !c || key.bad, LIST(S_OK, S_MISS));
      break;
    case 6: {
      int64_t left = 42;
      status = rcache_client_ttl(c, key.data, key.len, null_out ? NULL : &left);
      verify("ttl", thread, call, status, !c || key.bad || null_out, LIST(S_OK, S_MISS));
      if (status != S_OK && !null_out) check_true(__FILE__, __LINE__, "ttl leaves its output untouched", left == 42);
      break;
    }
    case 7:
      ttl = any_ttl(state, 0, &ttl_bad);
      status = rcache_client_expire(c, key.data, key.len, ttl);
      verify("expire", thread, call, status, !c || key.bad || ttl_bad, LIST(S_OK, S_MISS));
      break;
    case 8: {
      rcache_bytes keys[3];
      rcache_buffer values[3] = {UNTOUCHED, UNTOUCHED, UNTOUCHED};
      size_t count = pick(state, 4), i;
      int keys_null = pick(state, 8) == 0, values_null = pick(state, 8) == 0;
      bad = !c;
      for (i = 0; i < count && i < 3; i++) {
        arg k = any_key(state);
        keys[i] = (rcache_bytes){k.data, k.len};
        bad |= k.bad;
      }
      if (count == 3 && pick(state, 2)) count = SIZE_MAX; /* mismatched: more than the array */
      if (count == SIZE_MAX) keys_null = 1;                /* never read past the array */
      bad |= count > 0 && (keys_null || values_null);
      status = rcache_client_get_many(c, keys_null ? NULL : keys, count, values_null ? NULL : values);
      verify("get_many", thread, call, status, bad, LIST(S_OK));
      if (status == S_OK) rcache_buffers_free(values, count);
      break;
    }
    case 9: {
      rcache_bytes keys[2] = {{NULL, 0}, {NULL, 0}}, values[2] = {{NULL, 0}, {NULL, 0}};
      size_t count = pick(state, 3), i;
      int large = 0;
      bad = !c;
      ttl = any_ttl(state, 0, &ttl_bad);
      bad |= ttl_bad;
      for (i = 0; i < count; i++) {
        arg k = any_key(state), v = any_value(state);
        keys[i] = (rcache_bytes){k.data, k.len};
        values[i] = (rcache_bytes){v.data, v.len};
        bad |= k.bad || v.bad;
        large |= !v.bad && v.len > MAX_VALUE;
      }
      status = rcache_client_set_many(c, keys, values, count, ttl);
      verify("set_many", thread, call, status, bad && large ? TOO_LARGE_TOO : bad, LIST(S_OK, RCACHE_STATUS_TOO_LARGE));
      break;
    }
    case 10: {
      int64_t result = 42;
      int64_t delta = pick(state, 10) == 0 ? INT64_MAX : (int64_t)pick(state, 7) - 3;
      ttl = any_ttl(state, 0, &ttl_bad);
      status = rcache_client_incr(c, key.data, key.len, delta, ttl, null_out ? NULL : &result);
      /* An overflow of the stored counter is INVALID_ARGUMENT too. */
      verify("incr", thread, call, status, !c || key.bad || ttl_bad || null_out, LIST(S_OK, S_WRONG, S_INVALID));
      break;
    }
    case 11: {
      rcache_bytes tags[2] = {{(const uint8_t *)"t1", 2}, {(const uint8_t *)"t2", 2}};
      size_t count = pick(state, 3);
      int tags_null = pick(state, 6) == 0;
      ttl = any_ttl(state, 1, &ttl_bad);
      /* RCACHE_TTL_KEEP is refused when there are tags. */
      ttl_bad |= ttl == RCACHE_TTL_KEEP && count > 0;
      status = rcache_client_set_tagged(c, key.data, key.len, value.data, value.len, ttl, tags_null ? NULL : tags, count);
      verify("set_tagged", thread, call, status,
             or_large(!c || key.bad || value.bad || ttl_bad || (tags_null && count > 0), value),
             LIST(S_OK, RCACHE_STATUS_TOO_LARGE));
      break;
    }
    case 12: {
      rcache_bytes tags[1] = {{(const uint8_t *)"t1", 2}};
      size_t count = pick(state, 2);
      status = rcache_client_invalidate_tags(c, tags, count);
      verify("invalidate_tags", thread, call, status, !c, LIST(S_OK));
      break;
    }
    case 13: {
      uint64_t deleted = 7;
      arg pattern = pick(state, 3) == 0 ? (arg){NULL, 0, 0} : pick(state, 2) ? (arg){NULL, 3, 1} : (arg){(const uint8_t *)"k*", 2, 0};
      status = rcache_client_clear(c, pattern.data, pattern.len, pick(state, 2) ? NULL : &deleted);
      verify("clear", thread, call, status, !c || pattern.bad, LIST(S_OK));
      break;
    }
    case 14: {
      rcache_buffer *keys = NULL;
      size_t count = 99;
      arg pattern = pick(state, 2) ? (arg){NULL, 0, 0} : (arg){NULL, 5, 1};
      status = rcache_client_keys(c, pattern.data, pattern.len, null_out ? NULL : &keys, &count);
      verify("keys", thread, call, status, !c || pattern.bad || null_out, LIST(S_OK));
      if (status == S_OK) rcache_buffer_array_free(keys, count);
      break;
    }
    case 15: {
      uint32_t lease = pick(state, 5) == 0 ? 0 : 1 + pick(state, 5000);
      arg owner = pick(state, 5) == 0 ? (arg){NULL, 0, 1} : (arg){(const uint8_t *)"me", 2, 0};
      switch (pick(state, 3)) {
        case 0:
          status = rcache_client_lock(c, key.data, key.len, owner.data, owner.len, lease);
          verify("lock", thread, call, status, !c || key.bad || owner.bad || lease == 0, LIST(S_OK, S_MISS));
          break;
        case 1:
          status = rcache_client_extend_lock(c, key.data, key.len, owner.data, owner.len, lease);
          verify("extend_lock", thread, call, status, !c || key.bad || owner.bad || lease == 0, LIST(S_OK, S_MISS));
          break;
        default:
          status = rcache_client_unlock(c, key.data, key.len, owner.data, owner.len);
          verify("unlock", thread, call, status, !c || key.bad || owner.bad, LIST(S_OK, S_MISS));
      }
      break;
    }
    case 16: {
      rcache_buffer *names = NULL, *values = NULL;
      size_t count = 0;
      status = rcache_client_hash_get(c, key.data, key.len, &names, null_out ? NULL : &values, &count);
      verify("hash_get", thread, call, status, !c || key.bad || null_out, LIST(S_OK, S_MISS, S_WRONG));
      if (status == S_OK) {
        rcache_buffer_array_free(names, count);
        rcache_buffer_array_free(values, count);
      }
      break;
    }
    case 17: {
      rcache_bytes names[1] = {{(const uint8_t *)"f", 1}}, values[1] = {{SOME, 3}};
      size_t count = pick(state, 2);
      int condition = (int)pick(state, 4); /* 3 is not a condition */
      ttl = any_ttl(state, 1, &ttl_bad);
      status = rcache_client_hash_set(c, key.data, key.len, names, values, count, ttl, condition);
      verify("hash_set", thread, call, status, !c || key.bad || ttl_bad || count == 0 || condition == 3,
             LIST(S_OK, S_MISS, S_WRONG));
      break;
    }
    case 18: {
      rcache_compute_options options = rcache_compute_options_default();
      rcache_compute_fn compute = pick(state, 6) == 0 ? NULL : pick(state, 3) == 0 ? compute_failure : compute_value;
      int with_options = pick(state, 2);
      options.ttl_ms = any_ttl(state, 0, &ttl_bad);
      status = rcache_client_get_or_compute(c, key.data, key.len, with_options ? &options : NULL, compute, NULL,
                                            null_out ? NULL : &buffer);
      if (status == S_OK) rcache_buffer_free(&buffer);
      /* The TTL is read only when options are passed. */
      bad = !c || key.bad || !compute || null_out || (with_options && ttl_bad);
      verify("get_or_compute", thread, call, status, bad,
             LIST(S_OK, S_WRONG, RCACHE_STATUS_COMPUTE_FAILED, RCACHE_STATUS_TIMEOUT));
      break;
    }
    case 19: {
      rcache_buffer text = UNTOUCHED;
      status = rcache_client_server_info(c, null_out ? NULL : &text);
      verify("server_info", thread, call, status, !c || null_out, LIST(S_OK));
      if (status == S_OK) rcache_buffer_free(&text);
      break;
    }
    case 20: {
      rcache_session_new session;
      rcache_bytes names[1] = {{(const uint8_t *)"user", 4}}, values[1] = {{SOME, 4}};
      size_t count = pick(state, 2);
      ttl = any_ttl(state, 0, &ttl_bad);
      rcache_session_store *used = pick(state, 30) == 0 ? NULL : store;
      status = rcache_session_create(used, names, values, count, ttl, null_out ? NULL : &session);
      verify("session_create", thread, call, status, !used || ttl_bad || null_out, LIST(S_OK));
      if (status == S_OK) {
        rcache_session_record *record = NULL;
        status = rcache_session_load(store, (const uint8_t *)session.id, strlen(session.id), (const uint8_t *)session.secret,
                                     strlen(session.secret), RCACHE_SESSION_NO_SLIDE, &record);
        /* Another thread's clear() may have deleted it already. */
        verify("session_load", thread, call, status, 0, LIST(S_OK, S_MISS));
        rcache_session_record_free(record);
        status = rcache_session_destroy(store, (const uint8_t *)session.id, strlen(session.id), value.data, value.len);
        verify("session_destroy", thread, call, status, value.bad, LIST(S_MISS));
        status = rcache_session_destroy(store, (const uint8_t *)session.id, strlen(session.id),
                                        (const uint8_t *)session.secret, strlen(session.secret));
        verify("session_destroy", thread, call, status, 0, LIST(S_OK, S_MISS));
      }
      break;
    }
    default: {
      rcache_stats stats;
      status = rcache_client_stats(c, null_out ? NULL : &stats);
      verify("stats", thread, call, status, !c || null_out, LIST(S_OK));
      CHECK(rcache_status_name((rcache_status)pick(state, 40)) != NULL);
    }
  }
}

typedef struct {
  unsigned index;
} worker_arg;

static void *worker(void *opaque) {
  worker_arg *self = opaque;
  uint64_t state = g_seed * 0x9E3779B97F4A7C15ULL + self->index + 1;
  rcache_session_store *store = NULL;
  unsigned call;
  if (!EXPECT_OK(rcache_session_store_open(g_client, (const uint8_t *)"rs:", 3, &store))) return NULL;
  for (call = 0; call < CALLS_PER_THREAD; call++) one_call(self->index, call, &state, store);
  rcache_session_store_free(store);
  return NULL;
}

int main(int argc, char **argv) {
  pthread_t threads[THREADS];
  worker_arg args[THREADS];
  rcache_options options = rcache_options_default();
  char prefix[64];
  const char *seed_text = getenv("RCACHE_TEST_SEED");
  unsigned t;

  if (argc != 2) {
    fprintf(stderr, "usage: %s URL\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  alarm(240);
  g_seed = seed_text ? strtoull(seed_text, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
  g_redis = strncmp(argv[1], "memory", 6) != 0;
  printf("test_abi_random against %s, seed %" PRIu64 " (replay with RCACHE_TEST_SEED=%" PRIu64 ")\n", argv[1], g_seed,
         g_seed);
  snprintf(prefix, sizeof prefix, "test_abi_random:%ld:", (long)getpid());
  options.key_prefix = prefix;
  options.max_value_bytes = MAX_VALUE;
  if (!EXPECT_OK(rcache_client_connect(argv[1], &options, &g_client))) return check_summary();
  for (t = 0; t < THREADS; t++) {
    args[t].index = t;
    CHECK(pthread_create(&threads[t], NULL, worker, &args[t]) == 0);
  }
  for (t = 0; t < THREADS; t++) CHECK(pthread_join(threads[t], NULL) == 0);
  EXPECT_OK(rcache_client_clear(g_client, NULL, 0, NULL));
  rcache_client_free(g_client);
  if (CHECK_LOAD(check_failed_count) != 0) printf("seed %" PRIu64 " failed: replay with RCACHE_TEST_SEED=%" PRIu64 "\n", g_seed, g_seed);
  return check_summary();
}
