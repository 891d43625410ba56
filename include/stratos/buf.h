/* Growable byte buffer with a hard cap chosen when it is created. */
#ifndef STRATOS_BUF_H
#define STRATOS_BUF_H

#include <stddef.h>

/*
 * data is always NUL-terminated (when non-NULL) so text can be used as a C
 * string; len excludes the terminator. Not thread-safe.
 */
struct buf {
	char *data;
	size_t len;
	size_t alloc;
	size_t max;     /* hard cap on len */
};

/* Initialises an empty buffer that may grow to max bytes. No allocation. */
void buf_init(struct buf *b, size_t max);

/* Appends n bytes. Returns 0, -E2BIG past the cap (b unchanged) or -ENOMEM. */
int buf_append(struct buf *b, const void *data, size_t n);

/* Appends a C string. Same errors as buf_append. */
int buf_append_str(struct buf *b, const char *s);

/* Appends formatted text. Same errors as buf_append. */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Empties the buffer, keeping its memory. */
void buf_reset(struct buf *b);

/* Returns the data (NUL-terminated, caller frees; "" when empty) and empties b. */
char *buf_take(struct buf *b);

/* Frees the memory. NULL-safe. */
void buf_free(struct buf *b);

/* Wipes the bytes (secrets) and frees the memory. NULL-safe. */
void buf_free_secure(struct buf *b);

#endif
