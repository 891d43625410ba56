/* EC2 XML replies: instances, state changes, with libxml2, matched on local names. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ec2_internal.h"
#include "stratos/aws_xml.h"
#include "stratos/timeutil.h"

/* ---- reply parsing ------------------------------------------------------------ */

void
ec2_instances_free(struct ec2_instances *list)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < list->len; i++) {
		for (size_t t = 0; t < list->v[i].ntags; t++) {
			free(list->v[i].tags[t].key);
			free(list->v[i].tags[t].value);
		}
		free(list->v[i].tags);
	}
	free(list->v);
	memset(list, 0, sizeof(*list));
}

const char *
ec2_instance_tag(const struct ec2_instance *in, const char *key)
{
	for (size_t i = 0; i < in->ntags; i++)
		if (strcmp(in->tags[i].key, key) == 0)
			return in->tags[i].value;
	return NULL;
}

void
ec2_state_changes_free(struct ec2_state_changes *list)
{
	if (list == NULL)
		return;
	free(list->v);
	memset(list, 0, sizeof(*list));
}

int
ec2__grow(void **v, size_t *cap, size_t len, size_t elem, size_t max)
{
	size_t ncap;
	void *p;

	if (len < *cap)
		return 0;
	if (len >= max)
		return -E2BIG;
	ncap = *cap ? *cap * 2 : 16;
	if (ncap > max)
		ncap = max;
	p = realloc(*v, ncap * elem);
	if (p == NULL)
		return -ENOMEM;
	memset((char *)p + *cap * elem, 0, (ncap - *cap) * elem);
	*v = p;
	*cap = ncap;
	return 0;
}

static int
ec2__state_code(const xmlNode *state)
{
	char code[16];

	aws_xml_text(aws_xml_child(state, "code"), code, sizeof(code));
	return (int)(strtol(code, NULL, 10) & 0xff);
}

static int
ec2__parse_instance(const xmlNode *item, struct ec2_instance *in)
{
	const xmlNode *state = aws_xml_child(item, "instanceState");
	const xmlNode *tags, *t;
	char when[64];
	size_t n = 0;

	aws_xml_text(aws_xml_child(item, "instanceId"), in->id, sizeof(in->id));
	if (in->id[0] == '\0')
		return -EINVAL;
	aws_xml_text(aws_xml_child(item, "imageId"), in->image_id, sizeof(in->image_id));
	aws_xml_text(aws_xml_child(item, "instanceType"), in->instance_type,
	    sizeof(in->instance_type));
	in->state_code = ec2__state_code(state);
	aws_xml_text(aws_xml_child(state, "name"), in->state, sizeof(in->state));
	aws_xml_text(aws_xml_path(item, "stateReason/code"), in->state_reason,
	    sizeof(in->state_reason));
	aws_xml_text(aws_xml_child(item, "reason"), in->state_transition_reason,
	    sizeof(in->state_transition_reason));
	aws_xml_text(aws_xml_child(item, "privateDnsName"), in->private_dns_name,
	    sizeof(in->private_dns_name));
	aws_xml_text(aws_xml_child(item, "privateIpAddress"), in->private_ip,
	    sizeof(in->private_ip));
	aws_xml_text(aws_xml_path(item, "placement/availabilityZone"), in->availability_zone,
	    sizeof(in->availability_zone));
	aws_xml_text(aws_xml_child(item, "subnetId"), in->subnet_id, sizeof(in->subnet_id));
	aws_xml_text(aws_xml_child(item, "vpcId"), in->vpc_id, sizeof(in->vpc_id));
	aws_xml_text(aws_xml_child(item, "clientToken"), in->client_token, sizeof(in->client_token));
	if (aws_xml_text(aws_xml_child(item, "launchTime"), when, sizeof(when)) == 0 &&
	    time_parse_rfc3339(when, &in->launch_time_ms) < 0)
		in->launch_time_ms = 0;
	tags = aws_xml_child(item, "tagSet");
	for (t = aws_xml_child(tags, "item"); t != NULL; t = aws_xml_next(t))
		n++;
	if (n > LIMITS_EC2_TAGS * 2)
		n = LIMITS_EC2_TAGS * 2;
	if (n == 0)
		return 0;
	in->tags = calloc(n, sizeof(*in->tags));
	if (in->tags == NULL)
		return -ENOMEM;
	for (t = aws_xml_child(tags, "item"); t != NULL && in->ntags < n; t = aws_xml_next(t)) {
		struct ec2_instance_tag *tag = &in->tags[in->ntags];
		tag->key = aws_xml_strdup(aws_xml_child(t, "key"));
		tag->value = aws_xml_strdup(aws_xml_child(t, "value"));
		if (tag->value == NULL && tag->key != NULL)
			tag->value = strdup("");
		if (tag->key == NULL || tag->value == NULL) {
			free(tag->key);
			free(tag->value);
			tag->key = tag->value = NULL;
			return -ENOMEM;
		}
		in->ntags++;
	}
	return 0;
}

