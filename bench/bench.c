/*
 * bench: throughput and latency of rcache_client_get / rcache_client_set
 * through the C ABI, from 1 or more threads sharing one handle.
 *
 *   bench [--url URL] [--threads 1,8] [--ops get,set] [--seconds S]
 *         [--max-ops N] [--value-size B] [--keys K] [--label NAME]
 *   bench --version      prints the version of the loaded librcache
 *
 * Each (op, thread count) pair is one run, bounded by --seconds of wall time
 * and by --max-ops operations in total, whichever comes first. Every
 * operation is timed with CLOCK_MONOTONIC into a per-thread log-linear
 * histogram (under 1% bucket error); the histograms are merged for p50/p99.
 * Keys are "bench:key:NNNNNNN" over a keyspace of --keys keys, all written
 * before the first run so that every GET hits.
 *
 * Besides a readable table it prints one line per run for scripts:
 *   RESULT label=... op=get threads=1 ops=N seconds=S ops_per_sec=R p50_us=A p99_us=B cpu_us_per_op=C
 * where C is the process's CPU time (user + system, all threads) per operation.
 * Exit status: 0, or 1 if any call failed (the first error is printed).
 */

#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "rcache.h"

/* Log-linear histogram of nanosecond values: values below 2^SUB_BITS are
 * exact, above that each power of two is split into 2^(SUB_BITS-1) buckets. */
#define SUB_BITS 8
#define SUB_COUNT (1u << SUB_BITS)
#define HALF_COUNT (SUB_COUNT / 2)
#define MAX_MSB 45 /* ~9.7 hours in ns; larger values are clamped */
#define BUCKETS (SUB_COUNT + (MAX_MSB - SUB_BITS + 1) * HALF_COUNT)

#define KEY_LEN 32
#define MAX_THREADS 256

typedef struct histogram {
    uint64_t counts[BUCKETS];
} histogram;

static size_t bucket_of(uint64_t ns) {
    if (ns < SUB_COUNT) return (size_t)ns;
    unsigned msb = 63u - (unsigned)__builtin_clzll(ns);
    if (msb > MAX_MSB) return BUCKETS - 1;
    unsigned shift = msb - (SUB_BITS - 1);
    return SUB_COUNT + (size_t)(shift - 1) * HALF_COUNT + (size_t)((ns >> shift) - HALF_COUNT);
}

/* The middle of a bucket's range, in ns. */
static double bucket_value(size_t index) {
    if (index < SUB_COUNT) return (double)index;
    size_t shift = (index - SUB_COUNT) / HALF_COUNT + 1;
    uint64_t sub = (index - SUB_COUNT) % HALF_COUNT + HALF_COUNT;
    uint64_t low = sub << shift;
    return (double)low + (double)((1ull << shift) - 1) / 2.0;
}

static double percentile_ns(const histogram *h, uint64_t total, double fraction) {
    if (total == 0) return 0.0;
    uint64_t rank = (uint64_t)(fraction * (double)total);
    if (rank >= total) rank = total - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < BUCKETS; i++) {
        seen += h->counts[i];
        if (seen > rank) return bucket_value(i);
    }
    return bucket_value(BUCKETS - 1);
}

