/* One line per event, key=value, with journald priority prefixes when stderr is the journal. */
#ifndef SP_LOG_H
#define SP_LOG_H

#include <stdbool.h>

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

/* Writes one event: `event` is a short name ("capture_sent"), followed by pairs of
 * key, value (const char *) terminated by NULL. Values containing spaces, quotes,
 * '=' or control characters are quoted and escaped; NULL values are written as "-".
 * Example: log_event(LOG_LVL_INFO, "capture_sent", "order_id", id, "attempt", "2", NULL); */
void log_event(enum log_level level, const char *event, ...) __attribute__((sentinel));

/* Writes one event with a free-text msg= made from a printf format. */
void log_msg(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats one line into a malloc'd string without writing it (for tests). */
char *log_format_line(enum log_level level, const char *event, const char *const *pairs,
                      int npairs);
/* (log_format_line: `pairs` holds 2 * npairs strings, key then value; the result is the
 * line without the timestamp or "<N>" prefix and without the newline. The caller frees it.) */

/* True when a line at `level` would be written: lets callers skip costly formatting. */
bool log_enabled(enum log_level level);

#endif
