/*
 * The completion queue: calls submitted without blocking, results collected
 * when the queue's descriptor becomes readable.
 *
 *   test_queue URL
 *
 * Thousands of calls in flight, waited for with poll() and with edge-triggered
 * epoll, each result matched to its token; misses, tags, deletes and sessions;
 * bad input refused at submission or reported in the completion; a queue
 * that outlives its client; a queue freed with calls pending; a queue
 * inherited through fork().
 */
#define _GNU_SOURCE

#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "rcache.h"

#define LIT(text) (const uint8_t *)(text), (sizeof(text) - 1)
#define CALLS 2000
#define NS "sess:"

static const char *g_url;
static char g_prefix[64];

/* Whether the descriptor is readable now, without waiting. */
static int readable(int fd) {
  struct pollfd watch = {fd, POLLIN, 0};
  return poll(&watch, 1, 0) == 1 && (watch.revents & POLLIN);
}

/* Collects `count` completions into `out` (indexed by token), waiting on the
 * descriptor with poll(); 0 if they did not all arrive within 10 s. */
static int collect(rcache_queue *queue, rcache_completion *out, size_t count) {
  size_t got = 0;
  int fd = rcache_queue_fd(queue);
  while (got < count) {
    struct pollfd watch = {fd, POLLIN, 0};
    rcache_completion batch[64];
    size_t n = 0;
    if (!CHECK(poll(&watch, 1, 10000) == 1)) return 0;
    if (!EXPECT_OK(rcache_queue_poll(queue, batch, 64, &n))) return 0;
    for (size_t i = 0; i < n; i++) {
      if (!CHECK(batch[i].token < count)) return 0;
      out[batch[i].token] = batch[i];
    }
    got += n;
  }
  /* Everything collected: the descriptor is quiet again. */
  CHECK(!readable(fd));
  return 1;
}

/* The next completion, waited for (the only call in flight). */
static rcache_completion one(rcache_queue *queue) {
  rcache_completion completion;
  size_t n = 0;
  struct pollfd watch = {rcache_queue_fd(queue), POLLIN, 0};
  memset(&completion, 0, sizeof completion);
  completion.status = RCACHE_STATUS_PANIC;
  if (CHECK(poll(&watch, 1, 10000) == 1)) {
    EXPECT_OK(rcache_queue_poll(queue, &completion, 1, &n));
    CHECK_EQ_INT(n, 1);
  }
  return completion;
}

static void many_calls_in_flight_come_back_matched_to_their_tokens(rcache_client *client) {
  static rcache_completion results[CALLS];
  static char keys[CALLS][32], values[CALLS][32];
  rcache_queue *queue = NULL;
  int all_set = 1, all_read = 1;

  if (!EXPECT_OK(rcache_queue_new(client, 0, &queue))) return;
  CHECK(!readable(rcache_queue_fd(queue)));
  for (int i = 0; i < CALLS; i++) {
    snprintf(keys[i], sizeof keys[i], "q:%d", i);
    snprintf(values[i], sizeof values[i], "value %d", i * 7);
    EXPECT_OK(rcache_queue_submit_set(queue, (uint64_t)i, (const uint8_t *)keys[i], strlen(keys[i]),
                                      (const uint8_t *)values[i], strlen(values[i]), 60000));
  }
  memset(results, 0, sizeof results);
  if (collect(queue, results, CALLS)) {
    for (int i = 0; i < CALLS; i++) all_set &= results[i].status == RCACHE_STATUS_OK;
  }
  CHECK(all_set);

  /* Gets submitted in reverse order, waited for with edge-triggered epoll. */
  for (int i = CALLS - 1; i >= 0; i--) {
    EXPECT_OK(rcache_queue_submit_get(queue, (uint64_t)i, (const uint8_t *)keys[i], strlen(keys[i])));
  }
  memset(results, 0, sizeof results);
  {
    int epoll = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event watch = {EPOLLIN | EPOLLET, {.u64 = 7}}, event;
    size_t got = 0;
    CHECK(epoll_ctl(epoll, EPOLL_CTL_ADD, rcache_queue_fd(queue), &watch) == 0);
    while (got < CALLS) {
      rcache_completion batch[100];
      size_t n = 0;
      if (!CHECK(epoll_wait(epoll, &event, 1, 10000) == 1)) break;
      CHECK(event.data.u64 == 7);
      /* Edge-triggered: drain until empty, as such loops must. */
      do {
        if (!EXPECT_OK(rcache_queue_poll(queue, batch, 100, &n))) break;
        for (size_t i = 0; i < n; i++) {
          if (batch[i].token < CALLS) results[batch[i].token] = batch[i];
        }
        got += n;
      } while (n > 0);
    }
    close(epoll);
  }
  for (int i = 0; i < CALLS; i++) {
    rcache_completion *result = &results[i];
    all_read &= result->token == (uint64_t)i && result->status == RCACHE_STATUS_OK &&
                result->value.len == strlen(values[i]) &&
                memcmp(result->value.data, values[i], result->value.len) == 0 && result->message == NULL;
    rcache_completion_free(result);
    all_read &= result->value.data == NULL;
  }
  CHECK(all_read);
  rcache_queue_free(queue);
}

