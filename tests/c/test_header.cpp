// rcache.h compiles on its own as C++17 under -Wall -Wextra -Wpedantic -Werror
// (see the Makefile's header target), and its include guard lets it be
// included twice. Nothing else is included before it.
#include "rcache.h"
#include "rcache.h"

#ifndef RCACHE_H
#error "rcache.h does not define its include guard RCACHE_H"
#endif

#include <type_traits>

static_assert(RCACHE_TTL_NONE == -1, "RCACHE_TTL_NONE is -1");
static_assert(RCACHE_TTL_DEFAULT == 0, "RCACHE_TTL_DEFAULT is 0");
static_assert(RCACHE_ABI_VERSION >= 1, "RCACHE_ABI_VERSION is set");
static_assert(RCACHE_STATUS_OK == 0 && RCACHE_STATUS_PANIC == 10, "status values");
static_assert(RCACHE_STATUS_CORRUPT == 11, "RCACHE_STATUS_CORRUPT is 11");
static_assert(RCACHE_MAX_TAGS == 256, "at most 256 tags per call");
static_assert(RCACHE_STATUS_CONFLICT == 13, "RCACHE_STATUS_CONFLICT is 13");
static_assert(RCACHE_SESSION_NO_SLIDE == -2, "RCACHE_SESSION_NO_SLIDE is -2");
static_assert(RCACHE_TTL_KEEP == -2, "RCACHE_TTL_KEEP is -2");
static_assert(std::is_enum<rcache_write_condition>::value, "rcache_write_condition is an enum");
static_assert(RCACHE_WRITE_IF_ABSENT == 2, "rcache_write_condition values");
static_assert(std::is_trivially_copyable<rcache_session_new>::value, "rcache_session_new is a C struct");
static_assert(std::is_trivially_copyable<rcache_session_owner>::value, "rcache_session_owner is a C struct");
static_assert(std::is_standard_layout<rcache_options>::value, "rcache_options is a C struct");
static_assert(std::is_trivially_copyable<rcache_buffer>::value, "rcache_buffer is a C struct");
static_assert(std::is_trivially_copyable<rcache_bytes>::value, "rcache_bytes is a C struct");
static_assert(std::is_enum<rcache_status>::value, "rcache_status is an enum");

// The declarations have the documented signatures and C linkage-compatible types.
static_assert(std::is_same<decltype(&rcache_version), const char *(*)()>::value, "");
static_assert(std::is_same<decltype(&rcache_abi_version), uint32_t (*)()>::value, "");
static_assert(std::is_same<decltype(&rcache_options_default), rcache_options (*)()>::value, "");
static_assert(std::is_same<decltype(&rcache_client_connect),
                           rcache_status (*)(const char *, const rcache_options *,
                                             rcache_client **)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_free), void (*)(rcache_client *)>::value, "");
static_assert(std::is_same<decltype(&rcache_client_get),
                           rcache_status (*)(const rcache_client *, const uint8_t *, size_t,
                                             rcache_buffer *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_set),
                           rcache_status (*)(const rcache_client *, const uint8_t *, size_t,
                                             const uint8_t *, size_t, int64_t)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_delete),
                           rcache_status (*)(const rcache_client *, const uint8_t *, size_t)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_exists),
                           rcache_status (*)(const rcache_client *, const uint8_t *, size_t)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_ttl),
                           rcache_status (*)(const rcache_client *, const uint8_t *, size_t,
                                             int64_t *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_expire),
                           rcache_status (*)(const rcache_client *, const uint8_t *, size_t,
                                             int64_t)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_get_many),
                           rcache_status (*)(const rcache_client *, const rcache_bytes *, size_t,
                                             rcache_buffer *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_set_many),
                           rcache_status (*)(const rcache_client *, const rcache_bytes *,
                                             const rcache_bytes *, size_t, int64_t)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_incr),
                           rcache_status (*)(const rcache_client *, const uint8_t *, size_t,
                                             int64_t, int64_t, int64_t *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_set_tagged),
                           rcache_status (*)(const rcache_client *, const uint8_t *, size_t,
                                             const uint8_t *, size_t, int64_t,
                                             const rcache_bytes *, size_t)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_add_tags),
                           rcache_status (*)(const rcache_client *, const uint8_t *, size_t,
                                             const rcache_bytes *, size_t)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_invalidate_tags),
                           rcache_status (*)(const rcache_client *, const rcache_bytes *,
                                             size_t)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_clear),
                           rcache_status (*)(const rcache_client *, const uint8_t *, size_t,
                                             uint64_t *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_get_with_ttl),
                           rcache_status (*)(const rcache_client *, const uint8_t *, size_t,
                                             rcache_buffer *, int64_t *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_compare_and_set),
                           rcache_status (*)(const rcache_client *, const uint8_t *, size_t,
                                             const uint8_t *, size_t, const uint8_t *, size_t,
                                             int64_t)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_hash_get),
                           rcache_status (*)(const rcache_client *, const uint8_t *, size_t,
                                             rcache_buffer **, rcache_buffer **, size_t *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_hash_set),
                           rcache_status (*)(const rcache_client *, const uint8_t *, size_t,
                                             const rcache_bytes *, const rcache_bytes *, size_t,
                                             int64_t, int)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_keys),
                           rcache_status (*)(const rcache_client *, const uint8_t *, size_t,
                                             rcache_buffer **, size_t *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_lock),
                           rcache_status (*)(const rcache_client *, const uint8_t *, size_t,
                                             const uint8_t *, size_t, uint32_t)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_extend_lock),
                           rcache_status (*)(const rcache_client *, const uint8_t *, size_t,
                                             const uint8_t *, size_t, uint32_t)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_unlock),
                           rcache_status (*)(const rcache_client *, const uint8_t *, size_t,
                                             const uint8_t *, size_t)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_server_info),
                           rcache_status (*)(const rcache_client *, rcache_buffer *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_client_metrics),
                           rcache_status (*)(const rcache_client *, const char *, rcache_buffer *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_buffer_array_free),
                           void (*)(rcache_buffer *, size_t)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_buffer_free), void (*)(rcache_buffer *)>::value, "");
