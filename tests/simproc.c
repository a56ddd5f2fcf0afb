#include "autoconfig.h"

#include "simproc.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "xmalloc.h"

struct simproc {
	pid_t pid;
	int out_fd; /* the simulator's stdout */
	int port;
	char *dir;
	char *key_file;
	char *ca_file;
	char *base_url;
	char *merchant_key;
	char *auth_key;
	char *hdr_auth; /* "Authorization: Basic ..." */
	const char *api_headers[6];
};

/* Runs argv to completion with output to `log` (appended); true on exit status 0. */
static bool run_quiet(char *const argv[], const char *log)
{
	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		int devnull = open("/dev/null", O_RDONLY);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (devnull >= 0)
			dup2(devnull, 0);
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return false;
	}
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

bool simproc_make_tls(const char *dir, const char *name)
{
	char *ca = xasprintf("%s/%s-ca.pem", dir, name);
	char *ca_key = xasprintf("%s/%s-ca-key.pem", dir, name);
	char *key = xasprintf("%s/%s-key.pem", dir, name);
	char *csr = xasprintf("%s/%s.csr", dir, name);
	char *cert = xasprintf("%s/%s-cert.pem", dir, name);
	char *ext = xasprintf("%s/%s.ext", dir, name);
	char *log = xasprintf("%s/%s-openssl.log", dir, name);
	char *subj = xasprintf("/CN=%s throwaway test CA", name);
	char serial[32];
	snprintf(serial, sizeof(serial), "0x%lx%04x", (unsigned long)time(NULL),
	         (unsigned)getpid() & 0xffff);
	bool ok = false;
	FILE *f = fopen(ext, "w");
	if (f != NULL) {
		fputs("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
		      "basicConstraints=critical,CA:FALSE\n"
		      "keyUsage=critical,digitalSignature\n"
		      "extendedKeyUsage=serverAuth\n",
		      f);
		ok = fclose(f) == 0;
	}
	char *const req_ca[] = {"openssl",
	                        "req",
	                        "-x509",
	                        "-newkey",
	                        "ec",
	                        "-pkeyopt",
	                        "ec_paramgen_curve:prime256v1",
	                        "-nodes",
	                        "-keyout",
	                        ca_key,
	                        "-out",
	                        ca,
	                        "-days",
	                        "2",
	                        "-subj",
	                        subj,
	                        "-addext",
	                        "basicConstraints=critical,CA:TRUE",
	                        "-addext",
	                        "keyUsage=critical,keyCertSign,cRLSign",
	                        NULL};
	char *const req_srv[] = {"openssl",
	                         "req",
	                         "-new",
	                         "-newkey",
	                         "ec",
	                         "-pkeyopt",
	                         "ec_paramgen_curve:prime256v1",
	                         "-nodes",
	                         "-keyout",
	                         key,
	                         "-out",
	                         csr,
	                         "-subj",
	                         "/CN=localhost",
	                         NULL};
	char *const sign[] = {"openssl", "x509",     "-req", "-in",         csr,    "-CA",
	                      ca,        "-CAkey",   ca_key, "-set_serial", serial, "-days",
	                      "2",       "-extfile", ext,    "-out",        cert,   NULL};
	ok = ok && run_quiet(req_ca, log) && run_quiet(req_srv, log) && run_quiet(sign, log);
	if (!ok)
		fprintf(stderr, "simproc: making TLS material with openssl failed, see %s\n", log);
	free(ca);
	free(ca_key);
	free(key);
	free(csr);
	free(cert);
	free(ext);
	free(log);
	free(subj);
	return ok;
}

/* Writes the authentication key file. */
static bool write_key(const char *path, const char *key)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return false;
	fprintf(f, "%s\n", key);
	return fclose(f) == 0;
}

