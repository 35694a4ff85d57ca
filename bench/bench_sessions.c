/*
 * Session throughput from C against a Redis server, beside raw get/set in the
 * same run (not a test: prints figures).
 *
 *   bench_sessions URL
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rcache.h"

#define SECONDS 1.0

static rcache_client *client;
static rcache_session_store *store;
static rcache_session_new session;
static uint64_t version = 1;
static const uint8_t value[100] = {0};

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int raw_get(void) {
  rcache_buffer buffer;
  rcache_status status = rcache_client_get(client, (const uint8_t *)"raw", 3, &buffer);
  if (status == RCACHE_STATUS_OK) rcache_buffer_free(&buffer);
  return status == RCACHE_STATUS_OK;
}

static int raw_set(void) {
  return rcache_client_set(client, (const uint8_t *)"raw", 3, value, sizeof value, 3600000) == RCACHE_STATUS_OK;
}

static int create(void) {
  rcache_bytes name = {(const uint8_t *)"session_data", 12}, data = {value, sizeof value};
  rcache_session_new created;
  return rcache_session_create(store, &name, &data, 1, 60000, &created) == RCACHE_STATUS_OK;
}

static int load(void) {
  rcache_session_record *record = NULL;
  rcache_status status = rcache_session_load(store, (const uint8_t *)session.id, 32, (const uint8_t *)session.secret, 32,
                                             RCACHE_SESSION_NO_SLIDE, &record);
  rcache_session_record_free(record);
  return status == RCACHE_STATUS_OK;
}

static int save(void) {
  rcache_bytes name = {(const uint8_t *)"session_data", 12}, data = {value, sizeof value};
  return rcache_session_save(store, (const uint8_t *)session.id, 32, (const uint8_t *)session.secret, 32, version, &name,
                             &data, 1, NULL, 0, 3600000, &version) == RCACHE_STATUS_OK;
}

static void measure(const char *name, int (*operation)(void)) {
  double started = now(), elapsed;
  long count = 0;
  while ((elapsed = now() - started) < SECONDS) {
    if (!operation()) {
      fprintf(stderr, "%s failed: %s\n", name, rcache_last_error());
      return;
    }
    count++;
  }
  printf("| %s | %.0f |\n", name, (double)count / elapsed);
}

int main(int argc, char **argv) {
  rcache_options options = rcache_options_default();
  if (argc != 2) {
    fprintf(stderr, "usage: %s URL\n", argv[0]);
    return 2;
  }
  options.key_prefix = "bench-sessions-c:";
  if (rcache_client_connect(argv[1], &options, &client) != RCACHE_STATUS_OK ||
      rcache_session_store_open(client, (const uint8_t *)"sess:", 5, &store) != RCACHE_STATUS_OK) {
    fprintf(stderr, "bench_sessions: %s\n", rcache_last_error());
    return 1;
  }
  raw_set();
  create();
  {
    rcache_bytes name = {(const uint8_t *)"session_data", 12}, data = {value, sizeof value};
    rcache_session_create(store, &name, &data, 1, 3600000, &session);
  }
  printf("## Sessions from C, 1 thread (%s)\n\n| operation | ops/s |\n|---|---:|\n", argv[1]);
  measure("raw get (100 B)", raw_get);
  measure("raw set (100 B)", raw_set);
  measure("session create", create);
  measure("session load", load);
  measure("session save (versioned)", save);
  rcache_client_clear(client, NULL, 0, NULL);
  rcache_session_store_free(store);
  rcache_client_free(client);
  return 0;
}
