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

#define YAMLJSON_ANCHORS_MAX 256
#define YAMLJSON_ALIASES_MAX 1024  /* aliases share nodes; a cap stops "billion laughs" */

struct yamljson_frame {
	json_t *node;          /* object or array being filled */
	char *pending_key;     /* objects: key waiting for its value */
	char *anchor;          /* anchor of this collection, registered when it ends */
};

struct yamljson_anchor {
	char *name;
	json_t *node;
};

struct yamljson_state {
	struct yamljson_frame stack[LIMITS_YAML_DEPTH];
	size_t depth;
	struct yamljson_anchor anchors[YAMLJSON_ANCHORS_MAX];
	size_t nanchors;
	size_t naliases;
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
yamljson__anchor(struct yamljson_state *st, const char *name, json_t *node,
    const yaml_mark_t *mark)
{
	if (name == NULL)
		return 0;
	if (st->nanchors == YAMLJSON_ANCHORS_MAX)
		return yamljson__fail(st, mark, "too many anchors");
	st->anchors[st->nanchors].name = strdup(name);
	if (st->anchors[st->nanchors].name == NULL)
		return -ENOMEM;
	st->anchors[st->nanchors].node = json_incref(node);
	st->nanchors++;
	return 0;
}

/* Places a finished node (reference stolen) into its parent or as the document root. */
static int
yamljson__place(struct yamljson_state *st, json_t *node, const yaml_mark_t *mark)
{
	struct yamljson_frame *top;

	if (node == NULL)
		return -ENOMEM;
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
yamljson__push(struct yamljson_state *st, json_t *node, const char *anchor, const yaml_mark_t *mark)
{
	if (node == NULL)
		return -ENOMEM;
	if (st->depth == LIMITS_YAML_DEPTH) {
		json_decref(node);
		return yamljson__fail(st, mark, "nesting too deep");
	}
	st->stack[st->depth].node = node;
	st->stack[st->depth].pending_key = NULL;
	st->stack[st->depth].anchor = anchor != NULL ? strdup(anchor) : NULL;
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
		rc = yamljson__anchor(st, f.anchor, f.node, mark);
	free(f.anchor);
	if (rc < 0) {
		json_decref(f.node);
		return rc;
	}
	return yamljson__place(st, f.node, mark);
}

static json_t *
yamljson__alias(struct yamljson_state *st, const char *name)
{
	for (size_t i = st->nanchors; i > 0; i--)
		if (strcmp(st->anchors[i - 1].name, name) == 0)
			return json_deep_copy(st->anchors[i - 1].node);
	return NULL;
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
		rc = yamljson__anchor(st, (const char *)ev->data.scalar.anchor, node, &ev->start_mark);
		if (rc < 0) {
			json_decref(node);
			return rc;
		}
		return yamljson__place(st, node, &ev->start_mark);
	case YAML_ALIAS_EVENT:
		if (++st->naliases > YAMLJSON_ALIASES_MAX)
			return yamljson__fail(st, &ev->start_mark, "too many aliases");
		node = yamljson__alias(st, (const char *)ev->data.alias.anchor);
		if (node == NULL)
			return yamljson__fail(st, &ev->start_mark, "unknown alias");
		return yamljson__place(st, node, &ev->start_mark);
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
