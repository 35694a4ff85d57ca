/*
 * Session storage through the C API, as a C program uses it.
 *
 *   test_session URL
 *
 * A session is created with fields and comes back with a 32-hex id and secret;
 * loads return its fields in name order with its version; saves set and delete
 * fields in one step and, given the version they were based on, report
 * RCACHE_STATUS_CONFLICT instead of overwriting a newer save: 8 threads
 * incrementing one counter field 50 times each end at exactly 400. A wrong,
 * empty or truncated secret, or a forged id, sees nothing and changes nothing.
 * Loads never wait on the session lock; the lock refuses a second owner and
 * only its owner releases it. Touches and sliding loads renew the expiry,
 * plain loads do not. Purging removes only the idle sessions of its own
 * namespace. Bad arguments are refused and leave the out-parameters alone.
 *
 * Every key carries a per-process prefix, so runs against one Redis server do
 * not see each other. The timed parts use short TTLs and bounded polling.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
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
/* A NUL-terminated string as a (pointer, length) pair. */
#define STR(text) (const uint8_t *)(text), strlen(text)
/* A session's id, then its secret, as the four arguments the calls take. */
#define ID_SECRET(session) STR((session).id), STR((session).secret)

#define MINUTE_MS 60000
#define WRITERS 8
#define SAVES_PER_WRITER 50
#define FORGED "0123456789abcdef0123456789abcdef"

static const char *g_url;
static char g_prefix[64];
static rcache_client *g_client;
static rcache_session_store *g_store; /* namespace "sess:" */

/* Out-parameter sentinels: a call that must not write them leaves these values. */
static rcache_session_record *const SENTINEL_RECORD = (rcache_session_record *)&g_prefix;
#define SENTINEL_VERSION ((uint64_t)0x5EED5EEDu)

static double monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static uint64_t epoch_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static rcache_bytes text(const char *value) {
  rcache_bytes bytes = {(const uint8_t *)value, strlen(value)};
  return bytes;
}

static int is_hex32(const char *value) {
  size_t i;
  if (strlen(value) != 32) return 0;
  for (i = 0; i < 32; i++) {
    if (!((value[i] >= '0' && value[i] <= '9') || (value[i] >= 'a' && value[i] <= 'f'))) return 0;
  }
  return 1;
}

static rcache_session_store *open_store(rcache_client *client, const char *namespace_) {
  rcache_session_store *store = NULL;
  if (!EXPECT_OK(rcache_session_store_open(client, STR(namespace_), &store)) || store == NULL) {
    fprintf(stderr, "cannot open the session store %s; giving up\n", namespace_);
    exit(check_summary() == 0 ? 2 : 1);
  }
  return store;
}

/* A new session in `store` with one field `name` = `value`; exits if creation fails. */
static rcache_session_new create_one(rcache_session_store *store, const char *name,
                                     const char *value, int64_t ttl_ms) {
  rcache_session_new session;
  rcache_bytes names[1], values[1];
  names[0] = text(name);
  values[0] = text(value);
  memset(&session, 0, sizeof session);
  if (!EXPECT_OK(rcache_session_create(store, names, values, 1, ttl_ms, &session))) {
    fprintf(stderr, "cannot create a session; giving up\n");
    exit(check_summary() == 0 ? 2 : 1);
  }
  return session;
}

/* The session loaded without sliding its expiry, or NULL when it is missing (or on an
 * error, which is reported). */
static rcache_session_record *peek(rcache_session_store *store, const rcache_session_new *session) {
  rcache_session_record *record = NULL;
  rcache_status status =
      rcache_session_load(store, ID_SECRET(*session), RCACHE_SESSION_NO_SLIDE, &record);
  if (status != RCACHE_STATUS_OK && status != RCACHE_STATUS_MISS) {
    fprintf(stderr, "load returned %s: %s\n", rcache_status_name(status), rcache_last_error());
  }
  return status == RCACHE_STATUS_OK ? record : NULL;
}

/* The value of field `name` of `record` into `*value`; 0 when it has no such field. */
static int find_field(const rcache_session_record *record, const char *name, rcache_bytes *value) {
  size_t i, count = rcache_session_record_field_count(record);
  for (i = 0; i < count; i++) {
    rcache_bytes field_name, field_value;
    if (rcache_session_record_field(record, i, &field_name, &field_value) != RCACHE_STATUS_OK) {
      return 0;
    }
    if (field_name.len == strlen(name) && memcmp(field_name.data, name, field_name.len) == 0) {
      *value = field_value;
      return 1;
    }
  }
  return 0;
}

/* Field `index` of `record` is `name` = `value` (`value_len` bytes). */
static int check_field(const char *file, int line, const rcache_session_record *record,
                       size_t index, const char *name, const void *value, size_t value_len) {
  rcache_bytes field_name = {NULL, 0}, field_value = {NULL, 0};
  rcache_status status = rcache_session_record_field(record, index, &field_name, &field_value);
  int ok = status == RCACHE_STATUS_OK && field_name.len == strlen(name) &&
           memcmp(field_name.data, name, field_name.len) == 0 && field_value.len == value_len &&
           (value_len == 0 || memcmp(field_value.data, value, value_len) == 0);
  if (!ok) {
    fprintf(stderr, "%s:%d: field %zu is %s \"%.*s\" = \"%.*s\", expected \"%s\" = \"%.*s\"\n",
            file, line, index, rcache_status_name(status), (int)field_name.len,
            field_name.data ? (const char *)field_name.data : "", (int)field_value.len,
            field_value.data ? (const char *)field_value.data : "", name, (int)value_len,
            (const char *)value);
  }
  return check_record(ok);
}
#define CHECK_FIELD(record, index, name, value) \
  check_field(__FILE__, __LINE__, (record), (index), (name), (value), strlen(value))

