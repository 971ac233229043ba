/* Cancel requests through the cancel key, on worker threads (see cancel.h).
 *
 * The loop queues a request with a copy of the connection's key (PQgetCancel); a bgwork
 * worker sends it with PQcancel(), which blocks; the outcome is delivered on the loop. Two
 * workers, so one cancel stuck in a connect to a silent server does not hold up the
 * others. */
#include "cancel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgwork.h"

#define CANCEL_WORKERS 2

struct cancel_req {
	struct bgwork_job job; /* first: the job is the request */
	struct cancel *cq;
	PGcancel *key;
	void (*done)(void *arg, bool ok, const char *message); /* NULL once forgotten */
	void *arg;
	bool ok;
	char message[256];
};

struct cancel {
	struct bgwork *workers;
	bool closing; /* cancel_free: no callback runs any more */
};

static void req_work(struct bgwork_job *job)
{
	struct cancel_req *r = (struct cancel_req *)job;
	char err[256] = "";
	r->ok = PQcancel(r->key, err, (int)sizeof(err)) == 1;
	/* libpq's message ends in a newline */
	err[strcspn(err, "\r\n")] = '\0';
	snprintf(r->message, sizeof(r->message), "%s", r->ok ? "" : err);
}

static void req_done(struct bgwork_job *job, bool ran)
{
	struct cancel_req *r = (struct cancel_req *)job;
	/* cancel_forget runs on the loop's thread too, so done is stable here */
	if (ran && r->done && !r->cq->closing)
		r->done(r->arg, r->ok, r->message);
	PQfreeCancel(r->key);
	free(r);
}

int cancel_new(struct event_base *base, struct cancel **out)
{
	struct cancel *cq = calloc(1, sizeof(*cq));
	if (!cq)
		return -ENOMEM;
	int err = bgwork_new(base, CANCEL_WORKERS, &cq->workers);
	if (err < 0) {
		free(cq);
		return err;
	}
	*out = cq;
	return 0;
}

struct cancel_req *cancel_send(struct cancel *cq, PGconn *pg,
                               void (*done)(void *arg, bool ok, const char *message), void *arg)
{
	if (!cq || !pg)
		return NULL;
	struct cancel_req *r = calloc(1, sizeof(*r));
	PGcancel *key = r ? PQgetCancel(pg) : NULL;
	if (key) {
		*r = (struct cancel_req){.job = {.work = req_work, .done = req_done},
		                         .cq = cq,
		                         .key = key,
		                         .done = done,
		                         .arg = arg};
		if (bgwork_submit(cq->workers, &r->job) == 0)
			return r;
	}
	PQfreeCancel(key); /* (NULL: nothing) */
	free(r);
	return NULL;
}

void cancel_forget(struct cancel_req *req)
{
	/* the workers never read done; req_done, which does, runs on this thread */
	if (req)
		req->done = NULL;
}

void cancel_free(struct cancel **cqp)
{
	struct cancel *cq = *cqp;
	if (!cq)
		return;
	/* the owner's callbacks are not run: it is going away (cancel.h) */
	cq->closing = true;
	bgwork_free(&cq->workers);
	free(cq);
	*cqp = NULL;
}
