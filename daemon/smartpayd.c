#include "autoconfig.h"

#include "alerts.h"
#include "config.h"
#include "engine.h"
#include "log.h"
#include "metrics.h"
#include "reconciler.h"
#include "status_call.h"
#include "service.h"
#include "xmalloc.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/prctl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#endif

/* Exit codes of interfaces.md. */
enum { EXIT_CLEAN = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* Everything main() owns while the loop runs. */
struct daemon {
	struct event_base *base;
	struct sp_config *cfg;
	char *secret;
	struct engine *engine;
	struct metrics *metrics;
	struct alerts *alerts;         /* NULL with --once */
	struct status_client *status;  /* NULL when curl could not be set up */
	struct reconciler *reconciler; /* NULL with --once */
	struct service *service;
	bool once;
	int signals_seen;
	bool forced;
};

/* libevent's own messages go to the same log as ours. */
static void libevent_log(int severity, const char *msg)
{
	enum log_level level = severity >= EVENT_LOG_ERR    ? LOG_LVL_ERR
	                       : severity == EVENT_LOG_WARN ? LOG_LVL_WARNING
	                       : severity == EVENT_LOG_MSG  ? LOG_LVL_INFO
	                                                    : LOG_LVL_DEBUG;
	log_fields(level, "libevent", LOG_STR("msg", msg));
}

static void usage(FILE *out)
{
	fprintf(out,
	        "Usage: smartpayd [-c FILE] [--once] [--check-config] [--version] [--help]\n"
	        "\n"
	        "Captures, cancels and refunds SmartPay payments as the shop's orders ship,\n"
	        "are cancelled or refunded. Runs in the foreground.\n"
	        "\n"
	        "  -c, --config FILE  configuration file (default %s)\n"
	        "      --once         do what is due now, wait for the outcomes, exit\n"
	        "                     (0 when nothing due is left undone)\n"
	        "      --check-config validate the configuration and exit; connects nowhere\n"
	        "      --version      print the version and exit\n"
	        "  -h, --help         this text\n"
	        "\n"
	        "Signals: SIGTERM/SIGINT drain and exit (a second one exits at once),\n"
	        "SIGHUP reloads the configuration. See smartpayd(8), smartpayd.conf(5).\n",
	        CONFIG_DEFAULT_PATH);
}

/* Loads and validates a configuration, printing every problem. */
static struct sp_config *load_config(const char *path)
{
	struct sp_config *cfg = NULL;
	char *errors = NULL;
	if (!config_load(path, &cfg, &errors)) {
		fputs(errors, stderr);
		free(errors);
		return NULL;
	}
	return cfg;
}

/* Prints the configuration's warnings (FILE:LINE: key: reason lines) marked as such. */
static void print_warnings(const char *warnings)
{
	for (const char *line = warnings; line && *line;) {
		const char *end = strchr(line, '\n');
		int len = end ? (int)(end - line) : (int)strlen(line);
		fprintf(stderr, "warning: %.*s\n", len, line);
		line = end ? end + 1 : line + len;
	}
}

static void on_ready(void *arg)
{
	struct daemon *d = arg;
	service_ready(d->service);
}

static void on_idle_exit(void *arg)
{
	struct daemon *d = arg;
	event_base_loopexit(d->base, NULL);
}

/* SIGTERM/SIGINT: the first drains, the second leaves at once. */
static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	(void)what;
	d->signals_seen++;
	if (d->signals_seen == 1) {
		log_fields(LOG_LVL_NOTICE, "stopping",
		           LOG_STR("signal", sig == SIGINT ? "SIGINT" : "SIGTERM"));
		service_stopping(d->service);
		engine_drain(d->engine);
		return;
	}
	log_fields(
	    LOG_LVL_WARNING, "stopping_now",
	    LOG_STR("msg", "second signal: in-flight modifications are resumed at the next start"));
	d->forced = true;
	event_base_loopbreak(d->base);
}

