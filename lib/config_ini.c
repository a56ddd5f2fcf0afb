#include "autoconfig.h"

#include "config_internal.h"
#include "trim.h"
#include "xmalloc.h"

#include <ini.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Reading the INI text through libinih: lines, sections and keys, each value recorded
 * with its line for the parsers (see config_internal.h for why our own reader). */

/* Marks a value that config_reader kept aside because the line was longer than libinih's buffer. */
#define LONG_VALUE_MARK "\x01"

static const char *const sections[] = {"database", "smartpay", "daemon",   "capture",
                                       "alerts",   "metrics",  "reconcile"};

/* Cuts an inline comment (';' or '#' after a blank) off a value and trims it, in place. */
static void strip_inline_comment(char *v)
{
	for (char *p = v; *p; p++) {
		if ((*p == ';' || *p == '#') && p > v && config_is_blank(p[-1])) {
			*p = '\0';
			break;
		}
	}
	size_t n = trim_end_len(v, strlen(v), CONFIG_BLANKS);
	v[n] = '\0';
	size_t lead = trim_start_len(v, n, CONFIG_BLANKS);
	if (lead > 0)
		memmove(v, v + lead, n - lead + 1);
}

/* Levenshtein distance of two short names, capped: used to suggest a misspelled key. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 63 || lb > 63)
		return SIZE_MAX;
	size_t row[64];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t best = diag + cost;
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* The index of a known section by name, or -1. */
static int section_index(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		if (strlen(sections[i]) == len && strncmp(sections[i], name, len) == 0)
			return (int)i;
	}
	return -1;
}

/* Hands libinih the next line, normalised (see config_internal.h), or NULL at the end. */
static char *config_reader(char *str, int num, void *stream)
{
	struct load_state *st = stream;
	if (st->pos >= st->end)
		return NULL;
	const char *line = st->pos;
	const char *eol = memchr(line, '\n', (size_t)(st->end - line));
	if (eol == NULL)
		eol = st->end;
	st->pos = eol < st->end ? eol + 1 : eol;
	st->lineno++;
	int ln = st->lineno;
	if (eol > line && eol[-1] == '\r')
		eol--;
	if (ln == 1 && eol - line >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0)
		line += 3;
	line += trim_start_len(line, (size_t)(eol - line), CONFIG_BLANKS);
	size_t len = (size_t)(eol - line);
	strcpy(str, "\n");

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			config_error_at(st, ln, "syntax", "control character (byte 0x%02x) in line",
			                c);
			return str;
		}
	}
	if (len == 0 || line[0] == ';' || line[0] == '#')
		return str;

	if (line[0] == '[') {
		const char *close = memchr(line, ']', len);
		if (close == NULL) {
			config_error_at(st, ln, "syntax", "missing ']' in section header");
			st->section = -2;
			return str;
		}
		const char *after = close + 1;
		after += trim_start_len(after, (size_t)(eol - after), CONFIG_BLANKS);
		if (after < eol && *after != ';' && *after != '#')
			config_error_at(st, ln, "syntax", "unexpected text after ']'");
		const char *name = line + 1;
		size_t nlen = (size_t)(close - name);
		size_t lead = trim_start_len(name, nlen, CONFIG_BLANKS);
		name += lead;
		nlen = trim_end_len(name, nlen - lead, CONFIG_BLANKS);
		st->section = section_index(name, nlen);
		if (st->section < 0) {
			char shown[80];
			snprintf(shown, sizeof(shown), "[%.*s]", (int)(nlen > 64 ? 64 : nlen),
			         name);
			config_error_at(
			    st, ln, shown,
			    "unknown section (known: database, smartpay, daemon, capture, "
			    "alerts, metrics, reconcile)");
			st->section = -2;
			return str;
		}
		snprintf(str, (size_t)num, "[%s]\n", sections[st->section]);
		return str;
	}

	size_t sep = strcspn(line, "=:");
	for (size_t i = 1; i < sep && i < len; i++) {
		if (line[i] == ';' && config_is_blank(line[i - 1]))
			sep = len; /* libinih reads the rest as a comment: no '=' on this line */
	}
	if (sep >= len) {
		config_error_at(st, ln, "syntax",
		                "expected 'key = value', '[section]' or a comment");
		return str;
	}
	size_t nlen = trim_end_len(line, sep, CONFIG_BLANKS);
	if (nlen == 0) {
		config_error_at(st, ln, "syntax", "missing key name before '%c'", line[sep]);
		return str;
	}
	if (st->section == -1) {
		char shown[80];
		snprintf(shown, sizeof(shown), "%.*s", (int)(nlen > 64 ? 64 : nlen), line);
		config_error_at(st, ln, shown,
		                "key outside of any section (add a [section] line above)");
		return str;
	}
	if (st->section == -2)
		return str; /* the section was reported already */
	if (len + 2 <= (size_t)num) {
		memcpy(str, line, len);
		memcpy(str + len, "\n", 2);
		return str;
	}
	/* Longer than libinih's line buffer: keep the value aside, pass a marker instead. */
	if (nlen + sizeof(LONG_VALUE_MARK) + 2 > (size_t)num) {
		config_error_at(st, ln, "syntax", "key name too long");
		return str;
	}
	free(st->long_value);
	st->long_value = xstrndup(line + sep + 1, len - sep - 1);
	snprintf(str, (size_t)num, "%.*s=%s\n", (int)nlen, line, LONG_VALUE_MARK);
	return str;
}

