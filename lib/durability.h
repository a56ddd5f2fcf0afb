/* Whether the database server makes a committed intent durable: the settings that decide
 * it, as read from the server, and the problems they add up to. Pure: no I/O. */
#ifndef SP_DURABILITY_H
#define SP_DURABILITY_H

#include <stdbool.h>

/* The server's answer for one session; the strings belong to the caller. */
struct db_durability {
	bool fsync;
	bool full_page_writes;
	const char *synchronous_commit;        /* this session's value */
	const char *synchronous_standby_names; /* "" when none */
	long wal_senders;                      /* standbys (or other WAL receivers) streaming */
};

/* The problems, "; "-separated, as a malloc'd text (free it), or NULL when a commit the
 * server acknowledges survives a crash of the server or its machine, and a failover to
 * a standby when there are standbys. */
char *durability_problems(const struct db_durability *d);

#endif