/* Keys whose change needs a restart: they shape connections made at start. */
static void warn_restart_needed(const struct sp_config *old, const struct sp_config *neu)
{
	struct {
		const char *key, *a, *b;
	} keys[] = {
	    {"database.conninfo", old->db_conninfo, neu->db_conninfo},
	    {"database.orders_relation", old->orders_relation, neu->orders_relation},
	    {"smartpay.ca_file", old->ca_file, neu->ca_file},
	    {"smartpay.user_agent", old->user_agent, neu->user_agent},
	    {"daemon.instance_name", old->instance_name, neu->instance_name},
	    {"metrics.listen", old->metrics_listen, neu->metrics_listen},
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(keys[i].a ? keys[i].a : "", keys[i].b ? keys[i].b : "") != 0)
			log_fields(
			    LOG_LVL_WARNING, "reload_needs_restart", LOG_STR("key", keys[i].key),
			    LOG_STR("msg", "changed; the running value stays until a restart"));
	if (old->statement_timeout_ms != neu->statement_timeout_ms)
		log_fields(LOG_LVL_WARNING, "reload_needs_restart",
		           LOG_STR("key", "database.statement_timeout"),
		           LOG_STR("msg", "changed; the running value stays until a restart"));
	if (old->timeout_ms != neu->timeout_ms ||
	    old->connect_timeout_ms != neu->connect_timeout_ms)
		log_fields(LOG_LVL_WARNING, "reload_needs_restart",
		           LOG_STR("key", "smartpay.timeout"),
		           LOG_STR("msg", "changed; the running value stays until a restart"));
}

/* Keeps the running values of the keys that wait for a restart in a fresh configuration
 * (the instance lock, the leases' owner and the HTTP client were made with them); false
 * when the fresh lease no longer covers the running timeout. */
static bool keep_restart_values(const struct sp_config *old, struct sp_config *neu, char **why)
{
	free(neu->instance_name);
	neu->instance_name = xstrdup(old->instance_name);
	neu->timeout_ms = old->timeout_ms;
	neu->connect_timeout_ms = old->connect_timeout_ms;
	if (neu->lease_ms >= neu->timeout_ms + CONFIG_LEASE_MARGIN_MS)
		return true;
	*why = xstrdup("daemon.lease must be at least 5s longer than the running smartpay.timeout");
	return false;
}

/* SIGHUP: a fresh configuration replaces the old one only when it is valid. */
static void on_reload_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	(void)sig;
	(void)what;
	service_reloading(d->service);
	struct sp_config *cfg = NULL;
	char *errors = NULL;
	if (!config_load(d->cfg->path, &cfg, &errors)) {
		log_fields(LOG_LVL_WARNING, "reload_failed", LOG_STR("file", d->cfg->path),
		           LOG_STR("errors", errors),
		           LOG_STR("msg", "keeping the running configuration"));
		free(errors);
		service_ready(d->service);
		return;
	}
	char *why = NULL;
	char *secret = config_read_secret(cfg, &why);
	if (secret == NULL) {
		log_fields(LOG_LVL_WARNING, "reload_failed", LOG_STR("reason", why),
		           LOG_STR("msg", "keeping the running configuration"));
		free(why);
		config_free(cfg);
		service_ready(d->service);
		return;
	}
	warn_restart_needed(d->cfg, cfg);
	if (!keep_restart_values(d->cfg, cfg, &why)) {
		log_fields(LOG_LVL_ERR, "reload_failed", LOG_STR("reason", why),
		           LOG_STR("msg", "keeping the running configuration"));
		free(why);
		explicit_bzero(secret, strlen(secret));
		free(secret);
		config_free(cfg);
		service_ready(d->service);
		return;
	}
	engine_reload(d->engine, cfg, secret);
	if (d->alerts)
		alerts_reload(d->alerts);
	if (d->status)
		status_client_reload(d->status, cfg, secret);
	if (d->reconciler)
		reconciler_reload(d->reconciler, cfg);
	explicit_bzero(d->secret, strlen(d->secret));
	free(d->secret);
	d->secret = secret;
	config_free(d->cfg);
	d->cfg = cfg;
	log_init("smartpayd", (enum log_level)cfg->log_level);
	log_fields(LOG_LVL_NOTICE, "reloaded", LOG_STR("file", cfg->path));
	service_ready(d->service);
}

