/* Field-by-field checking of JSON objects: typed getters that report "field.path: problem", Kubernetes name syntax. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/fieldcheck.h"
#include "stratos/timeutil.h"

void
fieldcheck_report_init(struct fieldcheck_report *rep)
{
	memset(rep, 0, sizeof(*rep));
}

static void
fieldcheck__free_issues(struct fieldcheck_issue *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].field);
		free(v[i].message);
	}
	free(v);
}

void
fieldcheck_report_free(struct fieldcheck_report *rep)
{
	if (rep == NULL)
		return;
	fieldcheck__free_issues(rep->violations, rep->nviolations);
	fieldcheck__free_issues(rep->warnings, rep->nwarnings);
	fieldcheck_report_init(rep);
}

static void
fieldcheck__add(struct fieldcheck_report *rep, bool violation, const char *field,
    const char *fmt, va_list ap)
{
	struct fieldcheck_issue **list = violation ? &rep->violations : &rep->warnings;
	size_t *n = violation ? &rep->nviolations : &rep->nwarnings;
	struct fieldcheck_issue *grown;
	char *msg = NULL;

	if (rep->nviolations + rep->nwarnings >= LIMITS_VALIDATE_ISSUES)
		goto drop;
	/* Grow by doubling from 4: powers of two need no capacity field. */
	if (*n >= 4 && (*n & (*n - 1)) == 0) {
		grown = realloc(*list, 2 * *n * sizeof(**list));
		if (grown == NULL)
			goto drop;
		*list = grown;
	} else if (*n == 0) {
		*list = malloc(4 * sizeof(**list));
		if (*list == NULL)
			goto drop;
	}
	if (vasprintf(&msg, fmt, ap) < 0)
		goto drop;
	(*list)[*n].field = strdup(field);
	if ((*list)[*n].field == NULL) {
		free(msg);
		goto drop;
	}
	(*list)[*n].message = msg;
	(*n)++;
	return;
drop:
	rep->dropped++;
}

void
fieldcheck_report_violation(struct fieldcheck_report *rep, const char *field,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fieldcheck__add(rep, true, field, fmt, ap);
	va_end(ap);
}

void
fieldcheck_report_warning(struct fieldcheck_report *rep, const char *field,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fieldcheck__add(rep, false, field, fmt, ap);
	va_end(ap);
}

int
fieldcheck_issue_format(const struct fieldcheck_issue *issue, struct buf *out)
{
	if (issue->field[0] == '\0')
		return buf_append_str(out, issue->message);
	return buf_printf(out, "%s: %s", issue->field, issue->message);
}

void
fieldcheck_init(struct fieldcheck *fc, struct fieldcheck_report *rep)
{
	fc->rep = rep;
	fc->len = 0;
	fc->overflow = false;
	fc->path[0] = '\0';
}

/* Appends text to the path; a path that does not fit ends in "..." so it is visibly cut. */
static size_t
fieldcheck__append(struct fieldcheck *fc, const char *a, const char *b, const char *c)
{
	size_t mark = fc->len;
	int n;

	if (fc->overflow)
		return mark;
	n = snprintf(fc->path + fc->len, sizeof(fc->path) - fc->len, "%s%s%s", a, b, c);
	if (n < 0 || (size_t)n >= sizeof(fc->path) - fc->len) {
		memcpy(fc->path + sizeof(fc->path) - 4, "...", 4);
		fc->len = sizeof(fc->path) - 1;
		fc->overflow = true;
		return mark;
	}
	fc->len += (size_t)n;
	return mark;
}

size_t
fieldcheck_push(struct fieldcheck *fc, const char *field)
{
	return fieldcheck__append(fc, fc->len > 0 ? "." : "", field, "");
}

size_t
fieldcheck_push_index(struct fieldcheck *fc, size_t index)
{
	char num[32];

	snprintf(num, sizeof(num), "[%zu]", index);
	return fieldcheck__append(fc, num, "", "");
}

size_t
fieldcheck_push_key(struct fieldcheck *fc, const char *key)
{
	return fieldcheck__append(fc, "[", key, "]");
}

