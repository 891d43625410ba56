/* YAML to JSON conversion over libyaml's event parser. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "stratos/limits.h"
#include "stratos/yamljson.h"

/*
 * Every alias is a deep copy of its anchor, so a few hundred bytes of nested
 * aliases ("billion laughs") would expand to gigabytes. Each node therefore
 * carries its size (nodes in its tree, copies included) and its height
 * (collection levels), known when it is finished; an alias is refused before
 * it is copied if the copies of the whole stream would exceed
 * LIMITS_YAML_ALIAS_NODES or the copy would end deeper than LIMITS_YAML_DEPTH.
 * go-yaml, which kubectl and sigs.k8s.io/yaml use, bounds the same thing by
 * a ratio of alias-driven to all decodes (allowedAliasRatio in go-yaml/yaml
 * decode.go), which lets ~400,000 alias-driven nodes through ("~100MB of
 * allocations"); our inputs are manifests and configuration, so a fixed and
 * smaller budget is enough and keeps the worst case small.
 */
struct yamljson_frame {
	json_t *node;          /* object or array being filled */
	char *pending_key;     /* objects: key waiting for its value */
	char *anchor;          /* anchor of this collection, registered when it ends */
	size_t nodes;          /* nodes in this collection's tree so far, itself included */
	size_t height;         /* collection levels below and including this one */
};

struct yamljson_anchor {
	char *name;
	json_t *node;
	size_t nodes;          /* what one alias of it copies */
	size_t height;         /* 0 for a scalar */
};

struct yamljson_state {
	struct yamljson_frame stack[LIMITS_YAML_DEPTH];
	size_t depth;
	struct yamljson_anchor anchors[LIMITS_YAML_ANCHORS];
	size_t nanchors;
	size_t naliases;
	size_t alias_nodes;    /* nodes copied by aliases, whole stream */
	json_t *docs;
	json_t *doc;           /* root of the current document */
	struct yamljson_error *err;
};

static int
yamljson__fail(struct yamljson_state *st, const yaml_mark_t *mark, const char *msg)
{
	if (st->err != NULL) {
		st->err->line = mark != NULL ? (int)mark->line + 1 : 0;
		st->err->column = mark != NULL ? (int)mark->column + 1 : 0;
		snprintf(st->err->message, sizeof(st->err->message), "%s", msg);
	}
	return -EINVAL;
}

static bool
yamljson__is_int(const char *s, json_int_t *out)
{
	const char *p = s;
	char *end;
	int base = 10;

	if (*p == '+' || *p == '-')
		p++;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'o') && p == s) {
		base = p[1] == 'x' ? 16 : 8;
		p += 2;
	}
	if (*p == '\0')
		return false;
	for (const char *q = p; *q != '\0'; q++) {
		if (base == 16 ? !isxdigit((unsigned char)*q) : (*q < '0' || *q > (base == 8 ? '7' : '9')))
			return false;
	}
	errno = 0;
	long long v = strtoll(base == 10 ? s : p, &end, base);
	if (errno != 0 || *end != '\0')
		return false;
	*out = (json_int_t)v;
	return true;
}

static bool
yamljson__is_float(const char *s, double *out)
{
	const char *p = s;
	bool digits = false, dot = false;

	if (strcmp(s, ".inf") == 0 || strcmp(s, "+.inf") == 0 || strcmp(s, ".Inf") == 0 ||
	    strcmp(s, "-.inf") == 0 || strcmp(s, ".nan") == 0 || strcmp(s, ".NaN") == 0)
		return false; /* JSON has no infinities or NaN: keep the text */
	if (*p == '+' || *p == '-')
		p++;
	for (; *p != '\0' && *p != 'e' && *p != 'E'; p++) {
		if (*p == '.' && !dot)
			dot = true;
		else if (*p >= '0' && *p <= '9')
			digits = true;
		else
			return false;
	}
	if (!digits)
		return false;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (*p == '\0')
			return false;
		for (; *p != '\0'; p++)
			if (*p < '0' || *p > '9')
				return false;
	}
	*out = strtod(s, NULL);
	return isfinite(*out);
}

static json_t *
yamljson__scalar(const yaml_event_t *ev)
{
	const char *v = (const char *)ev->data.scalar.value;
	const char *tag = (const char *)ev->data.scalar.tag;
	bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	json_int_t i;
	double d;

	if (tag != NULL && strcmp(tag, YAML_STR_TAG) == 0)
		return json_stringn(v, ev->data.scalar.length);
	if (!plain && (tag == NULL || strcmp(tag, "!") == 0))
		return json_stringn(v, ev->data.scalar.length);
	if (*v == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
	    strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0)
		return json_null();
	if (strcmp(v, "true") == 0 || strcmp(v, "True") == 0 || strcmp(v, "TRUE") == 0)
		return json_true();
	if (strcmp(v, "false") == 0 || strcmp(v, "False") == 0 || strcmp(v, "FALSE") == 0)
		return json_false();
	if (yamljson__is_int(v, &i))
		return json_integer(i);
	if (yamljson__is_float(v, &d))
		return json_real(d);
	return json_stringn(v, ev->data.scalar.length);
}