static void misses_tags_and_deletes(rcache_client *client) {
  rcache_queue *queue = NULL;
  rcache_completion done;
  rcache_bytes tags[2] = {{LIT("qt:a")}, {LIT("qt:b")}};

  if (!EXPECT_OK(rcache_queue_new(client, 2, &queue))) return;
  EXPECT_OK(rcache_queue_submit_get(queue, 0, LIT("q:missing")));
  done = one(queue);
  EXPECT_MISS(done.status);
  CHECK(done.value.data == NULL && done.message == NULL && done.record == NULL);
  rcache_completion_free(&done);

  EXPECT_OK(rcache_queue_submit_set_tagged(queue, 0, LIT("q:tagged"), LIT("tagged value"), 60000, tags, 2));
  EXPECT_OK(one(queue).status);
  EXPECT_OK(rcache_queue_submit_get(queue, 0, LIT("q:tagged")));
  done = one(queue);
  if (EXPECT_OK(done.status)) CHECK_BYTES(done.value.data, done.value.len, "tagged value", 12);
  rcache_completion_free(&done);
  EXPECT_OK(rcache_queue_submit_invalidate_tags(queue, 0, &tags[1], 1));
  EXPECT_OK(one(queue).status);
  EXPECT_OK(rcache_queue_submit_get(queue, 0, LIT("q:tagged")));
  EXPECT_MISS(one(queue).status);

  EXPECT_OK(rcache_queue_submit_set(queue, 0, LIT("q:gone"), LIT("x"), RCACHE_TTL_NONE));
  EXPECT_OK(one(queue).status);
  EXPECT_OK(rcache_queue_submit_delete(queue, 0, LIT("q:gone")));
  EXPECT_OK(one(queue).status);
  EXPECT_OK(rcache_queue_submit_delete(queue, 0, LIT("q:gone")));
  EXPECT_MISS(one(queue).status);
  rcache_queue_free(queue);
}

static void sessions(rcache_client *client) {
  rcache_queue *queue = NULL;
  rcache_completion done;
  rcache_bytes names[1] = {{LIT("user")}}, values[1] = {{LIT("ada")}};
  rcache_bytes new_values[1] = {{LIT("grace")}};
  char id[33], secret[33];
  uint64_t version;

  if (!EXPECT_OK(rcache_queue_new(client, 1, &queue))) return;
  EXPECT_OK(rcache_queue_submit_session_create(queue, 1, LIT(NS), names, values, 1, 60000));
  done = one(queue);
  if (!EXPECT_OK(done.status)) return;
  CHECK_EQ_INT(strlen(done.session.id), 32);
  memcpy(id, done.session.id, 33);
  memcpy(secret, done.session.secret, 33);

  EXPECT_OK(rcache_queue_submit_session_load(queue, 2, LIT(NS), (const uint8_t *)id, 32,
                                             (const uint8_t *)secret, 32, RCACHE_SESSION_NO_SLIDE));
  done = one(queue);
  if (EXPECT_OK(done.status) && CHECK(done.record != NULL)) {
    rcache_bytes name, value;
    CHECK_EQ_INT(rcache_session_record_field_count(done.record), 1);
    EXPECT_OK(rcache_session_record_field(done.record, 0, &name, &value));
    CHECK_BYTES(value.data, value.len, "ada", 3);
  }
  version = rcache_session_record_version(done.record);
  rcache_completion_free(&done);
  CHECK(done.record == NULL);

  EXPECT_OK(rcache_queue_submit_session_save(queue, 3, LIT(NS), (const uint8_t *)id, 32, (const uint8_t *)secret,
                                             32, version, names, new_values, 1, NULL, 0, 60000));
  done = one(queue);
  EXPECT_OK(done.status);
  CHECK(done.version > version);
  /* A save based on the old version now conflicts, and says why. */
  EXPECT_OK(rcache_queue_submit_session_save(queue, 4, LIT(NS), (const uint8_t *)id, 32, (const uint8_t *)secret,
                                             32, version, names, values, 1, NULL, 0, 60000));
  done = one(queue);
  EXPECT_STATUS(RCACHE_STATUS_CONFLICT, done.status);
  CHECK(done.message != NULL && strstr(done.message, "version") != NULL);
  rcache_completion_free(&done);
  CHECK(done.message == NULL);

  EXPECT_OK(rcache_queue_submit_session_destroy(queue, 5, LIT(NS), (const uint8_t *)id, 32, (const uint8_t *)secret, 32));
  EXPECT_OK(one(queue).status);
  EXPECT_OK(rcache_queue_submit_session_load(queue, 6, LIT(NS), (const uint8_t *)id, 32,
                                             (const uint8_t *)secret, 32, RCACHE_SESSION_NO_SLIDE));
  EXPECT_MISS(one(queue).status);
  rcache_queue_free(queue);
}