void
fieldcheck_pop(struct fieldcheck *fc, size_t mark)
{
	if (mark > fc->len)
		return;
	fc->len = mark;
	fc->path[mark] = '\0';
	fc->overflow = false;
}

void
fieldcheck_violation(struct fieldcheck *fc, const char *fmt, ...)
{
	va_list ap;

	if (fc->rep == NULL)
		return;
	va_start(ap, fmt);
	fieldcheck__add(fc->rep, true, fc->path, fmt, ap);
	va_end(ap);
}

void
fieldcheck_warning(struct fieldcheck *fc, const char *fmt, ...)
{
	va_list ap;

	if (fc->rep == NULL)
		return;
	va_start(ap, fmt);
	fieldcheck__add(fc->rep, false, fc->path, fmt, ap);
	va_end(ap);
}

/* Violation at path.key. */
static void
fieldcheck__key_violation(struct fieldcheck *fc, const char *key, const char *msg)
{
	size_t mark = fieldcheck_push(fc, key);

	fieldcheck_violation(fc, "%s", msg);
	fieldcheck_pop(fc, mark);
}

/* The value of parent[key], or NULL when absent or null (reporting "required"). */
static const json_t *
fieldcheck__get(struct fieldcheck *fc, const json_t *parent, const char *key, unsigned flags)
{
	const json_t *v = json_object_get(parent, key);

	if (v == NULL || json_is_null(v)) {
		if (flags & FIELDCHECK_REQUIRED)
			fieldcheck__key_violation(fc, key, FIELDCHECK_MSG_REQUIRED);
		return NULL;
	}
	return v;
}

int
fieldcheck_object(struct fieldcheck *fc, const json_t *parent, const char *key,
    unsigned flags, const json_t **out)
{
	const json_t *v = fieldcheck__get(fc, parent, key, flags);

	if (v == NULL)
		return 0;
	if (!json_is_object(v)) {
		fieldcheck__key_violation(fc, key, FIELDCHECK_MSG_OBJECT);
		return -1;
	}
	*out = v;
	return 1;
}

int
fieldcheck_string(struct fieldcheck *fc, const json_t *parent, const char *key,
    unsigned flags, const char **out)
{
	const json_t *v = fieldcheck__get(fc, parent, key, flags);

	if (v == NULL)
		return 0;
	if (!json_is_string(v)) {
		fieldcheck__key_violation(fc, key, FIELDCHECK_MSG_STRING);
		return -1;
	}
	*out = json_string_value(v);
	return 1;
}

int
fieldcheck_bool(struct fieldcheck *fc, const json_t *parent, const char *key,
    unsigned flags, bool *out)
{
	const json_t *v = fieldcheck__get(fc, parent, key, flags);

	if (v == NULL)
		return 0;
	if (!json_is_boolean(v)) {
		fieldcheck__key_violation(fc, key, FIELDCHECK_MSG_BOOLEAN);
		return -1;
	}
	*out = json_is_true(v);
	return 1;
}

int
fieldcheck_int(struct fieldcheck *fc, const json_t *parent, const char *key,
    unsigned flags, int64_t min, int64_t max, int64_t *out)
{
	const json_t *v = fieldcheck__get(fc, parent, key, flags);
	int64_t n;
	size_t mark;

	if (v == NULL)
		return 0;
	if (!json_is_integer(v)) {
		fieldcheck__key_violation(fc, key, FIELDCHECK_MSG_INTEGER);
		return -1;
	}
	n = (int64_t)json_integer_value(v);
	if (n < min || n > max) {
		mark = fieldcheck_push(fc, key);
		if (max == INT64_MAX)
			fieldcheck_violation(fc, "must be at least %" PRId64, min);
		else
			fieldcheck_violation(fc, "must be between %" PRId64 " and %" PRId64, min, max);
		fieldcheck_pop(fc, mark);
		return -1;
	}
	*out = n;
	return 1;
}

