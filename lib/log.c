#include "autoconfig.h"

#include "log.h"

#include "clock.h"
#include "xmalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The process-wide logging state; single-threaded, so no locks. */
static struct {
	enum log_level max_level;
	bool journal;     /* stderr is connected to journald: "<N>" prefix, no timestamp */
	bool initialized; /* journal detection has run */
} log_state = {.max_level = LOG_LVL_INFO};

/* A growable line buffer that starts on the caller's stack: most lines never touch the heap. */
struct linebuf {
	char *data;
	size_t len;
	size_t cap;
	bool heap;
};

static void lb_init(struct linebuf *lb, char *stack, size_t cap)
{
	lb->data = stack;
	lb->len = 0;
	lb->cap = cap;
	lb->heap = false;
	lb->data[0] = '\0';
}

/* Makes room for `extra` more bytes plus the terminating NUL. */
static void lb_reserve(struct linebuf *lb, size_t extra)
{
	size_t need = lb->len + extra + 1;
	if (need <= lb->cap)
		return;
	if (lb->heap) {
		lb->data = xgrow(lb->data, &lb->cap, need, 1);
		return;
	}
	/* off the stack: a heap buffer at least twice its size, the line copied over */
	char *d = xgrow(NULL, &lb->cap, need, 1);
	memcpy(d, lb->data, lb->len + 1);
	lb->data = d;
	lb->heap = true;
}

static void lb_add(struct linebuf *lb, const char *s, size_t n)
{
	lb_reserve(lb, n);
	memcpy(lb->data + lb->len, s, n);
	lb->len += n;
	lb->data[lb->len] = '\0';
}

static void lb_adds(struct linebuf *lb, const char *s)
{
	lb_add(lb, s, strlen(s));
}

static void lb_addc(struct linebuf *lb, char c)
{
	lb_add(lb, &c, 1);
}

static void lb_free(struct linebuf *lb)
{
	if (lb->heap)
		free(lb->data);
}

static const char *level_name(enum log_level level)
{
	switch (level) {
	case LOG_LVL_ERR:
		return "error";
	case LOG_LVL_WARNING:
		return "warning";
	case LOG_LVL_NOTICE:
		return "notice";
	case LOG_LVL_INFO:
		return "info";
	case LOG_LVL_DEBUG:
		return "debug";
	}
	return "unknown";
}

bool log_level_parse(const char *text, enum log_level *level)
{
	static const struct {
		const char *name;
		enum log_level level;
	} names[] = {
	    {"debug", LOG_LVL_DEBUG},     {"info", LOG_LVL_INFO}, {"notice", LOG_LVL_NOTICE},
	    {"warning", LOG_LVL_WARNING}, {"error", LOG_LVL_ERR},
	};
	if (text == NULL)
		return false;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(text, names[i].name) == 0) {
			*level = names[i].level;
			return true;
		}
	}
	return false;
}

/* True when fd 2 is the stream systemd connected to the journal ($JOURNAL_STREAM = "dev:ino"). */
static bool stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	if (env == NULL || *env == '\0')
		return false;
	char *end;
	errno = 0;
	unsigned long long dev = strtoull(env, &end, 10);
	if (errno != 0 || end == env || *end != ':')
		return false;
	const char *ino_text = end + 1;
	unsigned long long ino = strtoull(ino_text, &end, 10);
	if (errno != 0 || end == ino_text || *end != '\0')
		return false;
	struct stat st;
	if (fstat(STDERR_FILENO, &st) != 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(const char *program, enum log_level max_level)
{
	(void)program; /* journald and the terminal already know who is writing */
	log_state.max_level = max_level;
	log_state.journal = stderr_is_journal();
	log_state.initialized = true;
}

bool log_enabled(enum log_level level)
{
	return level <= log_state.max_level;
}

/* A value needs quoting when it is empty or holds a space, quote, '=', backslash or control byte.
 */
static bool needs_quoting(const char *v)
{
	if (*v == '\0')
		return true;
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
			return true;
	}
	return false;
}

