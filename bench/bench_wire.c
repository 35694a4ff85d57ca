/*
 * bench_wire: what one rcache call costs the server and the client, each as
 * a multiple of the same work done with hiredis's synchronous API, measured
 * in the same run against the same private redis-server.
 *
 *   bench_wire --port PORT [--reads N] [--calls N] [--rounds R] [--value-size B]
 *
 * Server cost per read: CONFIG RESETSTAT, N reads, then INFO commandstats;
 * the microseconds the server spent in the commands the reads sent, divided
 * by N. A script's time includes the commands it calls, which commandstats
 * also counts on their own: a first pass of reads under MONITOR tells which
 * share of each command the client sent itself, and only that share counts. Done for a plain GET sent with hiredis (the baseline), rcache's
 * untagged get, its get of an entry with two tags, and its get_with_ttl.
 * The server must have no other clients during the run.
 *
 * Client CPU per call: getrusage (user + system, every thread of the
 * process, rcache's I/O threads included) over N gets, then N sets, with
 * hiredis and with rcache on one thread, in interleaved rounds.
 *
 * Prints Markdown tables (for the benchmark report) and, for scripts, lines
 *   RESULT label=wire-server op=get-untagged server_us_per_op=X baseline_us_per_op=Y ratio=Z
 *   RESULT label=wire-cpu op=get rcache_cpu_us=X hiredis_cpu_us=Y ratio=Z
 * Exit status: 0, or 1 if a call failed.
 */

#define _GNU_SOURCE
#include <ctype.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "rcache.h"

#define KEYS 1000
#define MAX_ROUNDS 64
#define MAX_COMMANDS 32

static redisContext *plain;
static rcache_client *client;
static char value[65536];
static size_t value_size = 100;

static void fail(const char *what) {
    fprintf(stderr, "bench_wire: %s failed: %s\n", what, plain && plain->err ? plain->errstr : rcache_last_error());
    exit(1);
}

static double process_cpu_us(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 +
           (double)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

static redisReply *command(const char *text) {
    redisReply *reply = redisCommand(plain, text);
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) fail(text);
    return reply;
}

static int key_of(char *out, size_t size, const char *kind, int index) {
    return snprintf(out, size, "wire:%s:%06d", kind, index);
}

/* --- server cost per read ------------------------------------------------ */

typedef struct usage {
    double usec;                   /* server time in every counted command */
    char names[MAX_COMMANDS][48];  /* every command run, how often, how long */
    double calls[MAX_COMMANDS];
    double usec_of[MAX_COMMANDS];
    int count;
} usage;

/* Sums INFO commandstats, leaving out the commands this program sends to measure. */
static usage command_usage(void) {
    usage total = {0};
    redisReply *reply = command("INFO commandstats");
    for (char *line = strtok(reply->str, "\r\n"); line; line = strtok(NULL, "\r\n")) {
        char name[48];
        double calls, usec;
        if (sscanf(line, "cmdstat_%47[^:]:calls=%lf,usec=%lf", name, &calls, &usec) != 3) continue;
        if (strcmp(name, "info") == 0 || strncmp(name, "config", 6) == 0) continue;
        total.usec += usec;
        if (total.count < MAX_COMMANDS) {
            snprintf(total.names[total.count], sizeof total.names[0], "%s", name);
            total.usec_of[total.count] = usec;
            total.calls[total.count++] = calls;
        }
    }
    freeReplyObject(reply);
    return total;
}

typedef enum read_kind { READ_GET_PLAIN, READ_UNTAGGED, READ_TAGGED, READ_WITH_TTL } read_kind;

static void one_read(read_kind kind, int index) {
    char key[64];
    int len = key_of(key, sizeof key, kind == READ_TAGGED ? "tagged" : "plain", index % KEYS);
    rcache_buffer buffer = {0};
    int64_t ttl = 0;
    rcache_status status = RCACHE_STATUS_OK;
    switch (kind) {
        case READ_GET_PLAIN: {
            redisReply *reply = redisCommand(plain, "GET %b", key, (size_t)len);
            if (reply == NULL || reply->type != REDIS_REPLY_STRING) fail("GET");
            freeReplyObject(reply);
            return;
        }
        case READ_UNTAGGED:
        case READ_TAGGED:
            status = rcache_client_get(client, (const uint8_t *)key, (size_t)len, &buffer);
            break;
        case READ_WITH_TTL:
            status = rcache_client_get_with_ttl(client, (const uint8_t *)key, (size_t)len, &buffer, &ttl);
            break;
    }
    if (status != RCACHE_STATUS_OK) fail("rcache read");
    rcache_buffer_free(&buffer);
}