int
fieldcheck_enum(struct fieldcheck *fc, const json_t *parent, const char *key,
    unsigned flags, const char *const *values, int *out)
{
	const char *s;
	char list[256];
	size_t len = 0;
	size_t mark;
	int rc = fieldcheck_string(fc, parent, key, flags, &s);

	if (rc <= 0)
		return rc;
	for (int i = 0; values[i] != NULL; i++) {
		if (strcmp(s, values[i]) == 0) {
			*out = i;
			return 1;
		}
	}
	list[0] = '\0';
	for (int i = 0; values[i] != NULL && len < sizeof(list); i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i > 0 ? ", " : "",
		    values[i]);
	mark = fieldcheck_push(fc, key);
	fieldcheck_violation(fc, "must be one of %s", list);
	fieldcheck_pop(fc, mark);
	return -1;
}

/*
 * The duration syntax the CRDs accept: ^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|μs|ms|s|m|h))+)$
 * (Go's syntax without sign, ".5s" or "5.s"), at most LIMITS_DURATION bytes.
 */
static bool
fieldcheck__duration_syntax(const char *s)
{
	static const char *const units[] = {
		"ns", "us", "\xc2\xb5s", "\xce\xbcs", "ms", "s", "m", "h",
	};
	const char *p = s;

	if (strlen(s) > LIMITS_DURATION || *s == '\0')
		return false;
	if (strcmp(s, "0") == 0)
		return true;
	while (*p != '\0') {
		size_t best = 0;
		if (!isdigit((unsigned char)*p))
			return false;
		while (isdigit((unsigned char)*p))
			p++;
		if (*p == '.') {
			p++;
			if (!isdigit((unsigned char)*p))
				return false;
			while (isdigit((unsigned char)*p))
				p++;
		}
		/* Longest unit first: "ms" before "m". */
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (strncmp(p, units[i], strlen(units[i])) == 0 && strlen(units[i]) > best)
				best = strlen(units[i]);
		if (best == 0)
			return false;
		p += best;
	}
	return true;
}

int
fieldcheck_duration(struct fieldcheck *fc, const json_t *parent, const char *key,
    unsigned flags, int64_t *out_ms)
{
	const char *s;
	int64_t ms;
	int rc = fieldcheck_string(fc, parent, key, flags, &s);

	if (rc <= 0)
		return rc;
	if (s[0] == '-' && fieldcheck__duration_syntax(s + 1)) {
		fieldcheck__key_violation(fc, key, FIELDCHECK_MSG_NEGATIVE);
		return -1;
	}
	if (!fieldcheck__duration_syntax(s) || duration_parse_ms(s, &ms) < 0) {
		fieldcheck__key_violation(fc, key, FIELDCHECK_MSG_DURATION);
		return -1;
	}
	*out_ms = ms;
	return 1;
}

int
fieldcheck_list(struct fieldcheck *fc, const json_t *parent, const char *key,
    unsigned flags, size_t max, const json_t **out)
{
	const json_t *v = fieldcheck__get(fc, parent, key, flags);
	size_t mark;

	if (v == NULL)
		return 0;
	if (!json_is_array(v)) {
		fieldcheck__key_violation(fc, key, FIELDCHECK_MSG_LIST);
		return -1;
	}
	if ((flags & FIELDCHECK_REQUIRED) && json_array_size(v) == 0) {
		fieldcheck__key_violation(fc, key, "must have at least 1 item");
		return -1;
	}
	if (json_array_size(v) > max) {
		mark = fieldcheck_push(fc, key);
		fieldcheck_violation(fc, "must have at most %zu items", max);
		fieldcheck_pop(fc, mark);
		return -1;
	}
	*out = v;
	return 1;
}

int
fieldcheck_map(struct fieldcheck *fc, const json_t *parent, const char *key,
    unsigned flags, size_t max, const json_t **out)
{
	const json_t *v = fieldcheck__get(fc, parent, key, flags);
	const char *k;
	json_t *item;
	size_t mark;

	if (v == NULL)
		return 0;
	if (!json_is_object(v)) {
		fieldcheck__key_violation(fc, key, FIELDCHECK_MSG_OBJECT);
		return -1;
	}
	mark = fieldcheck_push(fc, key);
	if (json_object_size(v) > max) {
		fieldcheck_violation(fc, "must have at most %zu entries", max);
		fieldcheck_pop(fc, mark);
		return -1;
	}
	json_object_foreach((json_t *)v, k, item) {
		if (!json_is_string(item)) {
			size_t m2 = fieldcheck_push_key(fc, k);
			fieldcheck_violation(fc, FIELDCHECK_MSG_STRING);
			fieldcheck_pop(fc, m2);
		}
	}
	fieldcheck_pop(fc, mark);
	*out = v;
	return 1;
}

