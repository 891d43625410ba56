/* Unit tests for the intern table: sharing, reference counts, blobs with inner references. */
#include <stdio.h>
#include <string.h>

#include "test_util.h"
#include "hash_collide.h"
#include "stratos/intern.h"

static void
test_strings_are_shared(void **state)
{
	size_t e0, e1, b;
	char buf[16];

	(void)state;
	intern_stats(&e0, &b);
	strcpy(buf, "stratos.sh/pool");
	const char *a = intern_str(buf);
	buf[0] = 'X';                            /* the interned copy is independent */
	const char *c = intern_str("stratos.sh/pool");
	assert_ptr_equal(a, c);
	assert_string_equal(a, "stratos.sh/pool");
	assert_ptr_equal(intern_strn("stratos.sh/poolXYZ", 15), a);
	intern_release(a);
	intern_stats(&e1, &b);
	assert_int_equal(e1, e0 + 1);
	intern_release(a);
	intern_release(c);
	intern_stats(&e1, &b);
	assert_int_equal(e1, e0);
	assert_null(intern_str(NULL));
	intern_release(NULL);
}

static int inner_released;

static void
release_inner(const void *data, size_t len)
{
	const char *const *p = data;

	for (size_t i = 0; i < len / sizeof(*p); i++)
		intern_release(p[i]);
	inner_released++;
}

static void
test_blobs_hold_inner_references(void **state)
{
	const char *pair[2];
	int matched = -1;
	size_t e0, e1;

	(void)state;
	intern_stats(&e0, NULL);
	pair[0] = intern_str("key");
	pair[1] = intern_str("value");
	const void *b1 = intern_blob(pair, sizeof(pair), release_inner, &matched);
	assert_non_null(b1);
	assert_int_equal(matched, 0);
	/* A second equal blob: the caller keeps (and must drop) its own references. */
	const char *again[2] = { intern_str("key"), intern_str("value") };
	const void *b2 = intern_blob(again, sizeof(again), release_inner, &matched);
	assert_ptr_equal(b1, b2);
	assert_int_equal(matched, 1);
	intern_release(again[0]);
	intern_release(again[1]);
	intern_stats(&e1, NULL);
	assert_int_equal(e1, e0 + 3);
	intern_release(b2);
	assert_int_equal(inner_released, 0);
	intern_release(b1);
	assert_int_equal(inner_released, 1);
	intern_stats(&e1, NULL);
	assert_int_equal(e1, e0);
}

static void
test_many_entries_grow_the_table(void **state)
{
	const char *s[5000];
	char buf[32];
	size_t e0, e1;

	(void)state;
	intern_stats(&e0, NULL);
	for (int i = 0; i < 5000; i++) {
		snprintf(buf, sizeof(buf), "node-%d", i);
		s[i] = intern_str(buf);
	}
	for (int i = 0; i < 5000; i++) {
		snprintf(buf, sizeof(buf), "node-%d", i);
		assert_string_equal(s[i], buf);
		assert_ptr_equal(intern_str(buf), s[i]);
		intern_release(s[i]);
	}
	for (int i = 0; i < 5000; i++)
		intern_release(s[i]);
	intern_stats(&e1, NULL);
	assert_int_equal(e1, e0);
}

/*
 * Names built to share a bucket under the old unkeyed hash (FNV-1a, low 12
 * bits equal: one bucket in every table up to 4096 buckets) spread out
 * under the keyed one. With the old hash the longest chain was all of them.
 */
static void
test_colliding_names_spread(void **state)
{
	enum { N = 1000, LEN = 48 };
	char *names = calloc(N, LEN);
	const char *interned[N];

	(void)state;
	assert_non_null(names);
	hash_collide_names("runner-", 4095u, N, names, LEN);
	for (size_t i = 0; i < N; i++)
		assert_non_null(interned[i] = intern_str(names + i * LEN));
	size_t longest = intern_longest_chain();
	print_message("%d names colliding under FNV-1a: longest chain %zu\n", N, longest);
	/* 1000 random keys in >= 1024 buckets: about 6; far below the 1000 of one shared chain. */
	assert_true(longest >= 1 && longest <= 16);
	for (size_t i = 0; i < N; i++) {
		assert_ptr_equal(intern_str(names + i * LEN), interned[i]);
		intern_release(interned[i]);
		intern_release(interned[i]);
	}
	free(names);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_colliding_names_spread),
		cmocka_unit_test(test_strings_are_shared),
		cmocka_unit_test(test_blobs_hold_inner_references),
		cmocka_unit_test(test_many_entries_grow_the_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