/* How many of each command one read sends itself, as opposed to the commands
 * its scripts call (commandstats counts both, and a script's time includes
 * its commands'): MONITOR marks a script's commands "lua". */
typedef struct sent_commands {
    char names[MAX_COMMANDS][48];
    double top_level[MAX_COMMANDS], all[MAX_COMMANDS];
    int count;
} sent_commands;

static int command_index(sent_commands *sent, const char *name) {
    for (int i = 0; i < sent->count; i++)
        if (strcmp(sent->names[i], name) == 0) return i;
    if (sent->count == MAX_COMMANDS) return -1;
    snprintf(sent->names[sent->count], sizeof sent->names[0], "%s", name);
    sent->top_level[sent->count] = sent->all[sent->count] = 0;
    return sent->count++;
}

static sent_commands watch_reads(read_kind kind, int port, int reads) {
    sent_commands sent = {0};
    redisContext *monitor = redisConnect("127.0.0.1", port);
    if (monitor == NULL || monitor->err) fail("redisConnect (MONITOR)");
    redisReply *reply = redisCommand(monitor, "MONITOR");
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) fail("MONITOR");
    freeReplyObject(reply);
    for (int i = 0; i < reads; i++) one_read(kind, i);
    freeReplyObject(command("ECHO bench-wire-end"));
    for (;;) {
        if (redisGetReply(monitor, (void **)&reply) != REDIS_OK) fail("reading MONITOR");
        /* 1700000000.123456 [0 127.0.0.1:5000] "EVALSHA" "…"  or  [0 lua] "GET" "…" */
        const char *source = strchr(reply->str, '[');
        const char *quote = strchr(reply->str, '"');
        char name[48] = "";
        if (source && quote) sscanf(quote + 1, "%47[^\"]", name);
        for (char *c = name; *c; c++) *c = (char)tolower((unsigned char)*c);
        bool done = strcmp(name, "echo") == 0 && strstr(reply->str, "bench-wire-end") != NULL;
        if (!done && name[0]) {
            int index = command_index(&sent, name);
            if (index >= 0) {
                sent.all[index]++;
                if (strncmp(source, "[0 lua]", 7) != 0 && !strstr(source, " lua]")) sent.top_level[index]++;
            }
        }
        freeReplyObject(reply);
        if (done) break;
    }
    redisFree(monitor);
    return sent;
}

/* Server microseconds per read: the time of the commands a read sends itself
 * (a script's time includes its commands'). `sent` describes those. */
static double server_cost(read_kind kind, int reads, const sent_commands *sent) {
    freeReplyObject(command("CONFIG RESETSTAT"));
    for (int i = 0; i < reads; i++) one_read(kind, i);
    usage used = command_usage();
    double usec = 0;
    for (int i = 0; i < used.count; i++) {
        for (int j = 0; j < sent->count; j++) {
            if (strcmp(used.names[i], sent->names[j]) == 0 && sent->all[j] > 0)
                usec += used.usec_of[i] * sent->top_level[j] / sent->all[j];
        }
    }
    return usec / reads;
}

static void describe_sent(const sent_commands *sent, int reads, char *out, size_t size) {
    size_t at = 0;
    out[0] = '\0';
    for (int i = 0; i < sent->count && at < size; i++) {
        if (sent->top_level[i] == 0) continue;
        at += (size_t)snprintf(out + at, size - at, "%s%s %.2g", at ? ", " : "", sent->names[i], sent->top_level[i] / reads);
    }
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *values, int count) {
    qsort(values, (size_t)count, sizeof *values, by_value);
    return count % 2 ? values[count / 2] : (values[count / 2 - 1] + values[count / 2]) / 2;
}