int
fieldcheck_string_set(struct fieldcheck *fc, const json_t *parent, const char *key,
    unsigned flags, size_t max, bool (*valid)(struct fieldcheck *fc, const char *s, size_t len),
    char ***out, size_t *nout)
{
	const json_t *list = NULL;
	size_t mark;

	if (fieldcheck_list(fc, parent, key, flags, max, &list) <= 0)
		return 0;
	*out = calloc(json_array_size(list) + 1, sizeof(char *));
	if (*out == NULL)
		return -ENOMEM;
	mark = fieldcheck_push(fc, key);
	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *v = json_array_get(list, i);
		size_t m2 = fieldcheck_push_index(fc, i);
		bool dup = false;

		if (!json_is_string(v)) {
			fieldcheck_violation(fc, FIELDCHECK_MSG_STRING);
		} else if (valid(fc, json_string_value(v), json_string_length(v))) {
			for (size_t j = 0; j < *nout && !dup; j++)
				dup = strcmp((*out)[j], json_string_value(v)) == 0;
			if (dup) {
				fieldcheck_violation(fc, FIELDCHECK_MSG_DUPLICATE);
			} else {
				(*out)[*nout] = strdup(json_string_value(v));
				if ((*out)[*nout] == NULL)
					return -ENOMEM;
				(*nout)++;
			}
		}
		fieldcheck_pop(fc, m2);
	}
	fieldcheck_pop(fc, mark);
	return 0;
}

void
fieldcheck_pairs_free(struct fieldcheck_pair *pairs, size_t n)
{
	for (size_t i = 0; pairs != NULL && i < n; i++) {
		free(pairs[i].key);
		free(pairs[i].value);
	}
	free(pairs);
}

int
fieldcheck_string_map(struct fieldcheck *fc, const json_t *parent, const char *key,
    size_t max, bool (*valid)(struct fieldcheck *fc, const char *k, const json_t *v,
    const void *arg), const void *arg, struct fieldcheck_pair **out, size_t *nout)
{
	const json_t *map = NULL;
	const char *k;
	json_t *v;
	size_t mark;

	if (fieldcheck_map(fc, parent, key, 0, max, &map) <= 0)
		return 0;
	*out = calloc(json_object_size(map) + 1, sizeof(**out));
	if (*out == NULL)
		return -ENOMEM;
	mark = fieldcheck_push(fc, key);
	json_object_foreach((json_t *)map, k, v) {
		struct fieldcheck_pair *pair = &(*out)[*nout];
		size_t m2 = fieldcheck_push_key(fc, k);
		bool ok = valid(fc, k, v, arg) && json_is_string(v);

		fieldcheck_pop(fc, m2);
		if (!ok)
			continue;
		pair->key = strdup(k);
		pair->value = strdup(json_string_value(v));
		if (pair->key == NULL || pair->value == NULL) {
			free(pair->key);
			free(pair->value);
			return -ENOMEM;
		}
		(*nout)++;
	}
	fieldcheck_pop(fc, mark);
	return 0;
}

void
fieldcheck_unknown_fields(struct fieldcheck *fc, const json_t *obj, const char *const *known)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v) {
		bool found = false;
		for (size_t i = 0; known[i] != NULL && !found; i++)
			found = strcmp(key, known[i]) == 0;
		if (!found)
			fieldcheck__key_violation(fc, key, FIELDCHECK_MSG_UNKNOWN);
	}
}

