/* Shared includes and helpers for the cmocka unit tests. */
#ifndef STRATOS_TEST_UTIL_H
#define STRATOS_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#ifndef STRATOS_SOURCE_DIR
#define STRATOS_SOURCE_DIR "."
#endif

/* Path of a file under tests/fixtures/. */
#define FIXTURE(name) STRATOS_SOURCE_DIR "/tests/fixtures/" name

#endif
