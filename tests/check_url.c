/* lib/url: the one check of http(s) URLs and host:port texts, with its reasons, and what
 * counts as a loopback host. */
#include "autoconfig.h"

#include "testutil.h"
#include "url.h"

#include <check.h>
#include <string.h>

/* One URL: the text, then either its parts (why NULL) or the reason it is refused. */
static const struct {
	const char *text;
	bool https, loopback;
	const char *rest, *why;
} url_cases[] = {
    {"https://pal-test.smartpay.example/pal/servlet", true, false, "/pal/servlet", NULL},
    {"https://pal-test.smartpay.example", true, false, "", NULL},
    {"http://127.0.0.1:8080/x?y#z", false, true, "/x?y#z", NULL},
    {"http://[::1]:9/", false, true, "/", NULL},
    {"HTTPS://LOCALHOST", true, true, "", NULL},
    {"http://localhost.:80", false, true, "", NULL},
    {"http://10.0.0.1", false, false, "", NULL},
    {"https://[2001:db8::1]:443/p", true, false, "/p", NULL},
    {"ftp://host/", false, false, NULL,
     "must start with https:// (or http:// for a loopback host)"},
    {"host/", false, false, NULL, "must start with https:// (or http:// for a loopback host)"},
    {"https://host/a b", false, false, NULL,
     "spaces are not allowed in a URL (encode them as %20)"},
    {"https://host/a\tb", false, false, NULL,
     "spaces are not allowed in a URL (encode them as %20)"},
    {"https://user:pw@host/", false, false, NULL, "credentials in the URL are not allowed"},
    {"https://host/path@x", true, false, "/path@x", NULL}, /* '@' after the authority */
    {"https://host:0", false, false, NULL, "port must be between 1 and 65535"},
    {"https://host:65536", false, false, NULL, "port must be between 1 and 65535"},
    {"https://host:", false, false, NULL, "bad port"},
    {"https://host:12a", false, false, NULL, "bad port"},
    {"https://host:123456", false, false, NULL, "bad port"},
    {"https://[::1", false, false, NULL, "missing ']' after the IPv6 address"},
    {"https://[]/", false, false, NULL, "bad IPv6 address"},
    {"https://[zz]/", false, false, NULL, "bad IPv6 address [zz]"},
    {"https://[::1]x/", false, false, NULL, "unexpected text after ']'"},
    {"https://::1/", false, false, NULL, "IPv6 addresses need brackets, e.g. [::1]"},
    {"https:///x", false, false, NULL, "missing host"},
    {"https://ho$t/", false, false, NULL, "bad character '$' in host name"},
};

START_TEST(url_check_table)
{
	for (size_t i = 0; i < sizeof(url_cases) / sizeof(url_cases[0]); i++) {
		struct url_parts u = {0};
		char why[256] = "";
		bool ok = url_check(url_cases[i].text, &u, why, sizeof(why));
		if (url_cases[i].why == NULL) {
			ck_assert_msg(ok, "%s: refused: %s", url_cases[i].text, why);
			ck_assert_msg(
			    u.https == url_cases[i].https && u.loopback == url_cases[i].loopback,
			    "%s: https %d loopback %d", url_cases[i].text, u.https, u.loopback);
			ck_assert_str_eq(u.rest, url_cases[i].rest);
		} else {
			ck_assert_msg(!ok, "%s: accepted", url_cases[i].text);
			ck_assert_str_eq(why, url_cases[i].why);
		}
	}
	/* the reason is optional */
	struct url_parts u;
	ck_assert(!url_check("gopher://x", &u, NULL, 0));
}
END_TEST

START_TEST(host_port_table)
{
	bool loopback = false;
	char why[256] = "";
	ck_assert(url_check_host_port("127.0.0.1:9100", 14, true, &loopback, why, sizeof(why)));
	ck_assert(loopback);
	ck_assert(url_check_host_port("0.0.0.0:9100", 12, true, &loopback, why, sizeof(why)));
	ck_assert(!loopback);
	ck_assert(url_check_host_port("[::1]:1", 7, true, &loopback, why, sizeof(why)));
	ck_assert(loopback);
	ck_assert(!url_check_host_port("127.0.0.1", 9, true, &loopback, why, sizeof(why)));
	ck_assert_str_eq(why, "missing port: expected host:port");
	/* only len bytes are read */
	ck_assert(
	    url_check_host_port("example.org/ignored", 11, false, &loopback, why, sizeof(why)));
	ck_assert(!loopback);
}
END_TEST

START_TEST(loopback_hosts)
{
	const char *yes[] = {"localhost", "LocalHost", "localhost.",
	                     "127.0.0.1", "127.5.6.7", "::1"};
	const char *no[] = {
	    "128.0.0.1", "10.0.0.1", "::ffff:127.0.0.1", "localhost.example", "example.org",
	    "",          "::2"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		ck_assert_msg(url_host_is_loopback(yes[i]), "%s", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		ck_assert_msg(!url_host_is_loopback(no[i]), "%s", no[i]);
}
END_TEST

static Suite *url_suite(void)
{
	Suite *s = suite_create("url");
	TCase *tc = tcase_create("check");
	tcase_add_test(tc, url_check_table);
	tcase_add_test(tc, host_port_table);
	tcase_add_test(tc, loopback_hosts);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(url_suite(), CK_NORMAL);
}