int
fieldcheck_walk(const json_t *obj, struct fieldcheck_report *rep,
    int (*fn)(struct fieldcheck *fc, const json_t *obj, void *arg), void *arg,
    size_t *nviolations)
{
	struct fieldcheck_report local;
	struct fieldcheck fc;
	size_t before;
	int rc;

	fieldcheck_report_init(&local);
	fieldcheck_init(&fc, rep != NULL ? rep : &local);
	before = fc.rep->nviolations + fc.rep->dropped;
	if (!json_is_object(obj)) {
		fieldcheck_violation(&fc, FIELDCHECK_MSG_OBJECT);
		rc = -EINVAL;
	} else {
		rc = fn(&fc, obj, arg);
	}
	*nviolations = fc.rep->nviolations + fc.rep->dropped - before;
	fieldcheck_report_free(&local);
	return rc;
}

bool
fieldcheck_set_string(char **dst, const char *s)
{
	char *dup = strdup(s);

	if (dup == NULL)
		return false;
	free(*dst);
	*dst = dup;
	return true;
}

/* Copies md[key] into *dst when it is a string. false on ENOMEM. */
static bool
fieldcheck__copy_string(const json_t *md, const char *key, char **dst)
{
	const json_t *v = json_object_get(md, key);

	return !json_is_string(v) || fieldcheck_set_string(dst, json_string_value(v));
}

int
fieldcheck_metadata(struct fieldcheck *fc, const json_t *obj, char **name, char **uid,
    char **resource_version, int64_t *generation, bool *deleting)
{
	const json_t *md = NULL, *v;
	const char *s, *problem = NULL;
	size_t mark;
	int valid = 0, rc = fieldcheck_object(fc, obj, "metadata", 0, &md);

	if (rc == 0) {
		mark = fieldcheck_push(fc, "metadata.name");
		fieldcheck_violation(fc, FIELDCHECK_MSG_REQUIRED);
		fieldcheck_pop(fc, mark);
	}
	if (rc <= 0)
		return 0;
	mark = fieldcheck_push(fc, "metadata");
	if (fieldcheck_string(fc, md, "name", FIELDCHECK_REQUIRED, &s) > 0) {
		size_t m2 = fieldcheck_push(fc, "name");
		if ((problem = fieldcheck_dns1123_subdomain(s)) != NULL)
			fieldcheck_violation(fc, "%s", problem);
		fieldcheck_pop(fc, m2);
		valid = problem == NULL;
	}
	if (!fieldcheck__copy_string(md, "name", name) || !fieldcheck__copy_string(md, "uid", uid) ||
	    !fieldcheck__copy_string(md, "resourceVersion", resource_version))
		return -ENOMEM;
	if ((v = json_object_get(md, "generation")) != NULL && json_is_integer(v))
		*generation = (int64_t)json_integer_value(v);
	v = json_object_get(md, "deletionTimestamp");
	*deleting = v != NULL && !json_is_null(v);
	fieldcheck_pop(fc, mark);
	return valid;
}

/* --- Kubernetes name syntax (apimachinery/pkg/util/validation) --- */

