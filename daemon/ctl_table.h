/* A table printed with aligned columns (widths counted in UTF-8 characters); the last
 * column is not padded. Cells are copied; NULL prints as "-". `headers` NULL: no
 * header row. */
#ifndef SP_CTL_TABLE_H
#define SP_CTL_TABLE_H

#include <stddef.h>

struct ctl_table;
struct ctl_table *ctl_table_new(size_t ncols, const char *const *headers);
/* Aligns column `col` to the right (numbers). */
void ctl_table_align_right(struct ctl_table *t, size_t col);
void ctl_table_add(struct ctl_table *t, const char *const *cells);
size_t ctl_table_rows(const struct ctl_table *t);
void ctl_table_print(const struct ctl_table *t, const char *indent);
void ctl_table_free(struct ctl_table *t);

#endif