/* Reads the "listening on HOST:PORT" line within the deadline; returns the port or -1. */
static int read_port(int fd, int timeout_ms)
{
	char line[256];
	size_t n = 0;
	while (n < sizeof(line) - 1) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		ssize_t got = read(fd, line + n, 1);
		if (got <= 0)
			return -1;
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	const char *colon = strrchr(line, ':');
	if (strncmp(line, "listening on ", 13) != 0 || colon == NULL)
		return -1;
	return atoi(colon + 1);
}

/* Frees the handle's memory (not the process). */
static void simproc_free(struct simproc *sim)
{
	free(sim->dir);
	free(sim->key_file);
	free(sim->ca_file);
	free(sim->base_url);
	free(sim->merchant_key);
	free(sim->auth_key);
	free(sim->hdr_auth);
	free(sim);
}

/* nftw callback removing everything below the temporary directory. */
static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

struct simproc *simproc_start(const struct simproc_opts *opts)
{
	static const struct simproc_opts defaults = {0};
	if (opts == NULL)
		opts = &defaults;
	char *cert = NULL, *key = NULL;
	struct simproc *sim = xcalloc(1, sizeof(*sim));
	sim->pid = -1;
	sim->out_fd = -1;
	sim->merchant_key = xstrdup(opts->merchant_key ? opts->merchant_key : SIMPROC_MERCHANT_KEY);
	sim->auth_key = xstrdup(opts->auth_key ? opts->auth_key : SIMPROC_AUTH_KEY);
	char tmpl[] = "/tmp/simproc.XXXXXX";
	if (mkdtemp(tmpl) == NULL) {
		perror("simproc: mkdtemp");
		simproc_free(sim);
		return NULL;
	}
	sim->dir = xstrdup(tmpl);
	sim->key_file = xasprintf("%s/authentication-key", sim->dir);
	if (!write_key(sim->key_file, sim->auth_key))
		goto fail;
	if (opts->tls) {
		if (!simproc_make_tls(sim->dir, "sim"))
			goto fail;
		sim->ca_file = xasprintf("%s/sim-ca.pem", sim->dir);
		cert = xasprintf("%s/sim-cert.pem", sim->dir);
		key = xasprintf("%s/sim-key.pem", sim->dir);
	}

