/*
 * rcache_client_metrics: the Prometheus text of a client's statistics, read
 * back with a parser of the text exposition format (0.0.4) written here.
 * Every line must be a valid HELP, TYPE or sample line, every family must
 * have one HELP and one TYPE line before its samples, and every sample's
 * value must equal the matching field of rcache_client_stats.
 *
 *   test_metrics URL     e.g. test_metrics memory://   or   test_metrics redis://127.0.0.1:PORT/0
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "rcache.h"

#define LIT(text) (const uint8_t *)(text), (sizeof(text) - 1)

#define MAX_SAMPLES 64
#define MAX_FAMILIES 64
#define MAX_TEXT 256

typedef struct {
  char name[MAX_TEXT];
  char labels[MAX_TEXT]; /* unescaped, as name=value pairs joined by ',' */
  double value;
} sample;

typedef struct {
  char name[MAX_TEXT];
  char type[16];
  int helps, types, samples;
} family;

typedef struct {
  sample samples[MAX_SAMPLES];
  int sample_count;
  family families[MAX_FAMILIES];
  int family_count;
  char error[512]; /* the first problem found, empty when the text is valid */
} exposition;

/* Whether `len` bytes at `data` contain the NUL-terminated `needle`. */
static bool contains(const uint8_t *data, size_t len, const char *needle) {
  size_t n = strlen(needle);
  for (size_t i = 0; n <= len && i <= len - n; i++) {
    if (memcmp(data + i, needle, n) == 0) return true;
  }
  return false;
}

static bool name_start(char c) { return isalpha((unsigned char)c) || c == '_' || c == ':'; }
static bool name_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == ':'; }

/* Reads a metric or label name at *p into out; false if there is none. */
static bool read_name(const char **p, const char *end, char *out, bool metric) {
  size_t n = 0;
  if (*p >= end || !name_start(**p) || (!metric && **p == ':')) return false;
  while (*p < end && name_char(**p) && (metric || **p != ':')) {
    if (n + 1 >= MAX_TEXT) return false;
    out[n++] = *(*p)++;
  }
  out[n] = '\0';
  return true;
}

static family *find_family(exposition *e, const char *name) {
  for (int i = 0; i < e->family_count; i++) {
    if (strcmp(e->families[i].name, name) == 0) return &e->families[i];
  }
  return NULL;
}

static family *add_family(exposition *e, const char *name) {
  family *f = find_family(e, name);
  if (f != NULL || e->family_count == MAX_FAMILIES) return f;
  f = &e->families[e->family_count++];
  memset(f, 0, sizeof *f);
  snprintf(f->name, sizeof f->name, "%s", name);
  return f;
}

#define FAIL_LINE(...)                                                       \
  do {                                                                       \
    if (e->error[0] == '\0') snprintf(e->error, sizeof e->error, __VA_ARGS__); \
    return;                                                                  \
  } while (0)

/* A "{name="value",...}" label set at *p, unescaped into out. */
static bool read_labels(const char **p, const char *end, char *out) {
  size_t n = 0;
  out[0] = '\0';
  if (*p >= end || **p != '{') return true;
  (*p)++;
  while (*p < end && **p != '}') {
    char label[MAX_TEXT];
    if (n > 0) {
      if (**p != ',') return false;
      (*p)++;
      out[n++] = ',';
    }
    if (!read_name(p, end, label, false)) return false;
    if (end - *p < 2 || (*p)[0] != '=' || (*p)[1] != '"') return false;
    *p += 2;
    n += (size_t)snprintf(out + n, MAX_TEXT - n, "%s=", label);
    while (*p < end && **p != '"') {
      char c = *(*p)++;
      if (c == '\\') {
        if (*p >= end) return false;
        c = *(*p)++;
        if (c == 'n') {
          c = '\n';
        } else if (c != '\\' && c != '"') {
          return false; /* the only escapes of the format */
        }
      }
      if (n + 2 >= MAX_TEXT) return false;
      out[n++] = c;
    }
    if (*p >= end) return false;
    (*p)++; /* the closing quote */
    out[n] = '\0';
  }
  if (*p >= end) return false;
  (*p)++;
  return true;
}

