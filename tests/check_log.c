#include "autoconfig.h"

#include "log.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Formats a line from the n fields and compares it with the expected text. */
static void line_is(enum log_level level, const char *event, const struct log_field *fields,
                    size_t n, const char *expect)
{
	char *line = log_format_fields(level, event, fields, n);
	ck_assert_msg(strcmp(line, expect) == 0, "got  %s\nwant %s", line, expect);
	free(line);
}

START_TEST(test_format_plain)
{
	const struct log_field fields[] = {
	    LOG_STR("order_id", "42"),
	    LOG_STR("modification_id", "7d2c9a10-3e4f-4b5a-8c7d-112233445566"),
	    LOG_STR("amount", "40.00"),
	};
	line_is(LOG_LVL_WARNING, "capture_sent", fields, 3,
	        "level=warning event=capture_sent order_id=42 "
	        "modification_id=7d2c9a10-3e4f-4b5a-8c7d-112233445566 amount=40.00");
	line_is(LOG_LVL_ERR, "x", NULL, 0, "level=error event=x");
	line_is(LOG_LVL_NOTICE, "x", NULL, 0, "level=notice event=x");
	line_is(LOG_LVL_INFO, "x", NULL, 0, "level=info event=x");
	line_is(LOG_LVL_DEBUG, "x", NULL, 0, "level=debug event=x");
}
END_TEST

START_TEST(test_format_quoting)
{
	const struct log_field fields[] = {
	    LOG_STR("msg", "hello world"), /* space */
	    LOG_STR("q", "say \"hi\""),    /* quote */
	    LOG_STR("eq", "a=b"),          /* '=' */
	    LOG_STR("bs", "C:\\dir"),      /* backslash */
	    LOG_STR("nl", "two\nlines"),   /* control characters */
	    LOG_STR("tab", "a\tb"),
	    LOG_STR("cr", "a\rb"),
	    LOG_STR("bell", "a\x01z"),
	    LOG_STR("del", "a\x7f"),
	    LOG_STR("empty", ""),      /* empty is quoted so the field stays visible */
	    LOG_STR("utf8", "Zürich"), /* non-ASCII passes through */
	    LOG_STR("path", "/payment/capture?x"),
	};
	line_is(LOG_LVL_INFO, "ev", fields, 12,
	        "level=info event=ev msg=\"hello world\" q=\"say \\\"hi\\\"\" eq=\"a=b\" "
	        "bs=\"C:\\\\dir\" nl=\"two\\nlines\" tab=\"a\\tb\" cr=\"a\\rb\" bell=\"a\\x01z\" "
	        "del=\"a\\x7f\" empty=\"\" utf8=Zürich path=/payment/capture?x");
}
END_TEST

START_TEST(test_format_null_and_keys)
{
	const struct log_field fields[] = {LOG_STR("order_id", NULL), LOG_STR("bad key=", "v"),
	                                   LOG_STR(NULL, "w"), LOG_STR("transaction_id", "-")};
	line_is(LOG_LVL_INFO, "ev", fields, 4,
	        "level=info event=ev order_id=- bad_key_=v _=w transaction_id=-");
	/* The event name follows the value rules too. */
	line_is(LOG_LVL_INFO, "two words", NULL, 0, "level=info event=\"two words\"");
	line_is(LOG_LVL_INFO, NULL, NULL, 0, "level=info event=-");
}
END_TEST

START_TEST(test_format_long)
{
	size_t n = 5000;
	char *big = malloc(n + 1);
	memset(big, 'a', n);
	big[n] = '\0';
	big[10] = ' ';
	const struct log_field fields[] = {LOG_STR("big", big)};
	char *line = log_format_fields(LOG_LVL_INFO, "ev", fields, 1);
	ck_assert_uint_eq(strlen(line), strlen("level=info event=ev big=\"\"") + n);
	ck_assert(strncmp(line, "level=info event=ev big=\"aaaaaaaaaa aaa", 36) == 0);
	ck_assert_int_eq(line[strlen(line) - 1], '"');
	free(line);
	free(big);
}
END_TEST

