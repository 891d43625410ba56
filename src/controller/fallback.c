/* Fallback scale-up (DESIGN §5.5): waiting pool pods packed into nodes first-fit-decreasing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stratos/fallback.h"

struct fallback__item {
	const struct resources *req;
	size_t index;
};

static int
fallback__cmp(const void *a, const void *b)
{
	const struct fallback__item *x = a, *y = b;

	if (x->req->cpu_milli != y->req->cpu_milli)
		return x->req->cpu_milli > y->req->cpu_milli ? -1 : 1;
	if (x->req->memory != y->req->memory)
		return x->req->memory > y->req->memory ? -1 : 1;
	if (x->req->ephemeral != y->req->ephemeral)
		return x->req->ephemeral > y->req->ephemeral ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

long
fallback_pack(const struct resources *alloc, const struct resources_sum *base,
    const struct resources *const *pods, size_t n, size_t max_bins, int *assign)
{
	struct fallback__item *items = NULL;
	struct resources_sum *bins = NULL;
	size_t nbins = 0;
	long rc = 0;

	for (size_t i = 0; i < n; i++)
		assign[i] = -1;
	if (n == 0)
		return 0;
	items = calloc(n, sizeof(*items));
	bins = calloc(max_bins + 1, sizeof(*bins));
	if (items == NULL || bins == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		items[i] = (struct fallback__item){ pods[i], i };
	qsort(items, n, sizeof(*items), fallback__cmp);
	for (size_t k = 0; k < n; k++) {
		const struct resources *req = items[k].req;
		size_t b;

		for (b = 0; b < nbins; b++)
			if (resources_sum_fits_pod(&bins[b], req, alloc, NULL))
				break;
		if (b == nbins) {
			/* A new node: only if the pod fits an empty one at all. */
			if (nbins == max_bins)
				continue;
			if (base != NULL)
				bins[nbins] = *base;
			else
				resources_sum_init(&bins[nbins]);
			if (!resources_sum_fits_pod(&bins[nbins], req, alloc, NULL))
				continue;
			nbins++;
		}
		if (resources_sum_add(&bins[b], req) < 0) {
			rc = -E2BIG;
			goto out;
		}
		assign[items[k].index] = (int)b;
	}
	rc = (long)nbins;
out:
	free(items);
	free(bins);
	return rc;
}