/* The session still holds exactly the one field `name` = `value` at `version`. */
static int check_unchanged(const char *file, int line, rcache_session_store *store,
                           const rcache_session_new *session, const char *name,
                           const char *value, uint64_t version) {
  rcache_session_record *record = peek(store, session);
  int ok = record != NULL && rcache_session_record_field_count(record) == 1 &&
           rcache_session_record_version(record) == version;
  if (!ok) {
    fprintf(stderr, "%s:%d: the session is %s, version %llu, %zu fields; expected version %llu\n",
            file, line, record ? "present" : "MISSING",
            (unsigned long long)rcache_session_record_version(record),
            rcache_session_record_field_count(record), (unsigned long long)version);
  }
  check_record(ok);
  if (ok) ok = check_field(file, line, record, 0, name, value, strlen(value));
  rcache_session_record_free(record);
  return ok;
}
#define CHECK_UNCHANGED(store, session, name, value, version) \
  check_unchanged(__FILE__, __LINE__, (store), &(session), (name), (value), (version))

/* 1 when `session` is missing (a plain load finds nothing). */
static int gone(rcache_session_store *store, const rcache_session_new *session) {
  rcache_session_record *record = peek(store, session);
  rcache_session_record_free(record);
  return record == NULL;
}

/* Polls (bounded) until `session` is gone; 1 if it went within `max_ms`. Plain loads do
 * not renew the expiry, so polling does not keep the session alive. */
static int wait_until_gone(rcache_session_store *store, const rcache_session_new *session,
                           double max_ms) {
  double start = monotonic_ms();
  while (!gone(store, session)) {
    if (monotonic_ms() - start > max_ms) return 0;
    sleep_ms(20);
  }
  return 1;
}

/* ------------------------------------------------------------------------ */

static void test_create_load_save(void) {
  rcache_bytes names[3], values[3], deleted[2];
  static const uint8_t binary[] = {'a', 0, 'b', 0xff, 0};
  rcache_session_new session, second;
  rcache_session_record *record = SENTINEL_RECORD;
  uint64_t version = SENTINEL_VERSION, before, after;

  CHECK_EQ_INT(RCACHE_SESSION_NO_SLIDE, -2);
  CHECK_STR(rcache_status_name(RCACHE_STATUS_CONFLICT), "RCACHE_STATUS_CONFLICT");

  /* Names are given out of order; the record lists them in name order. Values are bytes. */
  names[0] = text("user");
  values[0] = text("ada");
  names[1] = text("blob");
  values[1].data = binary;
  values[1].len = sizeof binary;
  names[2] = text("theme");
  values[2] = text("dark");
  before = epoch_ms();
  if (!EXPECT_OK(rcache_session_create(g_store, names, values, 3, MINUTE_MS, &session))) return;
  after = epoch_ms();
  CHECK(is_hex32(session.id));
  CHECK(is_hex32(session.secret));
  CHECK(strcmp(session.id, session.secret) != 0);
  second = create_one(g_store, "k", "v", MINUTE_MS);
  CHECK(strcmp(session.id, second.id) != 0 && strcmp(session.secret, second.secret) != 0);

  if (EXPECT_OK(rcache_session_load(g_store, ID_SECRET(session), RCACHE_SESSION_NO_SLIDE, &record))) {
    CHECK_EQ_INT(rcache_session_record_version(record), 1);
    CHECK(rcache_session_record_touched_ms(record) + 1 >= before);
    CHECK(rcache_session_record_touched_ms(record) <= after + 1);
    CHECK_EQ_INT(rcache_session_record_field_count(record), 3);
    check_field(__FILE__, __LINE__, record, 0, "blob", binary, sizeof binary);
    CHECK_FIELD(record, 1, "theme", "dark");
    CHECK_FIELD(record, 2, "user", "ada");
    rcache_session_record_free(record);
  }

  /* One save sets and deletes (deleting a missing field is fine) and bumps the version. */
  names[0] = text("cart");
  values[0] = text("3 items");
  deleted[0] = text("user");
  deleted[1] = text("never-there");
  EXPECT_OK(rcache_session_save(g_store, ID_SECRET(session), 1, names, values, 1, deleted, 2,
                                MINUTE_MS, &version));
  CHECK_EQ_INT(version, 2);

  /* A save based on version 1 is refused: nothing is saved, version_out is untouched. */
  version = SENTINEL_VERSION;
  values[0] = text("stale");
  EXPECT_ERROR(RCACHE_STATUS_CONFLICT,
               rcache_session_save(g_store, ID_SECRET(session), 1, names, values, 1, NULL, 0,
                                   MINUTE_MS, &version));
  CHECK_EQ_INT(version, SENTINEL_VERSION);
  /* ... and so is one based on a version the session has not reached. */
  EXPECT_ERROR(RCACHE_STATUS_CONFLICT,
               rcache_session_save(g_store, ID_SECRET(session), 7, names, values, 1, NULL, 0,
                                   MINUTE_MS, &version));
  CHECK_EQ_INT(version, SENTINEL_VERSION);

  record = NULL;
  if (EXPECT_OK(rcache_session_load(g_store, ID_SECRET(session), RCACHE_SESSION_NO_SLIDE, &record))) {
    CHECK_EQ_INT(rcache_session_record_version(record), 2);
    CHECK_EQ_INT(rcache_session_record_field_count(record), 3);
    check_field(__FILE__, __LINE__, record, 0, "blob", binary, sizeof binary);
    CHECK_FIELD(record, 1, "cart", "3 items");
    CHECK_FIELD(record, 2, "theme", "dark");
    rcache_session_record_free(record);
  }

  /* expected_version 0 saves over any version; version_out may be NULL; an empty save
   * still bumps the version. */
  values[0] = text("4 items");
  EXPECT_OK(rcache_session_save(g_store, ID_SECRET(session), 0, names, values, 1, NULL, 0,
                                MINUTE_MS, &version));
  CHECK_EQ_INT(version, 3);
  EXPECT_OK(rcache_session_save(g_store, ID_SECRET(session), 3, NULL, NULL, 0, NULL, 0,
                                MINUTE_MS, NULL));
  record = peek(g_store, &session);
  CHECK(record != NULL);
  if (record != NULL) {
    rcache_bytes cart = {NULL, 0};
    CHECK_EQ_INT(rcache_session_record_version(record), 4);
    CHECK(find_field(record, "cart", &cart));
    CHECK_BYTES(cart.data, cart.len, "4 items", strlen("4 items"));
    rcache_session_record_free(record);
  }

  /* A session created empty; its first save is version 2. */
  {
    rcache_session_new empty;
    if (EXPECT_OK(rcache_session_create(g_store, NULL, NULL, 0, MINUTE_MS, &empty))) {
      record = peek(g_store, &empty);
      CHECK(record != NULL);
      CHECK_EQ_INT(rcache_session_record_field_count(record), 0);
      CHECK_EQ_INT(rcache_session_record_version(record), 1);
      rcache_session_record_free(record);
      EXPECT_OK(rcache_session_save(g_store, ID_SECRET(empty), 1, names, values, 1, NULL, 0,
                                    MINUTE_MS, &version));
      CHECK_EQ_INT(version, 2);
    }
  }

  /* Destroy: gone for good; a second destroy, a save or a touch find nothing. */
  EXPECT_OK(rcache_session_destroy(g_store, ID_SECRET(second)));
  record = SENTINEL_RECORD;
  EXPECT_MISS(rcache_session_load(g_store, ID_SECRET(second), MINUTE_MS, &record));
  CHECK(record == SENTINEL_RECORD);
  EXPECT_MISS(rcache_session_destroy(g_store, ID_SECRET(second)));
  version = SENTINEL_VERSION;
  EXPECT_MISS(rcache_session_save(g_store, ID_SECRET(second), 0, names, values, 1, NULL, 0,
                                  MINUTE_MS, &version));
  CHECK_EQ_INT(version, SENTINEL_VERSION);
  EXPECT_MISS(rcache_session_touch(g_store, ID_SECRET(second), MINUTE_MS));
  EXPECT_MISS(rcache_session_load(g_store, ID_SECRET(second), RCACHE_SESSION_NO_SLIDE, &record));
  CHECK(record == SENTINEL_RECORD);
}