static void parse_line(exposition *e, const char *line, const char *end) {
  const char *p = line;
  char name[MAX_TEXT];
  if (end - p >= 7 && (strncmp(p, "# HELP ", 7) == 0 || strncmp(p, "# TYPE ", 7) == 0)) {
    bool help = p[2] == 'H';
    family *f;
    p += 7;
    if (!read_name(&p, end, name, true) || p >= end || *p != ' ' || p + 1 >= end) {
      FAIL_LINE("malformed %s line: %.*s", help ? "HELP" : "TYPE", (int)(end - line), line);
    }
    p++;
    f = add_family(e, name);
    if (f == NULL) FAIL_LINE("too many families");
    if (f->samples > 0) FAIL_LINE("%s line after samples of %s", help ? "HELP" : "TYPE", name);
    if (help) {
      if (f->helps++ > 0) FAIL_LINE("second HELP line for %s", name);
    } else {
      size_t len = (size_t)(end - p);
      if (f->types++ > 0) FAIL_LINE("second TYPE line for %s", name);
      if (f->helps == 0) FAIL_LINE("TYPE before HELP for %s", name);
      if (len >= sizeof f->type) FAIL_LINE("unknown type for %s", name);
      memcpy(f->type, p, len);
      f->type[len] = '\0';
      if (strcmp(f->type, "counter") != 0 && strcmp(f->type, "gauge") != 0) {
        FAIL_LINE("type %s of %s is neither counter nor gauge", f->type, name);
      }
    }
    return;
  }
  if (p < end && *p == '#') FAIL_LINE("unexpected comment: %.*s", (int)(end - line), line);
  {
    sample *s;
    family *f;
    char number[64], *number_end;
    size_t len;
    if (e->sample_count == MAX_SAMPLES) FAIL_LINE("too many samples");
    s = &e->samples[e->sample_count];
    if (!read_name(&p, end, s->name, true)) FAIL_LINE("no metric name: %.*s", (int)(end - line), line);
    if (!read_labels(&p, end, s->labels)) FAIL_LINE("malformed labels: %.*s", (int)(end - line), line);
    if (p >= end || *p != ' ') FAIL_LINE("no space before the value: %.*s", (int)(end - line), line);
    p++;
    len = (size_t)(end - p);
    if (len == 0 || len >= sizeof number) FAIL_LINE("no value: %.*s", (int)(end - line), line);
    memcpy(number, p, len);
    number[len] = '\0';
    s->value = strtod(number, &number_end);
    if (*number_end != '\0' || isspace((unsigned char)number[0])) {
      FAIL_LINE("value is not a number: %.*s", (int)(end - line), line);
    }
    if (!isfinite(s->value) || s->value < 0) FAIL_LINE("value out of range: %.*s", (int)(end - line), line);
    f = find_family(e, s->name);
    if (f == NULL || f->types == 0) FAIL_LINE("sample of %s without HELP and TYPE", s->name);
    if (e->family_count == 0 || &e->families[e->family_count - 1] != f) {
      FAIL_LINE("sample of %s outside its family's group", s->name);
    }
    if (strcmp(f->type, "counter") == 0) {
      size_t n = strlen(s->name);
      if (n < 6 || strcmp(s->name + n - 6, "_total") != 0) FAIL_LINE("counter %s lacks _total", s->name);
      if (s->value != (double)(long long)s->value) FAIL_LINE("counter %s is not a whole number", s->name);
    }
    f->samples++;
    e->sample_count++;
  }
}

/* Parses the whole text into *e; e->error says what is wrong, if anything. */
static void parse(exposition *e, const char *text, size_t len) {
  const char *p = text, *end = text + len;
  memset(e, 0, sizeof *e);
  if (len == 0 || text[len - 1] != '\n') {
    snprintf(e->error, sizeof e->error, "the text does not end with a newline");
    return;
  }
  if (memchr(text, '\0', len) != NULL) {
    snprintf(e->error, sizeof e->error, "the text holds a NUL byte");
    return;
  }
  while (p < end && e->error[0] == '\0') {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == p) {
      snprintf(e->error, sizeof e->error, "empty line");
      return;
    }
    parse_line(e, p, eol);
    p = eol + 1;
  }
  for (int i = 0; i < e->family_count && e->error[0] == '\0'; i++) {
    if (e->families[i].samples == 0) {
      snprintf(e->error, sizeof e->error, "family %s has no samples", e->families[i].name);
    }
  }
}

