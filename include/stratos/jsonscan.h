/* Validating JSON scanner: checks a whole document, then reads values by key, index or path without building a tree. */
#ifndef STRATOS_JSONSCAN_H
#define STRATOS_JSONSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "stratos/limits.h"

/*
 * Use: jsonscan_validate() the whole text once (full RFC 8259 grammar,
 * UTF-8, depth and number range, accepting exactly what jansson accepts),
 * then look up the few values a handler needs. A value is a span of the
 * caller's text: nothing is copied or allocated until a string is decoded
 * (jsonscan_string) or a small span is turned into a tree (jsonscan_json).
 *
 *   struct jsonscan_doc doc;
 *   struct jsonscan_value root, uid;
 *   if (jsonscan_validate(body, len, &doc, &root, &err) < 0) ...400 err.text...
 *   uid = jsonscan_path(root, "request", "uid", NULL);
 *   ...
 *   jsonscan_doc_free(&doc);
 *
 * A large array is walked element by element (jsonscan_next), each one a
 * span to look into, so reading one field of 5,000 objects costs one pass.
 *
 * The lookups assume validated text: on other text they stay within the
 * span and answer "absent", but their answer is not meaningful. Values are
 * plain structs: copy them freely; they borrow the text, which must outlive
 * them. Every function is thread-safe (no shared state).
 */

enum jsonscan_type {
	JSONSCAN_ABSENT = 0,            /* no such key / index (p is NULL) */
	JSONSCAN_OBJECT,
	JSONSCAN_ARRAY,
	JSONSCAN_STRING,
	JSONSCAN_NUMBER,
	JSONSCAN_TRUE,
	JSONSCAN_FALSE,
	JSONSCAN_NULL,
};

struct jsonscan_doc;

struct jsonscan_value {
	const char *p;                  /* first byte of the value's text */
	size_t len;                     /* bytes of text, quotes and brackets included */
	enum jsonscan_type type;
	const struct jsonscan_doc *doc; /* container ends recorded by jsonscan_validate(), or NULL */
};

/* Containers recorded without allocating, for small documents (an AdmissionReview). */
#define JSONSCAN_DOC_SMALL 128

/*
 * Where every object and array of a checked text ends, recorded while it
 * was checked: a lookup then jumps over a container instead of reading it,
 * so finding request.object.spec costs the keys on the way, not the bytes.
 * Lives on the caller's stack or in a struct; fields are private.
 */
struct jsonscan_doc {
	const char *text;
	size_t len;
	size_t n, cap;
	uint32_t *open, *close;         /* offsets of each container's brackets, in text order */
	uint32_t small_open[JSONSCAN_DOC_SMALL], small_close[JSONSCAN_DOC_SMALL];
};

/* Where and why a text was refused. */
struct jsonscan_error {
	size_t offset;                  /* byte offset of the problem */
	int line, column;               /* 1-based; column counts bytes */
	char text[96];
};

/*
 * Checks that text[0..len) is exactly one JSON value with optional white
 * space around it, as jansson's json_loadb(JSON_DECODE_ANY) would accept:
 * strict UTF-8 everywhere, no "\u0000", paired surrogate escapes, integers
 * within long long, reals that do not overflow a double (C locale), values
 * nested at most LIMITS_JSON_DEPTH deep (a value inside N containers is at
 * depth N+1). On success *root is the top-level value. With doc (may be
 * NULL), the containers' ends are recorded there and values found from
 * root use them; free it with jsonscan_doc_free() in every case, after the
 * last use of those values. Returns 0, -EINVAL (err filled), or -ENOMEM.
 * root and err may be NULL. No recursion: any depth of input is safe.
 */
int jsonscan_validate(const char *text, size_t len, struct jsonscan_doc *doc,
    struct jsonscan_value *root, struct jsonscan_error *err);

/* Frees what jsonscan_validate() recorded in doc. NULL-safe. */
void jsonscan_doc_free(struct jsonscan_doc *doc);

/*
 * The member key of an object; the last one when the key is repeated (as
 * jansson keeps). ABSENT when obj is not an object or has no such member.
 * Keys are compared after unescaping, so "\u0061" matches "a".
 */
struct jsonscan_value jsonscan_get(struct jsonscan_value obj, const char *key);

/*
 * Several members in one pass over obj: out[i] is the member keys[i] (last
 * one wins), ABSENT when missing or obj is not an object.
 */
void jsonscan_get_many(struct jsonscan_value obj, const char *const *keys, size_t n,
    struct jsonscan_value *out);

/* Walks object members down a NULL-terminated list of keys: jsonscan_path(v, "a", "b", NULL). */
struct jsonscan_value jsonscan_path(struct jsonscan_value v, ...) __attribute__((sentinel));

/* Element i of an array; ABSENT when v is not an array or is shorter. */
struct jsonscan_value jsonscan_index(struct jsonscan_value v, size_t i);

/* Elements of an array, or members of an object, one at a time. */
struct jsonscan_iter {
	const char *p, *end;
	const struct jsonscan_doc *doc;
	bool object;
};

/* Starts a walk over v's elements or members (none when v is neither). */
void jsonscan_iter_init(struct jsonscan_iter *it, struct jsonscan_value v);

/*
 * The next element (arrays) or member (objects: key is the member's key as
 * a STRING value, may be NULL). false at the end.
 */
bool jsonscan_next(struct jsonscan_iter *it, struct jsonscan_value *key,
    struct jsonscan_value *value);

/* Elements or members of v; 0 when v is neither an array nor an object. */
size_t jsonscan_count(struct jsonscan_value v);

/*
 * Decodes a STRING value (escapes resolved, UTF-8) into out, NUL-terminated.
 * *outlen (may be NULL) gets the length without the NUL. Returns 0, -EINVAL
 * when v is not a string, -ENOSPC when cap is too small (out then holds a
 * truncated prefix). A decoded string never contains a NUL byte.
 */
int jsonscan_string(struct jsonscan_value v, char *out, size_t cap, size_t *outlen);

/* The decoded string in new memory (caller frees), or NULL when v is not a string or on ENOMEM. */
char *jsonscan_strdup(struct jsonscan_value v);

/* True when v is a STRING whose decoded text equals s. */
bool jsonscan_string_equal(struct jsonscan_value v, const char *s);

/* Length of the decoded string (without NUL); 0 when v is not a string. */
size_t jsonscan_string_length(struct jsonscan_value v);

/*
 * The value as a jansson tree (new reference), for a small part of a large
 * document: built from the checked text without lexing it again (strings
 * are not re-checked for UTF-8). The same tree json_loadb() would give.
 * NULL when v is ABSENT, on ENOMEM, or past LIMITS_JSON_DEPTH.
 */
json_t *jsonscan_json(struct jsonscan_value v);

#endif
