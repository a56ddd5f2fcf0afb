#include "autoconfig.h"

#include "durability.h"

#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

/* Appends one problem to a "; "-separated list (*list malloc'd or NULL). */
static void add_problem(char **list, const char *problem)
{
	char *joined = *list ? xasprintf("%s; %s", *list, problem) : xstrdup(problem);
	free(*list);
	*list = joined;
}

/* True for the synchronous_commit values that wait for the local WAL flush. */
static bool waits_for_local_flush(const char *value)
{
	return value && strcmp(value, "off") != 0;
}

/* True for the values that, with synchronous_standby_names set, wait until the standby
 * has flushed the commit too. */
static bool waits_for_standby_flush(const char *value)
{
	return value && (strcmp(value, "on") == 0 || strcmp(value, "remote_apply") == 0);
}

char *durability_problems(const struct db_durability *d)
{
	char *list = NULL;
	bool sync_names = d->synchronous_standby_names && d->synchronous_standby_names[0] != '\0';
	if (!d->fsync)
		add_problem(&list,
		            "fsync=off: a committed intent is lost when the operating system "
		            "crashes or the power fails");
	if (!d->full_page_writes)
		add_problem(&list, "full_page_writes=off: a crash can leave torn pages (unless the "
		                   "file system rules them out) and lose committed intents");
	if (!waits_for_local_flush(d->synchronous_commit))
		add_problem(&list, "synchronous_commit=off in the daemon's session: the last "
		                   "commits are lost when the server crashes");
	else if (sync_names && !waits_for_standby_flush(d->synchronous_commit)) {
		char *p = xasprintf("synchronous_commit=%s in the daemon's session: a commit does "
		                    "not wait until the synchronous standby has flushed it",
		                    d->synchronous_commit);
		add_problem(&list, p);
		free(p);
	}
	if (d->wal_senders > 0 && !sync_names) {
		char *p =
		    xasprintf("%ld standby(s) stream from this server asynchronously "
		              "(synchronous_standby_names is empty): after a failover the last "
		              "committed intents can be missing, and what was sent for them "
		              "would be sent again under new ids",
		              d->wal_senders);
		add_problem(&list, p);
		free(p);
	}
	return list;
}
