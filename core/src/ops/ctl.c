/* The local control channel (ctl.h): a unix socket in state_dir, served with bufferevents on
 * the daemon's loop; one JSON request per line, one JSON answer per line. */
#include "ctl.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/queue.h>
#include <sys/un.h>
#include <unistd.h>

#include "array.h"
#include "config.h"
#include "coord.h"
#include "exec.h"
#include "log.h"
#include "sched.h"
#include "status.h"
#include "text.h"

/* Clients connected at once; more are told so and closed (a local tool holds one). */
#define MAX_CLIENTS 64

/* ---- protocol (pure) ------------------------------------------------------------------ */

static const char *const cmd_names[] = {"status", "pause", "resume", "trigger", "drop"};

int ctl_parse_request(const char *line, size_t len, struct ctl_request *out, char *err,
                      size_t errlen)
{
	json_error_t je;
	json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je), *v;
	const char *key;
	int rc = -EINVAL;

	*out = (struct ctl_request){0};
	if (!o) {
		snprintf(err, errlen, "bad request: not JSON (%s at column %d)", je.text,
		         je.column);
		return -EINVAL;
	}
	if (!json_is_object(o)) {
		snprintf(err, errlen,
		         "bad request: expected a JSON object like {\"cmd\":\"status\"}");
		goto out;
	}
	const char *cmd = json_string_value(json_object_get(o, "cmd"));
	if (!cmd) {
		snprintf(err, errlen, "bad request: \"cmd\" (a string) is missing");
		goto out;
	}
	size_t i;
	for (i = 0; i < sizeof(cmd_names) / sizeof(cmd_names[0]); i++)
		if (strcmp(cmd, cmd_names[i]) == 0)
			break;
	if (i == sizeof(cmd_names) / sizeof(cmd_names[0])) {
		snprintf(
		    err, errlen,
		    "bad request: unknown cmd \"%.64s\" (known: status, pause, resume, trigger, "
		    "drop)",
		    cmd);
		goto out;
	}
	out->cmd = (enum ctl_cmd)i;
	json_object_foreach(o, key, v)
	{
		if (strcmp(key, "cmd") == 0)
			continue;
		if (strcmp(key, "job") == 0) {
			/* pgcrond's name, a jobid, or a pg_cron name (any text of a
			 * PostgreSQL name: 1 to 63 bytes), resolved against the jobs by
			 * resolve() */
			const char *job = json_string_value(v);
			size_t len = job ? strlen(job) : 0;
			if (!job || len == 0 || len > 63 || len != json_string_length(v) ||
			    !text_utf8_valid(job)) {
				snprintf(err, errlen,
				         "bad request: \"job\" must be a job name (1 to 63 bytes: "
				         "pgcrond's name, the name given to cron.schedule, or the "
				         "jobid)");
				goto out;
			}
			snprintf(out->job, sizeof(out->job), "%s", job);
		} else if (strcmp(key, "force") == 0 || strcmp(key, "wait") == 0) {
			if (!json_is_boolean(v) || out->cmd != CTL_TRIGGER) {
				snprintf(err, errlen,
				         "bad request: \"%s\" is a boolean of cmd \"trigger\" only",
				         key);
				goto out;
			}
			*(key[0] == 'f' ? &out->force : &out->wait) = json_is_true(v);
		} else if (strcmp(key, "by") == 0) {
			const char *by = json_string_value(v);
			size_t len = by ? strlen(by) : 0;
			if (!by || out->cmd != CTL_DROP || len == 0 || len >= sizeof(out->by) ||
			    strspn(by, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			               "0123456789._-") != len ||
			    len != json_string_length(v)) {
				snprintf(
				    err, errlen,
				    "bad request: \"by\" is a user name (1 to %zu letters, digits, "
				    "\".\", \"_\", \"-\") of cmd \"drop\" only",
				    sizeof(out->by) - 1);
				goto out;
			}
			snprintf(out->by, sizeof(out->by), "%s", by);
		} else {
			snprintf(err, errlen, "bad request: unknown key \"%.64s\"", key);
			goto out;
		}
	}
	if (out->cmd != CTL_STATUS && !out->job[0]) {
		snprintf(err, errlen, "bad request: cmd \"%s\" needs \"job\"", cmd);
		goto out;
	}
	rc = 0;
