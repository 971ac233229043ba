/* What each kind of job is to every layer (job_kind.h). */
#include "job_kind.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

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

const char *job_kind_command(const struct conf_job *j, char *buf, size_t buflen)
{
	switch (j->kind) {
	case JOB_KIND_SQL:
		return j->command ? j->command : "";
	case JOB_KIND_PLUGIN:
		snprintf(buf, buflen, "plugin %s", j->plugin ? j->plugin : "");
		return buf;
	case JOB_KIND_HTTP:
		return j->http && j->http->shown ? j->http->shown : "http";
	}
	return "";
}

void job_kind_once(enum job_kind k, const char *command, char *out, size_t outlen)
{
	const char *fenced = config_fenced(k, command);
	if (fenced)
		snprintf(out, outlen, "fenced: %s", fenced);
	else
		snprintf(out, outlen, k == JOB_KIND_HTTP ? "at most once per attempt" : "yes");
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
