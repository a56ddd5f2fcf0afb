/* libFuzzer harness: a whole configuration file through the real loader (config_load
 * reads it from an in-memory file), with invariants on what a loaded configuration
 * holds and on the error text of a refused one.
 *
 * Input: the file's bytes, NULs and invalid UTF-8 included. */
#define _GNU_SOURCE 1
#include "autoconfig.h"

#include "config.h"
#include "fuzz.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

/* Writes the input into a new in-memory file and returns its descriptor. */
static int memory_file(const uint8_t *data, size_t size)
{
	int fd = memfd_create("smartpayd.conf", MFD_CLOEXEC);
	FUZZ_CHECK(fd >= 0);
	size_t done = 0;
	while (done < size) {
		ssize_t n = write(fd, data + done, size - done);
		FUZZ_CHECK(n > 0);
		done += (size_t)n;
	}
	return fd;
}

/* Checks that every line of a refusal names the file: "PATH:LINE: ...\n". */
static void check_errors(const char *path, const char *errors)
{
	FUZZ_CHECK(errors != NULL && *errors != '\0');
	size_t plen = strlen(path);
	for (const char *line = errors; *line != '\0';) {
		const char *nl = strchr(line, '\n');
		FUZZ_CHECK(nl != NULL);
		FUZZ_CHECK(strncmp(line, path, plen) == 0 && line[plen] == ':');
		const char *p = line + plen + 1;
		FUZZ_CHECK(*p >= '0' && *p <= '9');
		line = nl + 1;
	}
}

/* Checks that a string list has no empty or NULL item. */
static void check_list(const struct sp_strlist *l)
{
	for (size_t i = 0; i < l->count; i++)
		FUZZ_CHECK(l->items[i] != NULL && *l->items[i] != '\0');
}

/* Checks the rules config_load promises for an accepted file. */
static void check_config(const struct sp_config *cfg, const char *path)
{
	FUZZ_CHECK(strcmp(cfg->path, path) == 0);
	FUZZ_CHECK(cfg->db_conninfo != NULL && cfg->orders_relation != NULL);
	FUZZ_CHECK(cfg->base_url != NULL && *cfg->base_url != '\0');
	FUZZ_CHECK(cfg->base_url[strlen(cfg->base_url) - 1] != '/');
	/* the scheme is case-insensitive (RFC 3986), as for libcurl */
	FUZZ_CHECK(strncasecmp(cfg->base_url, "http://", 7) == 0 ||
	           strncasecmp(cfg->base_url, "https://", 8) == 0);
	size_t mk = strlen(cfg->merchant_key);
	FUZZ_CHECK(mk >= 1 && mk <= 36);
	FUZZ_CHECK(cfg->instance_name != NULL && *cfg->instance_name != '\0');
	FUZZ_CHECK(cfg->timeout_ms > 0 && cfg->connect_timeout_ms > 0);
	FUZZ_CHECK(cfg->connect_timeout_ms <= cfg->timeout_ms);
	FUZZ_CHECK(cfg->lease_ms > cfg->timeout_ms);
	FUZZ_CHECK(cfg->retry_base_ms <= cfg->retry_max_ms);
	FUZZ_CHECK(cfg->max_inflight >= 1 && cfg->max_inflight <= 10000);
	FUZZ_CHECK(cfg->batch_size >= 1 && cfg->batch_size <= 10000);
	FUZZ_CHECK(cfg->max_attempts >= 1 && cfg->max_attempts <= 100000);
	FUZZ_CHECK(cfg->poll_interval_ms > 0 && cfg->drain_timeout_ms >= 0);
	FUZZ_CHECK(cfg->shipped_statuses.count > 0 && cfg->cancelled_statuses.count > 0);
	check_list(&cfg->shipped_statuses);
	check_list(&cfg->cancelled_statuses);
	check_list(&cfg->early_statuses);
	if (cfg->early_statuses.count > 0)
		FUZZ_CHECK(cfg->early_margin_ms < cfg->authorization_validity_ms);
	for (size_t i = 0; i < cfg->expiry_threshold_count; i++) {
		FUZZ_CHECK(cfg->expiry_thresholds_ms[i] > 0);
		if (i > 0)
			FUZZ_CHECK(cfg->expiry_thresholds_ms[i] < cfg->expiry_thresholds_ms[i - 1]);
	}
	FUZZ_CHECK(cfg->webhook_url != NULL && cfg->metrics_listen != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memory_file(data, size);
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

	struct sp_config *cfg = NULL;
	char *errors = NULL;
	bool ok = config_load(path, &cfg, &errors);
	if (ok) {
		FUZZ_CHECK(cfg != NULL && errors == NULL);
		check_config(cfg, path);
	} else {
		FUZZ_CHECK(cfg == NULL);
		check_errors(path, errors);
	}
	config_free(cfg);
	free(errors);
	close(fd);
	return 0;
}
