/* JSON text surgery without a parse: drop subtrees by path, walk LIST items. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/jsonprune.h"

#define JSONPRUNE_NODES_MAX 256
#define JSONPRUNE_NAME_MAX  64

/* A trie of member names; elem is the "[]" child. Node 0 is the root. */
struct jsonprune__node {
	char name[JSONPRUNE_NAME_MAX];
	int first_child;             /* index or -1 */
	int next_sibling;            /* index or -1 */
	int elem;                    /* index of the "[]" child or -1 */
	bool drop;                   /* this member (or element) is removed */
	bool whole;                  /* kept as it is (the end of a "+" path) */
	bool keep_only;              /* an object here loses every member not listed */
};

struct jsonprune {
	struct jsonprune__node nodes[JSONPRUNE_NODES_MAX];
	int n;
};

static int
jsonprune__add_node(struct jsonprune *p, const char *name, size_t len)
{
	struct jsonprune__node *nd;

	if (p->n == JSONPRUNE_NODES_MAX || len >= JSONPRUNE_NAME_MAX)
		return -1;
	nd = &p->nodes[p->n];
	memcpy(nd->name, name, len);
	nd->name[len] = '\0';
	nd->first_child = nd->next_sibling = nd->elem = -1;
	nd->drop = nd->whole = nd->keep_only = false;
	return p->n++;
}

static int
jsonprune__child(struct jsonprune *p, int parent, const char *name, size_t len)
{
	int c;

	for (c = p->nodes[parent].first_child; c >= 0; c = p->nodes[c].next_sibling)
		if (strlen(p->nodes[c].name) == len && memcmp(p->nodes[c].name, name, len) == 0)
			return c;
	c = jsonprune__add_node(p, name, len);
	if (c < 0)
		return -1;
	p->nodes[c].next_sibling = p->nodes[parent].first_child;
	p->nodes[parent].first_child = c;
	return c;
}

/*
 * "-a.b" (or "a.b") drops a.b; "+a.b" keeps a.b whole and drops a's other
 * members. The first prefix_len bytes of path (a prefix such as "object.")
 * never restrict their siblings.
 */
static int
jsonprune__add_path(struct jsonprune *p, const char *path, size_t prefix_len, bool keep)
{
	int cur = 0;
	const char *s = path;

	while (*s != '\0') {
		size_t len = strcspn(s, ".[");
		if (len == 0)
			return -1;
		/* Keeping a member means dropping its unlisted siblings. */
		if (keep && (size_t)(s - path) >= prefix_len)
			p->nodes[cur].keep_only = true;
		cur = jsonprune__child(p, cur, s, len);
		if (cur < 0)
			return -1;
		s += len;
		while (strncmp(s, "[]", 2) == 0) {
			if (keep && (size_t)(s - path) >= prefix_len)
				p->nodes[cur].keep_only = true;
			if (p->nodes[cur].elem < 0) {
				int e = jsonprune__add_node(p, "[]", 2);
				if (e < 0)
					return -1;
				p->nodes[cur].elem = e;
			}
			cur = p->nodes[cur].elem;
			s += 2;
		}
		if (*s == '.')
			s++;
		else if (*s != '\0')
			return -1;
	}
	if (cur == 0)
		return -1;
	if (keep)
		p->nodes[cur].whole = true;
	else
		p->nodes[cur].drop = true;
	return 0;
}

struct jsonprune *
jsonprune_new(const char *const *paths, const char *prefix)
{
	struct jsonprune *p = calloc(1, sizeof(*p));
	char full[512];

	if (p == NULL)
		return NULL;
	jsonprune__add_node(p, "", 0);
	for (; paths != NULL && *paths != NULL; paths++) {
		const char *path = *paths;
		size_t plen = prefix != NULL ? strlen(prefix) + 1 : 0;
		bool keep = *path == '+';

		if (*path == '+' || *path == '-')
			path++;
		if ((size_t)snprintf(full, sizeof(full), "%s%s%s", prefix != NULL ? prefix : "",
		    prefix != NULL ? "." : "", path) >= sizeof(full) ||
		    jsonprune__add_path(p, full, plen, keep) < 0) {
			free(p);
			return NULL;
		}
	}
	return p;
}

void
jsonprune_free(struct jsonprune *p)
{
	free(p);
}

/* ---- scanning ---- */

struct jsonprune__in {
	const char *p;
	const char *end;
};

static void
jsonprune__ws(struct jsonprune__in *in)
{
	while (in->p < in->end && (*in->p == ' ' || *in->p == '\n' || *in->p == '\r' ||
	    *in->p == '\t'))
		in->p++;
}