/* ------------------------------------------------------------------------ */

static rcache_session_new g_shared; /* the session the racing writers share */
static uint64_t g_base_version;     /* its version before they start */
static atomic_int g_conflicts;
static atomic_int g_troubles; /* anything but OK or CONFLICT, reported once each */
static atomic_int g_version_landed[WRITERS * SAVES_PER_WRITER + 1];

static void *writer(void *arg) {
  int round, attempts = 0;
  (void)arg;
  for (round = 0; round < SAVES_PER_WRITER; round++) {
    for (;;) {
      rcache_session_record *record = peek(g_store, &g_shared);
      rcache_bytes count = {NULL, 0};
      char current[32], next[32];
      rcache_bytes names[1], values[1];
      uint64_t version = 0;
      rcache_status status;
      if (record == NULL || !find_field(record, "count", &count) || count.len >= sizeof current) {
        fprintf(stderr, "writer: the session or its count field vanished\n");
        rcache_session_record_free(record);
        atomic_fetch_add(&g_troubles, 1);
        return NULL;
      }
      memcpy(current, count.data, count.len);
      current[count.len] = '\0';
      snprintf(next, sizeof next, "%ld", strtol(current, NULL, 10) + 1);
      names[0] = text("count");
      values[0] = text(next);
      status = rcache_session_save(g_store, ID_SECRET(g_shared), rcache_session_record_version(record),
                                   names, values, 1, NULL, 0, MINUTE_MS, &version);
      rcache_session_record_free(record);
      if (status == RCACHE_STATUS_OK) {
        uint64_t slot = version - g_base_version;
        if (slot >= 1 && slot <= WRITERS * SAVES_PER_WRITER) {
          atomic_fetch_add(&g_version_landed[slot], 1);
        } else {
          fprintf(stderr, "writer: a save landed at version %llu, outside the range\n",
                  (unsigned long long)version);
          atomic_fetch_add(&g_troubles, 1);
        }
        break;
      }
      if (status != RCACHE_STATUS_CONFLICT || ++attempts > 100000) {
        fprintf(stderr, "writer: save returned %s: %s\n", rcache_status_name(status),
                rcache_last_error());
        atomic_fetch_add(&g_troubles, 1);
        return NULL;
      }
      atomic_fetch_add(&g_conflicts, 1);
    }
  }
  return NULL;
}

/* 8 threads each load, increment a counter field and save with the loaded version,
 * retrying on CONFLICT, 50 times: every save lands exactly once and none is lost. */