/* Writes the final tally of a run. */
static void log_summary(const struct engine *engine)
{
	const struct engine_stats *s = engine_stats(engine);
	log_fields(LOG_LVL_NOTICE, "summary", LOG_UINT("sent", s->sent),
	           LOG_UINT("succeeded", s->succeeded), LOG_UINT("refused", s->refused),
	           LOG_UINT("refused_locally", s->refused_locally), LOG_UINT("retries", s->retries),
	           LOG_UINT("needs_attention", s->needs_attention));
}

/* Callbacks of the lowest priority, or microseconds of them, run before the loop looks
 * for events again. */
#define LOOP_LOW_BATCH 16
#define LOOP_LOW_BATCH_US 1000

/* The daemon's loop, with three priorities: the HTTP client's transfers (lib/http.c)
 * and the engine's kick take the lowest, everything else the middle one, so that a
 * database result (the next claim statement, the next outcome write) is handled before
 * the transfers ready in the same pass, and found within LOOP_LOW_BATCH of them or
 * LOOP_LOW_BATCH_US of their time (at 1,000 in flight a claim's 512 new connections are
 * 30-35 ms of connects and sends, started by four lane timers of 5 ms each: the next
 * claim's statement waited for all four).
 * Changes to the watched sockets are applied once per pass (curl stops watching a
 * connection at each answer and watches it again for the next request). NULL when
 * libevent refuses. */
static struct event_base *loop_new(void)
{
	struct event_config *ec = event_config_new();
	if (ec == NULL)
		return NULL;
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	const struct timeval low_batch = {.tv_sec = 0, .tv_usec = LOOP_LOW_BATCH_US};
	event_config_set_max_dispatch_interval(ec, &low_batch, LOOP_LOW_BATCH, 2);
	struct event_base *base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (base != NULL && event_base_priority_init(base, 3) != 0) {
		event_base_free(base);
		return NULL;
	}
	return base;
}

/* Runs the loop until drained, finished (--once) or forced out; returns the exit code. */
static int run(struct daemon *d)
{
	d->base = loop_new();
	if (d->base == NULL) {
		log_fields(LOG_LVL_ERR, "startup_failed",
		           LOG_STR("reason", "cannot create the event loop"));
		return EXIT_RUNTIME;
	}
	struct engine_hooks hooks = {.ready = on_ready, .idle_exit = on_idle_exit, .arg = d};
	d->engine = engine_new(d->base, d->cfg, d->secret, d->once, &hooks);
	char *why = NULL;
	if (!metrics_new(d->base, d->engine, d->once ? "" : d->cfg->metrics_listen, &d->metrics,
	                 &why)) {
		log_fields(LOG_LVL_ERR, "startup_failed", LOG_STR("reason", why));
		free(why);
		engine_free(d->engine);
		event_base_free(d->base);
		return EXIT_RUNTIME;
	}
	/* status calls settle unknown outcomes (--once too) and serve the reconcile pass */
	d->status = status_client_new(d->base, d->cfg, d->secret);
	if (d->status == NULL)
		log_fields(
		    LOG_LVL_ERR, "status_calls_disabled",
		    LOG_STR("reason", "the HTTP client for status calls could not be set up"));
	engine_set_status_client(d->engine, d->status);
	if (!d->once) {
		d->alerts = alerts_new(d->engine);
		metrics_set_gauges_store(d->metrics, alerts_store(d->alerts));
		if (d->status != NULL)
			d->reconciler = reconciler_new(d->base, d->cfg, d->status);
		metrics_set_reconcile(d->metrics, d->reconciler, d->status);
	}
	d->service = service_new(d->base, d->engine);
	struct event *ev_term = evsignal_new(d->base, SIGTERM, on_stop_signal, d);
	struct event *ev_int = evsignal_new(d->base, SIGINT, on_stop_signal, d);
	struct event *ev_hup = evsignal_new(d->base, SIGHUP, on_reload_signal, d);
	event_add(ev_term, NULL);
	event_add(ev_int, NULL);
	event_add(ev_hup, NULL);

	log_fields(LOG_LVL_NOTICE, "starting", LOG_STR("version", PACKAGE_VERSION),
	           LOG_STR("instance", d->cfg->instance_name),
	           LOG_STR("mode", d->once ? "once" : "service"));
	engine_start(d->engine);
	if (d->reconciler)
		reconciler_start(d->reconciler);
	event_base_dispatch(d->base);

	int status = EXIT_CLEAN;
	if (d->forced)
		status = EXIT_RUNTIME;
	else if (d->once && engine_exit_status(d->engine) != 0) {
		const char *problem = engine_problem(d->engine);
		log_fields(LOG_LVL_ERR, "once_incomplete",
		           LOG_STR("reason",
		                   problem ? problem : "some due modifications are still pending"));
		status = EXIT_RUNTIME;
	}
	log_summary(d->engine);

	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	service_free(d->service);
	metrics_free(d->metrics);
	reconciler_free(d->reconciler);
	alerts_free(d->alerts);
	engine_free(d->engine);
	status_client_free(d->status);
	event_base_free(d->base);
	return status;
}