/* Formats a line from typed fields and compares it with the expected text. */
static void fields_are(const struct log_field *fields, size_t n, const char *expect)
{
	char *line = log_format_fields(LOG_LVL_INFO, "ev", fields, n);
	ck_assert_msg(strcmp(line, expect) == 0, "got  %s\nwant %s", line, expect);
	free(line);
}

START_TEST(test_format_typed_fields)
{
	const struct log_field numbers[] = {
	    LOG_INT("attempt", 2),     LOG_INT("zero", 0),        LOG_INT("delta", -1500),
	    LOG_INT("min", INT64_MIN), LOG_INT("max", INT64_MAX), LOG_UINT("sent", UINT64_MAX),
	    LOG_UINT("none", 0),
	};
	fields_are(numbers, 7,
	           "level=info event=ev attempt=2 zero=0 delta=-1500 min=-9223372036854775808 "
	           "max=9223372036854775807 sent=18446744073709551615 none=0");
	/* strings next to numbers: quoting, escapes, NULL as "-", keys made safe */
	const struct log_field strings[] = {
	    LOG_STR("order_id", "42"), LOG_STR("msg", "two words"), LOG_STR("nl", "a\nb"),
	    LOG_STR("missing", NULL),  LOG_STR("bad key=", "v"),    LOG_STR("empty", ""),
	};
	fields_are(strings, 6,
	           "level=info event=ev order_id=42 msg=\"two words\" nl=\"a\\nb\" missing=- "
	           "bad_key_=v empty=\"\"");
	fields_are(NULL, 0, "level=info event=ev");
}
END_TEST

/* Numbers and strings mixed in one event give exactly these bytes (the line callers and log
 * readers rely on: numbers bare, strings quoted only when needed). */
START_TEST(test_typed_fields_exact_bytes)
{
	const struct log_field fields[] = {
	    LOG_STR("order_id", "A-1"),     LOG_INT("attempt", 3), LOG_INT("status", -7),
	    LOG_STR("reason", "timed out"), LOG_UINT("sent", 18),  LOG_STR("missing", NULL),
	    LOG_STR("note", "a=\"b\"\n"),
	};
	line_is(LOG_LVL_WARNING, "modification_retry", fields, 4,
	        "level=warning event=modification_retry order_id=A-1 attempt=3 status=-7 "
	        "reason=\"timed out\"");
	line_is(LOG_LVL_WARNING, "modification_retry", fields, 7,
	        "level=warning event=modification_retry order_id=A-1 attempt=3 status=-7 "
	        "reason=\"timed out\" sent=18 missing=- note=\"a=\\\"b\\\"\\n\"");
}
END_TEST

START_TEST(test_level_parse)
{
	enum log_level l = LOG_LVL_INFO;
	ck_assert(log_level_parse("debug", &l) && l == LOG_LVL_DEBUG);
	ck_assert(log_level_parse("info", &l) && l == LOG_LVL_INFO);
	ck_assert(log_level_parse("notice", &l) && l == LOG_LVL_NOTICE);
	ck_assert(log_level_parse("warning", &l) && l == LOG_LVL_WARNING);
	ck_assert(log_level_parse("error", &l) && l == LOG_LVL_ERR);
	l = LOG_LVL_NOTICE;
	ck_assert(!log_level_parse("err", &l));
	ck_assert(!log_level_parse("INFO", &l));
	ck_assert(!log_level_parse("", &l));
	ck_assert(!log_level_parse(NULL, &l));
	ck_assert_int_eq(l, LOG_LVL_NOTICE);
}
END_TEST