static void test_racing_writers(void) {
  pthread_t threads[WRITERS];
  rcache_session_record *record;
  rcache_bytes count = {NULL, 0};
  int t, duplicates = 0, holes = 0;
  size_t slot;

  g_shared = create_one(g_store, "count", "0", MINUTE_MS);
  record = peek(g_store, &g_shared);
  if (!CHECK(record != NULL)) return;
  g_base_version = rcache_session_record_version(record);
  rcache_session_record_free(record);

  for (t = 0; t < WRITERS; t++) CHECK(pthread_create(&threads[t], NULL, writer, NULL) == 0);
  for (t = 0; t < WRITERS; t++) CHECK(pthread_join(threads[t], NULL) == 0);

  CHECK_EQ_INT(atomic_load(&g_troubles), 0);
  record = peek(g_store, &g_shared);
  if (!CHECK(record != NULL)) return;
  CHECK(find_field(record, "count", &count));
  CHECK_BYTES(count.data, count.len, "400", 3);
  CHECK_EQ_INT(rcache_session_record_version(record), g_base_version + WRITERS * SAVES_PER_WRITER);
  rcache_session_record_free(record);
  /* Each new version was handed to exactly one save. */
  for (slot = 1; slot <= WRITERS * SAVES_PER_WRITER; slot++) {
    int landed = atomic_load(&g_version_landed[slot]);
    if (landed > 1) duplicates++;
    if (landed == 0) holes++;
  }
  CHECK_EQ_INT(duplicates, 0);
  CHECK_EQ_INT(holes, 0);
  printf("racing writers: %d conflicts retried\n", atomic_load(&g_conflicts));
}

/* ------------------------------------------------------------------------ */

/* Every call that needs the secret finds nothing with (`id`, `secret`), writes no
 * out-parameter, and takes no lock. */
static void expect_nothing(const char *id, size_t id_len, const char *secret, size_t secret_len) {
  rcache_session_record *record = SENTINEL_RECORD;
  rcache_session_owner owner;
  rcache_bytes names[1], values[1];
  uint64_t version = SENTINEL_VERSION;
  const uint8_t *i = (const uint8_t *)id, *s = (const uint8_t *)secret;
  names[0] = text("user");
  values[0] = text("eve");
  memset(&owner, 'x', sizeof owner);

  EXPECT_MISS(rcache_session_load(g_store, i, id_len, s, secret_len, MINUTE_MS, &record));
  EXPECT_MISS(rcache_session_load(g_store, i, id_len, s, secret_len, RCACHE_SESSION_NO_SLIDE, &record));
  CHECK(record == SENTINEL_RECORD);
  EXPECT_MISS(rcache_session_save(g_store, i, id_len, s, secret_len, 0, names, values, 1, NULL, 0,
                                  MINUTE_MS, &version));
  EXPECT_MISS(rcache_session_save(g_store, i, id_len, s, secret_len, 1, names, values, 1, NULL, 0,
                                  MINUTE_MS, &version));
  CHECK_EQ_INT(version, SENTINEL_VERSION);
  EXPECT_MISS(rcache_session_touch(g_store, i, id_len, s, secret_len, MINUTE_MS));
  EXPECT_MISS(rcache_session_destroy(g_store, i, id_len, s, secret_len));
  EXPECT_MISS(rcache_session_lock(g_store, i, id_len, s, secret_len, 5000, &owner));
  CHECK(owner.token[0] == 'x' && owner.token[32] == 'x');
}

static void test_wrong_secret_and_forged_id(void) {
  rcache_session_new session, other;
  rcache_session_owner owner;
  char wrong[40];
  double created;

  created = monotonic_ms();
  session = create_one(g_store, "user", "ada", 1000);
  other = create_one(g_store, "user", "bob", MINUTE_MS);

  /* A forged secret, an empty one (NULL or ""), a truncated one, one with a byte
   * appended, one with its last character changed, and another session's secret. */
  expect_nothing(session.id, strlen(session.id), FORGED, strlen(FORGED));
  expect_nothing(session.id, strlen(session.id), NULL, 0);
  expect_nothing(session.id, strlen(session.id), "", 0);
  expect_nothing(session.id, strlen(session.id), session.secret, 31);
  snprintf(wrong, sizeof wrong, "%s0", session.secret);
  expect_nothing(session.id, strlen(session.id), wrong, 33);
  memcpy(wrong, session.secret, 33);
  wrong[31] = wrong[31] == '0' ? '1' : '0';
  expect_nothing(session.id, strlen(session.id), wrong, 32);
  expect_nothing(session.id, strlen(session.id), other.secret, strlen(other.secret));
  /* The right secret with a forged id, another session's id, or a truncated id. */
  expect_nothing(FORGED, strlen(FORGED), session.secret, strlen(session.secret));
  expect_nothing(other.id, strlen(other.id), session.secret, strlen(session.secret));
  expect_nothing(session.id, 31, session.secret, strlen(session.secret));

  /* Nothing changed: same field, version 1, and no lock was taken. */
  CHECK_UNCHANGED(g_store, session, "user", "ada", 1);
  CHECK_UNCHANGED(g_store, other, "user", "bob", 1);
  if (EXPECT_OK(rcache_session_lock(g_store, ID_SECRET(session), 5000, &owner))) {
    EXPECT_OK(rcache_session_unlock(g_store, STR(session.id), owner.token));
  }
  /* No forged touch or sliding load renewed it: it expires on time (1 s). */
  CHECK(wait_until_gone(g_store, &session, 3000));
  CHECK(monotonic_ms() - created < 3000);
  CHECK_UNCHANGED(g_store, other, "user", "bob", 1);
}

/* ------------------------------------------------------------------------ */

