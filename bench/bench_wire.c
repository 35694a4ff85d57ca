/*
 * bench_wire: what one rcache call costs the server and the client, each as
 * a multiple of the same work done with hiredis's synchronous API, measured
 * in the same run against the same private redis-server.
 *
 *   bench_wire --port PORT [--reads N] [--calls N] [--rounds R] [--value-size B]
 *
 * Server cost per read. The commands of 200 reads of each kind are captured
 * with MONITOR, exactly as the server received them (a script's own
 * commands, marked "lua", are left out: replaying the script runs them).
 * Then, in interleaved rounds, the captured reads are replayed N times with
 * hiredis and the server's work is read from INFO:
 *   - commands: INFO commandstats time (the commands' execution only),
 *     replayed pipelined, 100 reads per batch;
 *   - CPU, pipelined: the server main thread's user + system CPU
 *     (INFO cpu) over the same pipelined replay: parsing and replies too;
 *   - CPU, one request at a time: the same, each request of a read sent and
 *     its reply awaited before the next, as rcache sends them (the requests
 *     per read, counted by INFO stats total_reads_processed during the
 *     captured reads, say which commands share a request).
 * The baseline is a bare GET of the same 100-byte values, captured and
 * replayed the same way. Replaying rather than timing the live reads keeps
 * the client's pace out of the figures: the server's time per command
 * depends on how warm it is, so a GET sent by a slower client costs the
 * server more than the same GET sent by hiredis in a tight loop. The server must have no other clients during the run.
 *
 * Client CPU per call: getrusage (user + system, every thread of the
 * process, rcache's I/O threads included) over N gets, then N sets, with
 * hiredis and with rcache on one thread, made in alternating blocks of 500
 * calls so that the machine's changing load falls on both alike.
 *
 * Prints Markdown tables (for the benchmark report) and, for scripts, lines
 *   RESULT label=wire-server op=get-untagged server_us_per_op=X baseline_us_per_op=Y ratio=Z cpu_ratio=C
 *     rt_cpu_ratio=R requests_per_op=Q
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

typedef enum read_kind {
    READ_GET_PLAIN,
    READ_UNTAGGED,
    READ_ONE_TAG,
    READ_TAGGED,
    READ_TAGGED_FIRST,
    READ_WITH_TTL
} read_kind;

/* READ_TAGGED_FIRST reads with this handle, which has not read nor written the tagged entries before. */
static rcache_client *newcomer;

static void one_read(read_kind kind, int index) {
    char key[64];
    bool tagged = kind == READ_TAGGED || kind == READ_TAGGED_FIRST;
    int len = key_of(key, sizeof key, tagged ? "tagged" : kind == READ_ONE_TAG ? "onetag" : "plain", index % KEYS);
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
        case READ_ONE_TAG:
        case READ_TAGGED:
            status = rcache_client_get(client, (const uint8_t *)key, (size_t)len, &buffer);
            break;
        case READ_TAGGED_FIRST:
            status = rcache_client_get(newcomer, (const uint8_t *)key, (size_t)len, &buffer);
            break;
        case READ_WITH_TTL:
            status = rcache_client_get_with_ttl(client, (const uint8_t *)key, (size_t)len, &buffer, &ttl);
            break;
    }
    if (status != RCACHE_STATUS_OK) fail("rcache read");
    rcache_buffer_free(&buffer);
}

#define CAPTURED 200
#define MARKER "bench-wire-read"
#define MAX_PER_READ 8
#define MAX_ARGS 64

/* The commands one read sent, each in the protocol's form, ready to resend. */
typedef struct captured_read {
    char *commands[MAX_PER_READ];
    long long lengths[MAX_PER_READ];
    char names[MAX_PER_READ][24];
    int count;
} captured_read;

typedef struct capture {
    captured_read reads[CAPTURED];
    double requests_per_read; /* counted during live reads */
} capture;

static long long info_number(const char *section, const char *field) {
    char text[64];
    snprintf(text, sizeof text, "INFO %s", section);
    redisReply *reply = command(text);
    const char *at = strstr(reply->str, field);
    long long number = at ? atoll(at + strlen(field) + 1) : -1;
    freeReplyObject(reply);
    if (number < 0) fail(field);
    return number;
}

/* The server main thread's user + system CPU so far, in microseconds. */
static double server_cpu_us(void) {
    redisReply *reply = command("INFO cpu");
    double user = 0, sys = 0;
    const char *at = strstr(reply->str, "used_cpu_sys_main_thread:");
    if (at) sys = atof(at + strlen("used_cpu_sys_main_thread:"));
    at = strstr(reply->str, "used_cpu_user_main_thread:");
    if (at) user = atof(at + strlen("used_cpu_user_main_thread:"));
    freeReplyObject(reply);
    if (user == 0 && sys == 0) fail("INFO cpu (used_cpu_*_main_thread)");
    return (user + sys) * 1e6;
}

