/* One line per event, key=value, with journald priority prefixes when stderr is the journal. */
#ifndef SP_LOG_H
#define SP_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level {
	LOG_LVL_ERR = 3,
	LOG_LVL_WARNING = 4,
	LOG_LVL_NOTICE = 5,
	LOG_LVL_INFO = 6,
	LOG_LVL_DEBUG = 7
};

/* Sets the lowest priority that is written (default LOG_LVL_INFO) and the program name. */
void log_init(const char *program, enum log_level max_level);

/* Parses "debug", "info", "notice", "warning", "error"; false when unknown. */
bool log_level_parse(const char *text, enum log_level *level);

/* One key=value field of an event, made with LOG_STR, LOG_INT or LOG_UINT. */
struct log_field {
	const char *key;
	enum log_field_type { LOG_FIELD_STR, LOG_FIELD_INT, LOG_FIELD_UINT } type;
	union {
		const char *s;
		int64_t i;
		uint64_t u;
	} v;
};

/* The fields: the compiler checks each value's type (a number given to LOG_STR or a
 * string to LOG_INT does not build). */
#define LOG_STR(key, value) ((struct log_field){(key), LOG_FIELD_STR, {.s = (value)}})
#define LOG_INT(key, value) ((struct log_field){(key), LOG_FIELD_INT, {.i = (value)}})
#define LOG_UINT(key, value) ((struct log_field){(key), LOG_FIELD_UINT, {.u = (value)}})

/* Writes one event: `event` is a short name ("capture_sent"), followed by its fields.
 * Numbers are written in decimal; string values containing spaces, quotes, '=' or
 * control characters are quoted and escaped; NULL strings are written as "-".
 * Example: log_fields(LOG_LVL_INFO, "capture_sent", LOG_STR("order_id", id),
 *                     LOG_INT("attempt", attempt));
 * An event without fields names none: log_fields(LOG_LVL_NOTICE, "reloaded") (an empty
 * initializer, which gcc and clang accept and C23 makes standard). */
#define log_fields(level, event, ...)                                                              \
	log_write((level), (event), (const struct log_field[]){__VA_ARGS__},                       \
	          sizeof((const struct log_field[]){__VA_ARGS__}) / sizeof(struct log_field))

/* log_fields without the macro: the n fields at `fields` (NULL when n is 0). */
void log_write(enum log_level level, const char *event, const struct log_field *fields, size_t n);

/* Writes one event with a free-text msg= made from a printf format. */
void log_msg(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats one line into a malloc'd string without writing it (for tests): the line without
 * the timestamp or "<N>" prefix and without the newline. The caller frees it. */
char *log_format_fields(enum log_level level, const char *event, const struct log_field *fields,
                        size_t n);

/* True when a line at `level` would be written: lets callers skip costly formatting. */
bool log_enabled(enum log_level level);

#endif