out:
	json_decref(o);
	return rc;
}

char *ctl_format_request(const struct ctl_request *r)
{
	json_t *o = json_object();
	char *text = NULL, *line = NULL;
	int rc = o ? json_object_set_new(o, "cmd", json_string(cmd_names[r->cmd])) : -1;
	if (rc == 0 && r->job[0])
		rc = json_object_set_new(o, "job", json_string(r->job));
	if (rc == 0 && r->cmd == CTL_TRIGGER)
		rc = json_object_set_new(o, "force", json_boolean(r->force)) |
		     json_object_set_new(o, "wait", json_boolean(r->wait));
	if (rc == 0 && r->by[0])
		rc = json_object_set_new(o, "by", json_string(r->by));
	if (rc == 0 && (text = json_dumps(o, JSON_COMPACT)) != NULL &&
	    asprintf(&line, "%s\n", text) < 0)
		line = NULL;
	free(text);
	json_decref(o);
	return line;
}

int ctl_socket_path(const char *state_dir, char *out, size_t outlen)
{
	struct sockaddr_un sa;
	size_t max = outlen < sizeof(sa.sun_path) ? outlen : sizeof(sa.sun_path);
	int n = snprintf(out, max, "%s/%s", state_dir, CTL_SOCKET_NAME);
	return n < 0 || (size_t)n >= max ? -ENAMETOOLONG : 0;
}

/* ---- the paused jobs, kept in state_dir ------------------------------------------------ */

