#include "autoconfig.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "control.h"
#include "request.h"
#include "server.h"
#include "sim.h"
#include "timeutil.h"
#include "xmalloc.h"

/* Command-line settings. */
struct sim_options {
	const char *listen;
	const char *merchant_key;
	const char *key_file;
	const char *tls_cert, *tls_key;
	const char *latency;
	const char *faults_json;
	const char *shape;
	uint64_t seed;
	int64_t auth_validity_ms;
	uint64_t preload;
	bool quiet, verbose;
	bool http2;
};

static void usage(FILE *f)
{
	fputs("usage: smartpay-sim --listen 127.0.0.1:PORT --merchant-key KEY\n"
	      "                    --authentication-key-file FILE\n"
	      "                    [--tls-cert FILE --tls-key FILE [--http2]]\n"
	      "                    [--latency MS[:JITTER_MS]]\n"
	      "                    [--seed N] [--auth-validity DURATION] [--preload N]\n"
	      "                    [--faults JSON] [--shape modification|modifications]\n"
	      "                    [--quiet] [--verbose]\n"
	      "A SmartPay gateway simulator for tests and benchmarks (loopback only).\n"
	      "Prints \"listening on HOST:PORT\" once ready; SIGTERM or SIGINT stop it.\n"
	      "--http2: the TLS listener also offers HTTP/2 (ALPN h2, preferred); clients\n"
	      "that offer only http/1.1 or no ALPN are served HTTP/1.1 as without it.\n",
	      f);
}

/* Parses an unsigned decimal option value. */
static bool parse_u64(const char *text, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (end == text || *end != '\0' || errno != 0 || text[0] == '-')
		return false;
	*out = v;
	return true;
}

/* Parses argv; returns 0 to run, or an exit code. */
static int parse_args(int argc, char **argv, struct sim_options *o)
{
	enum {
		O_TLS_CERT = 256,
		O_TLS_KEY,
		O_AUTH_VALIDITY,
		O_PRELOAD,
		O_FAULTS,
		O_SHAPE,
		O_HTTP2
	};
	static const struct option longopts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"merchant-key", required_argument, NULL, 'm'},
	    {"authentication-key-file", required_argument, NULL, 'k'},
	    {"tls-cert", required_argument, NULL, O_TLS_CERT},
	    {"tls-key", required_argument, NULL, O_TLS_KEY},
	    {"http2", no_argument, NULL, O_HTTP2},
	    {"latency", required_argument, NULL, 'L'},
	    {"seed", required_argument, NULL, 's'},
	    {"auth-validity", required_argument, NULL, O_AUTH_VALIDITY},
	    {"preload", required_argument, NULL, O_PRELOAD},
	    {"faults", required_argument, NULL, O_FAULTS},
	    {"shape", required_argument, NULL, O_SHAPE},
	    {"quiet", no_argument, NULL, 'q'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	memset(o, 0, sizeof(*o));
	o->listen = "127.0.0.1:0";
	o->seed = 1;
	o->auth_validity_ms = 120LL * 3600 * 1000;
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			o->listen = optarg;
			break;
		case 'm':
			o->merchant_key = optarg;
			break;
		case 'k':
			o->key_file = optarg;
			break;
		case O_TLS_CERT:
			o->tls_cert = optarg;
			break;
		case O_TLS_KEY:
			o->tls_key = optarg;
			break;
		case O_HTTP2:
			o->http2 = true;
			break;
		case 'L':
			o->latency = optarg;
			break;
		case 's':
			if (!parse_u64(optarg, &o->seed)) {
				fprintf(stderr, "smartpay-sim: --seed %s: not a number\n", optarg);
				return 2;
			}
			break;
		case O_AUTH_VALIDITY:
			if (!sim_duration_parse(optarg, &o->auth_validity_ms)) {
				fprintf(stderr,
				        "smartpay-sim: --auth-validity %s: expected a duration "
				        "such as 120h\n",
				        optarg);
				return 2;
			}
			break;
		case O_PRELOAD:
			if (!parse_u64(optarg, &o->preload) || o->preload > 100000000) {
				fprintf(stderr, "smartpay-sim: --preload %s: not a count\n",
				        optarg);
				return 2;
			}
			break;
		case O_FAULTS:
			o->faults_json = optarg;
			break;
		case O_SHAPE:
			o->shape = optarg;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			usage(stdout);
			return -1;
		case 'V':
			printf("smartpay-sim %s\n", PACKAGE_VERSION);
			return -1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || o->merchant_key == NULL || o->key_file == NULL) {
		usage(stderr);
		return 2;
	}
	if ((o->tls_cert == NULL) != (o->tls_key == NULL)) {
		fprintf(stderr, "smartpay-sim: --tls-cert and --tls-key go together\n");
		return 2;
	}
	if (o->http2 && o->tls_cert == NULL) {
		fprintf(stderr, "smartpay-sim: --http2 needs --tls-cert and --tls-key\n");
		return 2;
	}
	if (strlen(o->merchant_key) == 0 || strlen(o->merchant_key) > 36) {
		fprintf(stderr, "smartpay-sim: --merchant-key must be 1 to 36 characters\n");
		return 2;
	}
	return 0;
}