/* The arguments of a MONITOR line: 1700000000.123456 [0 127.0.0.1:5000] "GET" "k\x00…" */
static int monitor_arguments(const char *line, char **argv, size_t *lengths) {
    const char *at = strchr(line, ']');
    int argc = 0;
    while (at && (at = strchr(at, '"')) != NULL && argc < MAX_ARGS) {
        char *out = malloc(strlen(at) + 1);
        size_t length = 0;
        for (at++; *at && *at != '"'; at++) {
            if (*at != '\\') {
                out[length++] = *at;
                continue;
            }
            at++;
            switch (*at) {
                case 'n': out[length++] = '\n'; break;
                case 'r': out[length++] = '\r'; break;
                case 't': out[length++] = '\t'; break;
                case 'a': out[length++] = '\a'; break;
                case 'b': out[length++] = '\b'; break;
                case 'x': {
                    unsigned byte = 0;
                    sscanf(at + 1, "%2x", &byte);
                    out[length++] = (char)byte;
                    at += 2;
                    break;
                }
                default: out[length++] = *at; break;
            }
        }
        if (*at == '"') at++;
        argv[argc] = out;
        lengths[argc++] = length;
    }
    return argc;
}

/* Captures the commands of CAPTURED reads (an ECHO from this program between
 * two reads marks where one ends) and counts their requests. */
static void capture_reads(read_kind kind, int port, capture *out) {
    memset(out, 0, sizeof *out);
    long long before = info_number("stats", "total_reads_processed");
    redisContext *monitor = redisConnect("127.0.0.1", port);
    if (monitor == NULL || monitor->err) fail("redisConnect (MONITOR)");
    redisReply *reply = redisCommand(monitor, "MONITOR");
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) fail("MONITOR");
    freeReplyObject(reply);
    for (int i = 0; i < CAPTURED; i++) {
        one_read(kind, i);
        freeReplyObject(command("ECHO " MARKER));
    }
    /* Requests per read: read events the server handled, less MONITOR, the ECHOs and the INFO that asks. */
    long long after = info_number("stats", "total_reads_processed");
    out->requests_per_read = (double)(after - before - CAPTURED - 2) / CAPTURED;
    int read_index = 0;
    while (read_index < CAPTURED) {
        if (redisGetReply(monitor, (void **)&reply) != REDIS_OK) fail("reading MONITOR");
        char *argv[MAX_ARGS];
        size_t lengths[MAX_ARGS];
        bool from_script = strstr(reply->str, " lua]") != NULL;
        int argc = monitor_arguments(reply->str, argv, lengths);
        freeReplyObject(reply);
        if (argc == 0) continue;
        if (argc == 2 && lengths[1] == strlen(MARKER) && memcmp(argv[1], MARKER, lengths[1]) == 0) {
            read_index++;
        } else if (!from_script) {
            captured_read *read = &out->reads[read_index];
            if (read->count == MAX_PER_READ) fail("capturing (too many commands in one read)");
            read->lengths[read->count] = redisFormatCommandArgv(&read->commands[read->count], argc,
                                                                (const char **)argv, lengths);
            snprintf(read->names[read->count], sizeof read->names[0], "%.*s", (int)lengths[0], argv[0]);
            for (char *c = read->names[read->count]; *c; c++) *c = (char)tolower((unsigned char)*c);
            read->count++;
        }
        for (int a = 0; a < argc; a++) free(argv[a]);
    }
    redisFree(monitor);
}

/* The captured commands, each with how many reads sent it ("get 1, mget 1"). */
static void describe(const capture *captured, char *out, size_t size) {
    char names[MAX_PER_READ * 4][24];
    int counts[MAX_PER_READ * 4] = {0}, kinds = 0;
    for (int r = 0; r < CAPTURED; r++) {
        for (int c = 0; c < captured->reads[r].count; c++) {
            int k = 0;
            while (k < kinds && strcmp(names[k], captured->reads[r].names[c]) != 0) k++;
            if (k == kinds && kinds < MAX_PER_READ * 4) snprintf(names[kinds++], sizeof names[0], "%s", captured->reads[r].names[c]);
            if (k < kinds) counts[k]++;
        }
    }
    size_t at = 0;
    out[0] = '\0';
    for (int k = 0; k < kinds && at < size; k++)
        at += (size_t)snprintf(out + at, size - at, "%s`%s` %.2g", k ? ", " : "", names[k], (double)counts[k] / CAPTURED);
}