/* Moves past a string starting at the opening quote. */
static int
jsonprune__string(struct jsonprune__in *in)
{
	const char *p = in->p + 1;

	for (;;) {
		const char *q = memchr(p, '"', (size_t)(in->end - p));
		const char *b;
		if (q == NULL)
			return -EBADMSG;
		/* An odd run of backslashes before the quote escapes it. */
		for (b = q; b > p && b[-1] == '\\'; b--)
			;
		if ((q - b) % 2 == 0) {
			in->p = q + 1;
			return 0;
		}
		p = q + 1;
	}
}

/* Moves past one value of any kind. */
static int
jsonprune__skip(struct jsonprune__in *in)
{
	unsigned depth = 0;

	jsonprune__ws(in);
	if (in->p >= in->end)
		return -EBADMSG;
	if (*in->p != '{' && *in->p != '[') {
		if (*in->p == '"')
			return jsonprune__string(in);
		while (in->p < in->end && strchr(",}] \t\r\n", *in->p) == NULL)
			in->p++;
		return 0;
	}
	while (in->p < in->end) {
		char c = *in->p;
		if (c == '"') {
			if (jsonprune__string(in) < 0)
				return -EBADMSG;
			continue;
		}
		if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (--depth == 0) {
				in->p++;
				return 0;
			}
		}
		in->p++;
	}
	return -EBADMSG;
}

/*
 * Past the separator to the next item of an object or array whose opening
 * bracket has been read: 1 at the item, 0 after the closing bracket close,
 * -EBADMSG. *first starts true.
 */
static int
jsonprune__next(struct jsonprune__in *in, bool *first, char close)
{
	jsonprune__ws(in);
	if (in->p < in->end && *in->p == close) {
		in->p++;
		return 0;
	}
	if (!*first) {
		if (in->p >= in->end || *in->p != ',')
			return -EBADMSG;
		in->p++;
		jsonprune__ws(in);
	}
	*first = false;
	return 1;
}

/*
 * The next member of an object whose '{' has been read: 1 with *key and
 * *klen (the name without its quotes, escapes as written) and in->p at the
 * value; 0 after the closing '}'; -EBADMSG. *first starts true.
 */
static int
jsonprune__member(struct jsonprune__in *in, bool *first, const char **key, size_t *klen)
{
	int rc = jsonprune__next(in, first, '}');

	if (rc <= 0)
		return rc;
	if (in->p >= in->end || *in->p != '"')
		return -EBADMSG;
	*key = in->p + 1;
	if (jsonprune__string(in) < 0)
		return -EBADMSG;
	*klen = (size_t)(in->p - *key) - 1;
	jsonprune__ws(in);
	if (in->p >= in->end || *in->p != ':')
		return -EBADMSG;
	in->p++;
	jsonprune__ws(in);
	return 1;
}

/* The next element of an array whose '[' has been read: 1 (in->p at it), 0 after the ']', -EBADMSG. */
static int
jsonprune__element(struct jsonprune__in *in, bool *first)
{
	return jsonprune__next(in, first, ']');
}

static int
jsonprune__copy(const struct jsonprune *pr, int node, struct jsonprune__in *in,
    struct buf *out, unsigned level);

static int
jsonprune__object(const struct jsonprune *pr, int node, struct jsonprune__in *in,
    struct buf *out, unsigned level)
{
	bool first = true;
	const char *key;
	size_t klen;
	int rc;

	in->p++;
	if ((rc = buf_append(out, "{", 1)) < 0)
		return rc;
	while ((rc = jsonprune__member(in, &first, &key, &klen)) > 0) {
		int child = -1;

		for (int c = pr->nodes[node].first_child; c >= 0; c = pr->nodes[c].next_sibling) {
			if (strlen(pr->nodes[c].name) == klen && memcmp(pr->nodes[c].name, key, klen) == 0) {
				child = c;
				break;
			}
		}
		if ((child >= 0 && pr->nodes[child].drop) ||
		    (child < 0 && pr->nodes[node].keep_only)) {
			if (jsonprune__skip(in) < 0)
				return -EBADMSG;
			/* The member is gone; the separator logic keys off what was written. */
			continue;
		}
		if (out->len > 0 && out->data[out->len - 1] != '{' &&
		    (rc = buf_append(out, ",", 1)) < 0)
			return rc;
		/* The key with its quotes, as it was written. */
		if ((rc = buf_append(out, key - 1, klen + 2)) < 0 ||
		    (rc = buf_append(out, ":", 1)) < 0)
			return rc;
		if ((rc = jsonprune__copy(pr, child, in, out, level + 1)) < 0)
			return rc;
	}
	return rc < 0 ? rc : buf_append(out, "}", 1);
}