static int
yamljson__anchor(struct yamljson_state *st, const char *name, json_t *node, size_t nodes,
    size_t height, const yaml_mark_t *mark)
{
	char msg[64];

	if (name == NULL)
		return 0;
	if (st->nanchors == LIMITS_YAML_ANCHORS) {
		snprintf(msg, sizeof(msg), "more than %u YAML anchors", LIMITS_YAML_ANCHORS);
		return yamljson__fail(st, mark, msg);
	}
	st->anchors[st->nanchors].name = strdup(name);
	if (st->anchors[st->nanchors].name == NULL)
		return -ENOMEM;
	st->anchors[st->nanchors].node = json_incref(node);
	st->anchors[st->nanchors].nodes = nodes;
	st->anchors[st->nanchors].height = height;
	st->nanchors++;
	return 0;
}

/*
 * Places a finished node (reference stolen) into its parent or as the
 * document root; nodes and height are its tree's size and collection levels.
 */
static int
yamljson__place(struct yamljson_state *st, json_t *node, size_t nodes, size_t height,
    const yaml_mark_t *mark)
{
	struct yamljson_frame *top;

	if (node == NULL)
		return -ENOMEM;
	if (st->depth > 0) {
		top = &st->stack[st->depth - 1];
		top->nodes += nodes;
		if (top->height < height + 1)
			top->height = height + 1;
	}
	if (st->depth == 0) {
		json_decref(st->doc);
		st->doc = node;
		return 0;
	}
	top = &st->stack[st->depth - 1];
	if (json_is_array(top->node))
		return json_array_append_new(top->node, node) == 0 ? 0 : -ENOMEM;
	if (top->pending_key == NULL) {
		/* node is a key */
		if (!json_is_string(node)) {
			const char *text = NULL;
			char numbuf[64];
			if (json_is_integer(node)) {
				snprintf(numbuf, sizeof(numbuf), "%" JSON_INTEGER_FORMAT, json_integer_value(node));
				text = numbuf;
			} else if (json_is_true(node)) {
				text = "true";
			} else if (json_is_false(node)) {
				text = "false";
			} else if (json_is_null(node)) {
				text = "null";
			}
			if (text == NULL) {
				json_decref(node);
				return yamljson__fail(st, mark, "mapping keys must be scalars");
			}
			top->pending_key = strdup(text);
		} else {
			top->pending_key = strdup(json_string_value(node));
		}
		json_decref(node);
		return top->pending_key != NULL ? 0 : -ENOMEM;
	}
	if (json_object_get(top->node, top->pending_key) != NULL) {
		char msg[200];
		snprintf(msg, sizeof(msg), "duplicate key \"%.120s\"", top->pending_key);
		json_decref(node);
		return yamljson__fail(st, mark, msg);
	}
	int rc = json_object_set_new(top->node, top->pending_key, node) == 0 ? 0 : -ENOMEM;
	free(top->pending_key);
	top->pending_key = NULL;
	return rc;
}

static int
yamljson__fail_depth(struct yamljson_state *st, const yaml_mark_t *mark)
{
	char msg[64];

	snprintf(msg, sizeof(msg), "YAML nesting deeper than %u", LIMITS_YAML_DEPTH);
	return yamljson__fail(st, mark, msg);
}

static int
yamljson__push(struct yamljson_state *st, json_t *node, const char *anchor, const yaml_mark_t *mark)
{
	if (node == NULL)
		return -ENOMEM;
	if (st->depth == LIMITS_YAML_DEPTH) {
		json_decref(node);
		return yamljson__fail_depth(st, mark);
	}
	st->stack[st->depth].node = node;
	st->stack[st->depth].pending_key = NULL;
	st->stack[st->depth].anchor = anchor != NULL ? strdup(anchor) : NULL;
	st->stack[st->depth].nodes = 1;
	st->stack[st->depth].height = 1;
	st->depth++;
	return 0;
}

static int
yamljson__pop(struct yamljson_state *st, const yaml_mark_t *mark)
{
	struct yamljson_frame f = st->stack[--st->depth];
	int rc = 0;

	free(f.pending_key);
	if (f.anchor != NULL)
		rc = yamljson__anchor(st, f.anchor, f.node, f.nodes, f.height, mark);
	free(f.anchor);
	if (rc < 0) {
		json_decref(f.node);
		return rc;
	}
	return yamljson__place(st, f.node, f.nodes, f.height, mark);
}

/* Copies the latest anchor called name into place, within the alias budgets. */
static int
yamljson__alias(struct yamljson_state *st, const char *name, const yaml_mark_t *mark)
{
	const struct yamljson_anchor *a = NULL;
	char msg[80];

	for (size_t i = st->nanchors; i > 0 && a == NULL; i--)
		if (strcmp(st->anchors[i - 1].name, name) == 0)
			a = &st->anchors[i - 1];
	if (a == NULL)
		return yamljson__fail(st, mark, "unknown alias");
	if (a->nodes > LIMITS_YAML_ALIAS_NODES - st->alias_nodes) {
		snprintf(msg, sizeof(msg), "YAML alias expansion exceeds %u nodes",
		    LIMITS_YAML_ALIAS_NODES);
		return yamljson__fail(st, mark, msg);
	}
	if (st->depth + a->height > LIMITS_YAML_DEPTH)
		return yamljson__fail_depth(st, mark);
	st->alias_nodes += a->nodes;
	return yamljson__place(st, json_deep_copy(a->node), a->nodes, a->height, mark);
}

