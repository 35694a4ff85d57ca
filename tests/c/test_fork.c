/*
 * A handle across fork().
 *
 *   test_fork URL
 *
 * The parent creates and uses a client, then forks. In the child every call
 * on the inherited handle returns RCACHE_STATUS_FORKED at once (alarm()
 * turns a hang into a failure), freeing it is safe, and a client created in
 * the child works. The child sends its pass/fail counts to the parent through
 * a pipe, so the one summary line covers both processes. The parent's client
 * keeps working after the child is gone.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "rcache.h"

#define LIT(text) (const uint8_t *)(text), (sizeof(text) - 1)

static const char *g_url;
static char g_prefix[64];

static int has_value(rcache_client *client, const uint8_t *key, size_t key_len, const char *value) {
  rcache_buffer out = {NULL, 0};
  int ok = rcache_client_get(client, key, key_len, &out) == RCACHE_STATUS_OK &&
           out.len == strlen(value) && memcmp(out.data, value, out.len) == 0;
  rcache_buffer_free(&out);
  return ok;
}

/* In the child: the inherited handle refuses everything, a new one works. */
static void child(rcache_client *inherited) {
  uint8_t sentinel_byte = 0;
  const rcache_buffer sentinel = {&sentinel_byte, 99};
  rcache_buffer out = sentinel, many[1] = {sentinel};
  rcache_bytes keys[1] = {{(const uint8_t *)"fork:k", 6}};
  rcache_bytes values[1] = {{(const uint8_t *)"v", 1}};
  int64_t number = 12345;
  const rcache_status FORKED = RCACHE_STATUS_FORKED;
  rcache_client *fresh;
  double start = now_ms();

  alarm(10); /* a call that hangs on the parent's I/O thread would never return */

  EXPECT_ERROR(FORKED, rcache_client_get(inherited, LIT("fork:k"), &out));
  CHECK(out.data == sentinel.data && out.len == sentinel.len);
  EXPECT_ERROR(FORKED, rcache_client_set(inherited, LIT("fork:k"), LIT("child"), RCACHE_TTL_NONE));
  EXPECT_ERROR(FORKED, rcache_client_delete(inherited, LIT("fork:k")));
  EXPECT_ERROR(FORKED, rcache_client_exists(inherited, LIT("fork:k")));
  EXPECT_ERROR(FORKED, rcache_client_ttl(inherited, LIT("fork:k"), &number));
  EXPECT_ERROR(FORKED, rcache_client_expire(inherited, LIT("fork:k"), 1000));
  EXPECT_ERROR(FORKED, rcache_client_get_many(inherited, keys, 1, many));
  CHECK(many[0].data == sentinel.data && many[0].len == sentinel.len);
  EXPECT_ERROR(FORKED, rcache_client_set_many(inherited, keys, values, 1, RCACHE_TTL_NONE));
  EXPECT_ERROR(FORKED, rcache_client_incr(inherited, LIT("fork:n"), 1, RCACHE_TTL_NONE, &number));
  CHECK_EQ_INT(number, 12345);
  /* "At once": far below any network timeout. */
  CHECK(now_ms() - start < 1000);
  rcache_client_free(inherited);

  /* A client made in the child works. On Redis it sees what the parent stored. */
  fresh = OPEN_CLIENT(g_url, g_prefix);
  if (fresh != NULL) {
    if (strncmp(g_url, "memory", 6) != 0) CHECK(has_value(fresh, LIT("fork:k"), "parent"));
    EXPECT_OK(rcache_client_set(fresh, LIT("fork:child"), LIT("from child"), RCACHE_TTL_NONE));
    CHECK(has_value(fresh, LIT("fork:child"), "from child"));
    char counter[32];
    snprintf(counter, sizeof counter, "fork:n:%ld", (long)getpid());
    if (EXPECT_OK(rcache_client_incr(fresh, (const uint8_t *)counter, strlen(counter), 5,
                                     RCACHE_TTL_NONE, &number))) {
      CHECK_EQ_INT(number, 5);
    }
    rcache_client_free(fresh);
  }
  alarm(0);
}

/* Forks, runs `child` there, and adds the child's counts to this process's. */
static void run_child(rcache_client *inherited) {
  int fds[2];
  pid_t pid;
  int status = 0;
  long counts[2] = {0, 0};

  if (!CHECK(pipe(fds) == 0)) return;
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  if (!CHECK(pid >= 0)) return;
  if (pid == 0) {
    close(fds[0]);
    child(inherited);
    counts[0] = CHECK_LOAD(check_passed_count);
    counts[1] = CHECK_LOAD(check_failed_count);
    if (write(fds[1], counts, sizeof counts) != (ssize_t)sizeof counts) exit(3);
    close(fds[1]);
    exit(counts[1] == 0 ? 0 : 1);
  }
  close(fds[1]);
  /* The child starts from a copy of this process's counts: add only what it added. */
  {
    long before[2] = {CHECK_LOAD(check_passed_count), CHECK_LOAD(check_failed_count)};
    ssize_t got = read(fds[0], counts, sizeof counts);
    close(fds[0]);
    CHECK(waitpid(pid, &status, 0) == pid);
    if (!CHECK(WIFEXITED(status))) {
      fprintf(stderr, "    the child died of signal %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    }
    if (CHECK(got == (ssize_t)sizeof counts)) {
      check_passed_count += counts[0] - before[0];
      check_failed_count += counts[1] - before[1];
      CHECK(WEXITSTATUS(status) == (counts[1] > before[1] ? 1 : 0));
    }
  }
}

int main(int argc, char **argv) {
  rcache_client *client;
  int64_t number = 0;

  if (argc != 2) {
    fprintf(stderr, "usage: %s URL\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  alarm(60);
  g_url = argv[1];
  snprintf(g_prefix, sizeof g_prefix, "test_fork:%ld:", (long)getpid());
  printf("test_fork against %s\n", g_url);

  client = OPEN_CLIENT(g_url, g_prefix);
  if (client == NULL) return check_summary();
  EXPECT_OK(rcache_client_set(client, LIT("fork:k"), LIT("parent"), RCACHE_TTL_NONE));
  CHECK(has_value(client, LIT("fork:k"), "parent"));

  run_child(client);

  /* The parent's handle is unaffected by the child, which has exited. */
  CHECK(has_value(client, LIT("fork:k"), "parent"));
  EXPECT_OK(rcache_client_set(client, LIT("fork:after"), LIT("still here"), RCACHE_TTL_NONE));
  CHECK(has_value(client, LIT("fork:after"), "still here"));
  if (EXPECT_OK(rcache_client_incr(client, LIT("fork:n"), 2, RCACHE_TTL_NONE, &number))) {
    CHECK_EQ_INT(number, 2); /* the child's increment on the inherited handle did nothing */
  }
  if (strncmp(g_url, "memory", 6) != 0) {
    CHECK(has_value(client, LIT("fork:child"), "from child"));
  } else {
    EXPECT_MISS(rcache_client_exists(client, LIT("fork:child"))); /* the child's own store */
  }

  /* A second fork, with the handle still in use in the parent afterwards. */
  run_child(client);
  CHECK(has_value(client, LIT("fork:k"), "parent"));

  rcache_client_free(client);
  return check_summary();
}