static int
jsonprune__array(const struct jsonprune *pr, int node, struct jsonprune__in *in,
    struct buf *out, unsigned level)
{
	bool first = true;
	int elem = pr->nodes[node].elem, rc;

	in->p++;
	if ((rc = buf_append(out, "[", 1)) < 0)
		return rc;
	while ((rc = jsonprune__element(in, &first)) > 0) {
		if (elem >= 0 && pr->nodes[elem].drop) {
			if (jsonprune__skip(in) < 0)
				return -EBADMSG;
			continue;
		}
		if (out->len > 0 && out->data[out->len - 1] != '[' &&
		    (rc = buf_append(out, ",", 1)) < 0)
			return rc;
		if ((rc = jsonprune__copy(pr, elem, in, out, level + 1)) < 0)
			return rc;
	}
	return rc < 0 ? rc : buf_append(out, "]", 1);
}

/* Copies one value, descending only where the trie has something to drop. */
static int
jsonprune__copy(const struct jsonprune *pr, int node, struct jsonprune__in *in,
    struct buf *out, unsigned level)
{
	const char *start;

	jsonprune__ws(in);
	if (in->p >= in->end || level > 64)
		return -EBADMSG;
	if (node >= 0 && !pr->nodes[node].whole) {
		if (pr->nodes[node].first_child >= 0 && *in->p == '{')
			return jsonprune__object(pr, node, in, out, level);
		if (pr->nodes[node].elem >= 0 && *in->p == '[')
			return jsonprune__array(pr, node, in, out, level);
	}
	start = in->p;
	if (jsonprune__skip(in) < 0)
		return -EBADMSG;
	return buf_append(out, start, (size_t)(in->p - start));
}

int
jsonprune_apply(const struct jsonprune *p, const char *in, size_t len, struct buf *out)
{
	struct jsonprune__in s = { in, in + len };
	int rc = jsonprune__copy(p, 0, &s, out, 0);

	if (rc < 0)
		return rc;
	jsonprune__ws(&s);
	return s.p == s.end ? 0 : -EBADMSG;
}

static int
jsonprune__list_items(const char *in, size_t len, jsonprune_item_fn fn, void *ctx,
    json_t **metadata)
{
	struct jsonprune__in s = { in, in + len };
	bool first = true;
	const char *key, *val;
	size_t klen;
	int rc;

	jsonprune__ws(&s);
	if (s.p >= s.end || *s.p != '{')
		return -EBADMSG;
	s.p++;
	while ((rc = jsonprune__member(&s, &first, &key, &klen)) > 0) {
		val = s.p;
		if (klen == 5 && memcmp(key, "items", 5) == 0 && s.p < s.end && *s.p == '[') {
			bool efirst = true;
			s.p++;
			while ((rc = jsonprune__element(&s, &efirst)) > 0) {
				const char *item = s.p;
				if (jsonprune__skip(&s) < 0)
					return -EBADMSG;
				if ((rc = fn(ctx, item, (size_t)(s.p - item))) != 0)
					return rc;
			}
			if (rc < 0)
				return rc;
			continue;
		}
		if (jsonprune__skip(&s) < 0)
			return -EBADMSG;
		if (klen == 8 && memcmp(key, "metadata", 8) == 0) {
			json_decref(*metadata);
			*metadata = json_loadb(val, (size_t)(s.p - val), 0, NULL);
			if (*metadata == NULL)
				return -EBADMSG;
		}
	}
	return rc;
}

int
jsonprune_list_items(const char *in, size_t len, jsonprune_item_fn fn, void *ctx,
    json_t **metadata)
{
	json_t *meta = NULL;
	int rc = jsonprune__list_items(in, len, fn, ctx, &meta);

	if (rc != 0 || metadata == NULL) {
		json_decref(meta);
		meta = NULL;
	}
	if (metadata != NULL)
		*metadata = meta;
	return rc;
}

int
jsonprune_list_metadata(const char *in, size_t len, json_t **metadata)
{
	struct jsonprune__in s = { in, in + len };
	bool first = true;
	const char *key, *val;
	size_t klen;
	int rc;

	*metadata = NULL;
	jsonprune__ws(&s);
	if (s.p >= s.end || *s.p != '{')
		return -EBADMSG;
	s.p++;
	while ((rc = jsonprune__member(&s, &first, &key, &klen)) > 0) {
		val = s.p;
		if (jsonprune__skip(&s) < 0)
			return -EBADMSG;
		if (klen == 8 && memcmp(key, "metadata", 8) == 0) {
			*metadata = json_loadb(val, (size_t)(s.p - val), 0, NULL);
			return *metadata != NULL ? 0 : -EBADMSG;
		}
	}
	return rc;
}
