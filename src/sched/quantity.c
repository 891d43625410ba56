/* Kubernetes resource quantity parsing (the resource.Quantity grammar) into integers. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "stratos/quantity.h"

#define QUANTITY_MAX_DIGITS 30      /* fits in __int128 with room for the multiplier */

/* value = mantissa * 10^exp10 * 2^exp2 */
struct quantity__parsed {
	__int128 mantissa;
	int exp10;
	int exp2;
	bool negative;
};

static int
quantity__suffix(const char *s, struct quantity__parsed *q)
{
	static const struct {
		const char *name;
		int exp10, exp2;
	} suffixes[] = {
		{ "", 0, 0 }, { "n", -9, 0 }, { "u", -6, 0 }, { "m", -3, 0 }, { "k", 3, 0 },
		{ "M", 6, 0 }, { "G", 9, 0 }, { "T", 12, 0 }, { "P", 15, 0 }, { "E", 18, 0 },
		{ "Ki", 0, 10 }, { "Mi", 0, 20 }, { "Gi", 0, 30 }, { "Ti", 0, 40 },
		{ "Pi", 0, 50 }, { "Ei", 0, 60 },
	};

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if (strcmp(s, suffixes[i].name) == 0) {
			q->exp10 += suffixes[i].exp10;
			q->exp2 += suffixes[i].exp2;
			return 0;
		}
	}
	/* Decimal exponent: e or E followed by a signed integer. */
	if (s[0] == 'e' || s[0] == 'E') {
		const char *p = s + 1;
		bool neg = false;
		int e = 0;

		if (*p == '+' || *p == '-')
			neg = *p++ == '-';
		if (*p == '\0')
			return -EINVAL;
		for (; *p != '\0'; p++) {
			if (*p < '0' || *p > '9' || e > 1000)
				return -EINVAL;
			e = e * 10 + (*p - '0');
		}
		q->exp10 += neg ? -e : e;
		return 0;
	}
	return -EINVAL;
}

static int
quantity__parse(const char *s, struct quantity__parsed *q)
{
	const char *p = s;
	int digits = 0, ndigits = 0, frac = 0;
	bool dot = false;

	memset(q, 0, sizeof(*q));
	if (s == NULL || *s == '\0')
		return -EINVAL;
	if (*p == '+' || *p == '-')
		q->negative = *p++ == '-';
	for (; (*p >= '0' && *p <= '9') || *p == '.'; p++) {
		if (*p == '.') {
			if (dot)
				return -EINVAL;
			dot = true;
			continue;
		}
		/* Leading zeros cost nothing; significant digits are capped. */
		if ((q->mantissa != 0 || *p != '0') && ++digits > QUANTITY_MAX_DIGITS)
			return -ERANGE;
		ndigits++;
		q->mantissa = q->mantissa * 10 + (*p - '0');
		if (dot)
			frac++;
	}
	if (ndigits == 0)       /* "", ".", "+", "Ki" */
		return -EINVAL;
	q->exp10 = -frac;
	return quantity__suffix(p, q);
}

/* Scales to 10^scale units, rounding away from zero like Quantity.Value(). */
static int
quantity__scale(const struct quantity__parsed *q, int scale, int64_t *out)
{
	const __int128 limit = (__int128)INT64_MAX;
	__int128 v = q->mantissa;
	int e10 = q->exp10 + scale;

	for (int i = 0; i < q->exp2; i++) {
		v *= 2;
		if (v > limit * 1000000000000000000LL)
			return -ERANGE;
	}
	for (; e10 > 0; e10--) {
		if (v > limit)
			return -ERANGE;
		v *= 10;
	}
	if (e10 < 0) {
		bool inexact = false;

		for (; e10 < 0 && v != 0; e10++) {
			if (v % 10 != 0)
				inexact = true;
			v /= 10;
		}
		if (inexact)
			v += 1;
	}
	if (v > limit)
		return -ERANGE;
	*out = q->negative ? -(int64_t)v : (int64_t)v;
	return 0;
}

int
quantity_parse(const char *s, int64_t *out)
{
	struct quantity__parsed q;
	int rc = quantity__parse(s, &q);

	return rc < 0 ? rc : quantity__scale(&q, 0, out);
}

int
quantity_parse_milli(const char *s, int64_t *out)
{
	struct quantity__parsed q;
	int rc = quantity__parse(s, &q);

	return rc < 0 ? rc : quantity__scale(&q, 3, out);
}
