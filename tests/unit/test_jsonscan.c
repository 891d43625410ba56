/* Unit tests for the validating JSON scanner: jansson's verdicts, lookups, strings, big arrays. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "test_util.h"
#include "jsonscan_diff.h"
#include "stratos/buf.h"
#include "stratos/jsonscan.h"

static void
assert_agree(const char *text, size_t len)
{
	if (jsonscan_diff(text, len) != 0)
		fail_msg("%s\n  input (%zu bytes): %.200s", jsonscan_diff_why, len, text);
}

static void
assert_verdict(const char *text, bool valid)
{
	struct jsonscan_error err;

	assert_agree(text, strlen(text));
	if ((jsonscan_validate(text, strlen(text), NULL, NULL, &err) == 0) != valid)
		fail_msg("%s should be %s", text, valid ? "accepted" : "refused");
}

/* Hand-picked edges of the grammar, each checked against jansson too. */
static void
test_corpus(void **state)
{
	static const char *const valid[] = {
		"{}", "[]", " {\"a\":1} \n", "0", "-0", "1.5", "-1.5e-3", "1E+2",
		"\"\"", "true", "false", "null", "[1,2,3]", "{\"a\":{\"b\":[{}]}}",
		"\"\\u00e9\\n\\t\\\"\\\\\\/\\b\\f\\r\"", "\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\"",
		"\"\xe2\x82\xac\"", "\"\xc3\xa9\"", "\"\x7f\"", "9223372036854775807", "-9223372036854775808",
		"1e-400", "123456789012345678901234567890.5", "{\"a\":1,\"a\":2}", "[\"\\u0041\"]",
		"{\"\\u0061\":true}", "\t[\r\n]", "[0.0e0]", "1.7976931348623157e308",
	};
	static const char *const invalid[] = {
		"", " ", "{", "}", "[", "]", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "[,1]", "{,}",
		"{1:2}", "{'a':1}", "[1 2]", "01", "-", "-a", "1.", ".5", "1e", "1e+", "+1", "0x10",
		"tru", "nul", "truex", "True", "NaN", "Infinity", "[1]x", "{}{}", "\"abc", "\"\\x\"",
		"\"\\u12\"", "\"\\u12g4\"", "\"\\u0000\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"",
		"\"\\ud800x\"", "\"\x01\"", "\"\n\"", "\"\xff\"", "\"\xc3\x28\"", "\"\xc0\xaf\"",
		"\"\xe0\x80\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xf8\x88\x80\x80\x80\"",
		"\"\xc3\"", "\"\xe2\x82\"", "9223372036854775808", "-9223372036854775809",
		"99999999999999999999", "1e400", "-1e400", "\xef\xbb\xbf{}", "{\"a\":1]",
		"[1}", "/* c */ {}", "{\"a\" 1}", "[-]", "[1.e5]", "[\"a\",]", "\"\\u00\"",
		"1.7976931348623159e308",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		assert_verdict(valid[i], true);
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		assert_verdict(invalid[i], false);
	/* A NUL byte in the text (not the escape) is refused, inside or outside strings. */
	assert_agree("[1]\0", 4);
	assert_int_equal(jsonscan_validate("[1]\0", 4, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(jsonscan_validate("\"a\0b\"", 5, NULL, NULL, NULL), -EINVAL);
	assert_agree("\"a\0b\"", 5);
	assert_int_equal(jsonscan_validate(NULL, 0, NULL, NULL, NULL), -EINVAL);
	/* jansson drops a NUL right after a number or literal and accepts; jsonscan does not. */
	assert_int_equal(jsonscan_validate("[1\0]", 4, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(jsonscan_validate("[true\0]", 7, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(jsonscan_diff("[true\0]", 7), 0);
}

/* jansson counts a value inside N containers at depth N+1 and stops past 2048. */
static void
test_depth(void **state)
{
	size_t n = 100000;
	char *text = malloc(5 * n + 8);
	struct jsonscan_error err;

	(void)state;
	assert_non_null(text);
	for (size_t depth = LIMITS_JSON_DEPTH - 2; depth <= LIMITS_JSON_DEPTH + 1; depth++) {
		/* depth empty arrays, then depth arrays around a number */
		memset(text, '[', depth);
		memset(text + depth, ']', depth);
		assert_agree(text, 2 * depth);
		assert_int_equal(jsonscan_validate(text, 2 * depth, NULL, NULL, NULL) == 0,
		    depth <= LIMITS_JSON_DEPTH);
		text[depth] = '1';
		memset(text + depth + 1, ']', depth);
		assert_agree(text, 2 * depth + 1);
		assert_int_equal(jsonscan_validate(text, 2 * depth + 1, NULL, NULL, NULL) == 0,
		    depth < LIMITS_JSON_DEPTH);
	}
	memset(text, '[', n);
	memset(text + n, ']', n);
	assert_int_equal(jsonscan_validate(text, 2 * n, NULL, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.text, "nested deeper"));
	/* Objects count the same way. */
	for (size_t i = 0; i < n; i++)
		memcpy(text + 5 * i, "{\"a\":", 5);
	assert_int_equal(jsonscan_validate(text, 5 * (n / 3), NULL, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.text, "nested deeper"));
	free(text);
}

/* xorshift64*: the same mutations on every run. */
static unsigned long long
rnd(unsigned long long *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

/* Random damage to real documents: both must still agree on every one. */
static void
test_mutations(void **state)
{
	static const char *const fixtures[] = {
		FIXTURE("admission/pod-create-pool.json"), FIXTURE("admission/pod-create-other.json"),
		FIXTURE("admission/nodepool-create-invalid.json"),
		FIXTURE("extender/filter-args-nodenames.json"),
	};
	static const char *const pieces[] = {
		"\\u0000", "\\ud800", "\\udc00", "\\ud83d\\ude00", "\xc3\x28", "\xed\xa0\x80",
		"\xf4\x90\x80\x80", "\xf0\x9f\x98\x80", "\xc3\xa9", "\xff", "1e400", "-0", "01",
		"99999999999999999999", "9223372036854775807", "-9223372036854775808", "0.5e-400",
		"\"", "\\", "\\\"", "[", "]", "{", "}", ",", ":", "tru", "nul", "true", "\t", "\x7f",
		"1.", ".5", "1e", "\\u00e9", "\x01", "\"a\":1,", "[[[[", "]]]]", "\\uZZZZ", "\n",
	};
	unsigned long long seed = 0x5eed5eed12345678ULL;
	unsigned agreed_valid = 0;
	char *mut = malloc(1 << 16);

	(void)state;
	assert_non_null(mut);
	for (size_t f = 0; f < sizeof(fixtures) / sizeof(fixtures[0]); f++) {
		size_t len;
		char *doc = test_read_file(fixtures[f], &len);

		assert_true(len + 64 < (1 << 16));
		assert_agree(doc, len);
		for (int i = 0; i < 1500; i++) {
			size_t n = len, at = rnd(&seed) % len;
			const char *piece = pieces[rnd(&seed) % (sizeof(pieces) / sizeof(pieces[0]))];
			size_t plen = strlen(piece);

			memcpy(mut, doc, len);
			switch (rnd(&seed) % 5) {
			case 0:         /* truncate */
				n = at;
				break;
			case 1:         /* flip one byte */
				mut[at] = (char)(rnd(&seed) & 0xff);
				break;
			case 2:         /* insert a troublesome piece */
				memmove(mut + at + plen, mut + at, len - at);
				memcpy(mut + at, piece, plen);
				n = len + plen;
				break;
			case 3:         /* overwrite with it */
				memcpy(mut + at, piece, at + plen <= len ? plen : len - at);
				break;
			default:        /* delete a short range */
				n = len - (at + 8 <= len ? 8 : len - at);
				memmove(mut + at, mut + at + (len - n), n - at);
				break;
			}
			if (jsonscan_diff(mut, n) != 0)
				fail_msg("%s: mutation %d: %s", fixtures[f], i, jsonscan_diff_why);
			agreed_valid += jsonscan_validate(mut, n, NULL, NULL, NULL) == 0;
		}
		free(doc);
	}
	/* Both outcomes were exercised, not only refusals. */
	assert_true(agreed_valid > 200);
	free(mut);
}

static void
test_lookups(void **state)
{
	const char *text = "{\"apiVersion\":\"v1\", \"request\" : {\"uid\":\"u-1\",\"dryRun\":true,"
	    "\"object\":{\"metadata\":{\"name\":\"p\",\"annotations\":null},"
	    "\"spec\":{\"containers\":[{\"name\":\"a\"},{\"name\":\"b\\\"]}\"}],\"n\":-1.5e3}},"
	    "\"kind\":{\"kind\":\"Pod\"}}, \"d\":1, \"d\":[2], \"\\u0065sc\":\"\\u00e9t\\u00e9\"}";
	struct jsonscan_value root, v, out[4];
	static const char *const keys[] = { "d", "apiVersion", "missing", "esc" };
	struct jsonscan_iter it;
	struct jsonscan_value k;
	struct jsonscan_doc doc;
	char buf[16];
	size_t n;

	(void)state;
	assert_int_equal(jsonscan_validate(text, strlen(text), &doc, &root, NULL), 0);
	assert_ptr_equal(root.doc, &doc);
	assert_agree(text, strlen(text));
	assert_int_equal(root.type, JSONSCAN_OBJECT);
	assert_int_equal(root.len, strlen(text));
	v = jsonscan_path(root, "request", "uid", NULL);
	assert_true(jsonscan_string_equal(v, "u-1"));
	assert_int_equal(jsonscan_path(root, "request", "dryRun", NULL).type, JSONSCAN_TRUE);
	assert_int_equal(jsonscan_path(root, "request", "object", "metadata", "annotations", NULL).type,
	    JSONSCAN_NULL);
	assert_int_equal(jsonscan_path(root, "request", "nope", "deeper", NULL).type, JSONSCAN_ABSENT);
	assert_int_equal(jsonscan_path(root, "apiVersion", "x", NULL).type, JSONSCAN_ABSENT);
	v = jsonscan_path(root, "request", "object", "spec", "containers", NULL);
	assert_int_equal(jsonscan_count(v), 2);
	assert_true(jsonscan_string_equal(jsonscan_get(jsonscan_index(v, 1), "name"), "b\"]}"));
	assert_int_equal(jsonscan_index(v, 2).type, JSONSCAN_ABSENT);
	assert_int_equal(jsonscan_index(root, 0).type, JSONSCAN_ABSENT);
	v = jsonscan_path(root, "request", "object", "spec", "n", NULL);
	assert_int_equal(v.type, JSONSCAN_NUMBER);
	assert_int_equal(v.len, 6);
	/* Several keys in one pass; the last of a repeated key wins; escaped keys match. */
	jsonscan_get_many(root, keys, 4, out);
	assert_int_equal(out[0].type, JSONSCAN_ARRAY);
	assert_true(jsonscan_string_equal(out[1], "v1"));
	assert_int_equal(out[2].type, JSONSCAN_ABSENT);
	assert_true(jsonscan_string_equal(out[3], "\xc3\xa9t\xc3\xa9"));
	assert_int_equal(jsonscan_string_length(out[3]), 5);
	assert_int_equal(jsonscan_string(out[3], buf, sizeof(buf), &n), 0);
	assert_string_equal(buf, "\xc3\xa9t\xc3\xa9");
	assert_int_equal(jsonscan_string(out[3], buf, 3, &n), -ENOSPC);
	assert_int_equal(n, 5);
	assert_int_equal(strlen(buf), 2);
	assert_int_equal(jsonscan_string(out[0], buf, sizeof(buf), NULL), -EINVAL);
	assert_null(jsonscan_strdup(out[0]));
	assert_false(jsonscan_string_equal(out[1], "v"));
	assert_false(jsonscan_string_equal(out[1], "v12"));
	/* Walking an object gives keys and values in order, repeats included. */
	jsonscan_iter_init(&it, root);
	n = 0;
	while (jsonscan_next(&it, &k, &v))
		n++;
	assert_int_equal(n, 5);
	assert_int_equal(jsonscan_count(root), 5);
	/* A span becomes a tree on request. */
	{
		json_t *j = jsonscan_json(jsonscan_path(root, "request", "kind", NULL));
		assert_string_equal(json_string_value(json_object_get(j, "kind")), "Pod");
		json_decref(j);
		assert_null(jsonscan_json(jsonscan_get(root, "missing")));
	}
	jsonscan_doc_free(&doc);
}

static void
test_errors_say_where(void **state)
{
	struct jsonscan_error err;
	const char *text = "{\n  \"a\": 1,\n  \"b\": tru\n}";

	(void)state;
	assert_int_equal(jsonscan_validate(text, strlen(text), NULL, NULL, &err), -EINVAL);
	assert_int_equal(err.line, 3);
	assert_int_equal(err.column, 8);
	assert_int_equal(err.offset, 19);
	assert_non_null(strstr(err.text, "'t'"));
	assert_int_equal(jsonscan_validate("{\"a\":\"\x01\"}", 9, NULL, NULL, &err), -EINVAL);
	assert_int_equal(err.offset, 6);
	assert_non_null(strstr(err.text, "control character"));
	assert_int_equal(jsonscan_validate("[1,\xff]", 5, NULL, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.text, "byte 0xff"));
	assert_int_equal(jsonscan_validate("  ", 2, NULL, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.text, "empty"));
}

/*
 * The scheduler extender's case: thousands of Node objects of which only
 * metadata.name is needed, read element by element without a tree.
 */
static void
test_large_array_walk(void **state)
{
	size_t len;
	char *node = test_read_file(FIXTURE("extender/nodes-standby.json"), &len);
	struct buf doc;
	struct jsonscan_value root, item, nodes_list;
	struct jsonscan_iter it;
	struct jsonscan_doc jd;
	json_t *j;
	size_t count = 0, nodes = 3000;

	(void)state;
	/* The fixture is an array of Nodes: the first one is the template. */
	assert_int_equal(jsonscan_validate(node, len, NULL, &root, NULL), 0);
	item = jsonscan_index(root, 0);
	assert_int_equal(item.type, JSONSCAN_OBJECT);
	buf_init(&doc, 64u << 20);
	assert_int_equal(buf_append_str(&doc, "{\"Pod\":{\"metadata\":{\"name\":\"p\"}},\"Nodes\":{\"items\":["), 0);
	for (size_t i = 0; i < nodes; i++) {
		/* Same node, a name of its own: {"metadata":{"name":"n-i"}, ...the rest} */
		assert_int_equal(buf_printf(&doc, "%s{\"metadata\":{\"name\":\"n-%zu\"},\"x\":%.*s}",
		    i > 0 ? "," : "", i, (int)item.len, item.p), 0);
	}
	assert_int_equal(buf_append_str(&doc, "]},\"NodeNames\":null}"), 0);
	/* Past JSONSCAN_DOC_SMALL containers, the record grows on the heap. */
	assert_int_equal(jsonscan_validate(doc.data, doc.len, &jd, &root, NULL), 0);
	assert_true(jd.n > JSONSCAN_DOC_SMALL);
	nodes_list = jsonscan_path(root, "Nodes", "items", NULL);
	jsonscan_iter_init(&it, nodes_list);
	while (jsonscan_next(&it, NULL, &item)) {
		char want[32], got[32];
		snprintf(want, sizeof(want), "n-%zu", count++);
		assert_int_equal(jsonscan_string(jsonscan_path(item, "metadata", "name", NULL), got,
		    sizeof(got), NULL), 0);
		assert_string_equal(got, want);
	}
	assert_int_equal(count, nodes);
	assert_int_equal(jsonscan_get(root, "NodeNames").type, JSONSCAN_NULL);
	/* And jansson agrees on the whole of it. */
	j = json_loadb(doc.data, doc.len, 0, NULL);
	assert_non_null(j);
	assert_int_equal(jsonscan_diff_value(root, j), 0);
	json_decref(j);
	jsonscan_doc_free(&jd);
	buf_free(&doc);
	free(node);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_mutations),
		cmocka_unit_test(test_lookups),
		cmocka_unit_test(test_errors_say_where),
		cmocka_unit_test(test_large_array_walk),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