static void bad_input(rcache_client *client) {
  const rcache_status INVALID = RCACHE_STATUS_INVALID_ARGUMENT;
  rcache_queue *queue = (rcache_queue *)&g_prefix; /* sentinel: untouched on failure */
  rcache_completion done, batch[1];
  size_t count = 99;

  EXPECT_ERROR(INVALID, rcache_queue_new(NULL, 0, &queue));
  EXPECT_ERROR(INVALID, rcache_queue_new(client, 0, NULL));
  EXPECT_ERROR(INVALID, rcache_queue_new(client, RCACHE_QUEUE_MAX_WORKERS + 1, &queue));
  CHECK(queue == (rcache_queue *)&g_prefix);
  CHECK_EQ_INT(rcache_queue_fd(NULL), -1);
  EXPECT_ERROR(INVALID, rcache_queue_poll(NULL, batch, 1, &count));
  EXPECT_ERROR(INVALID, rcache_queue_submit_get(NULL, 0, LIT("k")));
  rcache_queue_free(NULL);
  rcache_completion_free(NULL);

  if (!EXPECT_OK(rcache_queue_new(client, 1, &queue))) return;
  EXPECT_ERROR(INVALID, rcache_queue_poll(queue, NULL, 1, &count));
  EXPECT_ERROR(INVALID, rcache_queue_poll(queue, batch, 1, NULL));
  EXPECT_OK(rcache_queue_poll(queue, NULL, 0, &count));
  CHECK_EQ_INT(count, 0);
  /* Refused at submission: nothing is queued. */
  EXPECT_ERROR(INVALID, rcache_queue_submit_get(queue, 1, NULL, 3));
  EXPECT_ERROR(INVALID, rcache_queue_submit_set(queue, 1, LIT("k"), NULL, 5, RCACHE_TTL_NONE));
  EXPECT_ERROR(INVALID, rcache_queue_submit_set(queue, 1, LIT("k"), LIT("v"), -5));
  EXPECT_ERROR(INVALID, rcache_queue_submit_set_tagged(queue, 1, LIT("k"), LIT("v"), 1000, NULL, 2));
  EXPECT_ERROR(INVALID, rcache_queue_submit_invalidate_tags(queue, 1, NULL, 1));
  EXPECT_ERROR(INVALID, rcache_queue_submit_delete(queue, 1, NULL, 1));
  EXPECT_ERROR(INVALID, rcache_queue_submit_session_create(queue, 1, LIT(NS), NULL, NULL, 1, 1000));
  EXPECT_ERROR(INVALID, rcache_queue_submit_session_load(queue, 1, LIT(NS), NULL, 32, LIT("s"), -7));
  EXPECT_ERROR(INVALID, rcache_queue_submit_session_save(queue, 1, LIT(NS), LIT("i"), LIT("s"), 0, NULL, NULL, 0,
                                                         NULL, 3, 1000));
  EXPECT_ERROR(INVALID, rcache_queue_submit_session_destroy(queue, 1, NULL, 4, LIT("i"), LIT("s")));
  sleep_ms(50);
  CHECK(!readable(rcache_queue_fd(queue)));

  /* Refused by the engine: the completion carries the status and the reason. */
  EXPECT_OK(rcache_queue_submit_set(queue, 42, (const uint8_t *)"", 0, LIT("v"), RCACHE_TTL_NONE));
  done = one(queue);
  CHECK_EQ_INT(done.token, 42);
  EXPECT_STATUS(INVALID, done.status);
  CHECK(done.message != NULL && done.message[0] != '\0');
  rcache_completion_free(&done);
  EXPECT_OK(rcache_queue_submit_get(queue, 43, LIT("__rcache_tag:x")));
  done = one(queue);
  EXPECT_STATUS(INVALID, done.status);
  rcache_completion_free(&done);
  rcache_queue_free(queue);
}