/* Reads the authentication key: the file's first line, without its line end. */
static char *read_key(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		fprintf(stderr, "smartpay-sim: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	char buf[512];
	char *line = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (line == NULL) {
		fprintf(stderr, "smartpay-sim: %s: empty authentication key file\n", path);
		return NULL;
	}
	buf[strcspn(buf, "\r\n")] = '\0';
	if (buf[0] == '\0') {
		fprintf(stderr, "smartpay-sim: %s: empty authentication key\n", path);
		return NULL;
	}
	return xstrdup(buf);
}

/* Builds the initial fault configuration from --faults, --latency and --shape. */
static bool initial_faults(const struct sim_options *o, struct sim_faults *f)
{
	sim_faults_clear(f);
	if (o->faults_json != NULL) {
		struct json_object *doc =
		    sim_request_json(NULL, o->faults_json, strlen(o->faults_json));
		char err[200];
		bool ok = doc != NULL && sim_faults_from_json(doc, f, err, sizeof(err));
		json_object_put(doc);
		if (!ok) {
			fprintf(stderr, "smartpay-sim: --faults: %s\n",
			        doc ? err : "not a JSON document");
			return false;
		}
	}
	if (o->latency != NULL && !sim_faults_parse_latency(o->latency, f)) {
		fprintf(stderr, "smartpay-sim: --latency %s: expected MS or MS:JITTER_MS\n",
		        o->latency);
		return false;
	}
	if (o->shape != NULL) {
		if (strcmp(o->shape, "modifications") != 0 &&
		    strcmp(o->shape, "modification") != 0) {
			fprintf(stderr,
			        "smartpay-sim: --shape must be modification or modifications\n");
			return false;
		}
		f->array_shape = strcmp(o->shape, "modifications") == 0;
	}
	return true;
}

/* SIGTERM / SIGINT: leave the loop; main frees everything. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
	struct sim_options o;
	int rc = parse_args(argc, argv, &o);
	if (rc != 0)
		return rc < 0 ? 0 : rc;

	struct sim_ctx ctx = {0};
	struct sim_faults f;
	if (!initial_faults(&o, &f))
		return 2;
	ctx.auth_key = read_key(o.key_file);
	if (ctx.auth_key == NULL)
		return 2;
	ctx.merchant_key = xstrdup(o.merchant_key);
	ctx.seed = o.seed;
	ctx.verbose = o.verbose;
	ctx.http2 = o.http2;
	sim_jw_init(&ctx.out);
	ctx.tok = json_tokener_new();
	sim_control_set_faults(&ctx, &f);
	signal(SIGPIPE, SIG_IGN);

	/* The changelist folds evhttp's disable-read / enable-read around each answer
	 * into nothing when the answer goes out at once: two epoll_ctl calls fewer per
	 * request. Precise timers (timerfd): an answer delayed by --latency 50 goes out
	 * after 50 ms, not up to a millisecond later (epoll_wait's timeout is rounded up
	 * to whole milliseconds), which is 2-6% of a latency benchmark's window. No cached
	 * time: libevent computes the next wait from the time its last pass began, so
	 * after a pass that wrote many answers every timer due soon fired late by the
	 * length of that pass. */
	struct event_config *cfg = event_config_new();
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST |
	                               EVENT_BASE_FLAG_PRECISE_TIMER |
	                               EVENT_BASE_FLAG_NO_CACHE_TIME);
	ctx.base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (ctx.base == NULL)
		ctx.base = event_base_new();
	/* the priorities of enum sim_priority: due answers first, then a request's arrival
	 * time peeked (server.c) before evhttp reads the request */
	if (ctx.base != NULL)
		(void)event_base_priority_init(ctx.base, SIM_PRIO_COUNT);
	ctx.state = sim_state_new(o.auth_validity_ms);
	if (o.preload > 0)
		sim_state_preload(ctx.state, o.preload, o.seed);

	char bound[96], err[256];
	rc = 0;
	struct event *sigterm = evsignal_new(ctx.base, SIGTERM, on_signal, ctx.base);
	struct event *sigint = evsignal_new(ctx.base, SIGINT, on_signal, ctx.base);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	if (!sim_server_start(&ctx, o.listen, o.tls_cert, o.tls_key, bound, sizeof(bound), err,
	                      sizeof(err))) {
		fprintf(stderr, "smartpay-sim: %s\n", err);
		rc = 1;
	} else {
		printf("listening on %s\n", bound);
		fflush(stdout);
		if (!o.quiet)
			fprintf(stderr,
			        "smartpay-sim: event=start listen=%s tls=%s seed=%" PRIu64
			        " preload=%" PRIu64 "\n",
			        bound, o.tls_cert ? "yes" : "no", o.seed, o.preload);
		event_base_dispatch(ctx.base);
		if (!o.quiet)
			fprintf(stderr, "smartpay-sim: event=stop\n");
	}
	sim_server_stop(&ctx);
	event_free(sigterm);
	event_free(sigint);
	event_base_free(ctx.base);
	sim_state_free(ctx.state);
	sim_faults_free(&ctx.faults);
	sim_jw_free(&ctx.out);
	json_tokener_free(ctx.tok);
	free(ctx.merchant_key);
	free(ctx.auth_key);
	return rc;
}
