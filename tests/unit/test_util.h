/* Shared includes and helpers for the cmocka unit tests. */
#ifndef STRATOS_TEST_UTIL_H
#define STRATOS_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <cmocka.h>
#include <jansson.h>

#ifndef STRATOS_SOURCE_DIR
#define STRATOS_SOURCE_DIR "."
#endif

/* Path of a file under tests/fixtures/. */
#define FIXTURE(name) STRATOS_SOURCE_DIR "/tests/fixtures/" name

/* A whole file as a NUL-terminated string (the caller frees it); *len, when not NULL, its length. Fails the test when it cannot be read. */
static inline char *
test_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data;
	long n;

	if (f == NULL)
		fail_msg("%s: cannot open", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	data = malloc((size_t)n + 1);
	assert_non_null(data);
	assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
	data[n] = '\0';
	fclose(f);
	if (len != NULL)
		*len = (size_t)n;
	return data;
}

/* A JSON file, parsed (the caller owns the reference). Fails the test when it is not JSON. */
static inline json_t *
test_load_json(const char *path)
{
	json_error_t err;
	json_t *j = json_load_file(path, 0, &err);

	if (j == NULL)
		fail_msg("%s: %s", path, err.text);
	return j;
}

/* JSON written with single quotes, for readability: J("{'a':[1]}"). Any JSON value. */
static inline json_t *
J(const char *text)
{
	char *s = strdup(text);
	json_error_t err;
	json_t *v;

	for (char *p = s; *p != '\0'; p++)
		if (*p == '\'')
			*p = '"';
	v = json_loads(s, JSON_DECODE_ANY, &err);
	if (v == NULL)
		fail_msg("bad test JSON: %s: %s", err.text, s);
	free(s);
	return v;
}

/* Sends all of data on a socket; stops quietly when the peer has gone. */
static inline void
test_send_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

#endif
