/* Process-wide intern table: one reference-counted copy of each string or blob. */
#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/intern.h"
#include "stratos/siphash.h"

#define INTERN_BUCKETS_MIN 1024u

struct intern__entry {
	struct intern__entry *next;
	intern_release_fn release;
	size_t len;
	uint32_t hash;
	uint32_t refs;
	alignas(max_align_t) unsigned char data[];
};

static pthread_mutex_t intern_lock = PTHREAD_MUTEX_INITIALIZER;
static struct intern__entry **intern_buckets;
static size_t intern_nbuckets;
static size_t intern_entries;
static size_t intern_bytes;

/*
 * Keyed: interned strings are names and labels from the API server, which
 * anyone who can create a pod chooses; with a public hash (this was FNV-1a)
 * they could all land in one bucket and make every intern a chain walk.
 */
static uint32_t
intern__hash(const void *data, size_t len)
{
	return (uint32_t)siphash_table(data, len);
}

static struct intern__entry *
intern__entry_of(const void *p)
{
	return (struct intern__entry *)((const unsigned char *)p -
	    offsetof(struct intern__entry, data));
}

/* Doubles the table; called with the lock held. Failure only costs speed. */
static void
intern__grow(void)
{
	size_t n = intern_nbuckets ? intern_nbuckets * 2 : INTERN_BUCKETS_MIN;
	struct intern__entry **b = calloc(n, sizeof(*b));

	if (b == NULL)
		return;
	for (size_t i = 0; i < intern_nbuckets; i++) {
		struct intern__entry *e = intern_buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(intern_buckets);
	intern_buckets = b;
	intern_nbuckets = n;
}

/* Finds or adds; every copy gets a NUL after it so strings can be used as such. */
static const void *
intern__get(const void *data, size_t len, intern_release_fn release, int *matched)
{
	uint32_t h = intern__hash(data, len);
	struct intern__entry *e;
	const void *out = NULL;

	if (matched != NULL)
		*matched = 0;
	pthread_mutex_lock(&intern_lock);
	if (intern_entries >= intern_nbuckets)
		intern__grow();
	if (intern_nbuckets == 0)
		goto out;
	for (e = intern_buckets[h & (intern_nbuckets - 1)]; e != NULL; e = e->next) {
		if (e->hash == h && e->len == len && e->release == release &&
		    memcmp(e->data, data, len) == 0) {
			e->refs++;
			out = e->data;
			if (matched != NULL)
				*matched = 1;
			goto out;
		}
	}
	e = malloc(sizeof(*e) + len + 1);
	if (e == NULL)
		goto out;
	memcpy(e->data, data, len);
	e->data[len] = '\0';
	e->len = len;
	e->hash = h;
	e->refs = 1;
	e->release = release;
	e->next = intern_buckets[h & (intern_nbuckets - 1)];
	intern_buckets[h & (intern_nbuckets - 1)] = e;
	intern_entries++;
	intern_bytes += sizeof(*e) + len + 1;
	out = e->data;
out:
	pthread_mutex_unlock(&intern_lock);
	return out;
}

const char *
intern_strn(const char *s, size_t n)
{
	if (s == NULL)
		return NULL;
	return intern__get(s, n, NULL, NULL);
}

const char *
intern_str(const char *s)
{
	return s != NULL ? intern_strn(s, strlen(s)) : NULL;
}

const void *
intern_blob(const void *data, size_t len, intern_release_fn release_inner, int *matched)
{
	return intern__get(data, len, release_inner, matched);
}

const void *
intern_ref(const void *p)
{
	if (p != NULL) {
		pthread_mutex_lock(&intern_lock);
		intern__entry_of(p)->refs++;
		pthread_mutex_unlock(&intern_lock);
	}
	return p;
}

void
intern_release(const void *p)
{
	struct intern__entry *e, **pp;

	if (p == NULL)
		return;
	e = intern__entry_of(p);
	pthread_mutex_lock(&intern_lock);
	if (--e->refs > 0) {
		pthread_mutex_unlock(&intern_lock);
		return;
	}
	for (pp = &intern_buckets[e->hash & (intern_nbuckets - 1)]; *pp != e; pp = &(*pp)->next)
		;
	*pp = e->next;
	intern_entries--;
	intern_bytes -= sizeof(*e) + e->len + 1;
	pthread_mutex_unlock(&intern_lock);
	/* Inner releases take the lock again. */
	if (e->release != NULL)
		e->release(e->data, e->len);
	free(e);
}

size_t
intern_longest_chain(void)
{
	size_t longest = 0;

	pthread_mutex_lock(&intern_lock);
	for (size_t i = 0; i < intern_nbuckets; i++) {
		size_t n = 0;
		for (const struct intern__entry *e = intern_buckets[i]; e != NULL; e = e->next)
			n++;
		if (n > longest)
			longest = n;
	}
	pthread_mutex_unlock(&intern_lock);
	return longest;
}

void
intern_stats(size_t *entries, size_t *bytes)
{
	pthread_mutex_lock(&intern_lock);
	if (entries != NULL)
		*entries = intern_entries;
	if (bytes != NULL)
		*bytes = intern_bytes + intern_nbuckets * sizeof(*intern_buckets);
	pthread_mutex_unlock(&intern_lock);
}