/* CPU time (user + system) of the whole process so far, in ns. */
static uint64_t process_cpu_ns(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return ((uint64_t)usage.ru_utime.tv_sec + (uint64_t)usage.ru_stime.tv_sec) * 1000000000ull +
           ((uint64_t)usage.ru_utime.tv_usec + (uint64_t)usage.ru_stime.tv_usec) * 1000ull;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

typedef enum op_kind { OP_GET, OP_SET } op_kind;

typedef struct config {
    const char *url;
    const char *label;
    double seconds;
    uint64_t max_ops;
    size_t value_size;
    size_t keys;
} config;

/* State shared by the threads of one run. */
typedef struct run {
    const config *cfg;
    rcache_client *client;
    const char *keys; /* cfg->keys fixed-width keys, KEY_LEN bytes apart */
    size_t key_len;
    const uint8_t *value;
    op_kind op;
    unsigned threads;
    pthread_barrier_t start;
    uint64_t started_ns;
    uint64_t deadline_ns;
    atomic_uint_fast64_t ops_left;
    atomic_bool failed;
    pthread_mutex_t error_lock;
    char error[512];
} run;

typedef struct worker {
    run *run;
    unsigned index;
    uint64_t ops;
    uint64_t finished_ns;
    histogram hist;
} worker;

/* Keeps the first failure of a run; every thread stops at its next operation. */
static void record_failure(run *r, const char *message) {
    pthread_mutex_lock(&r->error_lock);
    if (!atomic_load(&r->failed)) {
        snprintf(r->error, sizeof r->error, "%s", message);
        atomic_store(&r->failed, true);
    }
    pthread_mutex_unlock(&r->error_lock);
}

static void record_error(run *r, const char *what, rcache_status status) {
    char message[512];
    snprintf(message, sizeof message, "%s: %s: %s", what, rcache_status_name(status), rcache_last_error());
    record_failure(r, message);
}

/* Operations are claimed from the shared budget in batches, so the atomic
 * counter stays off the per-operation path. */
#define CLAIM 256

static void *work(void *arg) {
    worker *w = arg;
    run *r = w->run;
    size_t value_size = r->cfg->value_size;
    /* Each thread walks the keyspace from its own offset. */
    size_t key_index = (r->cfg->keys / r->threads) * w->index;
    pthread_barrier_wait(&r->start);
    uint64_t before = now_ns();
    for (;;) {
        uint64_t claimed = CLAIM;
        uint64_t left = atomic_load(&r->ops_left);
        do {
            if (left == 0) goto done;
            claimed = left < CLAIM ? left : CLAIM;
        } while (!atomic_compare_exchange_weak(&r->ops_left, &left, left - claimed));
        for (uint64_t i = 0; i < claimed; i++) {
            const uint8_t *key = (const uint8_t *)r->keys + key_index * KEY_LEN;
            if (++key_index == r->cfg->keys) key_index = 0;
            rcache_status status;
            if (r->op == OP_GET) {
                rcache_buffer value = {0};
                status = rcache_client_get(r->client, key, r->key_len, &value);
                if (status == RCACHE_STATUS_OK) {
                    if (value.len != value_size) record_failure(r, "rcache_client_get returned a value of the wrong size");
                    rcache_buffer_free(&value);
                } else {
                    record_error(r, "rcache_client_get", status);
                }
            } else {
                status = rcache_client_set(r->client, key, r->key_len, r->value, value_size, RCACHE_TTL_NONE);
                if (status != RCACHE_STATUS_OK) record_error(r, "rcache_client_set", status);
            }
            /* The end of one operation is the start of the next: one clock read per op. */
            uint64_t after = now_ns();
            w->hist.counts[bucket_of(after - before)]++;
            w->ops++;
            before = after;
            if (atomic_load_explicit(&r->failed, memory_order_relaxed)) goto done;
        }
        if (before >= r->deadline_ns) break;
    }
done:
    w->finished_ns = now_ns();
    return NULL;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: bench [--url URL] [--threads 1,8] [--ops get,set] [--seconds S]\n"
            "             [--max-ops N] [--value-size BYTES] [--keys K] [--label NAME]\n"
            "       bench --version\n"
            "defaults: --url memory:// --threads 1,8 --ops set,get --seconds 2.5\n"
            "          --max-ops 50000000 --value-size 100 --keys 10000\n");
}

static const char *need_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "bench: %s needs a value\n", argv[*i]);
        usage(stderr);
        exit(2);
    }
    return argv[++*i];
}

static uint64_t parse_count(const char *text, const char *name) {
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value == 0) {
        fprintf(stderr, "bench: %s must be a positive integer, got %s\n", name, text);
        exit(2);
    }
    return (uint64_t)value;
}

