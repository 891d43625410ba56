/* SipHash-1-3 and SipHash-2-4, and the per-process key the hash tables use. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "stratos/siphash.h"

#define SIPHASH__ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

struct siphash__state {
	uint64_t v0, v1, v2, v3;
};

static inline void
siphash__round(struct siphash__state *s)
{
	s->v0 += s->v1;
	s->v1 = SIPHASH__ROTL(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = SIPHASH__ROTL(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = SIPHASH__ROTL(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = SIPHASH__ROTL(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = SIPHASH__ROTL(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = SIPHASH__ROTL(s->v2, 32);
}

static inline uint64_t
siphash__le64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));   /* unaligned-safe; one load on x86 and arm64 */
	return le64toh(v);
}

/*
 * The algorithm of the paper: c rounds per 8-byte block, the last block
 * carrying the 0-7 remaining bytes and len mod 256 in its top byte, then d
 * rounds after v2 ^= 0xff. c and d are constants at every call site, so
 * the loops unroll.
 */
static inline uint64_t
siphash__run(uint64_t k0, uint64_t k1, const void *data, size_t len, int c, int d)
{
	struct siphash__state s = {
		k0 ^ UINT64_C(0x736f6d6570736575), k1 ^ UINT64_C(0x646f72616e646f6d),
		k0 ^ UINT64_C(0x6c7967656e657261), k1 ^ UINT64_C(0x7465646279746573),
	};
	const unsigned char *p = data, *end = p + (len & ~(size_t)7);
	uint64_t m, b = (uint64_t)len << 56;

	for (; p != end; p += 8) {
		m = siphash__le64(p);
		s.v3 ^= m;
		for (int i = 0; i < c; i++)
			siphash__round(&s);
		s.v0 ^= m;
	}
	switch (len & 7) {
	case 7: b |= (uint64_t)p[6] << 48; /* fall through */
	case 6: b |= (uint64_t)p[5] << 40; /* fall through */
	case 5: b |= (uint64_t)p[4] << 32; /* fall through */
	case 4: b |= (uint64_t)p[3] << 24; /* fall through */
	case 3: b |= (uint64_t)p[2] << 16; /* fall through */
	case 2: b |= (uint64_t)p[1] << 8;  /* fall through */
	case 1: b |= (uint64_t)p[0];       /* fall through */
	default: break;
	}
	s.v3 ^= b;
	for (int i = 0; i < c; i++)
		siphash__round(&s);
	s.v0 ^= b;
	s.v2 ^= 0xff;
	for (int i = 0; i < d; i++)
		siphash__round(&s);
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

uint64_t
siphash24(const uint8_t key[SIPHASH_KEY_LEN], const void *data, size_t len)
{
	return siphash__run(siphash__le64(key), siphash__le64(key + 8), data, len, 2, 4);
}

uint64_t
siphash13(const uint8_t key[SIPHASH_KEY_LEN], const void *data, size_t len)
{
	return siphash__run(siphash__le64(key), siphash__le64(key + 8), data, len, 1, 3);
}

/* ---- the process key ---- */

static pthread_once_t siphash_key_once = PTHREAD_ONCE_INIT;
static uint64_t siphash_k0, siphash_k1;

static int
siphash__random(uint8_t *out, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = getrandom(out + got, n - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		got += (size_t)r;
	}
	if (got == n)
		return 0;
	/* A kernel without getrandom (before 3.17): the device it replaced. */
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (got = 0; got < n;) {
		ssize_t r = read(fd, out + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	return got == n ? 0 : -EIO;
}

static void
siphash__key_init(void)
{
	uint8_t key[SIPHASH_KEY_LEN];

	/* A guessable key would bring back the collisions the key is there to stop. */
	if (siphash__random(key, sizeof(key)) < 0) {
		fprintf(stderr, "stratosd: no random bytes for the hash table key\n");
		abort();
	}
	siphash_k0 = siphash__le64(key);
	siphash_k1 = siphash__le64(key + 8);
	explicit_bzero(key, sizeof(key));
}

uint64_t
siphash_table(const void *data, size_t len)
{
	pthread_once(&siphash_key_once, siphash__key_init);
	return siphash__run(siphash_k0, siphash_k1, data, len, 1, 3);
}

uint64_t
siphash_table_str(const char *s)
{
	return siphash_table(s, strlen(s));
}
