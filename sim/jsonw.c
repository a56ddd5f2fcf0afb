#include "autoconfig.h"

#include "jsonw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

void sim_jw_init(struct sim_jw *w)
{
	memset(w, 0, sizeof(*w));
	w->cap = 1024;
	w->buf = xmalloc(w->cap);
	w->buf[0] = '\0';
	w->first[0] = true;
}

void sim_jw_free(struct sim_jw *w)
{
	free(w->buf);
	w->buf = NULL;
}

void sim_jw_reset(struct sim_jw *w)
{
	w->len = 0;
	w->buf[0] = '\0';
	w->depth = 0;
	w->first[0] = true;
	w->after_key = false;
}

/* Appends n bytes, growing the buffer as needed. */
static void put(struct sim_jw *w, const char *s, size_t n)
{
	xappend(&w->buf, &w->len, &w->cap, s, n);
}

/* Writes the comma that separates this value from the previous one, if any. */
static void separate(struct sim_jw *w)
{
	if (w->after_key) {
		w->after_key = false;
		return;
	}
	if (!w->first[w->depth])
		put(w, ",", 1);
	w->first[w->depth] = false;
}

/* Writes a JSON string literal with the escapes RFC 8259 requires. */
static void put_string(struct sim_jw *w, const char *s)
{
	put(w, "\"", 1);
	const char *run = s;
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		put(w, run, (size_t)(p - run));
		char esc[8];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(w, esc, 2);
		} else {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(w, esc, 6);
		}
		run = p + 1;
	}
	put(w, run, strlen(run));
	put(w, "\"", 1);
}

/* Opens an object or array. */
static void open_container(struct sim_jw *w, char c)
{
	separate(w);
	put(w, &c, 1);
	if (w->depth + 1 < SIM_JW_DEPTH)
		w->depth++;
	w->first[w->depth] = true;
}

/* Closes an object or array. */
static void close_container(struct sim_jw *w, char c)
{
	put(w, &c, 1);
	if (w->depth > 0)
		w->depth--;
}

void sim_jw_object_begin(struct sim_jw *w)
{
	open_container(w, '{');
}

void sim_jw_object_end(struct sim_jw *w)
{
	close_container(w, '}');
}

void sim_jw_array_begin(struct sim_jw *w)
{
	open_container(w, '[');
}

void sim_jw_array_end(struct sim_jw *w)
{
	close_container(w, ']');
}

void sim_jw_key(struct sim_jw *w, const char *key)
{
	separate(w);
	put_string(w, key);
	put(w, ":", 1);
	w->after_key = true;
}

void sim_jw_string(struct sim_jw *w, const char *s)
{
	separate(w);
	put_string(w, s);
}

void sim_jw_int(struct sim_jw *w, int64_t v)
{
	char text[24];
	int n = snprintf(text, sizeof(text), "%lld", (long long)v);
	separate(w);
	put(w, text, (size_t)n);
}

void sim_jw_bool(struct sim_jw *w, bool v)
{
	separate(w);
	put(w, v ? "true" : "false", v ? 4 : 5);
}

void sim_jw_null(struct sim_jw *w)
{
	separate(w);
	put(w, "null", 4);
}

void sim_jw_raw(struct sim_jw *w, const char *text)
{
	separate(w);
	put(w, text, strlen(text));
}

void sim_jw_kstring(struct sim_jw *w, const char *key, const char *s)
{
	sim_jw_key(w, key);
	sim_jw_string(w, s);
}