/* Fills the keyspace so that every GET hits. */
static int prepopulate(rcache_client *client, const char *keys, size_t key_len, const uint8_t *value, const config *cfg) {
    for (size_t i = 0; i < cfg->keys; i++) {
        rcache_status status =
            rcache_client_set(client, (const uint8_t *)keys + i * KEY_LEN, key_len, value, cfg->value_size, RCACHE_TTL_NONE);
        if (status != RCACHE_STATUS_OK) {
            fprintf(stderr, "bench: prepopulating: %s: %s\n", rcache_status_name(status), rcache_last_error());
            return -1;
        }
    }
    return 0;
}

static int run_one(const config *cfg, rcache_client *client, const char *keys, size_t key_len, const uint8_t *value,
                   op_kind op, unsigned threads) {
    run r = {
        .cfg = cfg, .client = client, .keys = keys, .key_len = key_len, .value = value, .op = op, .threads = threads,
    };
    atomic_init(&r.ops_left, cfg->max_ops);
    atomic_init(&r.failed, false);
    pthread_mutex_init(&r.error_lock, NULL);
    pthread_barrier_init(&r.start, NULL, threads + 1);
    worker *workers = calloc(threads, sizeof *workers);
    pthread_t *ids = calloc(threads, sizeof *ids);
    if (!workers || !ids) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    for (unsigned t = 0; t < threads; t++) {
        workers[t].run = &r;
        workers[t].index = t;
        int err = pthread_create(&ids[t], NULL, work, &workers[t]);
        if (err != 0) {
            fprintf(stderr, "bench: pthread_create: %s\n", strerror(err));
            exit(1);
        }
    }
    uint64_t cpu_before = process_cpu_ns();
    r.started_ns = now_ns();
    r.deadline_ns = r.started_ns + (uint64_t)(cfg->seconds * 1e9);
    pthread_barrier_wait(&r.start);
    uint64_t total = 0, finished = r.started_ns;
    static histogram merged;
    memset(&merged, 0, sizeof merged);
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
        total += workers[t].ops;
        if (workers[t].finished_ns > finished) finished = workers[t].finished_ns;
        for (size_t b = 0; b < BUCKETS; b++) merged.counts[b] += workers[t].hist.counts[b];
    }
    double cpu_per_op = total ? (double)(process_cpu_ns() - cpu_before) / 1000.0 / (double)total : 0.0;
    double seconds = (double)(finished - r.started_ns) / 1e9;
    double rate = seconds > 0 ? (double)total / seconds : 0.0;
    double p50 = percentile_ns(&merged, total, 0.50) / 1000.0;
    double p99 = percentile_ns(&merged, total, 0.99) / 1000.0;
    const char *name = op == OP_GET ? "get" : "set";
    printf("%-12s %-4s %7u %12" PRIu64 " %8.2f %12.0f %10.2f %10.2f %10.3f\n", cfg->label, name, threads, total, seconds,
           rate, p50, p99, cpu_per_op);
    printf("RESULT label=%s op=%s threads=%u ops=%" PRIu64
           " seconds=%.3f ops_per_sec=%.0f p50_us=%.3f p99_us=%.3f cpu_us_per_op=%.3f\n",
           cfg->label, name, threads, total, seconds, rate, p50, p99, cpu_per_op);
    fflush(stdout);
    bool failed = atomic_load(&r.failed);
    if (failed) fprintf(stderr, "bench: %s %s x%u failed: %s\n", cfg->label, name, threads, r.error);
    pthread_barrier_destroy(&r.start);
    pthread_mutex_destroy(&r.error_lock);
    free(workers);
    free(ids);
    return failed ? -1 : 0;
}