static const sample *find_sample(const exposition *e, const char *name, const char *labels) {
  for (int i = 0; i < e->sample_count; i++) {
    if (strcmp(e->samples[i].name, name) == 0 && strcmp(e->samples[i].labels, labels) == 0) {
      return &e->samples[i];
    }
  }
  return NULL;
}

/* The client's metrics, parsed; false (with a failed check) when the call or the text fails. */
static bool read_metrics(const rcache_client *client, const char *label, exposition *e) {
  rcache_buffer text = {NULL, 0};
  if (!EXPECT_OK(rcache_client_metrics(client, label, &text))) return false;
  parse(e, (const char *)text.data, text.len);
  if (!CHECK(e->error[0] == '\0')) {
    fprintf(stderr, "    %s\n    in:\n%.*s", e->error, (int)text.len, (const char *)text.data);
  }
  rcache_buffer_free(&text);
  return e->error[0] == '\0';
}

/* Every field of rcache_stats and of rcache_failsafe_stats (read from `handle`) against its
 * sample; `client` is the expected label prefix. */
static void check_against_stats(const exposition *e, const rcache_stats *stats, const rcache_client *handle,
                                const char *client) {
  rcache_failsafe_stats failsafe = {0};
  EXPECT_OK(rcache_client_failsafe_stats(handle, &failsafe));
  const struct {
    const char *name, *labels;
    uint64_t value;
    bool seconds;
  } expected[] = {
      {"rcache_hits_total", "", stats->hits, false},
      {"rcache_misses_total", "", stats->misses, false},
      {"rcache_computations_total", "", stats->computations, false},
      {"rcache_lock_waits_total", "", stats->lock_waits, false},
      {"rcache_early_refreshes_total", "", stats->early_refreshes, false},
      {"rcache_fail_opens_total", "", stats->fail_opens, false},
      {"rcache_stale_served_total", "", failsafe.stale_served, false},
      {"rcache_throttles_total", "", failsafe.throttles, false},
      {"rcache_negative_hits_total", "", failsafe.negative_hits, false},
      {"rcache_recovery_queue", "", failsafe.recovery_queue, false},
      {"rcache_recovery_replays_total", "", failsafe.recovery_replays, false},
      {"rcache_recovery_overflows_total", "", failsafe.recovery_overflows, false},
      {"rcache_breaker_trips_total", "", stats->breaker_trips, false},
      {"rcache_breaker_skips_total", "", stats->breaker_skips, false},
      {"rcache_errors_total", "kind=connection", stats->connection_errors, false},
      {"rcache_errors_total", "kind=timeout", stats->timeout_errors, false},
      {"rcache_errors_total", "kind=server", stats->server_errors, false},
      {"rcache_errors_total", "kind=other", stats->other_errors, false},
      {"rcache_latency_p50_seconds", "", stats->latency_p50_us, true},
      {"rcache_latency_p99_seconds", "", stats->latency_p99_us, true},
      {"rcache_latency_max_seconds", "", stats->latency_max_us, true},
      {"rcache_near_hits_total", "", stats->near_hits, false},
      {"rcache_near_misses_total", "", stats->near_misses, false},
      {"rcache_near_invalidations_total", "", stats->near_invalidations, false},
      {"rcache_near_evictions_total", "", stats->near_evictions, false},
      {"rcache_near_flushes_total", "", stats->near_flushes, false},
      {"rcache_near_entries", "", stats->near_entries, false},
      {"rcache_near_bytes", "", stats->near_bytes, false},
  };
  /* Every field of both is a uint64_t, and each is one sample. */
  CHECK_EQ_INT(e->sample_count, (sizeof(rcache_stats) + sizeof(rcache_failsafe_stats)) / sizeof(uint64_t));
  for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
    char labels[MAX_TEXT];
    const sample *s;
    snprintf(labels, sizeof labels, "%s%s%s", client, client[0] && expected[i].labels[0] ? "," : "",
             expected[i].labels);
    s = find_sample(e, expected[i].name, labels);
    if (!CHECK(s != NULL)) {
      fprintf(stderr, "    no sample %s{%s}\n", expected[i].name, labels);
      continue;
    }
    if (expected[i].seconds) {
      CHECK_EQ_INT((long long)(s->value * 1e6 + 0.5), expected[i].value);
    } else {
      CHECK_EQ_INT((long long)s->value, expected[i].value);
    }
  }
}

