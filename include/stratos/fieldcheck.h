/* Field-by-field checking of JSON objects: typed getters that report "field.path: problem", Kubernetes name syntax. */
#ifndef STRATOS_FIELDCHECK_H
#define STRATOS_FIELDCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "stratos/buf.h"
#include "stratos/limits.h"

/* One violation or warning: field is the path ("spec.template.startupTaints[0].effect"). */
struct fieldcheck_issue {
	char *field;
	char *message;
};

/*
 * Everything wrong (violations) or risky (warnings) with one object, in the
 * order the fields were checked. At most LIMITS_VALIDATE_ISSUES issues are
 * kept; dropped counts the rest. Not thread-safe; one report per check.
 */
struct fieldcheck_report {
	struct fieldcheck_issue *violations;
	size_t nviolations;
	struct fieldcheck_issue *warnings;
	size_t nwarnings;
	size_t dropped;         /* issues beyond the cap (or lost to ENOMEM) */
};

void fieldcheck_report_init(struct fieldcheck_report *rep);

/* Frees every issue. NULL-safe; the report can be reused after init. */
void fieldcheck_report_free(struct fieldcheck_report *rep);

/* Records an issue. field may be "" (the whole object). Never fails: on ENOMEM the issue is counted in dropped. */
void fieldcheck_report_violation(struct fieldcheck_report *rep, const char *field,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void fieldcheck_report_warning(struct fieldcheck_report *rep, const char *field,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* "field: message" (or "message" when field is ""). */
int fieldcheck_issue_format(const struct fieldcheck_issue *issue, struct buf *out);

/*
 * A walk over one object: the report and the path of the field being
 * looked at. fc.rep may be NULL (parse without collecting issues).
 */
struct fieldcheck {
	struct fieldcheck_report *rep;
	size_t len;
	bool overflow;          /* the path did not fit; it is shown truncated */
	char path[LIMITS_VALIDATE_PATH];
};

/* Starts a walk at the root (empty path). */
void fieldcheck_init(struct fieldcheck *fc, struct fieldcheck_report *rep);

/*
 * Path steps. Each returns a mark to give back to fieldcheck_pop:
 * push("spec") → "spec", push("poolSize") → "spec.poolSize",
 * push_index(0) → "...[0]", push_key("stratos.sh/pool") → "...[stratos.sh/pool]".
 */
size_t fieldcheck_push(struct fieldcheck *fc, const char *field);
size_t fieldcheck_push_index(struct fieldcheck *fc, size_t index);
size_t fieldcheck_push_key(struct fieldcheck *fc, const char *key);
void fieldcheck_pop(struct fieldcheck *fc, size_t mark);

/* Records a violation / warning at the current path. */
void fieldcheck_violation(struct fieldcheck *fc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void fieldcheck_warning(struct fieldcheck *fc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Messages every getter uses; callers use them too so the wording stays one. */
#define FIELDCHECK_MSG_REQUIRED   "is required"
#define FIELDCHECK_MSG_OBJECT     "must be an object"
#define FIELDCHECK_MSG_LIST       "must be a list"
#define FIELDCHECK_MSG_STRING     "must be a string"
#define FIELDCHECK_MSG_INTEGER    "must be an integer"
#define FIELDCHECK_MSG_BOOLEAN    "must be a boolean"
#define FIELDCHECK_MSG_UNKNOWN    "unknown field"
#define FIELDCHECK_MSG_DURATION   "must be a duration like 30s, 5m or 1h30m"
#define FIELDCHECK_MSG_NEGATIVE   "must not be negative"
#define FIELDCHECK_MSG_DUPLICATE  "duplicate value"

/* Getter flags. */
#define FIELDCHECK_REQUIRED 0x1u

/*
 * Typed getters for parent[key]. A missing key or JSON null is "absent"
 * (Kubernetes drops nulls of non-nullable fields). Each returns 1 when the
 * value is present and good (*out set), 0 when absent (violation
 * "key: is required" if FIELDCHECK_REQUIRED), -1 when present but wrong
 * (violation recorded at path.key; *out untouched). parent must be an object.
 */
int fieldcheck_object(struct fieldcheck *fc, const json_t *parent, const char *key,
    unsigned flags, const json_t **out);
int fieldcheck_string(struct fieldcheck *fc, const json_t *parent, const char *key,
    unsigned flags, const char **out);
int fieldcheck_bool(struct fieldcheck *fc, const json_t *parent, const char *key,
    unsigned flags, bool *out);
/* Integer within [min, max]: "must be between min and max" (or "must be at least min"). */
int fieldcheck_int(struct fieldcheck *fc, const json_t *parent, const char *key,
    unsigned flags, int64_t min, int64_t max, int64_t *out);
/* One of values (NULL-terminated): "must be one of A, B, C"; *out is the index. */
int fieldcheck_enum(struct fieldcheck *fc, const json_t *parent, const char *key,
    unsigned flags, const char *const *values, int *out);
/* A Go duration string, ≥ 0, in ms. The caller checks its own range. */
int fieldcheck_duration(struct fieldcheck *fc, const json_t *parent, const char *key,
    unsigned flags, int64_t *out_ms);
/*
 * A list of at most max items; FIELDCHECK_REQUIRED also means non-empty
 * ("must have at least 1 item"). Beyond max: "must have at most N items",
 * returns -1.
 */
int fieldcheck_list(struct fieldcheck *fc, const json_t *parent, const char *key,
    unsigned flags, size_t max, const json_t **out);
/* A map of strings with at most max entries; non-string values are violations at [key], skipped by callers. */
int fieldcheck_map(struct fieldcheck *fc, const json_t *parent, const char *key,
    unsigned flags, size_t max, const json_t **out);

/*
 * Runs fn, the checks of one kind, over obj from the root of a new walk.
 * Violations go to rep, or to a scratch report when rep is NULL, so that
 * *nviolations (how many fn found, dropped ones included) is right either
 * way. Returns -EINVAL when obj is not an object ("must be an object"
 * reported, fn not called), else what fn returns. Thread-safe.
 */
int fieldcheck_walk(const json_t *obj, struct fieldcheck_report *rep,
    int (*fn)(struct fieldcheck *fc, const json_t *obj, void *arg), void *arg,
    size_t *nviolations);

/* Replaces *dst (NULL or allocated) with a copy of s. false on ENOMEM (*dst unchanged). */
bool fieldcheck_set_string(char **dst, const char *s);

/*
 * The metadata every stratos.sh kind keeps, from obj at the root of the
 * walk: metadata.name is required and must be a DNS-1123 subdomain. The
 * name (even a bad one), uid and resourceVersion replace *name, *uid and
 * *resource_version when they are strings; *generation is set when
 * metadata.generation is an integer; *deleting says whether
 * deletionTimestamp is set. Returns 1 when the name is present and valid,
 * 0 when not, -ENOMEM.
 */
int fieldcheck_metadata(struct fieldcheck *fc, const json_t *obj, char **name, char **uid,
    char **resource_version, int64_t *generation, bool *deleting);

/*
 * A list of unique strings (a CRD list of type set) of at most max items at
 * parent[key], as fieldcheck_list. Each item must be a string that valid()
 * accepts: it gets the string and its length in bytes (NULs included),
 * reports its own violation at the item's path and returns false. A repeat
 * is "duplicate value". The good items are copied, in order, into a new
 * NULL-terminated *out (the caller frees it and its strings), *nout
 * counting them; *out stays untouched when the list is absent or wrong.
 * Returns 0, or -ENOMEM.
 */
int fieldcheck_string_set(struct fieldcheck *fc, const json_t *parent, const char *key,
    unsigned flags, size_t max, bool (*valid)(struct fieldcheck *fc, const char *s, size_t len),
    char ***out, size_t *nout);

/* One entry of a map of strings (labels, tags); both strings owned. */
struct fieldcheck_pair {
	char *key;
	char *value;
};

/* Frees n pairs and the array. NULL-safe. */
void fieldcheck_pairs_free(struct fieldcheck_pair *pairs, size_t n);

/*
 * A map of strings of at most max entries at parent[key], as
 * fieldcheck_map. valid() is called for every entry, at the entry's path
 * ("...key[k]"), with the value as it is (a non-string was already
 * reported); it reports what is wrong and returns false. Entries that are
 * strings and valid are copied, in object order, into a new *out (the
 * caller frees it with fieldcheck_pairs_free), *nout counting them; *out
 * stays untouched when the map is absent or wrong. Returns 0, or -ENOMEM.
 */
int fieldcheck_string_map(struct fieldcheck *fc, const json_t *parent, const char *key,
    size_t max, bool (*valid)(struct fieldcheck *fc, const char *k, const json_t *v,
    const void *arg), const void *arg, struct fieldcheck_pair **out, size_t *nout);

/* Reports "unknown field" for every key of obj (at the current path) not in known (NULL-terminated). */
void fieldcheck_unknown_fields(struct fieldcheck *fc, const json_t *obj,
    const char *const *known);

/*
 * Syntax checks. Each returns NULL when s is valid, else a static
 * description of the problem (stable text, used in messages).
 */
/* Label key / taint key: [DNS-1123 subdomain prefix "/"] name (≤ 63, alphanumerics, '-', '_', '.'). */
const char *fieldcheck_qualified_name(const char *s);
/* Label value / taint value: empty, or ≤ 63 alphanumerics, '-', '_', '.' starting and ending alphanumeric. */
const char *fieldcheck_label_value(const char *s);
/* DNS-1123 label (≤ 63) and subdomain (≤ 253). */
const char *fieldcheck_dns1123_label(const char *s);
const char *fieldcheck_dns1123_subdomain(const char *s);
/* Container image reference, distribution grammar: [registry[:port]/]path[:tag][@digest]. */
const char *fieldcheck_image_ref(const char *s);

#endif