static int
ec2__append_items(const xmlNode *set, struct ec2_instances *out)
{
	int rc;

	for (const xmlNode *it = aws_xml_child(set, "item"); it != NULL; it = aws_xml_next(it)) {
		rc = ec2__grow((void **)&out->v, &out->cap, out->len, sizeof(*out->v),
		    LIMITS_EC2_DESCRIBE_INSTANCES);
		if (rc < 0)
			return rc;
		rc = ec2__parse_instance(it, &out->v[out->len]);
		/* A half-parsed instance is freed with the list. */
		out->len++;
		if (rc < 0)
			return rc;
	}
	return 0;
}

int
ec2_parse_instances(const char *xml, size_t len, struct ec2_instances *out, char **next_token)
{
	xmlDoc *doc = aws_xml_parse(xml, len);
	xmlNode *root;
	int rc = 0;

	if (next_token != NULL)
		*next_token = NULL;
	if (doc == NULL)
		return -EINVAL;
	root = xmlDocGetRootElement(doc);
	if (strcmp((const char *)root->name, "RunInstancesResponse") == 0) {
		rc = ec2__append_items(aws_xml_child(root, "instancesSet"), out);
	} else if (strcmp((const char *)root->name, "DescribeInstancesResponse") == 0) {
		xmlNode *rs = aws_xml_child(root, "reservationSet");
		for (xmlNode *r = aws_xml_child(rs, "item"); r != NULL && rc == 0; r = aws_xml_next(r))
			rc = ec2__append_items(aws_xml_child(r, "instancesSet"), out);
		if (rc == 0 && next_token != NULL) {
			xmlNode *nt = aws_xml_child(root, "nextToken");
			if (nt != NULL) {
				*next_token = aws_xml_strdup(nt);
				if (*next_token == NULL)
					rc = -ENOMEM;
				else if ((*next_token)[0] == '\0') {
					free(*next_token);
					*next_token = NULL;
				}
			}
		}
	} else {
		rc = -EINVAL;
	}
	xmlFreeDoc(doc);
	return rc;
}

int
ec2_parse_state_changes(const char *xml, size_t len, struct ec2_state_changes *out)
{
	xmlDoc *doc = aws_xml_parse(xml, len);
	xmlNode *root, *set;
	int rc = 0;

	if (doc == NULL)
		return -EINVAL;
	root = xmlDocGetRootElement(doc);
	set = aws_xml_child(root, "instancesSet");
	if (set == NULL) {
		xmlFreeDoc(doc);
		return -EINVAL;
	}
	for (xmlNode *it = aws_xml_child(set, "item"); it != NULL; it = aws_xml_next(it)) {
		struct ec2_state_change *sc;
		rc = ec2__grow((void **)&out->v, &out->cap, out->len, sizeof(*out->v),
		    LIMITS_EC2_IDS_PER_CALL);
		if (rc < 0)
			break;
		sc = &out->v[out->len];
		aws_xml_text(aws_xml_child(it, "instanceId"), sc->id, sizeof(sc->id));
		sc->current_code = ec2__state_code(aws_xml_child(it, "currentState"));
		aws_xml_text(aws_xml_path(it, "currentState/name"), sc->current, sizeof(sc->current));
		sc->previous_code = ec2__state_code(aws_xml_child(it, "previousState"));
		aws_xml_text(aws_xml_path(it, "previousState/name"), sc->previous,
		    sizeof(sc->previous));
		if (sc->id[0] == '\0' || aws_xml_child(it, "currentState") == NULL) {
			rc = -EINVAL;
			break;
		}
		out->len++;
	}
	xmlFreeDoc(doc);
	return rc;
}