/* --- client CPU per call ---------------------------------------------------- */

typedef enum call_kind { CALL_GET, CALL_SET } call_kind;

static double cpu_per_call(bool with_rcache, call_kind kind, int calls) {
    char key[64];
    double started = process_cpu_us();
    for (int i = 0; i < calls; i++) {
        int len = key_of(key, sizeof key, "plain", i % KEYS);
        if (with_rcache) {
            if (kind == CALL_GET) {
                rcache_buffer buffer = {0};
                if (rcache_client_get(client, (const uint8_t *)key, (size_t)len, &buffer) != RCACHE_STATUS_OK)
                    fail("rcache_client_get");
                rcache_buffer_free(&buffer);
            } else if (rcache_client_set(client, (const uint8_t *)key, (size_t)len, (const uint8_t *)value, value_size,
                                         RCACHE_TTL_NONE) != RCACHE_STATUS_OK) {
                fail("rcache_client_set");
            }
        } else {
            redisReply *reply = kind == CALL_GET ? redisCommand(plain, "GET %b", key, (size_t)len)
                                                 : redisCommand(plain, "SET %b %b", key, (size_t)len, value, value_size);
            if (reply == NULL || reply->type == REDIS_REPLY_ERROR) fail(kind == CALL_GET ? "GET" : "SET");
            freeReplyObject(reply);
        }
    }
    return (process_cpu_us() - started) / calls;
}

static int number(const char *text, const char *name) {
    char *end;
    long parsed = strtol(text, &end, 10);
    if (*end != '\0' || parsed <= 0 || parsed > 100000000) {
        fprintf(stderr, "bench_wire: %s must be a positive number, not %s\n", name, text);
        exit(2);
    }
    return (int)parsed;
}

