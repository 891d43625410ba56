/* The pool controller's writes: guarded Node transitions, Node deletions, EC2 calls that feed the view, Events and logs. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller_internal.h"
#include "stratos/kube_recorder.h"
#include "stratos/nodepool.h"
#include "stratos/timeutil.h"

void
ctl_log(enum log_level level, const char *pool, const char *node, const char *instance,
    json_t *fields, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!log_enabled(level)) {
		json_decref(fields);
		return;
	}
	if (fields == NULL)
		fields = json_object();
	if (fields != NULL && pool != NULL && pool[0] != '\0')
		json_object_set_new(fields, "pool", json_string(pool));
	if (fields != NULL && node != NULL && node[0] != '\0')
		json_object_set_new(fields, "node", json_string(node));
	if (fields != NULL && instance != NULL && instance[0] != '\0')
		json_object_set_new(fields, "instance", json_string(instance));
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(level, fields, "%s", msg);
}

void
ctl_rv(const struct node_info *n, char out[24])
{
	snprintf(out, 24, "%" PRIu64, n->obj.rv);
}

int
ctl_transition(struct ctl_run *r, const struct node_info *n, const struct nodepool *pool,
    enum transition t, const struct transition_args *args, struct node_info **out)
{
	struct controller *c = r->ctl;
	struct kube_error err = { 0 };
	int64_t t0 = time_mono_ms();
	char rv[24];
	json_t *patch;
	int rc;

	if (out != NULL)
		*out = NULL;
	if (!ctl_acting(r))
		return -ECANCELED;
	patch = transition_build(n, pool, t, time_real_ms(), args, &rc);
	if (patch == NULL)
		return rc;
	if (json_array_size(patch) == 0) {
		json_decref(patch);
		if (out != NULL)
			*out = (struct node_info *)cache_obj_ref((struct cache_obj *)&n->obj);
		return 0;
	}
	ctl_rv(n, rv);
	rc = node_cache_patch(c->ctx.nodes, c->ctx.kube, node_info_name(n), rv, patch, out, &err);
	json_decref(patch);
	if (rc == 0)
		ctl_log(LOG_LEVEL_INFO, node_info_pool(n) != NULL ? node_info_pool(n) :
		    (pool != NULL ? pool->name : NULL), node_info_name(n), n->instance_id,
		    json_pack("{s:s,s:s,s:I,s:b}", "transition", transition_name(t), "from",
		    n->state != NULL ? n->state : "", "ms", (json_int_t)(time_mono_ms() - t0),
		    "set", args == NULL || args->since_ms != 0 || args->workload != NULL),
		    "node %s", transition_name(t));
	else
		ctl_log(rc == -EBUSY ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN, node_info_pool(n),
		    node_info_name(n), n->instance_id, json_pack("{s:s,s:s,s:i}", "transition",
		    transition_name(t), "error", err.message, "code", (int)err.code),
		    rc == -EBUSY ? "node changed meanwhile; looking again" : "node write failed");
	return rc;
}

int
ctl_delete_node(struct ctl_run *r, const char *name, const char *rv)
{
	struct controller *c = r->ctl;
	struct kube_error err = { 0 };
	char path[KUBE_PATH_MAX];
	json_t *opts = NULL;
	int rc;

	if (!ctl_acting(r))
		return -ECANCELED;
	if ((rc = kube_path(path, &KUBE_NODES, NULL, name, NULL)) < 0)
		return rc;
	if (rv != NULL)
		opts = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "DeleteOptions",
		    "preconditions", "resourceVersion", rv);
	rc = kube_delete(c->ctx.kube, path, opts, &err);
	json_decref(opts);
	if (rc == -ENOENT)
		rc = 0;
	if (rc == 0) {
		cache_remove(node_cache_base(c->ctx.nodes), name, 0);
		ctl_log(LOG_LEVEL_INFO, NULL, name, NULL, NULL, "node deleted");
	} else {
		ctl_log(rc == -EBUSY ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN, NULL, name, NULL,
		    json_pack("{s:s}", "error", err.message), "node delete failed");
	}
	return rc;
}

static void
ctl__ec2_log(const char *op, const char *id, const struct ec2_error *err, int rc)
{
	ctl_log(rc == 0 ? LOG_LEVEL_INFO : LOG_LEVEL_WARN, NULL, NULL, id,
	    rc == 0 ? json_pack("{s:s,s:I}", "op", op, "ms", (json_int_t)err->elapsed_ms) :
	    json_pack("{s:s,s:s,s:s,s:s,s:I}", "op", op, "class", ec2_error_class_name(err->cls),
	    "code", err->code, "error", err->message, "ms", (json_int_t)err->elapsed_ms),
	    rc == 0 ? "%s accepted" : "%s failed", op);
}

int
ctl_ec2_run(struct ctl_run *r, const struct ec2_run_params *p, struct ec2_instance *out,
    struct ec2_error *err)
{
	struct ec2_instances list = { 0 };
	int rc;

	if (!ctl_acting(r))
		return -ECANCELED;
	rc = ec2_run_instances(r->ctl->ctx.ec2, p, NULL, &list, err);
	if (rc == 0 && list.len == 0)
		rc = -EIO;
	if (rc == 0) {
		ec2view_apply_instances(r->ctl->view, &list, false, false, NULL, NULL);
		*out = list.v[0];
		out->tags = NULL;               /* they stay with the list, freed below */
		out->ntags = 0;
		ctl_schedule_ec2(r);
	}
	ec2_instances_free(&list);
	return rc;
}