/* Points stderr at a fresh temporary file; returns the saved descriptor of the real one. */
static int capture_stderr(char *path, size_t len)
{
	const char *dir = getenv("TMPDIR");
	snprintf(path, len, "%s/check_log.XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	int saved = dup(STDERR_FILENO);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
	return saved;
}

/* Restores stderr and returns what was written to the temporary file (malloc'd). */
static char *release_stderr(int saved, const char *path)
{
	ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	char *buf = calloc(1, 65536);
	size_t n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	unlink(path);
	return buf;
}

static void assert_matches(const char *text, const char *pattern)
{
	regex_t re;
	ck_assert_int_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
	int r = regexec(&re, text, 0, NULL, 0);
	regfree(&re);
	ck_assert_msg(r == 0, "output:\n%s\ndoes not match %s", text, pattern);
}

START_TEST(test_write_and_filter)
{
	char path[4096];
	unsetenv("JOURNAL_STREAM");
	int saved = capture_stderr(path, sizeof(path));
	log_init("check_log", LOG_LVL_WARNING);
	ck_assert(!log_enabled(LOG_LVL_INFO));
	ck_assert(log_enabled(LOG_LVL_WARNING));
	ck_assert(log_enabled(LOG_LVL_ERR));
	log_fields(LOG_LVL_DEBUG, "dropped_debug", LOG_STR("k", "v"));
	log_fields(LOG_LVL_INFO, "dropped_info");
	log_fields(LOG_LVL_NOTICE, "dropped_notice");
	log_fields(LOG_LVL_WARNING, "capture_refused", LOG_STR("order_id", "42"),
	           LOG_STR("reason", NULL));
	log_msg(LOG_LVL_INFO, "dropped_msg", "n=%d", 1);
	log_msg(LOG_LVL_ERR, "db_down", "cannot connect: %s (%d)", "timeout expired", 3);
	char *out = release_stderr(saved, path);
	log_init("check_log", LOG_LVL_INFO);

	ck_assert_ptr_null(strstr(out, "dropped"));
	assert_matches(out, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
	                    "level=warning event=capture_refused order_id=42 reason=-\n"
	                    "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
	                    "level=error event=db_down msg=\"cannot connect: timeout expired "
	                    "\\(3\\)\"\n$");
	free(out);
}
END_TEST

START_TEST(test_write_typed_fields)
{
	char path[4096];
	unsetenv("JOURNAL_STREAM");
	int saved = capture_stderr(path, sizeof(path));
	log_init("check_log", LOG_LVL_NOTICE);
	size_t inflight = 12;
	log_fields(LOG_LVL_INFO, "dropped", LOG_INT("n", 1));
	log_fields(LOG_LVL_NOTICE, "draining", LOG_UINT("inflight", inflight));
	log_fields(LOG_LVL_WARNING, "modification_retry", LOG_STR("order_id", "42"),
	           LOG_INT("attempt", 2), LOG_INT("retry_in_ms", 1500));
	log_fields(LOG_LVL_ERR, "bare");
	log_fields(LOG_LVL_ERR, "strings", LOG_STR("order_id", "42"), LOG_STR("attempt", "2"));
	/* many fields of both kinds in one line */
	log_fields(LOG_LVL_ERR, "many", LOG_STR("a", "1"), LOG_INT("b", 2), LOG_STR("c", "3"),
	           LOG_UINT("d", 4), LOG_STR("e", "5"), LOG_INT("f", 6), LOG_STR("g", "7"),
	           LOG_UINT("h", 8), LOG_STR("i", "9"), LOG_INT("j", 10), LOG_STR("k", "11"),
	           LOG_UINT("l", 12), LOG_STR("m", "13"), LOG_INT("n", 14), LOG_STR("o", "15"),
	           LOG_UINT("p", 16), LOG_STR("q", "17"));
	errno = EAGAIN;
	log_fields(LOG_LVL_NOTICE, "keeps_errno", LOG_STR("k", "v"));
	ck_assert_int_eq(errno, EAGAIN);
	char *out = release_stderr(saved, path);
	log_init("check_log", LOG_LVL_INFO);

	ck_assert_ptr_null(strstr(out, "dropped"));
	assert_matches(out,
	               "^[0-9-]{10}T[0-9:.]{12}Z level=notice event=draining inflight=12\n"
	               "[0-9-]{10}T[0-9:.]{12}Z level=warning event=modification_retry "
	               "order_id=42 attempt=2 retry_in_ms=1500\n"
	               "[0-9-]{10}T[0-9:.]{12}Z level=error event=bare\n"
	               "[0-9-]{10}T[0-9:.]{12}Z level=error event=strings order_id=42 "
	               "attempt=2\n"
	               "[0-9-]{10}T[0-9:.]{12}Z level=error event=many a=1 b=2 c=3 d=4 e=5 f=6 "
	               "g=7 h=8 i=9 j=10 k=11 l=12 m=13 n=14 o=15 p=16 q=17\n"
	               "[0-9-]{10}T[0-9:.]{12}Z level=notice event=keeps_errno k=v\n$");
	free(out);
}
END_TEST

START_TEST(test_debug_level_writes_all)
{
	char path[4096];
	unsetenv("JOURNAL_STREAM");
	int saved = capture_stderr(path, sizeof(path));
	log_init("check_log", LOG_LVL_DEBUG);
	log_fields(LOG_LVL_DEBUG, "a");
	log_fields(LOG_LVL_INFO, "b");
	log_fields(LOG_LVL_NOTICE, "c");
	char *out = release_stderr(saved, path);
	log_init("check_log", LOG_LVL_INFO);
	assert_matches(out, "Z level=debug event=a\n.*Z level=info event=b\n.*Z level=notice "
	                    "event=c\n$");
	free(out);
}
END_TEST

START_TEST(test_journal_prefix)
{
	char path[4096];
	int saved = capture_stderr(path, sizeof(path));
	struct stat st;
	ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
	char env[64];
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", env, 1);
	log_init("check_log", LOG_LVL_INFO);
	log_fields(LOG_LVL_WARNING, "capture_sent", LOG_STR("order_id", "42"));
	log_fields(LOG_LVL_DEBUG, "dropped");
	log_msg(LOG_LVL_INFO, "started", "version %s", "0.1.0");
	log_fields(LOG_LVL_ERR, "e");

	/* A JOURNAL_STREAM naming another file means stderr was redirected: timestamps again. */
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino + 1);
	setenv("JOURNAL_STREAM", env, 1);
	log_init("check_log", LOG_LVL_INFO);
	log_fields(LOG_LVL_NOTICE, "not_journal");
	setenv("JOURNAL_STREAM", "garbage", 1);
	log_init("check_log", LOG_LVL_INFO);
	log_fields(LOG_LVL_NOTICE, "garbage_env");

	char *out = release_stderr(saved, path);
	unsetenv("JOURNAL_STREAM");
	log_init("check_log", LOG_LVL_INFO);
	assert_matches(out, "^<4>level=warning event=capture_sent order_id=42\n"
	                    "<6>level=info event=started msg=\"version 0.1.0\"\n"
	                    "<3>level=error event=e\n"
	                    "[0-9-]{10}T[0-9:.]{12}Z level=notice event=not_journal\n"
	                    "[0-9-]{10}T[0-9:.]{12}Z level=notice event=garbage_env\n$");
	free(out);
}
END_TEST