static bool
fieldcheck__alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool
fieldcheck__lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9] over n bytes. */
static bool
fieldcheck__name_chars(const char *s, size_t n)
{
	if (n == 0 || !fieldcheck__alnum(s[0]) || !fieldcheck__alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!fieldcheck__alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

/* [a-z0-9]([-a-z0-9]*[a-z0-9])? over n bytes. */
static bool
fieldcheck__dns_label_chars(const char *s, size_t n)
{
	if (n == 0 || !fieldcheck__lower_alnum(s[0]) || !fieldcheck__lower_alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!fieldcheck__lower_alnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

/* Dot-separated DNS labels over n bytes (no length check). */
static bool
fieldcheck__dns_subdomain_chars(const char *s, size_t n)
{
	size_t start = 0;

	if (n == 0)
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (!fieldcheck__dns_label_chars(s + start, i - start))
				return false;
			start = i + 1;
		}
	}
	return true;
}

#define FIELDCHECK__NAME_CHARS_MSG \
	"must consist of alphanumeric characters, '-', '_' or '.', " \
	"and must start and end with an alphanumeric character"

const char *
fieldcheck_qualified_name(const char *s)
{
	const char *slash = strchr(s, '/');
	const char *name = s;

	if (slash != NULL) {
		size_t plen = (size_t)(slash - s);
		if (strchr(slash + 1, '/') != NULL)
			return "must be a name with an optional DNS subdomain prefix and one '/' "
			    "(like example.com/name)";
		if (plen == 0)
			return "prefix part must be non-empty";
		if (plen > 253)
			return "prefix part must be no more than 253 characters";
		if (!fieldcheck__dns_subdomain_chars(s, plen))
			return "prefix part must be a DNS-1123 subdomain (lower-case alphanumeric "
			    "characters, '-' or '.', starting and ending with an alphanumeric character)";
		name = slash + 1;
	}
	if (*name == '\0')
		return "name part must be non-empty";
	if (strlen(name) > 63)
		return "name part must be no more than 63 characters";
	if (!fieldcheck__name_chars(name, strlen(name)))
		return "name part " FIELDCHECK__NAME_CHARS_MSG;
	return NULL;
}

const char *
fieldcheck_label_value(const char *s)
{
	size_t n = strlen(s);

	if (n == 0)
		return NULL;
	if (n > 63)
		return "must be no more than 63 characters";
	if (!fieldcheck__name_chars(s, n))
		return FIELDCHECK__NAME_CHARS_MSG;
	return NULL;
}

const char *
fieldcheck_dns1123_label(const char *s)
{
	size_t n = strlen(s);

	if (n > 63 || !fieldcheck__dns_label_chars(s, n))
		return "must be a DNS-1123 label (at most 63 lower-case alphanumeric characters "
		    "or '-', starting and ending with an alphanumeric character)";
	return NULL;
}

const char *
fieldcheck_dns1123_subdomain(const char *s)
{
	size_t n = strlen(s);

	if (n > 253 || !fieldcheck__dns_subdomain_chars(s, n))
		return "must be a DNS-1123 subdomain (at most 253 lower-case alphanumeric "
		    "characters, '-' or '.', starting and ending with an alphanumeric character)";
	return NULL;
}

/* --- Image references (github.com/distribution/reference grammar) --- */

#define FIELDCHECK__REF_FORMAT  "invalid reference format"
#define FIELDCHECK__REF_LOWER   "repository name must be lowercase"
#define FIELDCHECK__REF_LONG    "repository name must not be more than 255 characters"
#define FIELDCHECK__REF_TAG     "invalid tag"
#define FIELDCHECK__REF_DIGEST  "invalid digest"

/* path-component: [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)* ; *upper set when only case is wrong. */
static bool
fieldcheck__path_component(const char *s, size_t n, bool *upper)
{
	size_t i = 0;

	while (i < n) {
		size_t run = 0;
		while (i < n && (fieldcheck__lower_alnum(s[i]) || (s[i] >= 'A' && s[i] <= 'Z'))) {
			if (s[i] >= 'A' && s[i] <= 'Z')
				*upper = true;
			i++;
			run++;
		}
		if (run == 0)
			return false;
		if (i == n)
			return true;
		/* separator */
		if (s[i] == '.') {
			i++;
		} else if (s[i] == '_') {
			i++;
			if (i < n && s[i] == '_')
				i++;
		} else if (s[i] == '-') {
			while (i < n && s[i] == '-')
				i++;
		} else {
			return false;
		}
		if (i == n)
			return false;
	}
	return n > 0;
}

/* domain: host [":" port]; host: DNS-ish components of [A-Za-z0-9-] or "[" IPv6 "]". */
static bool
fieldcheck__domain(const char *s, size_t n)
{
	size_t i = 0, hostlen;

	if (n == 0)
		return false;
	if (s[0] == '[') {
		while (i < n && s[i] != ']')
			i++;
		if (i == n || i == 1)
			return false;
		for (size_t j = 1; j < i; j++)
			if (!isxdigit((unsigned char)s[j]) && s[j] != ':')
				return false;
		hostlen = ++i;
	} else {
		size_t start = 0;
		while (i < n && s[i] != ':')
			i++;
		hostlen = i;
		for (size_t j = 0; j <= hostlen; j++) {
			if (j == hostlen || s[j] == '.') {
				size_t len = j - start;
				if (len == 0 || !fieldcheck__alnum(s[start]) || !fieldcheck__alnum(s[j - 1]))
					return false;
				for (size_t k = start; k < j; k++)
					if (!fieldcheck__alnum(s[k]) && s[k] != '-')
						return false;
				start = j + 1;
			}
		}
	}
	if (hostlen == n)
		return true;
	if (s[hostlen] != ':' || hostlen + 1 == n)
		return false;
	for (size_t j = hostlen + 1; j < n; j++)
		if (!isdigit((unsigned char)s[j]))
			return false;
	return true;
}

/* algorithm ":" hex: [A-Za-z][A-Za-z0-9]* ([+._-] [A-Za-z][A-Za-z0-9]*)* ":" [0-9a-fA-F]{32,} */
static bool
fieldcheck__digest(const char *s)
{
	const char *colon = strchr(s, ':');
	size_t alen, hlen;

	if (colon == NULL)
		return false;
	alen = (size_t)(colon - s);
	for (size_t i = 0; i < alen;) {
		if (!isalpha((unsigned char)s[i]))
			return false;
		while (i < alen && isalnum((unsigned char)s[i]))
			i++;
		if (i < alen) {
			if (strchr("+._-", s[i]) == NULL || i + 1 == alen)
				return false;
			i++;
		}
	}
	if (alen == 0)
		return false;
	hlen = strlen(colon + 1);
	for (size_t i = 0; i < hlen; i++)
		if (!isxdigit((unsigned char)colon[1 + i]))
			return false;
	if (hlen < 32)
		return false;
	/* Registered algorithms have fixed lengths. */
	if (alen == 6 && strncmp(s, "sha256", 6) == 0)
		return hlen == 64;
	if (alen == 6 && strncmp(s, "sha384", 6) == 0)
		return hlen == 96;
	if (alen == 6 && strncmp(s, "sha512", 6) == 0)
		return hlen == 128;
	return true;
}

/* tag: [\w][\w.-]{0,127} */
static bool
fieldcheck__tag(const char *s, size_t n)
{
	if (n == 0 || n > 128 || !(isalnum((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
			return false;
	return true;
}

const char *
fieldcheck_image_ref(const char *s)
{
	const char *at = strchr(s, '@');
	size_t n = at != NULL ? (size_t)(at - s) : strlen(s);
	size_t name_len = n, start, i;
	const char *last_slash = NULL, *colon;
	bool upper = false;

	if (n == 0)
		return FIELDCHECK__REF_FORMAT;
	if (at != NULL && !fieldcheck__digest(at + 1))
		return FIELDCHECK__REF_DIGEST;
	for (i = 0; i < n; i++)
		if (s[i] == '/')
			last_slash = s + i;
	/* A ':' after the last '/' starts the tag; one before it belongs to the registry port. */
	colon = memchr(last_slash != NULL ? last_slash : s, ':',
	    n - (size_t)((last_slash != NULL ? last_slash : s) - s));
	if (colon != NULL) {
		name_len = (size_t)(colon - s);
		if (!fieldcheck__tag(colon + 1, n - name_len - 1))
			return FIELDCHECK__REF_TAG;
	}
	if (name_len == 0)
		return FIELDCHECK__REF_FORMAT;
	start = 0;
	for (i = 0; i <= name_len; i++) {
		if (i < name_len && s[i] != '/')
			continue;
		bool first_of_many = start == 0 && i < name_len;
		bool comp_upper = false;
		bool ok = fieldcheck__path_component(s + start, i - start, &comp_upper);
		/*
		 * The first of several components may be a registry: the grammar
		 * allows either reading, and a registry may have upper case, dots
		 * with dashes next to them or a port.
		 */
		if (first_of_many && (!ok || comp_upper) && fieldcheck__domain(s, i)) {
			ok = true;
			comp_upper = false;
		}
		if (!ok)
			return FIELDCHECK__REF_FORMAT;
		upper = upper || comp_upper;
		start = i + 1;
	}
	if (upper)
		return FIELDCHECK__REF_LOWER;
	if (name_len > 255)
		return FIELDCHECK__REF_LONG;
	return NULL;
}
