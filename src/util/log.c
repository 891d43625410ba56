/* Structured logging: one JSON object per line, written atomically. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "stratos/limits.h"
#include "stratos/log.h"

static atomic_int log_min_level = LOG_LEVEL_INFO;
static FILE *log_stream;

static const char *const log_level_names[] = {
	[LOG_LEVEL_DEBUG] = "debug",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_ERROR] = "error",
};

void
log_set_level(enum log_level level)
{
	atomic_store(&log_min_level, (int)level);
}

int
log_level_parse(const char *name, enum log_level *out)
{
	if (name == NULL)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
		if (strcasecmp(name, log_level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcasecmp(name, "warning") == 0) {
		*out = LOG_LEVEL_WARN;
		return 0;
	}
	return -EINVAL;
}

void
log_set_stream(FILE *stream)
{
	log_stream = stream;
}

bool
log_enabled(enum log_level level)
{
	return (int)level >= atomic_load(&log_min_level);
}

static void
log__timestamp(char *out, size_t len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    ts.tv_nsec / 1000000);
}

void
log_msg(enum log_level level, json_t *fields, const char *fmt, ...)
{
	char ts[40], msg[LIMITS_LOG_LINE / 2];
	json_t *line;
	char *text;
	size_t len;
	va_list ap;

	if (!log_enabled(level)) {
		json_decref(fields);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log__timestamp(ts, sizeof(ts));

	line = json_object();
	json_object_set_new(line, "ts", json_string(ts));
	json_object_set_new(line, "level", json_string(log_level_names[level]));
	/* Invalid UTF-8 in a message must not lose the line. */
	json_t *m = json_string(msg);
	json_object_set_new(line, "msg", m != NULL ? m : json_string("(message not valid UTF-8)"));
	if (fields != NULL && json_is_object(fields)) {
		const char *key;
		json_t *value;
		json_object_foreach(fields, key, value) {
			if (json_object_get(line, key) == NULL)
				json_object_set(line, key, value);
		}
	}
	json_decref(fields);

	text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text != NULL && strlen(text) > LIMITS_LOG_LINE - 2) {
		/* Keep the line valid JSON: drop the fields, keep the message. */
		free(text);
		json_t *small = json_pack("{s:O,s:O,s:O,s:b}", "ts", json_object_get(line, "ts"),
		    "level", json_object_get(line, "level"), "msg", json_object_get(line, "msg"),
		    "fields_truncated", 1);
		text = json_dumps(small, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(small);
	}
	json_decref(line);
	if (text == NULL)
		return;
	len = strlen(text);
	text[len] = '\n';
	/* One write per line keeps lines whole when threads log at once. */
	FILE *out = log_stream != NULL ? log_stream : stderr;
	fwrite(text, 1, len + 1, out);
	fflush(out);
	free(text);
}