static void test_lock(void) {
  rcache_session_new session = create_one(g_store, "user", "ada", MINUTE_MS);
  rcache_session_new other = create_one(g_store, "user", "bob", MINUTE_MS);
  rcache_session_owner owner, again, other_owner;
  rcache_session_record *record = NULL;
  double start, elapsed;

  if (!EXPECT_OK(rcache_session_lock(g_store, ID_SECRET(session), 5000, &owner))) return;
  CHECK(is_hex32(owner.token));

  /* Held: a second lock is refused and writes no token. */
  memset(&again, 'x', sizeof again);
  EXPECT_ERROR(RCACHE_STATUS_CONFLICT, rcache_session_lock(g_store, ID_SECRET(session), 5000, &again));
  CHECK(again.token[0] == 'x' && again.token[32] == 'x');

  /* A load while the lock is held returns at once (the lease is 5 s). */
  start = monotonic_ms();
  CHECK(EXPECT_OK(rcache_session_load(g_store, ID_SECRET(session), MINUTE_MS, &record)) &&
        rcache_session_record_version(record) == 1);
  elapsed = monotonic_ms() - start;
  rcache_session_record_free(record);
  if (!CHECK(elapsed < 500.0)) fprintf(stderr, "    the load took %.0f ms\n", elapsed);

  /* The lock is per session: another session locks freely. */
  if (EXPECT_OK(rcache_session_lock(g_store, ID_SECRET(other), 5000, &other_owner))) {
    CHECK(strcmp(other_owner.token, owner.token) != 0);
    /* A token unlocks only its own session. */
    EXPECT_MISS(rcache_session_unlock(g_store, STR(session.id), other_owner.token));
    EXPECT_MISS(rcache_session_unlock(g_store, STR(other.id), owner.token));
    EXPECT_OK(rcache_session_unlock(g_store, STR(other.id), other_owner.token));
  }

  /* Only the owner unlocks. */
  EXPECT_MISS(rcache_session_unlock(g_store, STR(session.id), "not the owner"));
  EXPECT_MISS(rcache_session_unlock(g_store, STR(session.id), FORGED));
  EXPECT_MISS(rcache_session_unlock(g_store, STR(session.id), ""));
  EXPECT_ERROR(RCACHE_STATUS_CONFLICT, rcache_session_lock(g_store, ID_SECRET(session), 5000, &again));
  EXPECT_OK(rcache_session_unlock(g_store, STR(session.id), owner.token));
  EXPECT_MISS(rcache_session_unlock(g_store, STR(session.id), owner.token));

  /* Free again: a new owner gets a new token. */
  if (EXPECT_OK(rcache_session_lock(g_store, ID_SECRET(session), 5000, &again))) {
    CHECK(is_hex32(again.token));
    CHECK(strcmp(again.token, owner.token) != 0);
    EXPECT_OK(rcache_session_unlock(g_store, STR(session.id), again.token));
  }

  /* A lease runs out by itself (bounded polling). */
  if (EXPECT_OK(rcache_session_lock(g_store, ID_SECRET(session), 150, &owner))) {
    int freed = 0;
    rcache_status status = RCACHE_STATUS_CONFLICT;
    start = monotonic_ms();
    while (monotonic_ms() - start < 3000) {
      status = rcache_session_lock(g_store, ID_SECRET(session), 5000, &again);
      if (status == RCACHE_STATUS_OK) {
        freed = 1;
        break;
      }
      if (status != RCACHE_STATUS_CONFLICT) break;
      sleep_ms(25);
    }
    if (!CHECK(freed)) fprintf(stderr, "    last lock: %s\n", rcache_status_name(status));
    if (freed) {
      EXPECT_MISS(rcache_session_unlock(g_store, STR(session.id), owner.token));
      EXPECT_OK(rcache_session_unlock(g_store, STR(session.id), again.token));
    }
  }

  /* A destroyed session cannot be locked. */
  EXPECT_OK(rcache_session_destroy(g_store, ID_SECRET(other)));
  EXPECT_MISS(rcache_session_lock(g_store, ID_SECRET(other), 5000, &again));
}

/* ------------------------------------------------------------------------ */

static void test_sliding_expiry(void) {
  const int64_t short_ttl = 400;
  rcache_session_new session = create_one(g_store, "k", "v", short_ttl);
  rcache_session_record *record = NULL;
  rcache_bytes names[1], values[1];
  uint64_t touched = 0, version = SENTINEL_VERSION;
  int i;

  record = peek(g_store, &session);
  touched = rcache_session_record_touched_ms(record);
  rcache_session_record_free(record);

  /* 4 x 200 ms of touches: twice the TTL, alive throughout; each touch moves touched_ms. */
  for (i = 0; i < 4; i++) {
    sleep_ms(200);
    EXPECT_OK(rcache_session_touch(g_store, ID_SECRET(session), short_ttl));
    record = peek(g_store, &session);
    if (!CHECK(record != NULL)) return;
    CHECK(rcache_session_record_touched_ms(record) >= touched + 150);
    touched = rcache_session_record_touched_ms(record);
    rcache_session_record_free(record);
  }
  /* 4 x 200 ms of sliding loads. */
  for (i = 0; i < 4; i++) {
    sleep_ms(200);
    record = NULL;
    if (!EXPECT_OK(rcache_session_load(g_store, ID_SECRET(session), short_ttl, &record))) return;
    CHECK_EQ_INT(rcache_session_record_field_count(record), 1);
    rcache_session_record_free(record);
  }
  /* A plain load leaves touched_ms alone. */
  record = peek(g_store, &session);
  touched = rcache_session_record_touched_ms(record);
  rcache_session_record_free(record);
  sleep_ms(50);
  record = peek(g_store, &session);
  CHECK_EQ_INT(rcache_session_record_touched_ms(record), touched);
  rcache_session_record_free(record);

  /* Plain loads renew nothing: it expires (polling every 20 ms, at most 3 s). */
  CHECK(wait_until_gone(g_store, &session, 3000));

  /* Expired is gone: touch, save and a sliding load do not bring it back. */
  names[0] = text("k");
  values[0] = text("back");
  EXPECT_MISS(rcache_session_touch(g_store, ID_SECRET(session), MINUTE_MS));
  EXPECT_MISS(rcache_session_save(g_store, ID_SECRET(session), 0, names, values, 1, NULL, 0,
                                  MINUTE_MS, &version));
  CHECK_EQ_INT(version, SENTINEL_VERSION);
  record = SENTINEL_RECORD;
  EXPECT_MISS(rcache_session_load(g_store, ID_SECRET(session), MINUTE_MS, &record));
  CHECK(record == SENTINEL_RECORD);

  /* A save renews the expiry too. */
  session = create_one(g_store, "k", "v", short_ttl);
  for (i = 0; i < 3; i++) {
    sleep_ms(200);
    EXPECT_OK(rcache_session_save(g_store, ID_SECRET(session), 0, names, values, 1, NULL, 0,
                                  short_ttl, NULL));
  }
  CHECK_UNCHANGED(g_store, session, "k", "back", 4);
  EXPECT_OK(rcache_session_destroy(g_store, ID_SECRET(session)));
}