static void a_queue_outlives_its_client(void) {
  rcache_client *client = OPEN_CLIENT(g_url, g_prefix);
  rcache_queue *queue = NULL;
  rcache_completion done;
  if (client == NULL || !EXPECT_OK(rcache_queue_new(client, 2, &queue))) return;
  rcache_client_free(client);
  EXPECT_OK(rcache_queue_submit_set(queue, 1, LIT("q:outlives"), LIT("still here"), 60000));
  EXPECT_OK(one(queue).status);
  EXPECT_OK(rcache_queue_submit_get(queue, 2, LIT("q:outlives")));
  done = one(queue);
  if (EXPECT_OK(done.status)) CHECK_BYTES(done.value.data, done.value.len, "still here", 10);
  rcache_completion_free(&done);
  rcache_queue_free(queue);
}

static void freeing_a_queue_with_calls_pending(rcache_client *client) {
  static char keys[CALLS][32];
  rcache_queue *queue = NULL;
  rcache_buffer out = {NULL, 0};
  if (!EXPECT_OK(rcache_queue_new(client, 4, &queue))) return;
  for (int i = 0; i < CALLS; i++) {
    snprintf(keys[i], sizeof keys[i], "q:pending:%d", i);
    EXPECT_OK(rcache_queue_submit_set(queue, (uint64_t)i, (const uint8_t *)keys[i], strlen(keys[i]), LIT("x"),
                                      60000));
  }
  /* Some results waiting, some calls running, most not started. */
  sleep_ms(5);
  rcache_queue_free(queue);
  /* The client is unaffected, and the queue's workers wind down on their own. */
  EXPECT_OK(rcache_client_set(client, LIT("q:after"), LIT("fine"), 60000));
  if (EXPECT_OK(rcache_client_get(client, LIT("q:after"), &out))) CHECK_BYTES(out.data, out.len, "fine", 4);
  rcache_buffer_free(&out);
  sleep_ms(200);
}

static void a_queue_inherited_through_fork_refuses_everything(rcache_client *client) {
  rcache_queue *queue = NULL;
  pid_t pid;
  int status = 0;
  if (!EXPECT_OK(rcache_queue_new(client, 2, &queue))) return;
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  if (pid == 0) {
    rcache_completion batch[1];
    size_t count = 0;
    int ok;
    alarm(10);
    ok = rcache_queue_submit_get(queue, 1, LIT("k")) == RCACHE_STATUS_FORKED &&
         rcache_queue_poll(queue, batch, 1, &count) == RCACHE_STATUS_FORKED && rcache_queue_fd(queue) == -1;
    rcache_queue_free(queue);
    _exit(ok ? 0 : 1);
  }
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  /* The parent's queue still works. */
  EXPECT_OK(rcache_queue_submit_get(queue, 1, LIT("q:missing")));
  EXPECT_MISS(one(queue).status);
  rcache_queue_free(queue);
}

int main(int argc, char **argv) {
  rcache_client *client;
  if (argc != 2) {
    fprintf(stderr, "usage: %s URL\n", argv[0]);
    return 2;
  }
  g_url = argv[1];
  snprintf(g_prefix, sizeof g_prefix, "test_queue:%ld:", (long)getpid());
  client = OPEN_CLIENT(g_url, g_prefix);
  if (client == NULL) return check_summary();

  many_calls_in_flight_come_back_matched_to_their_tokens(client);
  misses_tags_and_deletes(client);
  sessions(client);
  bad_input(client);
  a_queue_outlives_its_client();
  freeing_a_queue_with_calls_pending(client);
  a_queue_inherited_through_fork_refuses_everything(client);

  rcache_client_clear(client, NULL, 0, NULL);
  rcache_client_free(client);
  return check_summary();
}
