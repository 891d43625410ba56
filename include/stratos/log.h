/* Structured logging: one JSON object per line on stderr. */
#ifndef STRATOS_LOG_H
#define STRATOS_LOG_H

#include <stdbool.h>
#include <stdio.h>
#include <jansson.h>

enum log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
};

/* Sets the minimum level written. Thread-safe. */
void log_set_level(enum log_level level);

/* Parses "debug", "info", "warn" (or "warning"), "error". Returns 0 or -EINVAL. */
int log_level_parse(const char *name, enum log_level *out);

/* Redirects output (tests); NULL restores stderr. Not thread-safe. */
void log_set_stream(FILE *stream);

/* True when a message of this level would be written. Thread-safe. */
bool log_enabled(enum log_level level);

/*
 * Writes {"ts":..., "level":..., "msg":<formatted>, <fields...>} as one line.
 * fields is a JSON object whose members are added to the line; the reference
 * is stolen (NULL allowed, so json_pack() failures only lose the fields).
 * Thread-safe; each line is written with a single write.
 */
void log_msg(enum log_level level, json_t *fields, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, NULL, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, NULL, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, NULL, __VA_ARGS__)

#endif