/* ------------------------------------------------------------------------ */

static void test_purge(void) {
  rcache_session_store *idle_store = open_store(g_client, "idle:");
  rcache_session_store *kept_store = open_store(g_client, "kept:");
  rcache_session_new idle[4], active, kept;
  rcache_session_record *record;
  uint64_t purged = SENTINEL_VERSION;
  int i;

  for (i = 0; i < 4; i++) idle[i] = create_one(idle_store, "k", "v", MINUTE_MS);
  kept = create_one(kept_store, "k", "v", MINUTE_MS);
  sleep_ms(300);
  /* Activity after the pause: a new session, a touch, a save. A plain load is not activity. */
  active = create_one(idle_store, "k", "v", MINUTE_MS);
  EXPECT_OK(rcache_session_touch(idle_store, ID_SECRET(idle[0]), MINUTE_MS));
  EXPECT_OK(rcache_session_save(idle_store, ID_SECRET(idle[1]), 1, NULL, NULL, 0, NULL, 0,
                                MINUTE_MS, NULL));
  record = peek(idle_store, &idle[2]);
  CHECK(record != NULL);
  rcache_session_record_free(record);

  EXPECT_OK(rcache_session_purge(idle_store, 200, &purged));
  CHECK_EQ_INT(purged, 2);
  CHECK_UNCHANGED(idle_store, idle[0], "k", "v", 1);
  CHECK_UNCHANGED(idle_store, idle[1], "k", "v", 2);
  CHECK_UNCHANGED(idle_store, active, "k", "v", 1);
  CHECK(gone(idle_store, &idle[2]));
  CHECK(gone(idle_store, &idle[3]));
  /* Another namespace's store is left alone, idle as its session is. */
  CHECK_UNCHANGED(kept_store, kept, "k", "v", 1);

  /* Nothing is idle for a minute; purged_out may be NULL. */
  purged = SENTINEL_VERSION;
  EXPECT_OK(rcache_session_purge(idle_store, MINUTE_MS, &purged));
  CHECK_EQ_INT(purged, 0);
  EXPECT_OK(rcache_session_purge(idle_store, MINUTE_MS, NULL));
  CHECK_UNCHANGED(idle_store, active, "k", "v", 1);

  /* The other namespace purges its own. */
  EXPECT_OK(rcache_session_purge(kept_store, 200, &purged));
  CHECK_EQ_INT(purged, 1);
  CHECK(gone(kept_store, &kept));
  CHECK_UNCHANGED(idle_store, active, "k", "v", 1);

  rcache_session_store_free(kept_store);
  rcache_session_store_free(idle_store);
}

/* ------------------------------------------------------------------------ */

