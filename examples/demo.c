/*
 * rcache from C, step by step.
 *
 *   demo [URL]
 *
 * URL is the first argument, else the RCACHE_URL environment variable, else
 * memory:// (the embedded in-process store). For example:
 *
 *   demo
 *   demo redis://127.0.0.1:6379/0
 *   RCACHE_URL=redis://127.0.0.1:6379/0 demo
 *
 * Build: make -C tests/c demo   (the program lands in build/c/plain/demo)
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rcache.h"

/* A NUL-terminated string as the (bytes, length) pair the API takes. */
#define TEXT(s) (const uint8_t *)(s), strlen(s)

/* Stops the demo with the library's reason when a call fails. */
static void require(rcache_status status, const char *what) {
  if (status != RCACHE_STATUS_OK && status != RCACHE_STATUS_MISS) {
    fprintf(stderr, "%s failed: %s (%s)\n", what, rcache_status_name(status), rcache_last_error());
    exit(1);
  }
}

static void sleep_ms(long ms) {
  struct timespec pause = {0, ms * 1000000L};
  nanosleep(&pause, NULL);
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : getenv("RCACHE_URL");
  rcache_options options = rcache_options_default();
  rcache_client *cache = NULL;
  rcache_buffer value = {NULL, 0};
  int64_t ttl_ms = 0, visits = 0;
  int waited_ms = 0;

  if (url == NULL || url[0] == '\0') url = "memory://";
  printf("rcache %s (ABI %u)\n", rcache_version(), rcache_abi_version());

  /* 1. Connect. Every key this program uses gets the prefix "demo:". */
  options.key_prefix = "demo:";
  options.connect_timeout_ms = 2000;
  require(rcache_client_connect(url, &options, &cache), "connect");
  printf("Connected to %s: %s.\n", url,
         strncmp(url, "memory", 6) == 0 ? "the embedded in-process store (nothing is shared)"
                                        : "a Redis server");

  /* 2. Store a value for one minute, then read it back. */
  require(rcache_client_set(cache, TEXT("greeting"), TEXT("hello from C"), 60 * 1000), "set");
  printf("Stored \"greeting\" = \"hello from C\" for 60 seconds.\n");

  require(rcache_client_get(cache, TEXT("greeting"), &value), "get");
  printf("Read \"greeting\" back: \"%.*s\" (%zu bytes).\n", (int)value.len, (const char *)value.data,
         value.len);
  rcache_buffer_free(&value); /* the bytes belong to the library until freed */

  require(rcache_client_ttl(cache, TEXT("greeting"), &ttl_ms), "ttl");
  printf("\"greeting\" expires in %.1f seconds.\n", (double)ttl_ms / 1000.0);

  /* 3. A counter. It lives for an hour from its first increment. */
  require(rcache_client_incr(cache, TEXT("visits"), 1, 60 * 60 * 1000, &visits), "incr");
  printf("Incremented \"visits\": it is now %lld%s.\n", (long long)visits,
         visits == 1 ? " (a new counter)" : " (run the demo again to see it grow)");

  /* 4. A value with a short TTL disappears by itself. */
  require(rcache_client_set(cache, TEXT("flash"), TEXT("gone soon"), 200), "set");
  printf("Stored \"flash\" for 200 ms; it is %s.\n",
         rcache_client_exists(cache, TEXT("flash")) == RCACHE_STATUS_OK ? "there" : "NOT there");
  while (rcache_client_exists(cache, TEXT("flash")) == RCACHE_STATUS_OK && waited_ms < 2000) {
    sleep_ms(20);
    waited_ms += 20;
  }
  if (rcache_client_get(cache, TEXT("flash"), &value) == RCACHE_STATUS_MISS) {
    printf("After about %d ms, reading \"flash\" is a miss: it expired.\n", waited_ms);
  } else {
    printf("\"flash\" is still there after %d ms?!\n", waited_ms);
    rcache_buffer_free(&value);
    return 1;
  }

  /* 5. Several entries in one round trip each way. */
  {
    rcache_bytes keys[] = {{TEXT("red")}, {TEXT("green")}, {TEXT("blue")}};
    rcache_bytes values[] = {{TEXT("#ff0000")}, {TEXT("#00ff00")}, {TEXT("#0000ff")}};
    rcache_bytes wanted[] = {{TEXT("red")}, {TEXT("purple")}, {TEXT("blue")}};
    rcache_buffer found[3];
    size_t i;

    require(rcache_client_set_many(cache, keys, values, 3, 60 * 1000), "set_many");
    printf("Stored red, green and blue in one call.\n");

    require(rcache_client_get_many(cache, wanted, 3, found), "get_many");
    printf("Read red, purple and blue in one call:\n");
    for (i = 0; i < 3; i++) {
      if (found[i].data == NULL) {
        printf("  %-6.*s -> miss\n", (int)wanted[i].len, (const char *)wanted[i].data);
      } else {
        printf("  %-6.*s -> %.*s\n", (int)wanted[i].len, (const char *)wanted[i].data,
               (int)found[i].len, (const char *)found[i].data);
      }
    }
    rcache_buffers_free(found, 3);
  }

  /* 6. The client's statistics in the Prometheus text format, labelled client="demo". */
  require(rcache_client_metrics(cache, "demo", &value), "metrics");
  printf("Statistics as Prometheus text (%zu bytes), the first lines:\n", value.len);
  {
    size_t i, lines = 0;
    for (i = 0; i < value.len && lines < 6; i++) {
      putchar(value.data[i]);
      if (value.data[i] == '\n') lines++;
    }
  }
  rcache_buffer_free(&value);

  /* 7. Clean up: delete what the demo stored (but keep the counter), close the client. */
  rcache_client_delete(cache, TEXT("greeting"));
  rcache_client_delete(cache, TEXT("red"));
  rcache_client_delete(cache, TEXT("green"));
  rcache_client_delete(cache, TEXT("blue"));
  rcache_client_free(cache);
  printf("Done.\n");
  return 0;
}
