/* Unit tests of modification ids (lib/uuid.c): version 4 UUIDs, unique, and the validity check. */
#include "autoconfig.h"

#include "uuid.h"
#include "testutil.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Orders UUID strings for the uniqueness check. */
static int cmp_uuid(const void *a, const void *b)
{
	return strcmp(a, b);
}

START_TEST(test_uuid)
{
	enum { N = 20000 };
	char(*ids)[37] = malloc(sizeof(*ids) * N);

	ck_assert_ptr_nonnull(ids);
	for (int i = 0; i < N; i++) {
		bool ok;
		uuid_v4(ids[i]);
		ok = strlen(ids[i]) == 36 && uuid_valid(ids[i]) && ids[i][14] == '4' &&
		     strchr("89ab", ids[i][19]) != NULL;
		for (int j = 0; j < 36 && ok; j++) {
			char ch = ids[i][j];
			if (j == 8 || j == 13 || j == 18 || j == 23)
				ok = ch == '-';
			else
				ok = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
		}
		if (!ok)
			ck_abort_msg("bad uuid %s", ids[i]);
	}
	qsort(ids, N, sizeof(*ids), cmp_uuid);
	for (int i = 1; i < N; i++)
		if (strcmp(ids[i - 1], ids[i]) == 0)
			ck_abort_msg("duplicate uuid %s", ids[i]);
	free(ids);

	ck_assert(uuid_valid("7D2C9A10-3E4F-4B5A-8C7D-112233445566"));
	ck_assert(uuid_valid("00000000-0000-0000-0000-000000000000"));
	ck_assert(!uuid_valid(NULL));
	ck_assert(!uuid_valid(""));
	ck_assert(!uuid_valid("7d2c9a10-3e4f-4b5a-8c7d-11223344556"));
	ck_assert(!uuid_valid("7d2c9a10-3e4f-4b5a-8c7d-1122334455667"));
	ck_assert(!uuid_valid("7d2c9a10+3e4f-4b5a-8c7d-112233445566"));
	ck_assert(!uuid_valid("7d2c9a103e4f-4b5a-8c7d-1122334455667"));
	ck_assert(!uuid_valid("7d2c9a10-3e4f-4b5a-8c7d-11223344556g"));
	ck_assert(!uuid_valid("{7d2c9a10-3e4f-4b5a-8c7d-112233445566}"));
}
END_TEST

/* A forked child does not draw the ids its parent draws next from the bytes both held. */
START_TEST(test_uuid_fork)
{
	char first[37], parent_next[37], child_next[37] = "";
	int fds[2];

	uuid_v4(first); /* the pool now holds the bytes of the next 31 ids */
	ck_assert_int_eq(pipe(fds), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char id[37];
		uuid_v4(id);
		_exit(write(fds[1], id, sizeof(id)) == (ssize_t)sizeof(id) ? 0 : 1);
	}
	close(fds[1]);
	ck_assert_int_eq(read(fds[0], child_next, sizeof(child_next)), (ssize_t)sizeof(child_next));
	close(fds[0]);
	int status = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	uuid_v4(parent_next);
	ck_assert(uuid_valid(child_next));
	ck_assert_str_ne(child_next, parent_next);
	ck_assert_str_ne(child_next, first);
}
END_TEST

/* Builds the suite. */
static Suite *uuid_suite(void)
{
	Suite *s = suite_create("uuid");
	testutil_tcase(s, "uuid", 60, (const TTest *const[]){test_uuid, test_uuid_fork, NULL});
	return s;
}

int main(void)
{
	return testutil_run_suite(uuid_suite(), CK_NORMAL);
}