static void test_bad_input(void) {
  const rcache_status BAD = RCACHE_STATUS_INVALID_ARGUMENT;
  rcache_session_new session = create_one(g_store, "user", "ada", MINUTE_MS);
  rcache_session_new fresh;
  rcache_session_store *store = (rcache_session_store *)&g_prefix; /* sentinel */
  rcache_session_record *record = SENTINEL_RECORD;
  rcache_session_owner owner;
  rcache_bytes names[2], values[2], deleted[1];
  uint64_t version = SENTINEL_VERSION, purged = SENTINEL_VERSION;
  static const uint8_t not_utf8[] = {0xff, 0xfe};
  size_t i;

  memset(&fresh, 'x', sizeof fresh);
  memset(&owner, 'x', sizeof owner);
  names[0] = text("ok");
  values[0] = text("v");
  values[1] = text("v");

  /* Opening a store. */
  EXPECT_ERROR(BAD, rcache_session_store_open(NULL, LIT("sess:"), &store));
  EXPECT_ERROR(BAD, rcache_session_store_open(g_client, NULL, 5, &store));
  EXPECT_ERROR(BAD, rcache_session_store_open(g_client, LIT("sess:"), NULL));
  CHECK(store == (rcache_session_store *)&g_prefix);

  /* NULL store. */
  EXPECT_ERROR(BAD, rcache_session_create(NULL, names, values, 1, MINUTE_MS, &fresh));
  EXPECT_ERROR(BAD, rcache_session_load(NULL, ID_SECRET(session), MINUTE_MS, &record));
  EXPECT_ERROR(BAD, rcache_session_save(NULL, ID_SECRET(session), 0, names, values, 1, NULL, 0,
                                        MINUTE_MS, &version));
  EXPECT_ERROR(BAD, rcache_session_touch(NULL, ID_SECRET(session), MINUTE_MS));
  EXPECT_ERROR(BAD, rcache_session_destroy(NULL, ID_SECRET(session)));
  EXPECT_ERROR(BAD, rcache_session_purge(NULL, 0, &purged));
  EXPECT_ERROR(BAD, rcache_session_lock(NULL, ID_SECRET(session), 5000, &owner));
  EXPECT_ERROR(BAD, rcache_session_unlock(NULL, STR(session.id), "owner"));

  /* NULL id or secret with a nonzero length; an empty id. */
  EXPECT_ERROR(BAD, rcache_session_load(g_store, NULL, 32, STR(session.secret), MINUTE_MS, &record));
  EXPECT_ERROR(BAD, rcache_session_load(g_store, STR(session.id), NULL, 32, MINUTE_MS, &record));
  EXPECT_ERROR(BAD, rcache_session_load(g_store, NULL, 0, STR(session.secret), MINUTE_MS, &record));
  EXPECT_ERROR(BAD, rcache_session_load(g_store, LIT(""), STR(session.secret), MINUTE_MS, &record));
  EXPECT_ERROR(BAD, rcache_session_save(g_store, NULL, 32, STR(session.secret), 0, names, values,
                                        1, NULL, 0, MINUTE_MS, &version));
  EXPECT_ERROR(BAD, rcache_session_save(g_store, STR(session.id), NULL, 32, 0, names, values, 1,
                                        NULL, 0, MINUTE_MS, &version));
  EXPECT_ERROR(BAD, rcache_session_touch(g_store, NULL, 32, STR(session.secret), MINUTE_MS));
  EXPECT_ERROR(BAD, rcache_session_touch(g_store, STR(session.id), NULL, 32, MINUTE_MS));
  EXPECT_ERROR(BAD, rcache_session_destroy(g_store, NULL, 32, STR(session.secret)));
  EXPECT_ERROR(BAD, rcache_session_destroy(g_store, STR(session.id), NULL, 32));
  EXPECT_ERROR(BAD, rcache_session_lock(g_store, NULL, 32, STR(session.secret), 5000, &owner));
  EXPECT_ERROR(BAD, rcache_session_lock(g_store, STR(session.id), NULL, 32, 5000, &owner));
  EXPECT_ERROR(BAD, rcache_session_unlock(g_store, NULL, 32, "owner"));

  /* NULL out-parameters. */
  EXPECT_ERROR(BAD, rcache_session_create(g_store, names, values, 1, MINUTE_MS, NULL));
  EXPECT_ERROR(BAD, rcache_session_load(g_store, ID_SECRET(session), MINUTE_MS, NULL));
  EXPECT_ERROR(BAD, rcache_session_lock(g_store, ID_SECRET(session), 5000, NULL));
  EXPECT_ERROR(BAD, rcache_session_unlock(g_store, STR(session.id), NULL));

  /* Zero lease. */
  EXPECT_ERROR(BAD, rcache_session_lock(g_store, ID_SECRET(session), 0, &owner));

  /* TTLs out of range: negative (other than the named ones), over RCACHE_TTL_MAX. */
  EXPECT_ERROR(BAD, rcache_session_create(g_store, names, values, 1, -5, &fresh));
  EXPECT_ERROR(BAD, rcache_session_create(g_store, names, values, 1, RCACHE_TTL_MAX + 1, &fresh));
  EXPECT_ERROR(BAD, rcache_session_load(g_store, ID_SECRET(session), -3, &record));
  EXPECT_ERROR(BAD, rcache_session_touch(g_store, ID_SECRET(session), -5));
  EXPECT_ERROR(BAD, rcache_session_save(g_store, ID_SECRET(session), 0, names, values, 1, NULL, 0,
                                        -5, &version));

  /* Field names: starting with "__", empty, not UTF-8 - in create, in a save's set and
   * in its deletions. */
  {
    rcache_bytes bad_names[4];
    bad_names[0] = text("__secret");
    bad_names[1] = text("__version");
    bad_names[2] = text("");
    bad_names[3].data = not_utf8;
    bad_names[3].len = sizeof not_utf8;
    for (i = 0; i < 4; i++) {
      names[1] = bad_names[i];
      EXPECT_ERROR(BAD, rcache_session_create(g_store, names, values, 2, MINUTE_MS, &fresh));
      EXPECT_ERROR(BAD, rcache_session_save(g_store, ID_SECRET(session), 0, names, values, 2, NULL,
                                            0, MINUTE_MS, &version));
      deleted[0] = bad_names[i];
      EXPECT_ERROR(BAD, rcache_session_save(g_store, ID_SECRET(session), 0, names, values, 1,
                                            deleted, 1, MINUTE_MS, &version));
    }
  }

  /* NULL arrays with a nonzero count; an element with NULL data and a nonzero length. */
  EXPECT_ERROR(BAD, rcache_session_create(g_store, NULL, values, 1, MINUTE_MS, &fresh));
  EXPECT_ERROR(BAD, rcache_session_create(g_store, names, NULL, 1, MINUTE_MS, &fresh));
  EXPECT_ERROR(BAD, rcache_session_save(g_store, ID_SECRET(session), 0, NULL, values, 1, NULL, 0,
                                        MINUTE_MS, &version));
  EXPECT_ERROR(BAD, rcache_session_save(g_store, ID_SECRET(session), 0, names, NULL, 1, NULL, 0,
                                        MINUTE_MS, &version));
  EXPECT_ERROR(BAD, rcache_session_save(g_store, ID_SECRET(session), 0, names, values, 1, NULL, 1,
                                        MINUTE_MS, &version));
  names[1].data = NULL;
  names[1].len = 3;
  EXPECT_ERROR(BAD, rcache_session_create(g_store, names, values, 2, MINUTE_MS, &fresh));
  EXPECT_ERROR(BAD, rcache_session_save(g_store, ID_SECRET(session), 0, names, values, 2, NULL, 0,
                                        MINUTE_MS, &version));

  /* Nothing refused wrote an out-parameter or changed the session. */
  CHECK(record == SENTINEL_RECORD);
  CHECK_EQ_INT(version, SENTINEL_VERSION);
  CHECK_EQ_INT(purged, SENTINEL_VERSION);
  CHECK(fresh.id[0] == 'x' && fresh.secret[32] == 'x');
  CHECK(owner.token[0] == 'x' && owner.token[32] == 'x');
  CHECK_UNCHANGED(g_store, session, "user", "ada", 1);
  {
    rcache_session_owner held;
    if (EXPECT_OK(rcache_session_lock(g_store, ID_SECRET(session), 5000, &held))) {
      EXPECT_OK(rcache_session_unlock(g_store, STR(session.id), held.token));
    }
  }

  /* Fields larger than the client's max_value_bytes, on a client with small limits. */
  {
    rcache_options options = rcache_options_default();
    rcache_client *small = NULL;
    static uint8_t big[2048];
    options.key_prefix = g_prefix;
    options.max_value_bytes = 1024;
    if (EXPECT_OK(rcache_client_connect(g_url, &options, &small))) {
      rcache_session_store *small_store = open_store(small, "small:");
      values[0].data = big;
      values[0].len = sizeof big;
      names[0] = text("data");
      EXPECT_ERROR(RCACHE_STATUS_TOO_LARGE,
                   rcache_session_create(small_store, names, values, 1, MINUTE_MS, &fresh));
      CHECK(fresh.id[0] == 'x');
      rcache_session_store_free(small_store);
      rcache_client_free(small);
    }
  }
}