static int
yamljson__event(struct yamljson_state *st, yaml_event_t *ev)
{
	json_t *node;
	int rc;

	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		st->doc = NULL;
		return 0;
	case YAML_DOCUMENT_END_EVENT:
		if (st->doc != NULL && !json_is_null(st->doc)) {
			if (json_array_size(st->docs) >= LIMITS_YAML_DOCUMENTS)
				return yamljson__fail(st, &ev->start_mark, "too many documents");
			rc = json_array_append_new(st->docs, st->doc);
			st->doc = NULL;
			return rc == 0 ? 0 : -ENOMEM;
		}
		json_decref(st->doc);
		st->doc = NULL;
		return 0;
	case YAML_SCALAR_EVENT:
		node = yamljson__scalar(ev);
		if (node == NULL)
			return yamljson__fail(st, &ev->start_mark, "scalar is not valid UTF-8");
		rc = yamljson__anchor(st, (const char *)ev->data.scalar.anchor, node, 1, 0,
		    &ev->start_mark);
		if (rc < 0) {
			json_decref(node);
			return rc;
		}
		return yamljson__place(st, node, 1, 0, &ev->start_mark);
	case YAML_ALIAS_EVENT:
		if (++st->naliases > LIMITS_YAML_ALIASES) {
			char msg[64];
			snprintf(msg, sizeof(msg), "more than %u YAML aliases", LIMITS_YAML_ALIASES);
			return yamljson__fail(st, &ev->start_mark, msg);
		}
		return yamljson__alias(st, (const char *)ev->data.alias.anchor, &ev->start_mark);
	case YAML_SEQUENCE_START_EVENT:
		return yamljson__push(st, json_array(), (const char *)ev->data.sequence_start.anchor,
		    &ev->start_mark);
	case YAML_MAPPING_START_EVENT:
		return yamljson__push(st, json_object(), (const char *)ev->data.mapping_start.anchor,
		    &ev->start_mark);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		return yamljson__pop(st, &ev->start_mark);
	default:
		return 0;
	}
}

int
yamljson_parse(const char *data, size_t len, json_t **out_docs, struct yamljson_error *err)
{
	struct yamljson_state st;
	yaml_parser_t parser;
	yaml_event_t ev;
	bool done = false;
	int rc = 0;

	memset(&st, 0, sizeof(st));
	st.err = err;
	if (err != NULL)
		memset(err, 0, sizeof(*err));
	*out_docs = NULL;
	st.docs = json_array();
	if (st.docs == NULL || !yaml_parser_initialize(&parser)) {
		json_decref(st.docs);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
	while (!done && rc == 0) {
		if (!yaml_parser_parse(&parser, &ev)) {
			char msg[200];
			snprintf(msg, sizeof(msg), "%s%s%s", parser.problem ? parser.problem : "syntax error",
			    parser.context ? " " : "", parser.context ? parser.context : "");
			rc = yamljson__fail(&st, &parser.problem_mark, msg);
			break;
		}
		rc = yamljson__event(&st, &ev);
		done = ev.type == YAML_STREAM_END_EVENT;
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	while (st.depth > 0) {
		st.depth--;
		json_decref(st.stack[st.depth].node);
		free(st.stack[st.depth].pending_key);
		free(st.stack[st.depth].anchor);
	}
	for (size_t i = 0; i < st.nanchors; i++) {
		free(st.anchors[i].name);
		json_decref(st.anchors[i].node);
	}
	json_decref(st.doc);
	if (rc < 0) {
		json_decref(st.docs);
		return rc;
	}
	*out_docs = st.docs;
	return 0;
}

int
yamljson_parse_file(const char *path, json_t **out_docs, struct yamljson_error *err)
{
	FILE *f = fopen(path, "rb");
	char *data;
	size_t n;
	int rc;

	if (err != NULL)
		memset(err, 0, sizeof(*err));
	if (f == NULL) {
		rc = -errno;
		if (err != NULL)
			snprintf(err->message, sizeof(err->message), "%s", strerror(errno));
		return rc;
	}
	data = malloc(LIMITS_YAML_FILE + 1);
	if (data == NULL) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(data, 1, LIMITS_YAML_FILE + 1, f);
	if (ferror(f)) {
		rc = -EIO;
		if (err != NULL)
			snprintf(err->message, sizeof(err->message), "read error");
	} else if (n > LIMITS_YAML_FILE) {
		rc = -EFBIG;
		if (err != NULL)
			snprintf(err->message, sizeof(err->message), "file larger than %u bytes",
			    LIMITS_YAML_FILE);
	} else {
		rc = yamljson_parse(data, n, out_docs, err);
	}
	fclose(f);
	free(data);
	return rc;
}