/* The parser itself: it accepts a valid text and refuses each kind of defect. */
static void test_parser(void) {
  static const char *const bad[] = {
      "# HELP a_total x\n# TYPE a_total counter\na_total 1",             /* no final newline */
      "a_total 1\n",                                                      /* no HELP/TYPE */
      "# HELP a_total x\na_total 1\n",                                     /* no TYPE */
      "# TYPE a_total counter\n# HELP a_total x\na_total 1\n",           /* TYPE before HELP */
      "# HELP a_total x\n# HELP a_total y\n# TYPE a_total counter\na_total 1\n",
      "# HELP a x\n# TYPE a counter\na 1\n",                               /* counter without _total */
      "# HELP a_total x\n# TYPE a_total counter\na_total 1.5\n",         /* fractional count */
      "# HELP a x\n# TYPE a histogram\na 1\n",                           /* unknown type */
      "# HELP a x\n# TYPE a gauge\na{k=\"v\\q\"} 1\n",                /* bad escape */
      "# HELP a x\n# TYPE a gauge\na{k=\"v} 1\n",                        /* unterminated value */
      "# HELP a x\n# TYPE a gauge\na{1k=\"v\"} 1\n",                    /* bad label name */
      "# HELP a x\n# TYPE a gauge\na 1x\n",                              /* bad number */
      "# HELP a x\n# TYPE a gauge\na  1\n",                              /* two spaces */
      "# HELP a x\n# TYPE a gauge\n\na 1\n",                            /* empty line */
      "# HELP a x\n# TYPE a gauge\n# HELP b x\n# TYPE b gauge\nb 1\na 1\n", /* split family */
      "# HELP a x\n# TYPE a gauge\n",                                     /* family without samples */
  };
  const char *good = "# HELP a_total x y\n# TYPE a_total counter\na_total{c=\"w\\\"\\\\\\n\",k=\"v\"} 7\n"
                     "# HELP b x\n# TYPE b gauge\nb 0.000042\n";
  exposition e;
  parse(&e, good, strlen(good));
  CHECK_STR(e.error, "");
  CHECK_EQ_INT(e.sample_count, 2);
  CHECK(find_sample(&e, "a_total", "c=w\"\\\n,k=v") != NULL);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    parse(&e, bad[i], strlen(bad[i]));
    if (!CHECK(e.error[0] != '\0')) fprintf(stderr, "    accepted bad text %zu: %s\n", i, bad[i]);
  }
}

static bool compute_value(void *user_data, rcache_compute_output *output) {
  (void)user_data;
  return rcache_compute_output_set(output, LIT("computed")) == RCACHE_STATUS_OK;
}

static void test_fresh_client(const char *url, const char *prefix) {
  rcache_client *client = OPEN_CLIENT(url, prefix);
  rcache_stats stats;
  exposition e;
  if (client == NULL) return;
  if (EXPECT_OK(rcache_client_stats(client, &stats)) && read_metrics(client, NULL, &e)) {
    const sample *hits = find_sample(&e, "rcache_hits_total", "");
    check_against_stats(&e, &stats, client, "");
    CHECK(hits != NULL && hits->value == 0);
    CHECK_EQ_INT(stats.latency_max_us, 0);
  }
  rcache_client_free(client);
}