/* ------------------------------------------------------------------------ */

static void test_record_accessors_and_frees(void) {
  rcache_session_new session = create_one(g_store, "only", "field", MINUTE_MS);
  rcache_session_record *record = peek(g_store, &session);
  rcache_bytes name = {NULL, 7}, value = {NULL, 7};

  /* NULL records read as empty; reading a field of one is refused. */
  CHECK_EQ_INT(rcache_session_record_version(NULL), 0);
  CHECK_EQ_INT(rcache_session_record_touched_ms(NULL), 0);
  CHECK_EQ_INT(rcache_session_record_field_count(NULL), 0);
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_session_record_field(NULL, 0, &name, &value));
  CHECK(name.data == NULL && name.len == 7 && value.data == NULL && value.len == 7);

  if (CHECK(record != NULL)) {
    EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_session_record_field(record, 0, NULL, &value));
    EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_session_record_field(record, 0, &name, NULL));
    EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_session_record_field(record, 1, &name, &value));
    EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT,
                 rcache_session_record_field(record, (size_t)-1, &name, &value));
    CHECK(name.data == NULL && name.len == 7 && value.data == NULL && value.len == 7);
    CHECK_FIELD(record, 0, "only", "field");
    /* The record is a snapshot: destroying the session does not change it. */
    EXPECT_OK(rcache_session_destroy(g_store, ID_SECRET(session)));
    CHECK_FIELD(record, 0, "only", "field");
    rcache_session_record_free(record);
  }

  /* NULL frees are no-ops. */
  rcache_session_record_free(NULL);
  rcache_session_store_free(NULL);
}

/* The store holds its client's engine by reference: freeing the client first is safe,
 * and the store keeps working until it is freed itself (ASan checks the memory). */
static void test_store_outlives_its_client(void) {
  rcache_options options = rcache_options_default();
  rcache_client *client = NULL;
  rcache_session_store *store;
  rcache_session_record *record = NULL;
  rcache_session_new session;

  options.key_prefix = g_prefix;
  if (!EXPECT_OK(rcache_client_connect(g_url, &options, &client))) return;
  store = open_store(client, "order:");
  session = create_one(store, "user", "ada", MINUTE_MS);
  rcache_client_free(client);
  if (EXPECT_OK(rcache_session_load(store, ID_SECRET(session), RCACHE_SESSION_NO_SLIDE, &record))) {
    CHECK_FIELD(record, 0, "user", "ada");
    rcache_session_record_free(record);
  }
  EXPECT_OK(rcache_session_destroy(store, ID_SECRET(session)));
  rcache_session_store_free(store);
}

int main(int argc, char **argv) {
  rcache_options options = rcache_options_default();

  if (argc != 2) {
    fprintf(stderr, "usage: %s URL\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  alarm(120);
  g_url = argv[1];
  printf("test_session against %s\n", g_url);
  snprintf(g_prefix, sizeof g_prefix, "test_session:%ld:", (long)getpid());
  options.key_prefix = g_prefix;
  if (!EXPECT_OK(rcache_client_connect(g_url, &options, &g_client))) return check_summary();
  g_store = open_store(g_client, "sess:");

  test_create_load_save();
  test_racing_writers();
  test_wrong_secret_and_forged_id();
  test_lock();
  test_sliding_expiry();
  test_purge();
  test_bad_input();
  test_record_accessors_and_frees();
  test_store_outlives_its_client();

  rcache_session_store_free(g_store);
  rcache_client_free(g_client);
  return check_summary();
}