int ctl_load_paused(const char *state_dir, char ***names, size_t *n)
{
	char path[4096], *line = NULL;
	size_t cap = 0, k = 0, cap_v = 0;
	char **v = NULL;
	int rc = 0;

	*names = NULL;
	*n = 0;
	if (snprintf(path, sizeof(path), "%s/%s", state_dir, CTL_PAUSED_FILE) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	FILE *f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	ssize_t len;
	while ((len = getline(&line, &cap, f)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (!config_valid_job_name(line))
			continue; /* blank or damaged: nothing to pause */
		if (array_grow(&v, k, &cap_v, sizeof(*v), 8) < 0 || !(v[k] = strdup(line))) {
			rc = -ENOMEM;
			break;
		}
		k++;
	}
	free(line);
	fclose(f);
	if (rc < 0) {
		text_free_list(v, k);
		return rc;
	}
	*names = v;
	*n = k;
	return 0;
}

/* Write the scheduler's paused set: a temporary file, fsync, rename, so a crash leaves the old
 * or the new list, never half of one. */
static int save_paused(const char *state_dir, const struct sched *s)
{
	const char *const *names;
	size_t n = sched_paused_names(s, &names);
	char path[4096], tmp[4112];
	if (snprintf(path, sizeof(path), "%s/%s", state_dir, CTL_PAUSED_FILE) >=
	        (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	FILE *f = fdopen(fd, "w");
	if (!f) {
		int e = errno;
		close(fd);
		unlink(tmp);
		return -e;
	}
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s\n", names[i]);
	int rc = fflush(f) == 0 && fsync(fd) == 0 ? 0 : -errno;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

/* ---- the server ----------------------------------------------------------------------- */

struct ctl {
	struct event_base *base;
	const struct status_src *src;
	char *state_dir;
	char path[108];
	struct evconnlistener *listener;
	LIST_HEAD(, client) clients;
	size_t n_clients;
	struct log_complaint registry_complaint;
};

struct client {
	struct ctl *c;
	struct bufferevent *bev; /* NULL once the peer has gone */
	struct sched_waiter w;   /* a trigger --wait under way */
	bool waiting;
	bool closing; /* close once the answer is written */
	char who[96]; /* the peer, for the log: "alice (uid 1000)" */
	LIST_ENTRY(client) link;
};

static void client_free(struct client *cl)
{
	struct ctl *c = cl->c;
	if (cl->bev) {
		bufferevent_free(cl->bev);
		cl->bev = NULL;
	}
	if (cl->waiting)
		return; /* freed when the run's answer comes (waiter_done) */
	LIST_REMOVE(cl, link);
	c->n_clients--;
	free(cl);
}

/* Send O (taken) as one line. */
static void reply(struct client *cl, json_t *o)
{
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (cl->bev)
		evbuffer_add_printf(
		    bufferevent_get_output(cl->bev), "%s\n",
		    text ? text
		         : "{\"ok\":false,\"code\":\"internal\",\"error\":\"out of memory\"}");
	free(text);
}

__attribute__((format(printf, 3, 4))) static void reply_error(struct client *cl, const char *code,
                                                              const char *fmt, ...)
{
	char msg[2048];
	TEXT_VA_FORMAT(msg, sizeof(msg), fmt);
	reply(cl, json_pack("{s:b, s:s, s:s}", "ok", 0, "code", code, "error", msg));
}

static void registry_done(void *arg, const struct exec_outcome *o)
{
	struct ctl *c = arg;
	/* no connection could be made: the pool says why (exec_drive.c), once for a server too
	 * old; nothing an install mends */
	if (!o->ok && o->sqlstate && strcmp(o->sqlstate, "08001") == 0)
		return;
	if (!o->ok && log_complain(&c->registry_complaint, NULL))
		log_warning("cannot record the paused jobs in pgcrond.job: %s", o->message);
}

/* pgcrond.job.paused := whether each job is paused, in the history database (a job not in
 * the registry is left alone). */
void ctl_sync_registry(struct ctl *c)
{
	const struct pgc_config *cfg = c ? sched_config(c->src->sched) : NULL;
	const char *const *names;
	if (!cfg || !cfg->history_database)
		return;
	size_t n = sched_paused_names(c->src->sched, &names);
	char *text = text_pg_array(names, n);
	if (!text)
		return;
	const char *params[] = {text};
	/* on a job's session of the history database (exec.h), whose search_path is the server's:
	 * every name qualified, IS DISTINCT FROM (an unqualified "=") spelled out */
#define PAUSED_NOW "(jobname OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[]))"
	struct exec_stmt st = {.sql = "UPDATE pgcrond.job SET paused = " PAUSED_NOW
	                              " WHERE (paused OPERATOR(pg_catalog.=) " PAUSED_NOW
	                              ") IS NOT TRUE",
	                       .params = params,
	                       .n_params = 1};
#undef PAUSED_NOW
	struct exec_run_spec spec = {.database = cfg->history_database,
	                             .stmts = &st,
	                             .n_stmts = 1,
	                             .timeout_ms = 30000,
	                             .on_done = registry_done,
	                             .arg = c};
	struct exec_run *run;
	if (exec_submit(c->src->ex, &spec, &run) < 0)
		log_warning("cannot record the paused jobs in pgcrond.job: out of memory");
	free(text);
}

void ctl_paused_changed(struct ctl *c)
{
	if (!c)
		return;
	int rc = save_paused(c->state_dir, c->src->sched);
	if (rc < 0)
		log_warning("cannot save the paused jobs in %s/%s: %s", c->state_dir,
		            CTL_PAUSED_FILE, strerror(-rc));
	ctl_sync_registry(c);
}

/* RQ's job as the user wrote it (ctl.h): pgcrond's name, a jobid or a pg_cron name, made
 * pgcrond's name in place. False (answered) when it names several jobs; a name no job has
 * is left as it is, for the command's own "no job" answer. */
static bool resolve(struct client *cl, struct ctl_request *rq)
{
	const struct pgc_config *cfg = sched_config(cl->c->src->sched);
	const struct conf_job *j, *cands[8];
	size_t n;

	if (!rq->job[0] || !cfg)
		return true;
	int rc = config_resolve_job(cfg, rq->job, &j, cands, 8, &n);
	if (rc == 0) {
		snprintf(rq->job, sizeof(rq->job), "%s", j->name);
		return true;
	}
	if (rc != -ENOTUNIQ)
		return true;
	char list[1400], q[260];
	size_t o = 0;
	list[0] = '\0';
	for (size_t i = 0; i < n && i < 8; i++) {
		const struct conf_job_sql *sql = &cands[i]->more->sql;
		text_format(
		    list + o, sizeof(list) - o, "%sjobid %lld (role \"%s\", %s%s, pgcrond name %s)",
		    i ? "; " : "", (long long)sql->jobid, sql->username ? sql->username : "?",
		    sql->cron_name ? "named " : "unnamed",
		    sql->cron_name ? text_quote(sql->cron_name, q, sizeof(q)) : "", cands[i]->name);
		o = strlen(list);
	}
	reply_error(cl, "ambiguous",
	            "job name %s is ambiguous, jobs of several roles answer to it: %s%s; give the "
	            "jobid instead",
	            text_quote(rq->job, q, sizeof(q)), list, n > 8 ? "; ..." : "");
	return false;
}

/* A job the daemon leaves out (a job made in SQL it cannot run) says why; none is unknown. */
static void no_such_job(struct client *cl, const struct ctl_request *rq)
{
	char q[260];
	const char *id;
	json_t *e, *refused = cl->c->src->refused ? *cl->c->src->refused : NULL;
	json_object_foreach(refused, id, e)
	{
		const char *cron = json_string_value(json_object_get(e, "cron_name"));
		if (!strcmp(id, rq->job) || (cron && !strcmp(cron, rq->job)) ||
		    !strcmp(json_string_value(json_object_get(e, "name")), rq->job)) {
			reply_error(cl, "refused", "%s",
			            json_string_value(json_object_get(e, "said")));
			return;
		}
	}
	reply_error(cl, "no_such_job", "no job %s is configured; 'pgcrond status' lists the jobs",
	            text_quote(rq->job, q, sizeof(q)));
}

/* Answer RC, what a command on RQ's job returned, when it failed (no such job, or any other
 * error): true then. */
static bool answered_failure(struct client *cl, const struct ctl_request *rq, int rc)
{
	if (rc == -ENOENT)
		no_such_job(cl, rq);
	else if (rc < 0)
		reply_error(cl, "internal", "%s", strerror(-rc));
	return rc < 0;
}

static void do_status(struct client *cl, struct ctl_request *rq)
{
	if (!resolve(cl, rq))
		return;
	json_t *st = status_snapshot(cl->c->src, rq->job[0] ? rq->job : NULL);
	if (!st && errno == ENOENT) {
		no_such_job(cl, rq);
		return;
	}
	if (!st) {
		reply_error(cl, "internal", "out of memory");
		return;
	}
	reply(cl, json_pack("{s:b, s:o}", "ok", 1, "status", st));
}

static void do_pause(struct client *cl, struct ctl_request *rq)
{
	struct ctl *c = cl->c;
	if (!resolve(cl, rq))
		return;
	bool pause = rq->cmd == CTL_PAUSE;
	int rc = pause ? sched_pause(c->src->sched, rq->job) : sched_resume(c->src->sched, rq->job);
	if (rc == 0)
		log_notice("%s of %s requested on the control socket by %s",
		           pause ? "pause" : "resume", rq->job, cl->who);
	if (rc == -EALREADY) {
		reply(cl, json_pack("{s:b, s:s, s:b, s:b}", "ok", 1, "job", rq->job, "paused",
		                    pause, "changed", 0));
		return;
	}
	if (answered_failure(cl, rq, rc))
		return;
	int src = save_paused(c->state_dir, c->src->sched);
	char warn[512] = "";
	/* several instances: every one follows (coord.h); while the history database is
	 * away, this one alone until it is back */
	if (coord_pause(sched_coord(c->src->sched), rq->job, pause) == -ENOTCONN)
		log_notice("%s: %s on this instance; the other instances follow once the history "
		           "database is reachable again",
		           rq->job, pause ? "paused" : "resumed");
	if (src < 0) {
		snprintf(warn, sizeof(warn),
		         "%s at once, but not saved in %s/%s (%s): a restart forgets it",
		         pause ? "paused" : "resumed", c->state_dir, CTL_PAUSED_FILE,
		         strerror(-src));
		log_warning("%s: %s", rq->job, warn);
	}
	ctl_sync_registry(c);
	json_t *o = json_pack("{s:b, s:s, s:b, s:b}", "ok", 1, "job", rq->job, "paused", pause,
	                      "changed", 1);
	if (o && warn[0])
		json_object_set_new(o, "warning", json_string(warn));
	reply(cl, o);
}

/* Drop the job's waiting runs, each recorded skipped "dropped by USER, uid N (pid P)": the
 * user name as the client gave it, beside the uid the kernel gave (cl->who). */
static void do_drop(struct client *cl, struct ctl_request *rq)
{
	if (!resolve(cl, rq))
		return;
	char why[sizeof(rq->by) + sizeof(cl->who) + 16];
	snprintf(why, sizeof(why), "dropped by %s, %s", rq->by[0] ? rq->by : "an unnamed user",
	         cl->who);
	int n = sched_drop(cl->c->src->sched, rq->job, why);
	if (answered_failure(cl, rq, n))
		return;
	log_notice("%s: %d waiting run(s) %s on the control socket", rq->job, n, why);
	reply(cl,
	      json_pack("{s:b, s:s, s:i, s:s}", "ok", 1, "job", rq->job, "dropped", n, "by", why));
}

static void read_cb(struct bufferevent *bev, void *arg);

static void waiter_done(struct sched_waiter *w, const struct sched_result *res)
{
	struct client *cl = (struct client *)((char *)w - offsetof(struct client, w));
	cl->waiting = false;
	json_t *r = json_pack("{s:s, s:s, s:s, s:i, s:I}", "job", res->job, "status", res->status,
	                      "message", res->message, "attempt", res->attempt, "duration_ms",
	                      (json_int_t)(res->duration_us / 1000));
	if (r && res->sqlstate && *res->sqlstate)
		json_object_set_new(r, "sqlstate", json_string(res->sqlstate));
	if (!cl->bev) {
		json_decref(r);
		client_free(cl); /* the client went away meanwhile */
		return;
	}
	reply(cl, r ? json_pack("{s:b, s:o}", "ok", 1, "result", r) : NULL);
	/* requests that came behind it, from the loop: this runs inside the scheduler's
	 * bookkeeping of the run, which must not be re-entered */
	bufferevent_enable(cl->bev, EV_READ);
	bufferevent_trigger(cl->bev, EV_READ,
	                    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void do_trigger(struct client *cl, struct ctl_request *rq)
{
	struct sched *s = cl->c->src->sched;
	if (!resolve(cl, rq))
		return;
	int rc = sched_trigger_check(s, rq->job, rq->force);
	if (rc == 0)
		log_notice("manual run of %s requested on the control socket by %s%s", rq->job,
		           cl->who, rq->force ? " (forced)" : "");
	if (rc < 0) {
		/* answered below */
	} else if (rq->wait) {
		cl->w.done = waiter_done;
		cl->waiting = true;
		rc = sched_trigger_wait(s, rq->job, rq->force, &cl->w);
		if (rc < 0)
			cl->waiting = false;
	} else {
		rc = sched_trigger(s, rq->job, TRIGGER_MANUAL, rq->force);
	}
	if (rc == 0) {
		if (!rq->wait)
			reply(cl,
			      json_pack("{s:b, s:s, s:b}", "ok", 1, "job", rq->job, "started", 1));
		return;
	}
	switch (rc) {
	case -EPERM:
		reply_error(
		    cl, "disabled",
		    "job \"%s\" is disabled (enabled = false); 'pgcrond trigger --force %s' "
		    "runs it anyway",
		    rq->job, rq->job);
		break;
	case -ESHUTDOWN:
		reply_error(cl, "shutting_down", "pgcrond is shutting down; no new run starts");
		break;
	default:
		answered_failure(cl, rq, rc);
	}
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct client *cl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char err[256];

	while (!cl->waiting && !cl->closing) {
		size_t len;
		char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
		if (!line && evbuffer_get_length(in) <= CTL_MAX_LINE)
			break; /* the rest of the line is still to come */
		struct ctl_request rq;
		if (!line || len > CTL_MAX_LINE) {
			reply_error(cl, "bad_request",
			            "bad request: a request line is at most %d bytes",
			            CTL_MAX_LINE);
			cl->closing = !line; /* no end of it in sight: the line is never read */
		} else if (ctl_parse_request(line, len, &rq, err, sizeof(err)) < 0) {
			reply_error(cl, "bad_request", "%s", err);
		} else if (rq.cmd == CTL_STATUS) {
			do_status(cl, &rq);
		} else if (rq.cmd == CTL_TRIGGER) {
			do_trigger(cl, &rq);
		} else if (rq.cmd == CTL_DROP) {
			do_drop(cl, &rq);
		} else {
			do_pause(cl, &rq);
		}
		free(line);
	}
	/* answers come in request order: read no further while a run is waited for */
	if (cl->waiting || cl->closing)
		bufferevent_disable(bev, EV_READ);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct client *cl = arg;
	if (cl->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		client_free(cl);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *cl = arg;
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	/* a client that only shut down its sending side still gets its answers */
	if (!(what & BEV_EVENT_ERROR) &&
	    (cl->waiting || evbuffer_get_length(bufferevent_get_output(bev)) > 0)) {
		cl->closing = true;
		bufferevent_disable(bev, EV_READ);
		return;
	}
	client_free(cl);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
	struct ctl *c = arg;
	struct client *cl = calloc(1, sizeof(*cl));
	struct bufferevent *bev =
	    cl ? bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
	if (!bev) {
		free(cl);
		evutil_closesocket(fd);
		return;
	}
	cl->c = c;
	cl->bev = bev;
	LIST_INSERT_HEAD(&c->clients, cl, link);
	c->n_clients++;
	/* who connected, as the kernel says (no user name: an NSS lookup may block the loop) */
	struct ucred cred;
	socklen_t len = sizeof(cred);
	snprintf(cl->who, sizeof(cl->who), "an unknown peer");
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		snprintf(cl->who, sizeof(cl->who), "uid %u (pid %d)", (unsigned)cred.uid,
		         (int)cred.pid);
	bufferevent_setcb(bev, read_cb, write_cb, event_cb, cl);
	bufferevent_setwatermark(bev, EV_READ, 0, CTL_MAX_LINE * 2);
	if (c->n_clients > MAX_CLIENTS) {
		reply_error(cl, "busy", "too many control clients (%d); try again", MAX_CLIENTS);
		cl->closing = true;
	}
	bufferevent_enable(bev, cl->closing ? EV_WRITE : EV_READ | EV_WRITE);
}

/* A socket file at PATH: a live daemon's (refuse), a dead one's (remove), or something else
 * (refuse). */
static int clear_stale(const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket; remove it", path);
		return -EEXIST;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int alive = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	if (alive) {
		snprintf(err, errlen,
		         "another pgcrond answers on %s: two daemons must not share a state_dir",
		         path);
		return -EADDRINUSE;
	}
	return unlink(path) == 0 || errno == ENOENT ? 0 : -errno;
}

int ctl_open(struct event_base *base, const char *state_dir, const struct status_src *src,
             struct ctl **out, char *err, size_t errlen)
{
	struct ctl *c = calloc(1, sizeof(*c));
	int rc;

	if (!c || !(c->state_dir = strdup(state_dir))) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	c->base = base;
	c->src = src;
	if ((rc = ctl_socket_path(state_dir, c->path, sizeof(c->path))) < 0) {
		snprintf(err, errlen,
		         "the control socket path %s/%s is longer than a unix socket allows (%zu "
		         "bytes); choose a shorter state_dir",
		         state_dir, CTL_SOCKET_NAME, sizeof(c->path) - 1);
		goto fail;
	}
	err[0] = '\0';
	if ((rc = clear_stale(c->path, err, errlen)) < 0) {
		if (!err[0])
			snprintf(err, errlen, "%s: %s", c->path, strerror(-rc));
		goto fail;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, c->path, strlen(c->path) + 1);
	/* created 0660 from the start: the daemon's user and group, nobody else */
	mode_t old = umask(0117);
	errno = 0;
	c->listener = evconnlistener_new_bind(base, accept_cb, c,
	                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
	                                      (struct sockaddr *)&sa, sizeof(sa));
	int e = errno ? errno : ENOMEM;
	umask(old);
	if (!c->listener) {
		rc = -e;
		snprintf(err, errlen, "cannot listen on %s: %s", c->path, strerror(e));
		goto fail;
	}
	*out = c;
	return 0;
fail:
	if (c)
		free(c->state_dir);
	free(c);
	return rc;
}

void ctl_free(struct ctl **cp)
{
	struct ctl *c = *cp;
	if (!c)
		return;
	evconnlistener_free(c->listener);
	unlink(c->path);
	for (struct client *cl; (cl = LIST_FIRST(&c->clients));) {
		cl->waiting = false; /* the scheduler is gone: nothing will answer */
		client_free(cl);
	}
	free(c->state_dir);
	free(c);
	*cp = NULL;
}