static void test_values_follow_the_stats(const char *url, const char *prefix) {
  rcache_client *client = OPEN_CLIENT(url, prefix);
  rcache_buffer value = {NULL, 0};
  rcache_stats stats;
  exposition e;
  int64_t counter = 0;
  if (client == NULL) return;
  EXPECT_OK(rcache_client_set(client, LIT("a"), LIT("1"), 60000));
  EXPECT_OK(rcache_client_get(client, LIT("a"), &value));
  rcache_buffer_free(&value);
  EXPECT_OK(rcache_client_get(client, LIT("a"), &value));
  rcache_buffer_free(&value);
  EXPECT_MISS(rcache_client_get(client, LIT("nothing"), &value));
  EXPECT_OK(rcache_client_get_or_compute(client, LIT("c"), NULL, compute_value, NULL, &value));
  rcache_buffer_free(&value);
  EXPECT_OK(rcache_client_set(client, LIT("text"), LIT("not a number"), 60000));
  EXPECT_ERROR(RCACHE_STATUS_WRONG_TYPE, rcache_client_incr(client, LIT("text"), 1, 60000, &counter));

  if (EXPECT_OK(rcache_client_stats(client, &stats)) && read_metrics(client, "web", &e)) {
    CHECK(stats.hits >= 2 && stats.misses >= 1 && stats.computations == 1);
    CHECK(stats.latency_max_us > 0);
    check_against_stats(&e, &stats, client, "client=web");
    for (int i = 0; i < e.sample_count; i++) CHECK(strncmp(e.samples[i].labels, "client=web", 10) == 0);
  }
  /* An empty label is no label. */
  if (EXPECT_OK(rcache_client_stats(client, &stats)) && read_metrics(client, "", &e)) {
    check_against_stats(&e, &stats, client, "");
  }
  rcache_client_free(client);
}

static void test_label_escaping(const char *url, const char *prefix) {
  rcache_client *client = OPEN_CLIENT(url, prefix);
  rcache_buffer text = {NULL, 0};
  rcache_stats stats;
  exposition e;
  const char *label = "we\"b\\1\nsecond line, {x}";
  if (client == NULL) return;
  if (EXPECT_OK(rcache_client_stats(client, &stats)) && read_metrics(client, label, &e)) {
    char expected[MAX_TEXT];
    snprintf(expected, sizeof expected, "client=%s", label);
    check_against_stats(&e, &stats, client, expected);
  }
  if (EXPECT_OK(rcache_client_metrics(client, label, &text))) {
    const char *line = "rcache_hits_total{client=\"we\\\"b\\\\1\\nsecond line, {x}\"} 0\n";
    CHECK(text.len > strlen(line));
    CHECK(contains(text.data, text.len, line));
    rcache_buffer_free(&text);
  }
  /* Non-ASCII UTF-8 passes through; other bytes are refused. */
  if (EXPECT_OK(rcache_client_metrics(client, "caf\xc3\xa9", &text))) {
    const char *line = "rcache_misses_total{client=\"caf\xc3\xa9\"} 0\n";
    CHECK(contains(text.data, text.len, line));
    rcache_buffer_free(&text);
  }
  text.data = (uint8_t *)&text;
  text.len = 4242;
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_metrics(client, "caf\xe9", &text));
  CHECK(text.data == (uint8_t *)&text && text.len == 4242); /* untouched on an error */
  rcache_client_free(client);
}

static void test_bad_arguments(const char *url, const char *prefix) {
  rcache_client *client = OPEN_CLIENT(url, prefix);
  rcache_buffer text = {NULL, 0};
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_metrics(NULL, NULL, &text));
  CHECK(text.data == NULL && text.len == 0);
  EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_metrics(NULL, "x", NULL));
  if (client != NULL) {
    EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_metrics(client, NULL, NULL));
    EXPECT_ERROR(RCACHE_STATUS_INVALID_ARGUMENT, rcache_client_metrics(client, "web", NULL));
    CHECK(strstr(rcache_last_error(), "text_out") != NULL);
  }
  rcache_client_free(client);
}

int main(int argc, char **argv) {
  char prefix[64];
  if (argc != 2) {
    fprintf(stderr, "usage: %s URL   (e.g. memory:// or redis://127.0.0.1:PORT/0)\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  alarm(60);
  snprintf(prefix, sizeof prefix, "test_metrics:%ld:", (long)getpid());
  printf("test_metrics against %s\n", argv[1]);
  test_parser();
  test_fresh_client(argv[1], prefix);
  test_values_follow_the_stats(argv[1], prefix);
  test_label_escaping(argv[1], prefix);
  test_bad_arguments(argv[1], prefix);
  return check_summary();
}
