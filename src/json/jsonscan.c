/* Validating JSON scanner (RFC 8259, as strict as jansson) and tree-free lookups by key, index and path. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "stratos/jsonscan.h"

/* Bytes inside a string, by what the validator must do with them. */
enum {
	JSONSCAN__PLAIN = 0,
	JSONSCAN__QUOTE,
	JSONSCAN__BACKSLASH,
	JSONSCAN__CONTROL,              /* 00..1F: must be escaped */
	JSONSCAN__LEAD2,                /* C2..DF */
	JSONSCAN__LEAD3,                /* E0..EF */
	JSONSCAN__LEAD4,                /* F0..F4 */
	JSONSCAN__INVALID,              /* 80..C1, F5..FF: never the first byte of a character */
};

static const unsigned char JSONSCAN__STRING_CLASS[256] = {
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
	0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	7, 7, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
	5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
};

/* Bytes that matter when skipping a validated container: 1 '"', 2 '[' '{', 3 ']' '}'. */
static const unsigned char JSONSCAN__SKIP_CLASS[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 3, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 3, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* Longest real number copied on the stack for strtod(); longer ones are copied to the heap. */
#define JSONSCAN__NUMBER_STACK 64

typedef const unsigned char *jsonscan__ptr;

static inline bool
jsonscan__is_ws(unsigned char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static inline bool
jsonscan__is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static inline jsonscan__ptr
jsonscan__ws(jsonscan__ptr p, jsonscan__ptr end)
{
	while (p < end && jsonscan__is_ws(*p))
		p++;
	return p;
}

static int
jsonscan__hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Four hex digits at p (p + 4 <= end checked by the caller); -1 when not hex. */
static long
jsonscan__hex4(jsonscan__ptr p)
{
	long v = 0;

	for (int i = 0; i < 4; i++) {
		int h = jsonscan__hex(p[i]);
		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

/* ---- Validation ---------------------------------------------------------- */

static int
jsonscan__fail(jsonscan__ptr start, jsonscan__ptr at, struct jsonscan_error *err,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
jsonscan__fail(jsonscan__ptr start, jsonscan__ptr at, struct jsonscan_error *err,
    const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -EINVAL;
	err->offset = (size_t)(at - start);
	err->line = 1;
	err->column = 1;
	for (jsonscan__ptr p = start; p < at; p++) {
		if (*p == '\n') {
			err->line++;
			err->column = 1;
		} else {
			err->column++;
		}
	}
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* "'x'" for printable ASCII, "byte 0xNN" otherwise (messages stay ASCII). */
static const char *
jsonscan__show(jsonscan__ptr p, jsonscan__ptr end, char *out, size_t len)
{
	if (p >= end)
		snprintf(out, len, "end of text");
	else if (*p >= 0x20 && *p < 0x7f)
		snprintf(out, len, "'%c'", *p);
	else
		snprintf(out, len, "byte 0x%02x", *p);
	return out;
}

/*
 * The first byte at or after p that is not plain ASCII text in a string:
 * a quote, a backslash, a control byte or the start of a UTF-8 sequence.
 * Strings are most of a Kubernetes object: 16 bytes at a time with SSE2
 * (a signed compare with 0x20 catches control bytes and bytes >= 0x80).
 */
static inline jsonscan__ptr
jsonscan__plain_run(jsonscan__ptr p, jsonscan__ptr end)
{
#ifdef __SSE2__
	const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
	const __m128i space = _mm_set1_epi8(0x20);

	while (end - p >= 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote),
		    _mm_cmpeq_epi8(x, backslash)), _mm_cmplt_epi8(x, space));
		unsigned mask = (unsigned)_mm_movemask_epi8(hit);

		if (mask != 0)
			return p + __builtin_ctz(mask);
		p += 16;
	}
#endif
	while (p < end && JSONSCAN__STRING_CLASS[*p] == JSONSCAN__PLAIN)
		p++;
	return p;
}

/* An escape at p (the backslash). Returns the byte after it, or NULL with *why. */
static jsonscan__ptr
jsonscan__check_escape(jsonscan__ptr p, jsonscan__ptr end, const char **why)
{
	long cp, lo;

	if (end - p < 2) {
		*why = "unterminated string";
		return NULL;
	}
	switch (p[1]) {
	case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
		return p + 2;
	case 'u':
		break;
	default:
		*why = "invalid escape in a string";
		return NULL;
	}
	if (end - p < 6 || (cp = jsonscan__hex4(p + 2)) < 0) {
		*why = "invalid \\u escape (four hex digits expected)";
		return NULL;
	}
	p += 6;
	if (cp == 0) {
		*why = "\\u0000 is not allowed in a string";
		return NULL;
	}
	if (cp >= 0xdc00 && cp <= 0xdfff) {
		*why = "invalid Unicode escape (low surrogate without a high one)";
		return NULL;
	}
	if (cp >= 0xd800 && cp <= 0xdbff) {
		if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || (lo = jsonscan__hex4(p + 2)) < 0 ||
		    lo < 0xdc00 || lo > 0xdfff) {
			*why = "invalid Unicode escape (high surrogate without a low one)";
			return NULL;
		}
		p += 6;
	}
	return p;
}

/* A string at p (the opening quote). Returns the byte after the closing quote, or NULL with *why and *at. */
static jsonscan__ptr
jsonscan__check_string(jsonscan__ptr p, jsonscan__ptr end, const char **why, jsonscan__ptr *at)
{
	unsigned lo, hi;

	p++;
	for (;;) {
		p = jsonscan__plain_run(p, end);
		*at = p;
		if (p == end) {
			*why = "unterminated string";
			return NULL;
		}
		switch (JSONSCAN__STRING_CLASS[*p]) {
		case JSONSCAN__QUOTE:
			return p + 1;
		case JSONSCAN__BACKSLASH:
			if ((p = jsonscan__check_escape(p, end, why)) == NULL)
				return NULL;
			break;
		case JSONSCAN__CONTROL:
			*why = "control character in a string (must be escaped)";
			return NULL;
		case JSONSCAN__LEAD2:
			if (end - p < 2 || (p[1] & 0xc0) != 0x80)
				goto bad;
			p += 2;
			break;
		case JSONSCAN__LEAD3:
			/* E0 would be overlong below A0; ED above 9F would be a surrogate. */
			lo = *p == 0xe0 ? 0xa0 : 0x80;
			hi = *p == 0xed ? 0x9f : 0xbf;
			if (end - p < 3 || p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80)
				goto bad;
			p += 3;
			break;
		case JSONSCAN__LEAD4:
			/* F0 would be overlong below 90; F4 above 8F would pass U+10FFFF. */
			lo = *p == 0xf0 ? 0x90 : 0x80;
			hi = *p == 0xf4 ? 0x8f : 0xbf;
			if (end - p < 4 || p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80 ||
			    (p[3] & 0xc0) != 0x80)
				goto bad;
			p += 4;
			break;
		default:
			goto bad;
		}
	}
bad:
	*why = "invalid UTF-8 in a string";
	return NULL;
}

/*
 * A number at p ('-' or a digit). Returns the byte after it, or NULL with
 * *why (and *rc -ENOMEM when a long real could not be copied).
 */
static jsonscan__ptr
jsonscan__check_number(jsonscan__ptr p, jsonscan__ptr end, const char **why, int *rc)
{
	jsonscan__ptr start = p, digits;
	bool neg = false, real = false;
	size_t ndigits;

	if (*p == '-') {
		neg = true;
		p++;
	}
	digits = p;
	if (p == end || !jsonscan__is_digit(*p)) {
		*why = "invalid number";
		return NULL;
	}
	if (*p == '0') {
		if (++p < end && jsonscan__is_digit(*p)) {
			*why = "invalid number (leading zero)";
			return NULL;
		}
	} else {
		while (p < end && jsonscan__is_digit(*p))
			p++;
	}
	ndigits = (size_t)(p - digits);
	if (p < end && *p == '.') {
		real = true;
		if (++p == end || !jsonscan__is_digit(*p)) {
			*why = "invalid number (digit expected after '.')";
			return NULL;
		}
		while (p < end && jsonscan__is_digit(*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		real = true;
		if (++p < end && (*p == '+' || *p == '-'))
			p++;
		if (p == end || !jsonscan__is_digit(*p)) {
			*why = "invalid number (digit expected in the exponent)";
			return NULL;
		}
		while (p < end && jsonscan__is_digit(*p))
			p++;
	}
	if (!real) {
		/* jansson keeps integers in a long long and refuses the rest. */
		if (ndigits > 19 || (ndigits == 19 &&
		    memcmp(digits, neg ? "9223372036854775808" : "9223372036854775807", 19) > 0)) {
			*why = "integer too big";
			return NULL;
		}
	} else {
		/* A real that overflows a double is refused (jansson does the same). */
		char stack[JSONSCAN__NUMBER_STACK], *copy = stack;
		size_t n = (size_t)(p - start);
		double d;

		if (n >= sizeof(stack) && (copy = malloc(n + 1)) == NULL) {
			*why = "out of memory";
			*rc = -ENOMEM;
			return NULL;
		}
		memcpy(copy, start, n);
		copy[n] = '\0';
		errno = 0;
		d = strtod(copy, NULL);
		if (copy != stack)
			free(copy);
		if (isinf(d) && errno == ERANGE) {
			*why = "real number too big";
			return NULL;
		}
	}
	return p;
}

static enum jsonscan_type
jsonscan__type(unsigned char c)
{
	switch (c) {
	case '{':
		return JSONSCAN_OBJECT;
	case '[':
		return JSONSCAN_ARRAY;
	case '"':
		return JSONSCAN_STRING;
	case 't':
		return JSONSCAN_TRUE;
	case 'f':
		return JSONSCAN_FALSE;
	case 'n':
		return JSONSCAN_NULL;
	default:
		return JSONSCAN_NUMBER;
	}
}

/* No parent: the top-level container. */
#define JSONSCAN__NONE UINT32_MAX

void
jsonscan_doc_free(struct jsonscan_doc *doc)
{
	if (doc == NULL)
		return;
	if (doc->open != doc->small_open)
		free(doc->open);
	if (doc->close != doc->small_close)
		free(doc->close);
	doc->open = doc->close = NULL;
	doc->n = doc->cap = 0;
}

static void
jsonscan__doc_init(struct jsonscan_doc *doc, const char *text, size_t len)
{
	doc->text = text;
	doc->len = len;
	doc->n = 0;
	doc->cap = JSONSCAN_DOC_SMALL;
	doc->open = doc->small_open;
	doc->close = doc->small_close;
}

/* Room for one more container; 0 or -ENOMEM. */
static int
jsonscan__doc_grow(struct jsonscan_doc *doc)
{
	size_t cap = doc->cap * 2;
	uint32_t *o = malloc(cap * sizeof(*o)), *c = malloc(cap * sizeof(*c));

	if (o == NULL || c == NULL) {
		free(o);
		free(c);
		return -ENOMEM;
	}
	memcpy(o, doc->open, doc->n * sizeof(*o));
	memcpy(c, doc->close, doc->n * sizeof(*c));
	if (doc->open != doc->small_open)
		free(doc->open);
	if (doc->close != doc->small_close)
		free(doc->close);
	doc->open = o;
	doc->close = c;
	doc->cap = cap;
	return 0;
}

int
jsonscan_validate(const char *text, size_t len, struct jsonscan_doc *doc,
    struct jsonscan_value *root, struct jsonscan_error *err)
{
	/* One bit per open container: 1 object, 0 array. No recursion. */
	unsigned char stack[(LIMITS_JSON_DEPTH + 7) / 8];
	jsonscan__ptr start = (jsonscan__ptr)text, end = start + len, p, q, at, first;
	size_t depth = 0;
	/* The innermost open container in doc; until it closes, close[] links to its parent. */
	uint32_t cur = JSONSCAN__NONE;
	const char *why = NULL;
	char shown[16];
	int rc = -EINVAL;

	memset(stack, 0, sizeof(stack));
	if (root != NULL)
		*root = (struct jsonscan_value){ NULL, 0, JSONSCAN_ABSENT, NULL };
	if (doc != NULL) {
		jsonscan__doc_init(doc, text, len);
		if (len >= UINT32_MAX)
			doc = NULL;     /* offsets do not fit: lookups will scan */
	}
	if (text == NULL)
		return jsonscan__fail(start, start, err, "no JSON value (empty text)");
	p = jsonscan__ws(start, end);
	if (p == end)
		return jsonscan__fail(start, p, err, "no JSON value (empty text)");
	first = p;

value:
	/* A value inside depth containers is at depth + 1, counted as jansson does. */
	if (depth + 1 > LIMITS_JSON_DEPTH)
		return jsonscan__fail(start, p, err, "nested deeper than %u levels", LIMITS_JSON_DEPTH);
	if (doc != NULL && (*p == '{' || *p == '[')) {
		if (doc->n == doc->cap && jsonscan__doc_grow(doc) < 0) {
			jsonscan__fail(start, p, err, "out of memory");
			return -ENOMEM;
		}
		doc->open[doc->n] = (uint32_t)(p - start);
		doc->close[doc->n] = cur;
		cur = (uint32_t)doc->n++;
	}
	switch (*p) {
	case '{':
		stack[depth / 8] |= (unsigned char)(1u << (depth % 8));
		depth++;
		p = jsonscan__ws(p + 1, end);
		if (p < end && *p == '}')
			goto close;
		goto key;
	case '[':
		stack[depth / 8] &= (unsigned char)~(1u << (depth % 8));
		depth++;
		p = jsonscan__ws(p + 1, end);
		if (p < end && *p == ']')
			goto close;
		if (p == end)
			return jsonscan__fail(start, p, err, "unexpected end of text in an array");
		goto value;
	case '"':
		if ((q = jsonscan__check_string(p, end, &why, &at)) == NULL)
			return jsonscan__fail(start, at, err, "%s", why);
		p = q;
		goto after_value;
	case 't':
		if (end - p < 4 || memcmp(p, "true", 4) != 0)
			goto bad_token;
		p += 4;
		goto after_value;
	case 'f':
		if (end - p < 5 || memcmp(p, "false", 5) != 0)
			goto bad_token;
		p += 5;
		goto after_value;
	case 'n':
		if (end - p < 4 || memcmp(p, "null", 4) != 0)
			goto bad_token;
		p += 4;
		goto after_value;
	default:
		if (*p != '-' && !jsonscan__is_digit(*p))
			goto bad_token;
		if ((q = jsonscan__check_number(p, end, &why, &rc)) == NULL) {
			if (rc == -ENOMEM) {
				jsonscan__fail(start, p, err, "%s", why);
				return rc;
			}
			return jsonscan__fail(start, p, err, "%s", why);
		}
		p = q;
		goto after_value;
	}

key:
	if (p == end)
		return jsonscan__fail(start, p, err, "unexpected end of text in an object");
	if (*p != '"')
		return jsonscan__fail(start, p, err, "object key (a string) expected, found %s",
		    jsonscan__show(p, end, shown, sizeof(shown)));
	if ((q = jsonscan__check_string(p, end, &why, &at)) == NULL)
		return jsonscan__fail(start, at, err, "%s", why);
	p = jsonscan__ws(q, end);
	if (p == end || *p != ':')
		return jsonscan__fail(start, p, err, "':' expected after an object key, found %s",
		    jsonscan__show(p, end, shown, sizeof(shown)));
	p = jsonscan__ws(p + 1, end);
	if (p == end)
		return jsonscan__fail(start, p, err, "unexpected end of text in an object");
	goto value;

after_value:
	p = jsonscan__ws(p, end);
	if (depth == 0) {
		if (p != end)
			return jsonscan__fail(start, p, err, "text after the JSON value: %s",
			    jsonscan__show(p, end, shown, sizeof(shown)));
		if (root != NULL) {
			/* Trailing white space is not part of the value. */
			jsonscan__ptr last = end;
			while (last > first && jsonscan__is_ws(last[-1]))
				last--;
			root->p = (const char *)first;
			root->len = (size_t)(last - first);
			root->type = jsonscan__type(*first);
			root->doc = doc;
		}
		return 0;
	}
	if (stack[(depth - 1) / 8] & (1u << ((depth - 1) % 8))) {
		if (p < end && *p == ',') {
			p = jsonscan__ws(p + 1, end);
			goto key;
		}
		if (p < end && *p == '}')
			goto close;
		return jsonscan__fail(start, p, err, "',' or '}' expected in an object, found %s",
		    jsonscan__show(p, end, shown, sizeof(shown)));
	}
	if (p < end && *p == ',') {
		p = jsonscan__ws(p + 1, end);
		if (p == end)
			return jsonscan__fail(start, p, err, "unexpected end of text in an array");
		goto value;
	}
	if (p < end && *p == ']')
		goto close;
	return jsonscan__fail(start, p, err, "',' or ']' expected in an array, found %s",
	    jsonscan__show(p, end, shown, sizeof(shown)));

close:
	/* p is at the closing bracket of the innermost container. */
	if (doc != NULL) {
		uint32_t parent = doc->close[cur];
		doc->close[cur] = (uint32_t)(p - start);
		cur = parent;
	}
	depth--;
	p++;
	goto after_value;

bad_token:
	return jsonscan__fail(start, p, err, "unexpected %s where a value was expected",
	    jsonscan__show(p, end, shown, sizeof(shown)));
}

/* ---- Lookups on validated text ------------------------------------------- */

/* A string at p (the opening quote): the byte after its closing quote, or end. */
static const char *
jsonscan__skip_string(const char *p, const char *end)
{
	const char *q;

	p++;
	while (p < end && (q = memchr(p, '"', (size_t)(end - p))) != NULL) {
		const char *b = q;

		/* The quote ends the string unless an odd run of backslashes escapes it. */
		while (b > p && b[-1] == '\\')
			b--;
		if (((q - b) & 1) == 0)
			return q + 1;
		p = q + 1;
	}
	return end;
}

/* The container opening at p, as recorded in doc: the byte after its end, or NULL when unknown. */
static const char *
jsonscan__recorded_end(const struct jsonscan_doc *doc, const char *p, const char *end)
{
	size_t lo = 0, hi = doc->n, off;

	if (p < doc->text || p >= doc->text + doc->len)
		return NULL;
	off = (size_t)(p - doc->text);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (doc->open[mid] < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == doc->n || doc->open[lo] != off || doc->close[lo] >= doc->len)
		return NULL;
	p = doc->text + doc->close[lo] + 1;
	return p <= end ? p : end;
}

/* The value at p: the byte after it, or end. */
static const char *
jsonscan__skip(const struct jsonscan_doc *doc, const char *p, const char *end)
{
	size_t depth = 0;
	const char *q;

	if (p >= end)
		return end;
	if (*p == '"')
		return jsonscan__skip_string(p, end);
	if (*p != '{' && *p != '[') {
		while (p < end && *p != ',' && *p != ']' && *p != '}' &&
		    !jsonscan__is_ws((unsigned char)*p))
			p++;
		return p;
	}
	if (doc != NULL && (q = jsonscan__recorded_end(doc, p, end)) != NULL)
		return q;
	while (p < end) {
		unsigned char cls = JSONSCAN__SKIP_CLASS[(unsigned char)*p];

		if (cls == 0) {
			p++;
		} else if (cls == 1) {
			p = jsonscan__skip_string(p, end);
		} else if (cls == 2) {
			depth++;
			p++;
		} else {
			p++;
			if (--depth == 0)
				return p;
		}
	}
	return end;
}

void
jsonscan_iter_init(struct jsonscan_iter *it, struct jsonscan_value v)
{
	it->object = v.type == JSONSCAN_OBJECT;
	it->doc = v.doc;
	if ((v.type != JSONSCAN_OBJECT && v.type != JSONSCAN_ARRAY) || v.p == NULL || v.len < 2) {
		it->p = it->end = NULL;
		return;
	}
	it->p = v.p + 1;
	it->end = v.p + v.len - 1;      /* the closing bracket */
}

bool
jsonscan_next(struct jsonscan_iter *it, struct jsonscan_value *key, struct jsonscan_value *value)
{
	const char *p, *q, *end = it->end;

	if (it->p == NULL)
		return false;
	p = (const char *)jsonscan__ws((jsonscan__ptr)it->p, (jsonscan__ptr)end);
	if (p >= end)
		goto done;
	if (it->object) {
		if (*p != '"')
			goto done;
		q = jsonscan__skip_string(p, end);
		if (key != NULL)
			*key = (struct jsonscan_value){ p, (size_t)(q - p), JSONSCAN_STRING, it->doc };
		p = (const char *)jsonscan__ws((jsonscan__ptr)q, (jsonscan__ptr)end);
		if (p >= end || *p != ':')
			goto done;
		p = (const char *)jsonscan__ws((jsonscan__ptr)p + 1, (jsonscan__ptr)end);
	} else if (key != NULL) {
		*key = (struct jsonscan_value){ NULL, 0, JSONSCAN_ABSENT, NULL };
	}
	q = jsonscan__skip(it->doc, p, end);
	if (q == p)
		goto done;
	*value = (struct jsonscan_value){ p, (size_t)(q - p), jsonscan__type((unsigned char)*p),
		it->doc };
	p = (const char *)jsonscan__ws((jsonscan__ptr)q, (jsonscan__ptr)end);
	if (p < end && *p == ',')
		p++;
	it->p = p;
	return true;
done:
	it->p = it->end = NULL;
	return false;
}

size_t
jsonscan_count(struct jsonscan_value v)
{
	struct jsonscan_iter it;
	struct jsonscan_value e;
	size_t n = 0;

	jsonscan_iter_init(&it, v);
	while (jsonscan_next(&it, NULL, &e))
		n++;
	return n;
}

struct jsonscan_value
jsonscan_index(struct jsonscan_value v, size_t i)
{
	struct jsonscan_iter it;
	struct jsonscan_value e;

	if (v.type == JSONSCAN_ARRAY) {
		jsonscan_iter_init(&it, v);
		while (jsonscan_next(&it, NULL, &e))
			if (i-- == 0)
				return e;
	}
	return (struct jsonscan_value){ NULL, 0, JSONSCAN_ABSENT, NULL };
}

/* UTF-8 of a code point (at most U+10FFFF) into out[4]; returns the length. */
static size_t
jsonscan__utf8(unsigned long cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * Decodes the inside of a validated string [p, end) into out (at most cap
 * bytes written). Returns the full decoded length, which may exceed cap.
 */
static size_t
jsonscan__decode(const char *p, const char *end, char *out, size_t cap)
{
	size_t n = 0;

	while (p < end) {
		const char *bs = memchr(p, '\\', (size_t)(end - p));
		size_t run = (size_t)((bs != NULL ? bs : end) - p);
		char u[4];
		size_t ulen = 1;
		long cp, lo;

		if (n < cap)
			memcpy(out + n, p, run < cap - n ? run : cap - n);
		n += run;
		if (bs == NULL || end - bs < 2)
			break;
		p = bs + 2;
		switch (bs[1]) {
		case 'b': u[0] = '\b'; break;
		case 'f': u[0] = '\f'; break;
		case 'n': u[0] = '\n'; break;
		case 'r': u[0] = '\r'; break;
		case 't': u[0] = '\t'; break;
		case 'u':
			if (end - bs < 6 || (cp = jsonscan__hex4((jsonscan__ptr)bs + 2)) < 0)
				return n;
			p = bs + 6;
			if (cp >= 0xd800 && cp <= 0xdbff && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
			    (lo = jsonscan__hex4((jsonscan__ptr)p + 2)) >= 0xdc00 && lo <= 0xdfff) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				p += 6;
			}
			ulen = jsonscan__utf8((unsigned long)cp, u);
			break;
		default:
			u[0] = bs[1];     /* \" \\ \/ */
			break;
		}
		for (size_t i = 0; i < ulen; i++, n++)
			if (n < cap)
				out[n] = u[i];
	}
	return n;
}

int
jsonscan_string(struct jsonscan_value v, char *out, size_t cap, size_t *outlen)
{
	size_t n;

	if (v.type != JSONSCAN_STRING || v.len < 2)
		return -EINVAL;
	if (cap == 0)
		return -ENOSPC;
	n = jsonscan__decode(v.p + 1, v.p + v.len - 1, out, cap - 1);
	if (outlen != NULL)
		*outlen = n;
	if (n >= cap) {
		out[cap - 1] = '\0';
		return -ENOSPC;
	}
	out[n] = '\0';
	return 0;
}

char *
jsonscan_strdup(struct jsonscan_value v)
{
	char *s;
	size_t n;

	if (v.type != JSONSCAN_STRING || v.len < 2)
		return NULL;
	/* Decoding never lengthens the text: the raw length is enough room. */
	if ((s = malloc(v.len - 1)) == NULL)
		return NULL;
	n = jsonscan__decode(v.p + 1, v.p + v.len - 1, s, v.len - 2);
	s[n] = '\0';
	return s;
}

size_t
jsonscan_string_length(struct jsonscan_value v)
{
	if (v.type != JSONSCAN_STRING || v.len < 2)
		return 0;
	if (memchr(v.p + 1, '\\', v.len - 2) == NULL)
		return v.len - 2;
	return jsonscan__decode(v.p + 1, v.p + v.len - 1, NULL, 0);
}

/* Raw string text [p, p+n) (no quotes) equals s of length slen once decoded. */
static bool
jsonscan__raw_equal(const char *p, size_t n, const char *s, size_t slen)
{
	char stack[256], *tmp;
	bool eq;

	/*
	 * Every escape decodes to fewer bytes than it takes, so a raw text as
	 * long as s can only equal it byte for byte, and a shorter one never.
	 */
	if (n <= slen)
		return n == slen && memcmp(p, s, n) == 0 && memchr(s, '\\', slen) == NULL;
	if (p[0] != '\\' && p[0] != s[0])
		return false;
	if (memchr(p, '\\', n) == NULL)
		return false;
	tmp = n <= sizeof(stack) ? stack : malloc(n);
	if (tmp == NULL)
		return false;
	eq = jsonscan__decode(p, p + n, tmp, n) == slen && memcmp(tmp, s, slen) == 0;
	if (tmp != stack)
		free(tmp);
	return eq;
}

bool
jsonscan_string_equal(struct jsonscan_value v, const char *s)
{
	if (v.type != JSONSCAN_STRING || v.len < 2 || s == NULL)
		return false;
	return jsonscan__raw_equal(v.p + 1, v.len - 2, s, strlen(s));
}

void
jsonscan_get_many(struct jsonscan_value obj, const char *const *keys, size_t n,
    struct jsonscan_value *out)
{
	size_t lens[16];
	struct jsonscan_iter it;
	struct jsonscan_value k, v;

	for (size_t i = 0; i < n; i++) {
		out[i] = (struct jsonscan_value){ NULL, 0, JSONSCAN_ABSENT, NULL };
		if (i < sizeof(lens) / sizeof(lens[0]))
			lens[i] = strlen(keys[i]);
	}
	if (obj.type != JSONSCAN_OBJECT)
		return;
	jsonscan_iter_init(&it, obj);
	while (jsonscan_next(&it, &k, &v)) {
		for (size_t i = 0; i < n; i++) {
			size_t kl = i < sizeof(lens) / sizeof(lens[0]) ? lens[i] : strlen(keys[i]);
			/* No member is skipped after a match: a repeated key's last value wins. */
			if (jsonscan__raw_equal(k.p + 1, k.len - 2, keys[i], kl)) {
				out[i] = v;
				break;
			}
		}
	}
}

struct jsonscan_value
jsonscan_get(struct jsonscan_value obj, const char *key)
{
	struct jsonscan_value v;

	jsonscan_get_many(obj, &key, 1, &v);
	return v;
}

struct jsonscan_value
jsonscan_path(struct jsonscan_value v, ...)
{
	va_list ap;
	const char *key;

	va_start(ap, v);
	while ((key = va_arg(ap, const char *)) != NULL && v.type != JSONSCAN_ABSENT)
		v = jsonscan_get(v, key);
	va_end(ap);
	return v;
}

/* A number's tree: long long unless it has a fraction or an exponent (as jansson decides). */
static json_t *
jsonscan__number_json(struct jsonscan_value v)
{
	char stack[JSONSCAN__NUMBER_STACK], *copy = stack;
	bool real = memchr(v.p, '.', v.len) != NULL || memchr(v.p, 'e', v.len) != NULL ||
	    memchr(v.p, 'E', v.len) != NULL;
	json_t *j;

	if (v.len >= sizeof(stack) && (copy = malloc(v.len + 1)) == NULL)
		return NULL;
	memcpy(copy, v.p, v.len);
	copy[v.len] = '\0';
	j = real ? json_real(strtod(copy, NULL)) : json_integer(strtoll(copy, NULL, 10));
	if (copy != stack)
		free(copy);
	return j;
}

/* A string's tree; the text is validated UTF-8 without NUL, so no second check. */
static json_t *
jsonscan__string_json(struct jsonscan_value v)
{
	char stack[128], *s = v.len <= sizeof(stack) ? stack : malloc(v.len);
	size_t n;
	json_t *j;

	if (s == NULL)
		return NULL;
	n = jsonscan__decode(v.p + 1, v.p + v.len - 1, s, v.len);
	s[n] = '\0';
	j = json_stringn_nocheck(s, n);
	if (s != stack)
		free(s);
	return j;
}

static json_t *
jsonscan__json(struct jsonscan_value v, unsigned depth)
{
	struct jsonscan_iter it;
	struct jsonscan_value k, e;
	json_t *j, *child;

	if (depth > LIMITS_JSON_DEPTH)
		return NULL;
	switch (v.type) {
	case JSONSCAN_OBJECT:
		if ((j = json_object()) == NULL)
			return NULL;
		jsonscan_iter_init(&it, v);
		while (jsonscan_next(&it, &k, &e)) {
			char stack[64], *key = k.len <= sizeof(stack) ? stack : malloc(k.len);
			int rc = -1;

			if (key != NULL && jsonscan_string(k, key, k.len, NULL) == 0 &&
			    (child = jsonscan__json(e, depth + 1)) != NULL)
				rc = json_object_set_new_nocheck(j, key, child);
			if (key != stack)
				free(key);
			if (rc < 0) {
				json_decref(j);
				return NULL;
			}
		}
		return j;
	case JSONSCAN_ARRAY:
		if ((j = json_array()) == NULL)
			return NULL;
		jsonscan_iter_init(&it, v);
		while (jsonscan_next(&it, NULL, &e)) {
			if ((child = jsonscan__json(e, depth + 1)) == NULL ||
			    json_array_append_new(j, child) < 0) {
				json_decref(j);
				return NULL;
			}
		}
		return j;
	case JSONSCAN_STRING:
		return v.len >= 2 ? jsonscan__string_json(v) : NULL;
	case JSONSCAN_NUMBER:
		return jsonscan__number_json(v);
	case JSONSCAN_TRUE:
		return json_true();
	case JSONSCAN_FALSE:
		return json_false();
	case JSONSCAN_NULL:
		return json_null();
	default:
		return NULL;
	}
}

json_t *
jsonscan_json(struct jsonscan_value v)
{
	return jsonscan__json(v, 1);
}