typedef int (*ctl__ids_op)(struct ec2_client *, const char *const *, size_t,
    const struct ec2_call *, struct ec2_state_changes *, struct ec2_error *);

static int
ctl__stop_op(struct ec2_client *c, const char *const *ids, size_t n, const struct ec2_call *call,
    struct ec2_state_changes *out, struct ec2_error *err)
{
	return ec2_stop_instances(c, ids, n, false, call, out, err);
}

static int
ctl__ids(struct ctl_run *r, const char *op, ctl__ids_op fn, const char *const *ids, size_t n,
    struct ec2_error *err)
{
	struct ec2_state_changes ch = { 0 };
	int rc;

	if (!ctl_acting(r))
		return -ECANCELED;
	rc = fn(r->ctl->ctx.ec2, ids, n, NULL, &ch, err);
	if (rc == 0)
		ec2view_apply_changes(r->ctl->view, &ch, NULL, NULL);
	else
		for (size_t i = 0; i < n; i++)
			ec2view_want(r->ctl->view, ids[i]);   /* whatever it did, look */
	ctl_schedule_ec2(r);
	for (size_t i = 0; i < n && i < 8; i++)
		ctl__ec2_log(op, ids[i], err, rc);
	ec2_state_changes_free(&ch);
	return rc;
}

int
ctl_ec2_start(struct ctl_run *r, const char *id, struct ec2_error *err)
{
	return ctl__ids(r, "StartInstances", ec2_start_instances, &id, 1, err);
}

int
ctl_ec2_stop(struct ctl_run *r, const char *id, struct ec2_error *err)
{
	return ctl__ids(r, "StopInstances", ctl__stop_op, &id, 1, err);
}

int
ctl_ec2_terminate(struct ctl_run *r, const char *const *ids, size_t n, struct ec2_error *err)
{
	return ctl__ids(r, "TerminateInstances", ec2_terminate_instances, ids, n, err);
}

int
ctl_ec2_tag_state(struct ctl_run *r, const char *const *ids, size_t n, const char *state,
    struct ec2_error *err)
{
	struct ec2_tag tag = { NODESTATE_TAG_STATE, state };
	int rc;

	if (!ctl_acting(r))
		return -ECANCELED;
	rc = ec2_create_tags(r->ctl->ctx.ec2, ids, n, &tag, 1, NULL, err);
	if (rc == 0)
		ec2view_apply_state_tag(r->ctl->view, ids, n, state);
	else
		ctl__ec2_log("CreateTags", n > 0 ? ids[0] : NULL, err, rc);
	return rc;
}

static void
ctl__event(struct ctl_run *r, const struct kube_event *ev, const char *fmt, va_list ap)
{
	char note[KUBE_EVENT_NOTE_MAX + 1];

	vsnprintf(note, sizeof(note), fmt, ap);
	kube_recorder_emit(r->ctl->ctx.events, ev, "%s", note);
}

void
ctl_event_node(struct ctl_run *r, const struct node_info *n, const char *type,
    const char *reason, const char *action, const char *fmt, ...)
{
	struct kube_event ev = {
		.type = type, .reason = reason, .action = action, .kind = "Node",
		.api_version = "v1", .name = node_info_name(n), .uid = n->uid,
	};
	va_list ap;

	va_start(ap, fmt);
	ctl__event(r, &ev, fmt, ap);
	va_end(ap);
}

void
ctl_event_pool(struct ctl_run *r, const struct nodepool *pool, const char *type,
    const char *reason, const char *action, const char *fmt, ...)
{
	struct kube_event ev = {
		.type = type, .reason = reason, .action = action, .kind = NODEPOOL_KIND,
		.api_version = NODEPOOL_API_VERSION, .name = pool->name,
		.uid = pool->uid[0] != '\0' ? pool->uid : NULL,
	};
	va_list ap;

	va_start(ap, fmt);
	ctl__event(r, &ev, fmt, ap);
	va_end(ap);
}