/* libinih's callback: remembers each value and its line; validation comes later. */
static int config_handler(void *user, const char *section, const char *name, const char *value)
{
	struct load_state *st = user;
	int ln = st->lineno;
	if (st->section < 0)
		return 1;
	char *v;
	if (strcmp(value, LONG_VALUE_MARK) == 0 && st->long_value != NULL) {
		v = st->long_value;
		st->long_value = NULL;
	} else {
		v = xstrdup(value);
	}
	strip_inline_comment(v);

	int id = -1;
	for (int i = 0; i < K_COUNT; i++) {
		if (strcmp(config_keys[i].section, section) == 0 &&
		    strcmp(config_keys[i].name, name) == 0) {
			id = i;
			break;
		}
	}
	char q[160];
	snprintf(q, sizeof(q), "%s.%.64s", section, name);
	if (id < 0) {
		/* Suggest the right section, or a close spelling in this one. */
		const struct key_desc *elsewhere = NULL, *close = NULL;
		size_t best = 3;
		for (int i = 0; i < K_COUNT; i++) {
			if (strcmp(config_keys[i].name, name) == 0)
				elsewhere = &config_keys[i];
			if (strcmp(config_keys[i].section, section) == 0) {
				size_t d = strcasecmp(config_keys[i].name, name) == 0
				               ? 0
				               : edit_distance(config_keys[i].name, name);
				if (d < best) {
					best = d;
					close = &config_keys[i];
				}
			}
		}
		if (elsewhere)
			config_error_at(st, ln, q, "unknown key (%s belongs in [%s])", name,
			                elsewhere->section);
		else if (close)
			config_error_at(st, ln, q, "unknown key (did you mean %s?)", close->name);
		else
			config_error_at(st, ln, q, "unknown key");
		free(v);
		return 1;
	}
	if (st->value[id] != NULL) {
		config_error_at(st, ln, q, "duplicate key (first set on line %d)", st->line[id]);
		free(v);
		return 1;
	}
	st->value[id] = v;
	st->line[id] = ln;
	return 1;
}

void config_ini_read(struct load_state *st, const char *text, size_t len)
{
	st->pos = text;
	st->end = text + len;
	st->lineno = 0;
	st->section = -1;
	int r = ini_parse_stream(config_reader, st, config_handler, st);
	free(st->long_value);
	st->long_value = NULL;
	if (r == -2)
		config_error_at(st, 0, "file", "out of memory while parsing");
	else if (r > 0) {
		/* libinih refused a line that config_reader let through: never accept it silently.
		 */
		bool reported = false;
		for (size_t i = 0; i < st->errors.count; i++)
			reported |= st->errors.items[i].line == r;
		if (!reported)
			config_error_at(st, r, "syntax", "cannot parse this line");
	}
}