static_assert(std::is_same<decltype(&rcache_buffers_free),
                           void (*)(rcache_buffer *, size_t)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_last_error), const char *(*)()>::value, "");
static_assert(std::is_same<decltype(&rcache_session_store_open),
                           rcache_status (*)(const rcache_client *, const uint8_t *, size_t,
                                             rcache_session_store **)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_session_store_free),
                           void (*)(rcache_session_store *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_session_create),
                           rcache_status (*)(const rcache_session_store *, const rcache_bytes *,
                                             const rcache_bytes *, size_t, int64_t,
                                             rcache_session_new *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_session_load),
                           rcache_status (*)(const rcache_session_store *, const uint8_t *, size_t,
                                             const uint8_t *, size_t, int64_t,
                                             rcache_session_record **)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_session_save),
                           rcache_status (*)(const rcache_session_store *, const uint8_t *, size_t,
                                             const uint8_t *, size_t, uint64_t,
                                             const rcache_bytes *, const rcache_bytes *, size_t,
                                             const rcache_bytes *, size_t, int64_t,
                                             uint64_t *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_session_touch),
                           rcache_status (*)(const rcache_session_store *, const uint8_t *, size_t,
                                             const uint8_t *, size_t, int64_t)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_session_destroy),
                           rcache_status (*)(const rcache_session_store *, const uint8_t *, size_t,
                                             const uint8_t *, size_t)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_session_purge),
                           rcache_status (*)(const rcache_session_store *, uint64_t,
                                             uint64_t *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_session_lock),
                           rcache_status (*)(const rcache_session_store *, const uint8_t *, size_t,
                                             const uint8_t *, size_t, uint32_t,
                                             rcache_session_owner *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_session_unlock),
                           rcache_status (*)(const rcache_session_store *, const uint8_t *, size_t,
                                             const char *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_session_record_version),
                           uint64_t (*)(const rcache_session_record *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_session_record_touched_ms),
                           uint64_t (*)(const rcache_session_record *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_session_record_field_count),
                           size_t (*)(const rcache_session_record *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_session_record_field),
                           rcache_status (*)(const rcache_session_record *, size_t, rcache_bytes *,
                                             rcache_bytes *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_session_record_free),
                           void (*)(rcache_session_record *)>::value,
              "");
static_assert(std::is_same<decltype(&rcache_status_name), const char *(*)(int)>::value, "");

// The option fields, by name and type.
static_assert(std::is_same<decltype(rcache_options::connect_timeout_ms), uint32_t>::value, "");
static_assert(std::is_same<decltype(rcache_options::response_timeout_ms), uint32_t>::value, "");
static_assert(std::is_same<decltype(rcache_options::key_prefix), const char *>::value, "");
static_assert(std::is_same<decltype(rcache_options::default_ttl_ms), int64_t>::value, "");
static_assert(std::is_same<decltype(rcache_options::max_key_bytes), size_t>::value, "");
static_assert(std::is_same<decltype(rcache_options::max_value_bytes), size_t>::value, "");
static_assert(std::is_same<decltype(rcache_options::memory_max_entries), size_t>::value, "");
static_assert(std::is_same<decltype(rcache_options::memory_max_bytes), size_t>::value, "");
static_assert(std::is_same<decltype(rcache_buffer::data), uint8_t *>::value, "");
static_assert(std::is_same<decltype(rcache_bytes::data), const uint8_t *>::value, "");
static_assert(std::is_same<decltype(rcache_session_new::id), char[33]>::value, "");
static_assert(std::is_same<decltype(rcache_session_new::secret), char[33]>::value, "");
static_assert(std::is_same<decltype(rcache_session_owner::token), char[33]>::value, "");

// The names live in the global namespace and are usable from a C++ namespace.
namespace header_check {
inline rcache_options defaults() { return rcache_options_default(); }
}  // namespace header_check
