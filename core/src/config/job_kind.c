/* What each kind of job is to every layer (job_kind.h). */
#include "job_kind.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "httpc.h"
#include "sqlscan.h"

const char *job_kind_name(enum job_kind k)
{
	switch (k) {
	case JOB_KIND_SQL:
		return "sql";
	case JOB_KIND_PLUGIN:
		return "plugin";
	case JOB_KIND_HTTP:
		return "http";
	}
	return "sql"; /* (not a kind: memory gone wrong) */
}

int job_kind_parse(const char *name, enum job_kind *out)
{
	for (int k = 0; k < JOB_KIND_COUNT; k++) {
		if (strcmp(name, job_kind_name((enum job_kind)k)) == 0) {
			*out = (enum job_kind)k;
			return 0;
		}
	}
	return -EINVAL;
}

const char *const run_trigger_names[TRIGGER_COUNT] = {
    [TRIGGER_SCHEDULE] = "schedule", [TRIGGER_CATCHUP] = "catchup",    [TRIGGER_MANUAL] = "manual",
    [TRIGGER_UPSTREAM] = "upstream", [TRIGGER_RETRY] = "retry",        [TRIGGER_NOTIFY] = "notify",
    [TRIGGER_REBOOT] = "reboot",     [TRIGGER_FRESHNESS] = "freshness"};

int run_trigger_parse(const char *name, enum run_trigger *out)
{
	for (int t = 0; t < TRIGGER_COUNT; t++)
		if (strcmp(name, run_trigger_names[t]) == 0) {
			*out = (enum run_trigger)t;
			return 0;
		}
	return -EINVAL;
}

void job_kind_http_shown(const struct conf_http_call *h, char *out, size_t outlen)
{
	char shown[900];
	httpc_url_shown(h->url, shown, sizeof(shown));
	snprintf(out, outlen, "%s %s", h->method ? h->method : "GET", shown);
}

const char *job_kind_command(const struct conf_job *j, char *buf, size_t buflen)
{
	switch (j->kind) {
	case JOB_KIND_SQL:
		return j->command ? j->command : "";
	case JOB_KIND_PLUGIN:
		snprintf(buf, buflen, "plugin %s", j->plugin ? j->plugin : "");
		return buf;
	case JOB_KIND_HTTP:
		if (j->http)
			job_kind_http_shown(j->http, buf, buflen);
		else
			snprintf(buf, buflen, "http");
		return buf;
	}
	return "";
}

void job_kind_once(enum job_kind k, const char *command, char *out, size_t outlen)
{
	switch (k) {
	case JOB_KIND_SQL:
		if (command && sqlscan_classify(command) == SQLSCAN_ONE_TRANSACTION)
			snprintf(out, outlen, "yes");
		else
			snprintf(out, outlen, "fenced: %s",
			         sqlscan_class_name(sqlscan_classify(command ? command : "")));
		return;
	case JOB_KIND_PLUGIN:
		snprintf(out, outlen, "fenced: plugin");
		return;
	case JOB_KIND_HTTP:
		snprintf(out, outlen, "at most once per attempt");
		return;
	}
	snprintf(out, outlen, "-");
}

static const char *job_kind_lost_note(enum job_kind k)
{
	switch (k) {
	case JOB_KIND_SQL:
	case JOB_KIND_PLUGIN:
		return ""; /* its backend was ended first: what it did rolled back, or committed */
	case JOB_KIND_HTTP:
		return "; the request may have reached the server: an HTTP call is sent at most "
		       "once per attempt, and whether the server got this one is unknown";
	}
	return "";
}

char *job_kind_lost_notes_json(void)
{
	json_t *o = json_object();
	char *text = NULL;
	bool ok = o != NULL;

	for (int k = 0; ok && k < JOB_KIND_COUNT; k++)
		ok = json_object_set_new(o, job_kind_name((enum job_kind)k),
		                         json_string(job_kind_lost_note((enum job_kind)k))) == 0;
	if (ok)
		text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}
