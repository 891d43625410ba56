/* Interned, reference-counted immutable strings and blobs: equal content is stored once. */
#ifndef STRATOS_INTERN_H
#define STRATOS_INTERN_H

#include <stddef.h>

/*
 * Called when the last reference to a blob goes, before its memory is freed,
 * to release what the blob itself references (interned strings inside it).
 */
typedef void (*intern_release_fn)(const void *data, size_t len);

/*
 * Returns the interned copy of s with one more reference (release it with
 * intern_release). NULL when s is NULL or on ENOMEM. Thread-safe.
 */
const char *intern_str(const char *s);

/* Same for the first n bytes of s (no NUL needed). */
const char *intern_strn(const char *s, size_t n);

/*
 * Interns len bytes of data (compared byte for byte, so zero the padding of
 * structs). On a match, data is not copied and release_inner is not called:
 * the caller keeps the references it took for its copy and must drop them.
 * The result is aligned for any type. NULL on ENOMEM. Thread-safe.
 */
const void *intern_blob(const void *data, size_t len, intern_release_fn release_inner,
    int *matched);

/* Adds a reference to an interned string or blob (NULL-safe). Thread-safe. */
const void *intern_ref(const void *p);

/* Drops a reference; the last one frees it. NULL-safe. Thread-safe. */
void intern_release(const void *p);

/* Entries and bytes held (headers included), for memory reports. Thread-safe. */
void intern_stats(size_t *entries, size_t *bytes);

/*
 * Entries in the longest bucket chain: what the slowest lookup compares.
 * Walks the whole table under the lock (tests and diagnostics). Thread-safe.
 */
size_t intern_longest_chain(void);

#endif