	char *exe = testutil_built_program("sim/smartpay-sim");
	const char *argv[64];
	int argc = 0;
	char *wrapper = getenv("SIMPROC_WRAPPER") ? xstrdup(getenv("SIMPROC_WRAPPER")) : NULL;
	if (wrapper != NULL) {
		char *save = NULL;
		for (char *tok = strtok_r(wrapper, " ", &save); tok && argc < 16;
		     tok = strtok_r(NULL, " ", &save))
			argv[argc++] = tok;
	}
	argv[argc++] = exe;
	argv[argc++] = "--listen";
	argv[argc++] = "127.0.0.1:0";
	argv[argc++] = "--merchant-key";
	argv[argc++] = sim->merchant_key;
	argv[argc++] = "--authentication-key-file";
	argv[argc++] = sim->key_file;
	argv[argc++] = "--quiet";
	if (opts->tls) {
		argv[argc++] = "--tls-cert";
		argv[argc++] = cert;
		argv[argc++] = "--tls-key";
		argv[argc++] = key;
	}
	for (const char *const *a = opts->extra_args; a && *a && argc < 62; a++)
		argv[argc++] = *a;
	argv[argc] = NULL;

	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		perror("simproc: pipe");
		free(exe);
		free(wrapper);
		free(cert);
		free(key);
		goto fail;
	}
	fflush(NULL);
	sim->pid = fork();
	if (sim->pid == 0) {
		dup2(pipefd[1], 1);
		/* a test killed by its timeout must not leave the simulator behind */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (wrapper != NULL)
			execvp(argv[0], (char *const *)argv);
		else
			execv(exe, (char *const *)argv);
		fprintf(stderr, "simproc: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	sim->out_fd = pipefd[0];
	free(exe);
	free(wrapper);
	free(cert);
	free(key);
	if (sim->pid < 0)
		goto fail;
	sim->port = read_port(sim->out_fd, 20000);
	if (sim->port <= 0) {
		fprintf(stderr, "simproc: the simulator did not report its port\n");
		goto fail;
	}
	sim->base_url = xasprintf("%s://127.0.0.1:%d", opts->tls ? "https" : "http", sim->port);
	char *userpass = xasprintf("%s:%s", sim->merchant_key, sim->auth_key);
	char *b64 = testutil_base64(userpass);
	sim->hdr_auth = xasprintf("Authorization: Basic %s", b64);
	free(userpass);
	free(b64);
	sim->api_headers[0] = sim->hdr_auth;
	sim->api_headers[1] = "Content-Type: application/json";
	sim->api_headers[2] = "Accept-Language: en-US";
	sim->api_headers[3] = "Origin: https://shop.example";
	sim->api_headers[4] = "User-Agent: simproc";
	sim->api_headers[5] = NULL;
	return sim;
fail:
	simproc_stop(sim);
	return NULL;
}

bool simproc_stop(struct simproc *sim)
{
	if (sim == NULL)
		return true;
	bool ok = false;
	if (sim->pid > 0) {
		kill(sim->pid, SIGTERM);
		int st = 0;
		pid_t r = 0;
		for (int waited = 0; waited < 30000; waited += 10) {
			r = waitpid(sim->pid, &st, WNOHANG);
			if (r != 0)
				break;
			usleep(10000);
		}
		if (r == 0) {
			fprintf(stderr, "simproc: the simulator ignored SIGTERM; killing it\n");
			kill(sim->pid, SIGKILL);
			waitpid(sim->pid, &st, 0);
		} else if (r == sim->pid) {
			ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
			if (!ok)
				fprintf(stderr, "simproc: the simulator exited with %s %d\n",
				        WIFEXITED(st) ? "status" : "signal",
				        WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		}
	}
	if (sim->out_fd >= 0)
		close(sim->out_fd);
	if (sim->dir != NULL)
		nftw(sim->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	simproc_free(sim);
	return ok;
}

const char *simproc_base_url(const struct simproc *sim)
{
	return sim->base_url;
}

int simproc_port(const struct simproc *sim)
{
	return sim->port;
}

pid_t simproc_pid(const struct simproc *sim)
{
	return sim->pid;
}

const char *simproc_merchant_key(const struct simproc *sim)
{
	return sim->merchant_key;
}

const char *simproc_auth_key(const struct simproc *sim)
{
	return sim->auth_key;
}

const char *simproc_auth_key_file(const struct simproc *sim)
{
	return sim->key_file;
}

const char *simproc_ca_file(const struct simproc *sim)
{
	return sim->ca_file;
}

const char *simproc_dir(const struct simproc *sim)
{
	return sim->dir;
}

const char *const *simproc_api_headers(const struct simproc *sim)
{
	return sim->api_headers;
}

/* libcurl write callback: appends to the reply body. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct simproc_reply *r = arg;
	size_t n = size * nmemb;
	r->body = xreallocarray(r->body, r->len + n + 1, sizeof(*r->body));
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

/* The trimmed value of header line data (n bytes) when it is `name` (with its
 * colon), malloc'd; else NULL. */
static char *header_value(const char *data, size_t n, const char *name)
{
	size_t k = strlen(name);
	if (n <= k || strncasecmp(data, name, k) != 0)
		return NULL;
	const char *v = data + k;
	size_t vn = n - k;
	while (vn > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vn--;
	}
	while (vn > 0 && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' '))
		vn--;
	return xstrndup(v, vn);
}

/* libcurl header callback: keeps Retry-After and Content-Type. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct simproc_reply *r = arg;
	size_t n = size * nmemb;
	char *v = header_value(data, n, "Retry-After:");
	if (v != NULL) {
		free(r->retry_after);
		r->retry_after = v;
	}
	v = header_value(data, n, "Content-Type:");
	if (v != NULL) {
		free(r->content_type);
		r->content_type = v;
	}
	return n;
}

bool simproc_call(const struct simproc *sim, const char *method, const char *path,
                  const char *const *headers, const char *body, long timeout_ms,
                  const char *ca_file, struct simproc_reply *out)
{
	memset(out, 0, sizeof(*out));
	out->body = xstrdup("");
	CURL *c = curl_easy_init();
	if (c == NULL)
		return false;
	char *url = xasprintf("%s%s", sim->base_url, path);
	struct curl_slist *hl = NULL;
	bool has_type = false;
	for (const char *const *h = headers; h && *h; h++) {
		hl = curl_slist_append(hl, *h);
		has_type = has_type || strncasecmp(*h, "Content-Type:", 13) == 0;
	}
	/* keep curl from adding headers the caller did not ask for */
	hl = curl_slist_append(hl, "Expect:");
	if (!has_type)
		hl = curl_slist_append(hl, "Content-Type:");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 20000L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
	if (body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	if (ca_file != NULL || sim->ca_file != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, ca_file ? ca_file : sim->ca_file);
	CURLcode rc = curl_easy_perform(c);
	out->curl_code = (int)rc;
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hl);
	free(url);
	return true;
}

void simproc_reply_free(struct simproc_reply *r)
{
	free(r->body);
	free(r->retry_after);
	free(r->content_type);
	memset(r, 0, sizeof(*r));
}

bool simproc_payment(const struct simproc *sim, const char *endpoint, const char *body,
                     struct simproc_reply *out)
{
	char *path = xasprintf("/payment/%s", endpoint);
	bool ok = simproc_call(sim, "POST", path, sim->api_headers, body, 0, NULL, out);
	free(path);
	return ok;
}

bool simproc_status(const struct simproc *sim, const char *transaction_id,
                    struct simproc_reply *out)
{
	char *path = xasprintf("/payment/status/%s", transaction_id);
	bool ok = simproc_call(sim, "GET", path, sim->api_headers, NULL, 0, NULL, out);
	free(path);
	return ok;
}

/* A control call expecting a 2xx JSON object; returns the tree or NULL. */
static struct json_object *control(const struct simproc *sim, const char *method, const char *path,
                                   const char *body)
{
	static const char *const json_hdr[] = {"Content-Type: application/json", NULL};
	struct simproc_reply r;
	struct json_object *tree = NULL;
	if (simproc_call(sim, method, path, body ? json_hdr : NULL, body, 0, NULL, &r) &&
	    r.status >= 200 && r.status < 300)
		tree = json_tokener_parse(r.body);
	if (tree == NULL)
		fprintf(stderr, "simproc: %s %s -> %ld (curl %d): %s\n", method, path, r.status,
		        r.curl_code, r.body ? r.body : "");
	simproc_reply_free(&r);
	return tree;
}

char *simproc_create_txn_json(const struct simproc *sim, const char *json)
{
	struct json_object *tree = control(sim, "POST", "/_sim/transactions", json);
	struct json_object *id;
	char *out = NULL;
	if (tree != NULL && json_object_object_get_ex(tree, "transactionId", &id))
		out = xstrdup(json_object_get_string(id));
	json_object_put(tree);
	return out;
}

char *simproc_create_txn(const struct simproc *sim, const char *amount, const char *currency)
{
	char *doc = xasprintf("{\"amount\":\"%s\",\"currencyCode\":\"%s\"}", amount, currency);
	char *id = simproc_create_txn_json(sim, doc);
	free(doc);
	return id;
}

bool simproc_set_faults(const struct simproc *sim, const char *json)
{
	struct json_object *tree = control(sim, "POST", "/_sim/faults", json);
	json_object_put(tree);
	return tree != NULL;
}

char *simproc_external(const struct simproc *sim, const char *transaction_id, const char *json)
{
	char *path = xasprintf("/_sim/transactions/%s/external", transaction_id);
	struct json_object *tree = control(sim, "POST", path, json);
	struct json_object *id;
	char *out = NULL;
	if (tree != NULL)
		out = xstrdup(json_object_object_get_ex(tree, "modificationId", &id)
		                  ? json_object_get_string(id)
		                  : "");
	json_object_put(tree);
	free(path);
	return out;
}

long simproc_status_calls(const struct simproc *sim, const char *transaction_id)
{
	struct json_object *ledger = simproc_ledger(sim), *v;
	long n = -1;
	if (transaction_id != NULL)
		n = simproc_ledger_per_id(ledger, "statusCalls", transaction_id);
	else if (ledger != NULL && json_object_object_get_ex(ledger, "statusCallsTotal", &v))
		n = (long)json_object_get_int64(v);
	json_object_put(ledger);
	return n;
}

bool simproc_clear_faults(const struct simproc *sim)
{
	struct json_object *tree = control(sim, "DELETE", "/_sim/faults", NULL);
	json_object_put(tree);
	return tree != NULL;
}

bool simproc_advance_clock(const struct simproc *sim, const char *duration)
{
	char *doc = xasprintf("{\"advance\":\"%s\"}", duration);
	struct json_object *tree = control(sim, "POST", "/_sim/clock", doc);
	free(doc);
	json_object_put(tree);
	return tree != NULL;
}

struct json_object *simproc_ledger(const struct simproc *sim)
{
	return control(sim, "GET", "/_sim/ledger", NULL);
}

/* True when a ledger type matches the asked one: any case, and "cancel" for
 * "CANCELLATION". */
static bool type_matches(const char *ledger_type, const char *asked)
{
	if (strcasecmp(asked, "cancel") == 0)
		asked = "CANCELLATION";
	return strcasecmp(ledger_type, asked) == 0;
}

int simproc_ledger_count(struct json_object *ledger, const char *transaction_id, const char *type)
{
	struct json_object *effects, *v;
	if (ledger == NULL || !json_object_object_get_ex(ledger, "effects", &effects))
		return -1;
	int n = 0;
	size_t len = json_object_array_length(effects);
	for (size_t i = 0; i < len; i++) {
		struct json_object *e = json_object_array_get_idx(effects, i);
		if (transaction_id != NULL &&
		    (!json_object_object_get_ex(e, "transactionId", &v) ||
		     strcmp(json_object_get_string(v), transaction_id) != 0))
			continue;
		if (type != NULL && (!json_object_object_get_ex(e, "type", &v) ||
		                     !type_matches(json_object_get_string(v), type)))
			continue;
		n++;
	}
	return n;
}

int simproc_count_effects(const struct simproc *sim, const char *transaction_id, const char *type)
{
	struct json_object *ledger = simproc_ledger(sim);
	int n = simproc_ledger_count(ledger, transaction_id, type);
	json_object_put(ledger);
	return n;
}

long simproc_request_count(const struct simproc *sim, const char *modification_id)
{
	struct json_object *ledger = simproc_ledger(sim), *requests, *v;
	long n = -1;
	if (ledger != NULL && json_object_object_get_ex(ledger, "requests", &requests))
		n = json_object_object_get_ex(requests, modification_id, &v)
		        ? (long)json_object_get_int64(v)
		        : 0;
	json_object_put(ledger);
	return n;
}

long simproc_ledger_per_id(struct json_object *ledger, const char *key, const char *modification_id)
{
	struct json_object *map, *v;
	if (ledger == NULL || !json_object_object_get_ex(ledger, key, &map))
		return -1;
	return json_object_object_get_ex(map, modification_id, &v) ? (long)json_object_get_int64(v)
	                                                           : 0;
}