int main(int argc, char **argv) {
    config cfg = {
        .url = "memory://", .label = NULL, .seconds = 2.5, .max_ops = 50000000, .value_size = 100, .keys = 10000,
    };
    const char *thread_list = "1,8";
    const char *op_list = "set,get";
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--url") == 0) {
            cfg.url = need_value(argc, argv, &i);
        } else if (strcmp(arg, "--threads") == 0) {
            thread_list = need_value(argc, argv, &i);
        } else if (strcmp(arg, "--ops") == 0) {
            op_list = need_value(argc, argv, &i);
        } else if (strcmp(arg, "--seconds") == 0) {
            const char *text = need_value(argc, argv, &i);
            char *end = NULL;
            cfg.seconds = strtod(text, &end);
            if (end == text || *end != '\0' || !(cfg.seconds > 0)) {
                fprintf(stderr, "bench: --seconds must be a positive number, got %s\n", text);
                return 2;
            }
        } else if (strcmp(arg, "--max-ops") == 0) {
            cfg.max_ops = parse_count(need_value(argc, argv, &i), "--max-ops");
        } else if (strcmp(arg, "--value-size") == 0) {
            cfg.value_size = (size_t)parse_count(need_value(argc, argv, &i), "--value-size");
        } else if (strcmp(arg, "--keys") == 0) {
            cfg.keys = (size_t)parse_count(need_value(argc, argv, &i), "--keys");
        } else if (strcmp(arg, "--label") == 0) {
            cfg.label = need_value(argc, argv, &i);
        } else if (strcmp(arg, "--version") == 0) {
            printf("%s\n", rcache_version());
            return 0;
        } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "bench: unknown argument %s\n", arg);
            usage(stderr);
            return 2;
        }
    }
    if (cfg.label == NULL) cfg.label = strncmp(cfg.url, "memory:", 7) == 0 ? "memory" : "redis";

    unsigned thread_counts[16];
    size_t thread_runs = 0;
    {
        char *copy = strdup(thread_list), *save = NULL;
        for (char *part = strtok_r(copy, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
            uint64_t n = parse_count(part, "--threads");
            if (n > MAX_THREADS || thread_runs == sizeof thread_counts / sizeof thread_counts[0]) {
                fprintf(stderr, "bench: too many threads or thread counts in %s\n", thread_list);
                return 2;
            }
            thread_counts[thread_runs++] = (unsigned)n;
        }
        free(copy);
    }
    op_kind ops[8];
    size_t op_runs = 0;
    {
        char *copy = strdup(op_list), *save = NULL;
        for (char *part = strtok_r(copy, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
            if (op_runs == sizeof ops / sizeof ops[0]) break;
            if (strcmp(part, "get") == 0) {
                ops[op_runs++] = OP_GET;
            } else if (strcmp(part, "set") == 0) {
                ops[op_runs++] = OP_SET;
            } else {
                fprintf(stderr, "bench: unknown op %s (use get, set)\n", part);
                return 2;
            }
        }
        free(copy);
    }

    char *keys = malloc(cfg.keys * KEY_LEN);
    uint8_t *value = malloc(cfg.value_size);
    if (!keys || !value) {
        fprintf(stderr, "bench: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < cfg.keys; i++) snprintf(keys + i * KEY_LEN, KEY_LEN, "bench:key:%09zu", i);
    size_t key_len = strlen(keys);
    memset(value, 'v', cfg.value_size);

    rcache_client *client = NULL;
    rcache_status status = rcache_client_connect(cfg.url, NULL, &client);
    if (status != RCACHE_STATUS_OK) {
        fprintf(stderr, "bench: connecting to %s: %s: %s\n", cfg.url, rcache_status_name(status), rcache_last_error());
        return 1;
    }
    int rc = 0;
    if (prepopulate(client, keys, key_len, value, &cfg) != 0) rc = 1;

    if (rc == 0) {
        printf("# rcache %s, %s, value %zu bytes, %zu keys, <= %.1f s or %" PRIu64 " ops per run\n", rcache_version(),
               cfg.url, cfg.value_size, cfg.keys, cfg.seconds, cfg.max_ops);
        printf("%-12s %-4s %7s %12s %8s %12s %10s %10s %10s\n", "target", "op", "threads", "ops", "seconds", "ops/s",
               "p50 us", "p99 us", "cpu us/op");
        for (size_t t = 0; t < thread_runs && rc == 0; t++)
            for (size_t o = 0; o < op_runs && rc == 0; o++)
                if (run_one(&cfg, client, keys, key_len, value, ops[o], thread_counts[t]) != 0) rc = 1;
    }
    rcache_client_free(client);
    free(keys);
    free(value);
    return rc;
}
