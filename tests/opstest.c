#include "autoconfig.h"

#include "opstest.h"

#include "daemonproc.h"
#include "testutil.h"

#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Collects an answer body. */
struct body_buf {
	char *data;
	size_t len;
};

static size_t body_write(char *ptr, size_t size, size_t n, void *arg)
{
	struct body_buf *b = arg;
	size_t add = size * n;
	char *p = realloc(b->data, b->len + add + 1);
	if (p == NULL)
		return 0;
	b->data = p;
	memcpy(b->data + b->len, ptr, add);
	b->len += add;
	b->data[b->len] = '\0';
	return add;
}

long opstest_http(const char *method, const char *url, long timeout_ms, char **body)
{
	CURL *c = curl_easy_init();
	ck_assert_ptr_nonnull(c);
	struct body_buf b = {calloc(1, 1), 0};
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "POST") == 0)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	long status = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (body)
		*body = b.data;
	else
		free(b.data);
	return status;
}

void opstest_conf_replace(const struct daemonproc *d, const char *from, const char *to)
{
	char *text = testutil_read_file(d->conf);
	ck_assert_ptr_nonnull(text);
	char *at = strstr(text, from);
	ck_assert_msg(at != NULL, "'%s' not in %s", from, d->conf);
	char *out = NULL;
	ck_assert_int_ge(asprintf(&out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from)),
	                 0);
	testutil_write_file(d->conf, out, 0600);
	free(out);
	free(text);
}

long opstest_wait_status(const char *url, long want, long timeout_ms)
{
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		long status = opstest_http("GET", url, 2000, NULL);
		if (status == want || testutil_elapsed_ms(&start) >= timeout_ms)
			return status;
		testutil_sleep_ms(100);
	}
}