/* Keeps the authentication key out of core dumps and away from same-user ptrace and
 * /proc/PID/mem readers: the process is made non-dumpable (Linux; the unit also sets
 * LimitCORE=0). */
static void no_core_dumps(void)
{
#ifdef __linux__
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		fprintf(stderr, "smartpayd: warning: prctl(PR_SET_DUMPABLE, 0) failed\n");
#endif
}

/* Buffers of 128 KiB and more (a batch of outcomes or intents sent as one JSON
 * parameter, libpq's buffers for it, a claim's result) get a mapping of their own and are
 * given back when freed. glibc's default raises that threshold to the largest buffer
 * freed, after which they come from the heap and their room stays in it: at 1,000 in
 * flight 0.6 MiB more peak memory (three alternating runs each). */
static void malloc_big_buffers_apart(void)
{
#if defined(__GLIBC__) && defined(M_MMAP_THRESHOLD)
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
}

int main(int argc, char **argv)
{
	no_core_dumps();
	malloc_big_buffers_apart();
	static const struct option options[] = {
	    {"config", required_argument, NULL, 'c'}, {"once", no_argument, NULL, 'o'},
	    {"check-config", no_argument, NULL, 'k'}, {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
	const char *path = CONFIG_DEFAULT_PATH;
	bool once = false, check = false;
	int opt;
	while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'o':
			once = true;
			break;
		case 'k':
			check = true;
			break;
		case 'V':
			printf("smartpayd %s\n", PACKAGE_VERSION);
			return EXIT_CLEAN;
		case 'h':
			usage(stdout);
			return EXIT_CLEAN;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "smartpayd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}

	struct daemon d = {.once = once};
	d.cfg = load_config(path);
	if (d.cfg == NULL)
		return EXIT_USAGE;
	if (check) {
		char *why = NULL;
		char *secret = config_read_secret(d.cfg, &why);
		if (secret == NULL) {
			fprintf(stderr, "%s: warning: %s\n", path, why);
			free(why);
		} else {
			explicit_bzero(secret, strlen(secret));
			free(secret);
		}
		print_warnings(d.cfg->warnings);
		printf("%s: configuration OK\n", path);
		config_free(d.cfg);
		return EXIT_CLEAN;
	}
	log_init("smartpayd", (enum log_level)d.cfg->log_level);
	if (d.cfg->warnings)
		log_fields(LOG_LVL_WARNING, "config_warning", LOG_STR("file", path),
		           LOG_STR("warnings", d.cfg->warnings));

	char *why = NULL;
	d.secret = config_read_secret(d.cfg, &why);
	if (d.secret == NULL) {
		log_fields(LOG_LVL_ERR, "startup_failed", LOG_STR("reason", why));
		free(why);
		config_free(d.cfg);
		return EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	event_set_log_callback(libevent_log);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_fields(LOG_LVL_ERR, "startup_failed",
		           LOG_STR("reason", "curl_global_init failed"));
		return EXIT_RUNTIME;
	}
	int status = run(&d);
	curl_global_cleanup();
	explicit_bzero(d.secret, strlen(d.secret));
	free(d.secret);
	config_free(d.cfg);
	return status;
}