/* Sums INFO commandstats time, leaving out the commands this program sends to measure. */
static double commands_usec(void) {
    double total = 0;
    redisReply *reply = command("INFO commandstats");
    for (char *line = strtok(reply->str, "\r\n"); line; line = strtok(NULL, "\r\n")) {
        char name[48];
        double calls, usec;
        if (sscanf(line, "cmdstat_%47[^:]:calls=%lf,usec=%lf", name, &calls, &usec) != 3) continue;
        if (strcmp(name, "info") == 0 || strncmp(name, "config", 6) == 0) continue;
        total += usec;
    }
    freeReplyObject(reply);
    return total;
}

static void await_replies(int count) {
    for (int i = 0; i < count; i++) {
        redisReply *reply;
        if (redisGetReply(plain, (void **)&reply) != REDIS_OK || reply == NULL) fail("replaying");
        if (reply->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "bench_wire: a replayed command failed: %s\n", reply->str);
            exit(1);
        }
        freeReplyObject(reply);
    }
}

typedef struct replay_cost {
    double commands_us, cpu_us, one_by_one_cpu_us; /* per read */
} replay_cost;

/* Replays `reads` of the captured reads: pipelined, then request by request. */
static replay_cost replay(const capture *captured, int reads) {
    enum { BATCH = 100 };
    replay_cost cost;
    freeReplyObject(command("CONFIG RESETSTAT"));
    double cpu_before = server_cpu_us();
    for (int start = 0; start < reads; start += BATCH) {
        int sent = 0;
        for (int i = start; i < start + BATCH && i < reads; i++) {
            const captured_read *read = &captured->reads[i % CAPTURED];
            for (int c = 0; c < read->count; c++, sent++)
                if (redisAppendFormattedCommand(plain, read->commands[c], (size_t)read->lengths[c]) != REDIS_OK)
                    fail("replaying");
        }
        await_replies(sent);
    }
    cost.cpu_us = (server_cpu_us() - cpu_before) / reads;
    cost.commands_us = commands_usec() / reads;
    /* One request at a time: a read's commands in one request, or each in its own. */
    bool together = captured->requests_per_read < 1.5;
    cpu_before = server_cpu_us();
    for (int i = 0; i < reads; i++) {
        const captured_read *read = &captured->reads[i % CAPTURED];
        for (int c = 0; c < read->count; c++) {
            if (redisAppendFormattedCommand(plain, read->commands[c], (size_t)read->lengths[c]) != REDIS_OK)
                fail("replaying");
            if (!together) await_replies(1);
        }
        if (together) await_replies(read->count);
    }
    cost.one_by_one_cpu_us = (server_cpu_us() - cpu_before) / reads;
    return cost;
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

/* Calls made in a row by one client before the other takes over: short
 * enough that a change in the machine's load hits both alike. */
#define BLOCK 500

/* The CPU microseconds `count` calls took, on keys from `first` on. */
static double cpu_of_calls(bool with_rcache, call_kind kind, int first, int count) {
    char key[64];
    double started = process_cpu_us();
    for (int i = first; i < first + count; i++) {
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
    return process_cpu_us() - started;
}

/* CPU per call of `calls` calls by each client ([0] hiredis, [1] rcache),
 * made in alternating blocks of BLOCK calls, each block's first client
 * alternating too. */
static void cpu_per_call(call_kind kind, int calls, double per_call[2]) {
    double total[2] = {0, 0};
    for (int first = 0, block = 0; first < calls; first += BLOCK, block++) {
        int count = calls - first < BLOCK ? calls - first : BLOCK;
        bool rcache_first = block % 2;
        total[rcache_first] += cpu_of_calls(rcache_first, kind, first, count);
        total[!rcache_first] += cpu_of_calls(!rcache_first, kind, first, count);
    }
    per_call[0] = total[0] / calls;
    per_call[1] = total[1] / calls;
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
        len = key_of(key, sizeof key, "onetag", i);
        if (rcache_client_set_tagged(client, (const uint8_t *)key, (size_t)len, (const uint8_t *)value, value_size,
                                     3600000, tags, 1) != RCACHE_STATUS_OK)
            fail("rcache_client_set_tagged");
    }

    if (rcache_client_connect(url, NULL, &newcomer) != RCACHE_STATUS_OK) fail("rcache_client_connect");
    static const struct {
        read_kind kind;
        const char *op, *name;
        double target;
    } kinds[] = {
        {READ_UNTAGGED, "get-untagged", "get, untagged entry", 1.15},
        {READ_ONE_TAG, "get-one-tag", "get, entry with 1 tag", 2.0},
        {READ_TAGGED, "get-tagged", "get, entry with 2 tags", 2.0},
        {READ_TAGGED_FIRST, "get-tagged-first", "get, entry with 2 tags, first read by this handle", 0},
        {READ_WITH_TTL, "get-with-ttl", "get_with_ttl, untagged entry", 2.0},
    };
    enum { KINDS = sizeof kinds / sizeof kinds[0] };
    static capture baseline_capture, captures[KINDS];
    capture_reads(READ_GET_PLAIN, port, &baseline_capture);
    char described[KINDS][512];
    for (int k = 0; k < KINDS; k++) {
        capture_reads(kinds[k].kind, port, &captures[k]);
        describe(&captures[k], described[k], sizeof described[k]);
    }
    rcache_client_free(newcomer);
    /* [kind][round]: commands time, CPU pipelined, CPU one request at a time, each ÷ the baseline's */
    double baseline[3][MAX_ROUNDS], ours[KINDS][3][MAX_ROUNDS], ratios[KINDS][3][MAX_ROUNDS];
    for (int round = 0; round < rounds; round++) {
        replay_cost base = replay(&baseline_capture, reads);
        baseline[0][round] = base.commands_us, baseline[1][round] = base.cpu_us, baseline[2][round] = base.one_by_one_cpu_us;
        for (int k = 0; k < KINDS; k++) {
            replay_cost cost = replay(&captures[k], reads);
            double figures[3] = {cost.commands_us, cost.cpu_us, cost.one_by_one_cpu_us};
            for (int f = 0; f < 3; f++) {
                ours[k][f][round] = figures[f];
                ratios[k][f][round] = figures[f] / baseline[f][round];
            }
        }
    }
    double base[3];
    for (int f = 0; f < 3; f++) base[f] = median(baseline[f], rounds);
    printf("### Server cost per read (captured with MONITOR, replayed)\n\n");
    printf("The commands of each kind of read, captured as the server received them and replayed %d times with hiredis, "
           "as a multiple of a bare `GET` of the same values replayed the same way; medians of %d interleaved rounds. "
           "*Commands*: INFO commandstats time, replayed pipelined (a bare `GET`: %.3f µs). *CPU*: the server main "
           "thread's CPU, replayed pipelined (`GET`: %.3f µs) and one request at a time as rcache sends them "
           "(`GET`: %.3f µs).\n\n",
           reads, rounds, base[0], base[1], base[2]);
    printf("| read | commands per read | requests per read | commands µs | commands × GET | CPU pipelined × GET | "
           "CPU one request at a time × GET | target | met: commands, CPU pipelined |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|---|\n");
    for (int k = 0; k < KINDS; k++) {
        double us = median(ours[k][0], rounds), ratio = median(ratios[k][0], rounds);
        double cpu_ratio = median(ratios[k][1], rounds), rt_ratio = median(ratios[k][2], rounds);
        char target[32] = "none", met[32] = "";
        if (kinds[k].target > 0) {
            snprintf(target, sizeof target, "≤ %.2f×", kinds[k].target);
            snprintf(met, sizeof met, "%s, %s", ratio <= kinds[k].target ? "yes" : "**no**",
                     cpu_ratio <= kinds[k].target ? "yes" : "**no**");
        }
        printf("| %s | %s | %.2f | %.3f | %.2f× | %.2f× | %.2f× | %s | %s |\n", kinds[k].name, described[k],
               captures[k].requests_per_read, us, ratio, cpu_ratio, rt_ratio, target, met);
        fprintf(stderr,
                "RESULT label=wire-server op=%s server_us_per_op=%.4f baseline_us_per_op=%.4f ratio=%.3f cpu_ratio=%.3f "
                "rt_cpu_ratio=%.3f requests_per_op=%.2f\n",
                kinds[k].op, us, base[0], ratio, cpu_ratio, rt_ratio, captures[k].requests_per_read);
    }

    double cpu[2][2][MAX_ROUNDS]; /* [call kind][0 hiredis, 1 rcache][round] */
    double cpu_ratio[2][MAX_ROUNDS];
    for (int round = 0; round < rounds; round++) {
        for (int kind = CALL_GET; kind <= CALL_SET; kind++) {
            double per_call[2];
            cpu_per_call((call_kind)kind, calls, per_call);
            cpu[kind][0][round] = per_call[0];
            cpu[kind][1][round] = per_call[1];
            cpu_ratio[kind][round] = per_call[1] / per_call[0];
        }
    }
    printf("\n### Client CPU per call, one thread (getrusage)\n\n");
    printf("User + system CPU of the whole process per call (rcache's I/O threads included), rcache's C API against "
           "hiredis's synchronous API in the same program, median of %d rounds of %d calls each, made in alternating "
           "blocks of %d.\n\n",
           rounds, calls, BLOCK);
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
