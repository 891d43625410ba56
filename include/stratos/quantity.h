/* Kubernetes resource quantities ("7910m", "4Gi", "1e3", "0.5") as integers. */
#ifndef STRATOS_QUANTITY_H
#define STRATOS_QUANTITY_H

#include <stdint.h>

/*
 * Parses a quantity into base units (bytes, pods, GPUs), rounding up like
 * resource.Quantity.Value(). Returns 0, -EINVAL (not a quantity) or -ERANGE
 * (does not fit in int64). Thread-safe.
 */
int quantity_parse(const char *s, int64_t *out);

/*
 * Parses a quantity into thousandths (CPU millicores), rounding up like
 * resource.Quantity.MilliValue(). Errors as quantity_parse. Thread-safe.
 */
int quantity_parse_milli(const char *s, int64_t *out);

#endif