START_TEST(test_long_message)
{
	char path[4096];
	unsetenv("JOURNAL_STREAM");
	int saved = capture_stderr(path, sizeof(path));
	log_init("check_log", LOG_LVL_INFO);
	char big[3000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_msg(LOG_LVL_INFO, "big", "%s|%s", big, "end");
	log_fields(LOG_LVL_INFO, "big2", LOG_STR("v", big));
	char *out = release_stderr(saved, path);
	char *nl = strchr(out, '\n');
	ck_assert_ptr_nonnull(nl);
	/* The whole message, not cut at any buffer size: prefix, msg, "|end". */
	char *head = strstr(out, "Z level=info event=big msg=xxx");
	ck_assert_ptr_nonnull(head);
	ck_assert_int_eq(nl - head, (long)(strlen("Z level=info event=big msg=") +
	                                   (sizeof(big) - 1) + strlen("|end")));
	ck_assert(strncmp(nl - 4, "|end", 4) == 0);
	ck_assert_ptr_nonnull(strstr(nl + 1, "level=info event=big2 v=xxx"));
	ck_assert_int_eq(out[strlen(out) - 1], '\n');
	free(out);
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	testutil_tcase(s, "core", 0,
	               (const TTest *const[]){
	                   test_format_plain, test_format_quoting, test_format_null_and_keys,
	                   test_format_long, test_format_typed_fields,
	                   test_typed_fields_exact_bytes, test_level_parse, test_write_typed_fields,
	                   test_write_and_filter, test_debug_level_writes_all, test_journal_prefix,
	                   test_long_message, NULL});
	return s;
}

int main(void)
{
	return testutil_run_suite(log_suite(), CK_NORMAL);
}
