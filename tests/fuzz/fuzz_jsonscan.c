/* libFuzzer target: jsonscan must accept exactly what jansson accepts, and read every value the same. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../unit/jsonscan_diff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (jsonscan_diff((const char *)data, size) != 0) {
		fprintf(stderr, "jsonscan and jansson disagree: %s\n", jsonscan_diff_why);
		abort();
	}
	return 0;
}
