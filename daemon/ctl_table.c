#include "autoconfig.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctl_table.h"
#include "xmalloc.h"

struct ctl_table {
	size_t ncols;
	bool header;  /* the first row holds the headers */
	size_t nrows; /* header row included */
	size_t cap;
	char **cells; /* nrows * ncols */
	bool *right;  /* per column */
};

struct ctl_table *ctl_table_new(size_t ncols, const char *const *headers)
{
	struct ctl_table *t = xcalloc(1, sizeof(*t));

	t->ncols = ncols;
	t->right = xcalloc(ncols, sizeof(*t->right));
	if (headers != NULL) {
		ctl_table_add(t, headers);
		t->header = true;
	}
	return t;
}

void ctl_table_align_right(struct ctl_table *t, size_t col)
{
	if (col < t->ncols)
		t->right[col] = true;
}

void ctl_table_add(struct ctl_table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 8;
		t->cells = xreallocarray(t->cells, t->cap, t->ncols * sizeof(*t->cells));
	}
	for (size_t c = 0; c < t->ncols; c++)
		t->cells[t->nrows * t->ncols + c] = xstrdup(cells[c] != NULL ? cells[c] : "-");
	t->nrows++;
}

size_t ctl_table_rows(const struct ctl_table *t)
{
	return t->nrows - (t->header ? 1 : 0);
}

/* Width of UTF-8 text in characters (continuation bytes do not count). */
static size_t text_width(const char *s)
{
	size_t width = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			width++;
	return width;
}

void ctl_table_print(const struct ctl_table *t, const char *indent)
{
	size_t *width = xcalloc(t->ncols, sizeof(*width));

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t w = text_width(t->cells[r * t->ncols + c]);
			if (w > width[c])
				width[c] = w;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		fputs(indent != NULL ? indent : "", stdout);
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];
			size_t pad = width[c] - text_width(cell);
			bool last = c + 1 == t->ncols;
			if (t->right[c])
				printf("%*s%s", (int)pad, "", cell);
			else
				printf("%s%*s", cell, last ? 0 : (int)pad, "");
			fputs(last ? "\n" : "  ", stdout);
		}
	}
	free(width);
}

void ctl_table_free(struct ctl_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->right);
	free(t);
}