/* Appends a value, quoted and escaped when needed; NULL is written as "-". */
static void add_value(struct linebuf *lb, const char *v)
{
	if (v == NULL) {
		lb_addc(lb, '-');
		return;
	}
	if (!needs_quoting(v)) {
		lb_adds(lb, v);
		return;
	}
	lb_addc(lb, '"');
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		char esc[5];
		switch (*p) {
		case '"':
			lb_adds(lb, "\\\"");
			break;
		case '\\':
			lb_adds(lb, "\\\\");
			break;
		case '\n':
			lb_adds(lb, "\\n");
			break;
		case '\r':
			lb_adds(lb, "\\r");
			break;
		case '\t':
			lb_adds(lb, "\\t");
			break;
		default:
			if (*p < ' ' || *p == 0x7f) {
				snprintf(esc, sizeof(esc), "\\x%02x", *p);
				lb_adds(lb, esc);
			} else {
				lb_addc(lb, (char)*p);
			}
		}
	}
	lb_addc(lb, '"');
}

/* Appends a key; anything but [A-Za-z0-9_.-] becomes '_' so the line stays parseable. */
static void add_key(struct linebuf *lb, const char *k)
{
	if (k == NULL || *k == '\0') {
		lb_addc(lb, '_');
		return;
	}
	for (const char *p = k; *p; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
		lb_addc(lb, ok ? c : '_');
	}
}

/* Appends " key=value"; numbers in decimal, which never need quoting. */
static void add_field(struct linebuf *lb, const struct log_field *f)
{
	char num[24];
	lb_addc(lb, ' ');
	add_key(lb, f->key);
	lb_addc(lb, '=');
	switch (f->type) {
	case LOG_FIELD_INT:
		snprintf(num, sizeof(num), "%" PRId64, f->v.i);
		lb_adds(lb, num);
		return;
	case LOG_FIELD_UINT:
		snprintf(num, sizeof(num), "%" PRIu64, f->v.u);
		lb_adds(lb, num);
		return;
	case LOG_FIELD_STR:
		break;
	}
	add_value(lb, f->v.s);
}

static void add_head(struct linebuf *lb, enum log_level level, const char *event)
{
	lb_adds(lb, "level=");
	lb_adds(lb, level_name(level));
	lb_adds(lb, " event=");
	add_value(lb, event);
}

char *log_format_fields(enum log_level level, const char *event, const struct log_field *fields,
                        size_t n)
{
	char stack[512];
	struct linebuf lb;
	lb_init(&lb, stack, sizeof(stack));
	add_head(&lb, level, event);
	for (size_t i = 0; i < n; i++)
		add_field(&lb, &fields[i]);
	char *line = xstrdup(lb.data);
	lb_free(&lb);
	return line;
}

/* Puts the journald priority or the UTC timestamp in front of the line being built. */
static void add_prefix(struct linebuf *lb, enum log_level level)
{
	char buf[48];
	if (!log_state.initialized) {
		log_state.journal = stderr_is_journal();
		log_state.initialized = true;
	}
	if (log_state.journal) {
		snprintf(buf, sizeof(buf), "<%d>", (int)level);
		lb_adds(lb, buf);
		return;
	}
	int64_t ms = clock_real_ms();
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof(buf) - n, ".%03ldZ ", (long)(ms % 1000));
	lb_adds(lb, buf);
}

/* Writes the finished line with one write(2); a short write or EINTR continues. */
static void emit(struct linebuf *lb)
{
	lb_addc(lb, '\n');
	const char *p = lb->data;
	size_t left = lb->len;
	while (left > 0) {
		ssize_t w = write(STDERR_FILENO, p, left);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return; /* nowhere left to report it */
		}
		p += w;
		left -= (size_t)w;
	}
}

void log_write(enum log_level level, const char *event, const struct log_field *fields, size_t n)
{
	if (!log_enabled(level))
		return;
	int saved_errno = errno;
	char stack[1024];
	struct linebuf lb;
	lb_init(&lb, stack, sizeof(stack));
	add_prefix(&lb, level);
	add_head(&lb, level, event);
	for (size_t i = 0; i < n; i++)
		add_field(&lb, &fields[i]);
	emit(&lb);
	lb_free(&lb);
	errno = saved_errno;
}

void log_msg(enum log_level level, const char *event, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	int saved_errno = errno;
	char msgbuf[512];
	char *msg = msgbuf;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msgbuf, sizeof(msgbuf), fmt, ap);
	va_end(ap);
	if (n < 0) {
		msgbuf[0] = '\0';
	} else if ((size_t)n >= sizeof(msgbuf)) {
		msg = xmalloc((size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(msg, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	log_fields(level, event, LOG_STR("msg", msg));
	if (msg != msgbuf)
		free(msg);
	errno = saved_errno;
}
