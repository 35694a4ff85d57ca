/*
 * rcache.h compiles on its own as C11 under -Wall -Wextra -Wpedantic -Werror
 * (see the Makefile's header target), and its include guard lets it be
 * included twice. Nothing else is included before it.
 */
#include "rcache.h"
#include "rcache.h"

#ifndef RCACHE_H
#error "rcache.h does not define its include guard RCACHE_H"
#endif

/* Every name the header promises is declared with the expected type. */
_Static_assert(RCACHE_TTL_NONE == -1, "RCACHE_TTL_NONE is -1");
_Static_assert(RCACHE_TTL_DEFAULT == 0, "RCACHE_TTL_DEFAULT is 0");
_Static_assert(RCACHE_ABI_VERSION >= 1, "RCACHE_ABI_VERSION is set");
_Static_assert(RCACHE_VERSION_MAJOR >= 0 && RCACHE_VERSION_MINOR >= 0 && RCACHE_VERSION_PATCH >= 0,
               "version macros are integers");
_Static_assert(RCACHE_STATUS_OK == 0 && RCACHE_STATUS_PANIC == 10, "status values");
_Static_assert(RCACHE_STATUS_CORRUPT == 11, "RCACHE_STATUS_CORRUPT is 11");
_Static_assert(RCACHE_MAX_TAGS == 256, "at most 256 tags per call");
_Static_assert(RCACHE_STATUS_CONFLICT == 13, "RCACHE_STATUS_CONFLICT is 13");
_Static_assert(RCACHE_SESSION_NO_SLIDE == -2, "RCACHE_SESSION_NO_SLIDE is -2");
_Static_assert(RCACHE_TTL_KEEP == -2, "RCACHE_TTL_KEEP is -2");
_Static_assert(RCACHE_WRITE_ALWAYS == 0 && RCACHE_WRITE_IF_EXISTS == 1 && RCACHE_WRITE_IF_ABSENT == 2,
               "rcache_write_condition values");
_Static_assert(sizeof(((rcache_session_new *)0)->id) == 33 &&
                   sizeof(((rcache_session_new *)0)->secret) == 33,
               "a session id and secret are 32 characters and a NUL");
_Static_assert(sizeof(((rcache_session_owner *)0)->token) == 33,
               "a lock owner token is 32 characters and a NUL");
_Static_assert(sizeof(rcache_bytes) == sizeof(void *) + sizeof(size_t), "rcache_bytes is two words");
_Static_assert(sizeof(rcache_buffer) == sizeof(void *) + sizeof(size_t), "rcache_buffer is two words");

/* The declarations have the documented signatures (a mismatch is a compile error). */
const char *(*const check_version)(void) = rcache_version;
uint32_t (*const check_abi_version)(void) = rcache_abi_version;
rcache_options (*const check_options_default)(void) = rcache_options_default;
rcache_status (*const check_connect)(const char *, const rcache_options *, rcache_client **) =
    rcache_client_connect;
void (*const check_client_free)(rcache_client *) = rcache_client_free;
rcache_status (*const check_get)(const rcache_client *, const uint8_t *, size_t, rcache_buffer *) =
    rcache_client_get;
rcache_status (*const check_set)(const rcache_client *, const uint8_t *, size_t, const uint8_t *,
                                 size_t, int64_t) = rcache_client_set;
rcache_status (*const check_delete)(const rcache_client *, const uint8_t *, size_t) =
    rcache_client_delete;
rcache_status (*const check_exists)(const rcache_client *, const uint8_t *, size_t) =
    rcache_client_exists;
rcache_status (*const check_ttl)(const rcache_client *, const uint8_t *, size_t, int64_t *) =
    rcache_client_ttl;
rcache_status (*const check_expire)(const rcache_client *, const uint8_t *, size_t, int64_t) =
    rcache_client_expire;
rcache_status (*const check_get_many)(const rcache_client *, const rcache_bytes *, size_t,
                                      rcache_buffer *) = rcache_client_get_many;
rcache_status (*const check_set_many)(const rcache_client *, const rcache_bytes *,
                                      const rcache_bytes *, size_t, int64_t) =
    rcache_client_set_many;
rcache_status (*const check_incr)(const rcache_client *, const uint8_t *, size_t, int64_t, int64_t,
                                  int64_t *) = rcache_client_incr;
rcache_status (*const check_set_tagged)(const rcache_client *, const uint8_t *, size_t,
                                        const uint8_t *, size_t, int64_t, const rcache_bytes *,
                                        size_t) = rcache_client_set_tagged;
rcache_status (*const check_add_tags)(const rcache_client *, const uint8_t *, size_t,
                                      const rcache_bytes *, size_t) = rcache_client_add_tags;
rcache_status (*const check_invalidate_tags)(const rcache_client *, const rcache_bytes *, size_t) =
    rcache_client_invalidate_tags;
rcache_status (*const check_clear)(const rcache_client *, const uint8_t *, size_t, uint64_t *) =
    rcache_client_clear;
rcache_status (*const check_near_get)(const rcache_client *, const uint8_t *, size_t, uint8_t *, size_t,
                                      size_t *) = rcache_client_near_get;