int main(int argc, char **argv) {
    int port = 0, reads = 20000, calls = 20000, rounds = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0) port = number(argv[i + 1], "--port");
        else if (strcmp(argv[i], "--reads") == 0) reads = number(argv[i + 1], "--reads");
        else if (strcmp(argv[i], "--calls") == 0) calls = number(argv[i + 1], "--calls");
        else if (strcmp(argv[i], "--rounds") == 0) rounds = number(argv[i + 1], "--rounds");
        else if (strcmp(argv[i], "--value-size") == 0) value_size = (size_t)number(argv[i + 1], "--value-size");
        else {
            fprintf(stderr, "bench_wire: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (port == 0 || rounds > MAX_ROUNDS || value_size > sizeof value) {
        fprintf(stderr, "usage: bench_wire --port PORT [--reads N] [--calls N] [--rounds R<=%d] [--value-size B]\n",
                MAX_ROUNDS);
        return 2;
    }
    memset(value, 'v', sizeof value);
    plain = redisConnect("127.0.0.1", port);
    if (plain == NULL || plain->err) fail("redisConnect");
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    if (rcache_client_connect(url, NULL, &client) != RCACHE_STATUS_OK) fail("rcache_client_connect");

    rcache_bytes tags[2] = {{(const uint8_t *)"wire:tag:a", 10}, {(const uint8_t *)"wire:tag:b", 10}};
    for (int i = 0; i < KEYS; i++) {
        char key[64];
        int len = key_of(key, sizeof key, "plain", i);
        if (rcache_client_set(client, (const uint8_t *)key, (size_t)len, (const uint8_t *)value, value_size,
                              3600000) != RCACHE_STATUS_OK)
            fail("rcache_client_set");
        len = key_of(key, sizeof key, "tagged", i);
        if (rcache_client_set_tagged(client, (const uint8_t *)key, (size_t)len, (const uint8_t *)value, value_size,
                                     3600000, tags, 2) != RCACHE_STATUS_OK)
            fail("rcache_client_set_tagged");
    }

    static const struct {
        read_kind kind;
        const char *op, *name;
        double target;
    } kinds[] = {
        {READ_UNTAGGED, "get-untagged", "get, untagged entry", 1.15},
        {READ_TAGGED, "get-tagged", "get, entry with 2 tags", 2.0},
        {READ_WITH_TTL, "get-with-ttl", "get_with_ttl, untagged entry", 2.0},
    };
    enum { KINDS = sizeof kinds / sizeof kinds[0] };
    double baseline[MAX_ROUNDS], ours[KINDS][MAX_ROUNDS], ratios[KINDS][MAX_ROUNDS];
    sent_commands baseline_sent = watch_reads(READ_GET_PLAIN, port, 200), sent[KINDS];
    char sent_text[KINDS][512];
    for (int k = 0; k < KINDS; k++) {
        sent[k] = watch_reads(kinds[k].kind, port, 200);
        describe_sent(&sent[k], 200, sent_text[k], sizeof sent_text[k]);
    }
    for (int round = 0; round < rounds; round++) {
        baseline[round] = server_cost(READ_GET_PLAIN, reads, &baseline_sent);
        for (int k = 0; k < KINDS; k++) {
            ours[k][round] = server_cost(kinds[k].kind, reads, &sent[k]);
            ratios[k][round] = ours[k][round] / baseline[round];
        }
    }
    double base = median(baseline, rounds);
    printf("### Server cost per read (INFO commandstats)\n\n");
    printf("Server time per read as a multiple of a bare `GET` sent with hiredis, median of %d rounds of %d reads "
           "each on the private server; a plain `GET` cost %.3f µs.\n\n",
           rounds, reads, base);
    printf("| read | commands per read | server µs per read | × GET | target | met |\n");
    printf("|---|---|---:|---:|---:|---|\n");
    for (int k = 0; k < KINDS; k++) {
        double us = median(ours[k], rounds), ratio = median(ratios[k], rounds);
        printf("| %s | %s | %.3f | %.2f× | ≤ %.2f× | %s |\n", kinds[k].name, sent_text[k], us, ratio, kinds[k].target,
               ratio <= kinds[k].target ? "yes" : "**no**");
        fprintf(stderr, "RESULT label=wire-server op=%s server_us_per_op=%.4f baseline_us_per_op=%.4f ratio=%.3f\n",
                kinds[k].op, us, base, ratio);
    }

    double cpu[2][2][MAX_ROUNDS]; /* [call kind][0 hiredis, 1 rcache][round] */
    double cpu_ratio[2][MAX_ROUNDS];
    for (int round = 0; round < rounds; round++) {
        for (int kind = CALL_GET; kind <= CALL_SET; kind++) {
            /* Alternate which goes first, so that a drift of the machine's load cancels out. */
            bool rcache_first = round % 2;
            cpu[kind][rcache_first][round] = cpu_per_call(rcache_first, (call_kind)kind, calls);
            cpu[kind][!rcache_first][round] = cpu_per_call(!rcache_first, (call_kind)kind, calls);
            cpu_ratio[kind][round] = cpu[kind][1][round] / cpu[kind][0][round];
        }
    }
    printf("\n### Client CPU per call, one thread (getrusage)\n\n");
    printf("User + system CPU of the whole process per call (rcache's I/O threads included), rcache's C API against "
           "hiredis's synchronous API in the same program, median of %d interleaved rounds of %d calls.\n\n",
           rounds, calls);
    printf("| call | hiredis µs | rcache µs | rcache ÷ hiredis | target | met |\n");
    printf("|---|---:|---:|---:|---:|---|\n");
    static const char *call_names[] = {"get", "set"};
    for (int kind = CALL_GET; kind <= CALL_SET; kind++) {
        double theirs = median(cpu[kind][0], rounds), mine = median(cpu[kind][1], rounds);
        double ratio = median(cpu_ratio[kind], rounds);
        printf("| %s | %.2f | %.2f | %.2f× | ≤ 1.10× | %s |\n", call_names[kind], theirs, mine, ratio,
               ratio <= 1.10 ? "yes" : "**no**");
        fprintf(stderr, "RESULT label=wire-cpu op=%s rcache_cpu_us=%.3f hiredis_cpu_us=%.3f ratio=%.3f\n",
                call_names[kind], mine, theirs, ratio);
    }
    printf("\n");
    rcache_client_free(client);
    redisFree(plain);
    return 0;
}