rcache_status (*const check_get_with_ttl)(const rcache_client *, const uint8_t *, size_t,
                                          rcache_buffer *, int64_t *) = rcache_client_get_with_ttl;
rcache_status (*const check_compare_and_set)(const rcache_client *, const uint8_t *, size_t,
                                             const uint8_t *, size_t, const uint8_t *, size_t,
                                             int64_t) = rcache_client_compare_and_set;
rcache_status (*const check_hash_get)(const rcache_client *, const uint8_t *, size_t,
                                      rcache_buffer **, rcache_buffer **, size_t *) =
    rcache_client_hash_get;
rcache_status (*const check_hash_set)(const rcache_client *, const uint8_t *, size_t,
                                      const rcache_bytes *, const rcache_bytes *, size_t, int64_t,
                                      int) = rcache_client_hash_set;
rcache_status (*const check_keys)(const rcache_client *, const uint8_t *, size_t, rcache_buffer **,
                                  size_t *) = rcache_client_keys;
rcache_status (*const check_lock)(const rcache_client *, const uint8_t *, size_t, const uint8_t *,
                                  size_t, uint32_t) = rcache_client_lock;
rcache_status (*const check_extend_lock)(const rcache_client *, const uint8_t *, size_t,
                                         const uint8_t *, size_t, uint32_t) =
    rcache_client_extend_lock;
rcache_status (*const check_unlock)(const rcache_client *, const uint8_t *, size_t,
                                    const uint8_t *, size_t) = rcache_client_unlock;
rcache_status (*const check_server_info)(const rcache_client *, rcache_buffer *) =
    rcache_client_server_info;
rcache_status (*const check_metrics)(const rcache_client *, const char *, rcache_buffer *) =
    rcache_client_metrics;
void (*const check_buffer_free)(rcache_buffer *) = rcache_buffer_free;
void (*const check_buffers_free)(rcache_buffer *, size_t) = rcache_buffers_free;
void (*const check_buffer_array_free)(rcache_buffer *, size_t) = rcache_buffer_array_free;
const char *(*const check_last_error)(void) = rcache_last_error;
rcache_status (*const check_session_store_open)(const rcache_client *, const uint8_t *, size_t,
                                                rcache_session_store **) =
    rcache_session_store_open;
void (*const check_session_store_free)(rcache_session_store *) = rcache_session_store_free;
rcache_status (*const check_session_create)(const rcache_session_store *, const rcache_bytes *,
                                            const rcache_bytes *, size_t, int64_t,
                                            rcache_session_new *) = rcache_session_create;
rcache_status (*const check_session_load)(const rcache_session_store *, const uint8_t *, size_t,
                                          const uint8_t *, size_t, int64_t,
                                          rcache_session_record **) = rcache_session_load;
rcache_status (*const check_session_save)(const rcache_session_store *, const uint8_t *, size_t,
                                          const uint8_t *, size_t, uint64_t, const rcache_bytes *,
                                          const rcache_bytes *, size_t, const rcache_bytes *,
                                          size_t, int64_t, uint64_t *) = rcache_session_save;
rcache_status (*const check_session_touch)(const rcache_session_store *, const uint8_t *, size_t,
                                           const uint8_t *, size_t, int64_t) =
    rcache_session_touch;
rcache_status (*const check_session_destroy)(const rcache_session_store *, const uint8_t *,
                                             size_t, const uint8_t *, size_t) =
    rcache_session_destroy;
rcache_status (*const check_session_purge)(const rcache_session_store *, uint64_t, uint64_t *) =
    rcache_session_purge;
rcache_status (*const check_session_lock)(const rcache_session_store *, const uint8_t *, size_t,
                                          const uint8_t *, size_t, uint32_t,
                                          rcache_session_owner *) = rcache_session_lock;
rcache_status (*const check_session_unlock)(const rcache_session_store *, const uint8_t *, size_t,
                                            const char *) = rcache_session_unlock;
uint64_t (*const check_session_record_version)(const rcache_session_record *) =
    rcache_session_record_version;
uint64_t (*const check_session_record_touched_ms)(const rcache_session_record *) =
    rcache_session_record_touched_ms;
size_t (*const check_session_record_field_count)(const rcache_session_record *) =
    rcache_session_record_field_count;
rcache_status (*const check_session_record_field)(const rcache_session_record *, size_t,
                                                  rcache_bytes *, rcache_bytes *) =
    rcache_session_record_field;
void (*const check_session_record_free)(rcache_session_record *) = rcache_session_record_free;
const char *(*const check_status_name)(int) = rcache_status_name;

/* The option fields, by name and type. */
void header_fill_options(rcache_options *options);
void header_fill_options(rcache_options *options) {
  uint32_t connect_timeout_ms = 1, response_timeout_ms = 1;
  const char *key_prefix = "p:";
  int64_t default_ttl_ms = RCACHE_TTL_NONE;
  size_t limit = 1;
  bool flag = true;
  options->connect_timeout_ms = connect_timeout_ms;
  options->response_timeout_ms = response_timeout_ms;
  options->key_prefix = key_prefix;
  options->default_ttl_ms = default_ttl_ms;
  options->max_key_bytes = limit;
  options->max_value_bytes = limit;
  options->memory_max_entries = limit;
  options->memory_max_bytes = flag ? limit : 0;
}
