#!/usr/bin/env python3
"""Fake Kubernetes API server for the Stratos simulated environment.

Serves, over HTTPS with bearer-token or client-certificate authentication,
what stratosd and kubectl use: discovery and OpenAPI v3 (so `kubectl apply`
validates), CRUD, LIST with pagination and selectors, WATCH with resume,
bookmarks and 410 Expired, JSON/merge/strategic-merge patch, the status,
binding and eviction subresources, PodDisruptionBudgets, Leases, Events,
CustomResourceDefinitions (served at once, with schema defaulting, pruning and
validation), admission webhooks (Mutating/ValidatingWebhookConfigurations
called over HTTPS as kube-apiserver calls them), server-side tables for
`kubectl get`, and a test-control API under /_sim/.  State is in memory; one
global resourceVersion counter.

    python3 tests/sim/apiserver.py --dir DIR [--port 0] [--bookmark-interval 5]
                                   [--history 10000] [--token-file FILE]
                                   [--webhook-service-map NS/SVC=HOST:PORT] ...

Writes DIR/apiserver-ca.crt, DIR/client.crt, DIR/client.key, DIR/kubeconfig,
DIR/kubeconfig-clientcert, DIR/apiserver.token and, once it answers,
DIR/apiserver.port.  See tests/sim/README.md.
"""

import argparse
import base64
import bisect
import collections
import copy
import datetime
import hashlib
import heapq
import http.client
import ipaddress
import json
import math
import os
import random
import re
import select
import signal
import socket
import ssl
import string
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

import simtimeline

try:
    import jsonpatch
except ImportError:  # pragma: no cover - jsonpatch is on the machine
    jsonpatch = None
try:
    import jsonschema
except ImportError:  # pragma: no cover
    jsonschema = None

SERVER_VERSION = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.4-stratos-sim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean", "buildDate": "2025-04-22T00:00:00Z",
    "goVersion": "go1.23.6", "compiler": "gc", "platform": "linux/amd64",
}
MAX_BODY = 3 * 1024 * 1024          # kube-apiserver's request size limit
MAX_BULK_BODY = 512 * 1024 * 1024   # /_sim/bulk only
MAX_WATCH_BATCH = 500               # events written per chunk
WATCH_POLL = 1.0                    # seconds between liveness checks on idle watches
NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"   # generateName alphabet (k8s utilrand)


def log(msg):
    sys.stderr.write("%s apiserver: %s\n" % (
        time.strftime("%H:%M:%S", time.localtime()), msg))
    sys.stderr.flush()


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def now_micro():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


def parse_time(s):
    if not s:
        return None
    try:
        s = s.replace("Z", "+00:00")
        if "." in s:
            head, rest = s.split(".", 1)
            frac = re.match(r"\d+", rest).group(0)
            s = head + "." + frac[:6].ljust(6, "0") + rest[len(frac):]
        return datetime.datetime.fromisoformat(s).timestamp()
    except (ValueError, AttributeError):
        return None


def human_duration(seconds):
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return "%ds" % s
    m = s // 60
    if m < 10:
        return "%dm" % m if s % 60 == 0 else "%dm%ds" % (m, s % 60)
    if m < 180:
        return "%dm" % m
    h = s // 3600
    if h < 8:
        return "%dh" % h if m % 60 == 0 else "%dh%dm" % (h, m % 60)
    if h < 48:
        return "%dh" % h
    if h < 24 * 8:
        return "%dd" % (h // 24) if h % 24 == 0 else "%dd%dh" % (h // 24, h % 24)
    if h < 24 * 365 * 2:
        return "%dd" % (h // 24)
    if h < 24 * 365 * 8:
        dy = (h // 24) % 365
        return "%dy" % (h // 24 // 365) if dy == 0 else "%dy%dd" % (h // 24 // 365, dy)
    return "%dy" % (h // 24 // 365)


def age_of(obj):
    t = parse_time(obj.get("metadata", {}).get("creationTimestamp"))
    return "<unknown>" if t is None else human_duration(time.time() - t)


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# --------------------------------------------------------------------------
# Errors: every failure leaves as a real metav1.Status.

class ApiError(Exception):
    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    list_meta = None            # Status.ListMeta (metadata.continue of an expired list)

    def status(self):
        st = status_obj(self.code, self.reason, self.message, self.details)
        if self.list_meta:
            st["metadata"] = dict(self.list_meta)
        return st


def status_obj(code, reason, message, details=None, status="Failure"):
    st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": status}
    if message:
        st["message"] = message
    if reason:
        st["reason"] = reason
    if details is not None:
        # A non-nil *StatusDetails whose fields are all empty is still sent, as {}.
        st["details"] = details
    st["code"] = code
    return st


def gr_string(group, plural):
    return plural if not group else "%s.%s" % (plural, group)


def err_not_found(group, plural, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (gr_string(group, plural), name),
                    {"name": name, "group": group, "kind": plural} if group else
                    {"name": name, "kind": plural})


def err_already_exists(group, plural, name):
    d = {"name": name, "kind": plural}
    if group:
        d["group"] = group
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (gr_string(group, plural), name), d)


def err_conflict(group, plural, name, why):
    d = {"name": name, "kind": plural}
    if group:
        d["group"] = group
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s'
                    % (gr_string(group, plural), name, why), d)


def err_modified(group, plural, name):
    return err_conflict(group, plural, name, "the object has been modified; please apply "
                        "your changes to the latest version and try again")


def err_bad_request(msg):
    return ApiError(400, "BadRequest", msg)


def err_resource_not_found():
    return ApiError(404, "NotFound", "the server could not find the requested resource",
                    {})


def err_expired(msg):
    return ApiError(410, "Expired", msg)


def err_forbidden(group, plural, name, why):
    d = {"name": name, "kind": plural}
    if group:
        d["group"] = group
    return ApiError(403, "Forbidden", '%s "%s" is forbidden: %s' % (gr_string(group, plural), name, why), d)


class GoValue(str):
    """A value printed verbatim in field errors (Go's %#v of a non-string)."""


class FieldErr:
    """One field.Error: kind is Required, Invalid, Forbidden, Unsupported, Duplicate, TooLong..."""

    def __init__(self, path, kind, detail="", value=None, has_value=False):
        self.path, self.kind, self.detail = path, kind, detail
        self.value, self.has_value = value, has_value

    def text(self):
        label = {"Required": "Required value", "Invalid": "Invalid value",
                 "Forbidden": "Forbidden", "Unsupported": "Unsupported value",
                 "Duplicate": "Duplicate value", "TooLong": "Too long",
                 "TooMany": "Too many", "NotFound": "Not found"}.get(self.kind, self.kind)
        s = "%s: %s" % (self.path, label)
        if self.has_value:
            v = self.value
            s += ": " + (str(v) if isinstance(v, GoValue) else json.dumps(v) if isinstance(v, str) else
                         ("null" if v is None else (str(v).lower() if isinstance(v, bool) else
                                                   json.dumps(v) if isinstance(v, (dict, list)) else str(v))))
        if self.detail:
            s += ": " + self.detail
        return s

    def cause(self):
        reason = {"Required": "FieldValueRequired", "Invalid": "FieldValueInvalid",
                  "Forbidden": "FieldValueForbidden", "Unsupported": "FieldValueNotSupported",
                  "Duplicate": "FieldValueDuplicate", "TooLong": "FieldValueTooLong",
                  "TooMany": "FieldValueTooMany", "NotFound": "FieldValueNotFound"}.get(self.kind, "FieldValueInvalid")
        msg = self.text()[len(self.path) + 2:]
        return {"reason": reason, "message": msg, "field": self.path}


def err_invalid(kind, group, name, errs):
    qk = kind if not group else "%s.%s" % (kind, group)
    texts = [e.text() for e in errs]
    agg = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    d = {"name": name, "kind": kind, "causes": [e.cause() for e in errs]}
    if not name:
        del d["name"]           # StatusDetails.Name is omitempty
    if group:
        d["group"] = group
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (qk, name, agg), d)


# --------------------------------------------------------------------------
# Name and label validation (k8s.io/apimachinery/pkg/util/validation).

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def check_subdomain(v):
    if len(v) > 253:
        return "must be no more than 253 characters"
    if not DNS1123_SUBDOMAIN.match(v):
        return ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character "
                "(e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
    return None


def check_label_name(v):
    if len(v) > 63:
        return "must be no more than 63 characters"
    if not DNS1123_LABEL.match(v):
        return ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                "or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  "
                "or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
    return None


def check_qualified_name(v):
    parts = v.split("/")
    if len(parts) > 2 or not v:
        return ("a qualified name must consist of alphanumeric characters, '-', '_' or '.', "
                "and must start and end with an alphanumeric character (e.g. 'MyName',  or "
                "'my.name',  or '123-abc', regex used for validation is "
                "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain "
                "prefix and '/' (e.g. 'example.com/MyName')")
    name = parts[-1]
    if len(parts) == 2:
        if not parts[0]:
            return "prefix part must be non-empty"
        bad = check_subdomain(parts[0])
        if bad:
            return "prefix part " + bad
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not QUALIFIED_NAME.match(name):
        return ("name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  "
                "or '123-abc', regex used for validation is "
                "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
    return None


def check_label_value(v):
    if len(v) > 63:
        return "must be no more than 63 characters"
    if not LABEL_VALUE.match(v):
        return ("a valid label must be an empty string or consist of alphanumeric characters, "
                "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
                "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
                "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
    return None


def validate_meta(obj, namespaced, name_check=check_subdomain):
    errs = []
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return [FieldErr("metadata", "Required")]
    name = meta.get("name", "")
    if not isinstance(name, str) or not name:
        errs.append(FieldErr("metadata.name", "Required", "name or generateName is required"))
    else:
        bad = name_check(name)
        if bad:
            errs.append(FieldErr("metadata.name", "Invalid", bad, name, True))
    labels = meta.get("labels")
    if labels is not None:
        if not isinstance(labels, dict):
            errs.append(FieldErr("metadata.labels", "Invalid", "must be a map", labels, True))
        else:
            for k, v in labels.items():
                bad = check_qualified_name(k)
                if bad:
                    errs.append(FieldErr("metadata.labels", "Invalid", bad, k, True))
                if not isinstance(v, str):
                    errs.append(FieldErr("metadata.labels", "Invalid", "must be a string", v, True))
                else:
                    bad = check_label_value(v)
                    if bad:
                        errs.append(FieldErr("metadata.labels", "Invalid", bad, v, True))
    ann = meta.get("annotations")
    if ann is not None:
        if not isinstance(ann, dict):
            errs.append(FieldErr("metadata.annotations", "Invalid", "must be a map", ann, True))
        else:
            total = 0
            for k, v in ann.items():
                bad = check_qualified_name(k.lower())
                if bad:
                    errs.append(FieldErr("metadata.annotations", "Invalid", bad, k, True))
                if not isinstance(v, str):
                    errs.append(FieldErr("metadata.annotations." + k, "Invalid", "must be a string", v, True))
                    continue
                total += len(k) + len(v)
            if total > 256 * 1024:
                errs.append(FieldErr("metadata.annotations", "TooLong", "must have at most 262144 bytes"))
    fins = meta.get("finalizers")
    if fins is not None:
        if not isinstance(fins, list) or not all(isinstance(f, str) for f in fins):
            errs.append(FieldErr("metadata.finalizers", "Invalid", "must be a list of strings", fins, True))
        else:
            for i, f in enumerate(fins):
                bad = check_qualified_name(f)
                if bad:
                    errs.append(FieldErr("metadata.finalizers[%d]" % i, "Invalid", bad, f, True))
    return errs


# --------------------------------------------------------------------------
# Label and field selectors.

_SEL_REQ = re.compile(
    r"^\s*(?P<not>!)?\s*(?P<key>[A-Za-z0-9_./-]+)\s*"
    r"(?:(?P<op>==|=|!=|>|<)\s*(?P<val>[A-Za-z0-9_.-]*)|\s+(?P<setop>in|notin)\s*\((?P<set>[^)]*)\))?\s*$")


def _split_top(s):
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_label_selector(s):
    """Returns a predicate on a labels dict, or None for 'everything'."""
    if s is None or not s.strip():
        return None
    reqs = []
    for part in _split_top(s):
        if not part.strip():
            raise err_bad_request("unable to parse requirement: found '', expected: identifier")
        m = _SEL_REQ.match(part)
        if not m:
            raise err_bad_request("unable to parse requirement: %s" % part.strip())
        key = m.group("key")
        bad = check_qualified_name(key)
        if bad:
            raise err_bad_request("unable to parse requirement: values[0][%s]: Invalid value: %r: %s"
                                  % (key, key, bad))
        if m.group("not"):
            if m.group("op") or m.group("setop"):
                raise err_bad_request("unable to parse requirement: %s" % part.strip())
            reqs.append(("!", key, None))
        elif m.group("op"):
            op = m.group("op")
            val = m.group("val")
            if op in (">", "<"):
                try:
                    val = int(val)
                except ValueError:
                    raise err_bad_request("unable to parse requirement: for 'Gt', 'Lt' operators, "
                                          "the value must be an integer")
            reqs.append(("=" if op == "==" else op, key, val))
        elif m.group("setop"):
            vals = {v.strip() for v in m.group("set").split(",")}
            reqs.append((m.group("setop"), key, vals))
        else:
            reqs.append(("exists", key, None))

    def pred(labels):
        labels = labels or {}
        for op, key, val in reqs:
            has = key in labels
            if op == "=":
                if not has or labels[key] != val:
                    return False
            elif op == "!=":
                if has and labels[key] == val:
                    return False
            elif op == "in":
                if not has or labels[key] not in val:
                    return False
            elif op == "notin":
                if has and labels[key] in val:
                    return False
            elif op == "exists":
                if not has:
                    return False
            elif op == "!":
                if has:
                    return False
            elif op in (">", "<"):
                if not has:
                    return False
                try:
                    n = int(labels[key])
                except ValueError:
                    return False
                if (op == ">" and not n > val) or (op == "<" and not n < val):
                    return False
        return True
    return pred


def _unescape_field(v):
    return v.replace("\\,", ",").replace("\\=", "=").replace("\\\\", "\\")


def parse_field_selector(s, getters):
    if s is None or not s.strip():
        return None
    reqs, equals = [], {}
    for part in re.split(r"(?<!\\),", s):
        part = part.strip()
        if not part:
            continue
        m = re.match(r"^([^=!]+?)\s*(==|=|!=)\s*(.*)$", part)
        if not m:
            raise err_bad_request("invalid selector: '%s'; can't understand '%s'" % (s, part))
        field, op, val = m.group(1).strip(), m.group(2), _unescape_field(m.group(3))
        getter = getters.get(field)
        if getter is None:
            raise err_bad_request('"%s" is not a known field selector: only %s' % (
                field, ", ".join('"%s"' % f for f in sorted(getters))))
        reqs.append((getter, op != "!=", val))
        if op != "!=":
            equals[field] = val

    def pred(obj):
        for getter, eq, val in reqs:
            got = getter(obj)
            got = "" if got is None else (str(got).lower() if isinstance(got, bool) else str(got))
            if (got == val) != eq:
                return False
        return True
    pred.equals = equals
    return pred


def _dig(obj, *path):
    for p in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(p)
    return obj


COMMON_FIELDS = {
    "metadata.name": lambda o: _dig(o, "metadata", "name"),
    "metadata.namespace": lambda o: _dig(o, "metadata", "namespace"),
}
POD_FIELDS = dict(COMMON_FIELDS, **{
    "spec.nodeName": lambda o: _dig(o, "spec", "nodeName"),
    "spec.restartPolicy": lambda o: _dig(o, "spec", "restartPolicy"),
    "spec.schedulerName": lambda o: _dig(o, "spec", "schedulerName"),
    "spec.serviceAccountName": lambda o: _dig(o, "spec", "serviceAccountName"),
    "spec.hostNetwork": lambda o: bool(_dig(o, "spec", "hostNetwork")),
    "status.phase": lambda o: _dig(o, "status", "phase"),
    "status.podIP": lambda o: _dig(o, "status", "podIP"),
    "status.nominatedNodeName": lambda o: _dig(o, "status", "nominatedNodeName"),
})
NODE_FIELDS = dict(COMMON_FIELDS, **{
    "spec.unschedulable": lambda o: bool(_dig(o, "spec", "unschedulable")),
})
EVENT_FIELDS = dict(COMMON_FIELDS, **{
    "involvedObject.kind": lambda o: _dig(o, "involvedObject", "kind"),
    "involvedObject.namespace": lambda o: _dig(o, "involvedObject", "namespace"),
    "involvedObject.name": lambda o: _dig(o, "involvedObject", "name"),
    "involvedObject.uid": lambda o: _dig(o, "involvedObject", "uid"),
    "involvedObject.apiVersion": lambda o: _dig(o, "involvedObject", "apiVersion"),
    "involvedObject.resourceVersion": lambda o: _dig(o, "involvedObject", "resourceVersion"),
    "involvedObject.fieldPath": lambda o: _dig(o, "involvedObject", "fieldPath"),
    "reason": lambda o: o.get("reason"),
    "reportingComponent": lambda o: o.get("reportingComponent"),
    "source": lambda o: _dig(o, "source", "component") or o.get("reportingComponent"),
    "type": lambda o: o.get("type"),
})
EVENTS_V1_FIELDS = dict(COMMON_FIELDS, **{
    "regarding.kind": EVENT_FIELDS["involvedObject.kind"],
    "regarding.namespace": EVENT_FIELDS["involvedObject.namespace"],
    "regarding.name": EVENT_FIELDS["involvedObject.name"],
    "regarding.uid": EVENT_FIELDS["involvedObject.uid"],
    "reason": EVENT_FIELDS["reason"],
    "reportingController": EVENT_FIELDS["reportingComponent"],
    "type": EVENT_FIELDS["type"],
})
NAMESPACE_FIELDS = dict(COMMON_FIELDS, **{"status.phase": lambda o: _dig(o, "status", "phase")})
SECRET_FIELDS = dict(COMMON_FIELDS, **{"type": lambda o: o.get("type")})


# --------------------------------------------------------------------------
# Patches.

def json_merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = json_merge_patch(out.get(k), v)
    return out


# Strategic-merge metadata of the built-in types: path (list indices dropped)
# -> (strategy, mergeKey).  Lists not named here are atomic, as in the Go
# types (note: Node spec.taints and Pod spec.tolerations ARE atomic upstream).
_CONTAINER_SMP = {
    "ports": ("merge", "containerPort"), "env": ("merge", "name"),
    "volumeMounts": ("merge", "mountPath"), "volumeDevices": ("merge", "devicePath"),
}
_PODSPEC_SMP = {
    "containers": ("merge", "name"), "initContainers": ("merge", "name"),
    "ephemeralContainers": ("merge", "name"), "volumes": ("merge", "name"),
    "imagePullSecrets": ("merge", "name"), "hostAliases": ("merge", "ip"),
    "topologySpreadConstraints": ("merge", "topologyKey"),
    "resourceClaims": ("merge", "name"), "schedulingGates": ("merge", "name"),
}
for _c in ("containers", "initContainers", "ephemeralContainers"):
    for _k, _v in _CONTAINER_SMP.items():
        _PODSPEC_SMP["%s.%s" % (_c, _k)] = _v
_META_SMP = {"metadata.finalizers": ("merge", None), "metadata.ownerReferences": ("merge", "uid")}


def _prefixed(prefix, table):
    return {prefix + k: v for k, v in table.items()}


_WORKLOAD_SMP = dict(_META_SMP, **_prefixed("spec.template.spec.", _PODSPEC_SMP),
                     **{"status.conditions": ("merge", "type")})
SMP_META = {
    "Pod": dict(_META_SMP, **_prefixed("spec.", _PODSPEC_SMP), **{
        "status.conditions": ("merge", "type"), "status.podIPs": ("merge", "ip"),
        "status.hostIPs": ("merge", "ip")}),
    "Node": dict(_META_SMP, **{"spec.podCIDRs": ("merge", None),
                               "status.conditions": ("merge", "type"),
                               "status.addresses": ("merge", "type")}),
    "Deployment": _WORKLOAD_SMP, "DaemonSet": _WORKLOAD_SMP, "ReplicaSet": _WORKLOAD_SMP,
    "StatefulSet": _WORKLOAD_SMP, "Job": _WORKLOAD_SMP,
    "Service": dict(_META_SMP, **{"spec.ports": ("merge", "port")}),
    "MutatingWebhookConfiguration": dict(_META_SMP, **{"webhooks": ("merge", "name")}),
    "ValidatingWebhookConfiguration": dict(_META_SMP, **{"webhooks": ("merge", "name")}),
    "Namespace": dict(_META_SMP, **{"status.conditions": ("merge", "type")}),
    "PodDisruptionBudget": dict(_META_SMP, **{"status.conditions": ("merge", "type")}),
    "CustomResourceDefinition": dict(_META_SMP, **{"status.conditions": ("merge", "type")}),
}

_DELETE = object()


def _strip_directives(v):
    if isinstance(v, dict):
        return {k: _strip_directives(x) for k, x in v.items()
                if not (k == "$patch" or k == "$retainKeys" or k.startswith("$setElementOrder/")
                        or k.startswith("$deleteFromPrimitiveList/"))}
    if isinstance(v, list):
        return [_strip_directives(x) for x in v]
    return v


def strategic_merge(orig, patch, kind, path=()):
    table = SMP_META.get(kind, _META_SMP)
    return _smp_map(orig, patch, table, path)


def _smp_map(orig, patch, table, path):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip_directives({k: v for k, v in patch.items() if k != "$patch"})
    if directive == "delete":
        return _DELETE
    if directive not in (None, "merge"):
        raise err_bad_request("Unknown patch type: %s" % directive)
    out = dict(orig) if isinstance(orig, dict) else {}
    for k, v in patch.items():
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if isinstance(out.get(field), list):
                out[field] = [x for x in out[field] if x not in (v or [])]
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys") or k.startswith("$setElementOrder/") \
                or k.startswith("$deleteFromPrimitiveList/"):
            continue
        sub = path + (k,)
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            r = _smp_map(out.get(k), v, table, sub)
            if r is _DELETE:
                out.pop(k, None)
            else:
                out[k] = r
        elif isinstance(v, list):
            meta = table.get(".".join(sub))
            if meta and meta[0] == "merge" and isinstance(out.get(k), list):
                out[k] = _smp_list(out[k], v, meta[1], table, sub)
            else:
                out[k] = _strip_directives(v)
        else:
            out[k] = v
    for k, order in patch.items():
        if k.startswith("$setElementOrder/") and isinstance(order, list):
            field = k.split("/", 1)[1]
            meta = table.get(".".join(path + (field,)))
            if isinstance(out.get(field), list) and meta:
                out[field] = _smp_order(out[field], order, meta[1])
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _smp_list(orig, patch, key, table, path):
    if key is None:
        out = list(orig)
        for x in patch:
            if x not in out:
                out.append(x)
        return out
    if any(isinstance(e, dict) and e.get("$patch") == "replace" for e in patch):
        return [_strip_directives(e) for e in patch
                if not (isinstance(e, dict) and e.get("$patch") == "replace")]
    out = list(orig)
    for e in patch:
        if not isinstance(e, dict):
            out.append(e)
            continue
        kv = e.get(key)
        idx = next((i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == kv), None)
        if e.get("$patch") == "delete":
            if idx is not None:
                del out[idx]
            continue
        if idx is None:
            out.append(_strip_directives(e))
        else:
            out[idx] = _smp_map(out[idx], e, table, path)
    return out


def _smp_order(items, order, key):
    def ident(x):
        return x.get(key) if (key and isinstance(x, dict)) else x
    wanted = [ident(o) for o in order]
    pos = {w: i for i, w in enumerate(wanted) if isinstance(w, (str, int, float))}
    listed = sorted((x for x in items if ident(x) in pos), key=lambda x: pos[ident(x)])
    rest = [x for x in items if ident(x) not in pos]
    return listed + rest


def apply_json_patch(doc, ops):
    if jsonpatch is None:
        raise ApiError(500, "InternalError", "jsonpatch module missing")
    if not isinstance(ops, list):
        raise err_bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    try:
        return jsonpatch.JsonPatch(ops).apply(doc, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError,
            IndexError, TypeError):
        pass
    # handlers/patch.go applyJSPatch: patchObj.Apply's error (a failed "test",
    # a missing path...) becomes errors.NewGenericServerResponse(422, "",
    # schema.GroupResource{}, "", err.Error(), 0, false): reason Invalid, the
    # generic message, and with isUnexpectedResponse=false no cause, so the
    # error text is lost; details is an empty (non-nil) StatusDetails.
    raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request", {})


# --------------------------------------------------------------------------
# Protobuf request bodies.  kubectl's typed clients send
# application/vnd.kubernetes.protobuf for a few writes (auth can-i ->
# SelfSubjectAccessReview, drain -> Eviction); these are decoded here by field
# number (k8s.io/api generated.proto).  Responses are always JSON, which those
# clients accept.

def _pb_fields(buf):
    out, i = {}, 0
    while i < len(buf):
        key, i = _pb_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _pb_varint(buf, i)
        elif wt == 2:
            n, i = _pb_varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise err_bad_request("unsupported protobuf wire type %d" % wt)
        out.setdefault(num, []).append(v)
    return out


def _pb_varint(buf, i):
    shift = val = 0
    while True:
        if i >= len(buf):
            raise err_bad_request("truncated protobuf body")
        b = buf[i]
        i += 1
        val |= (b & 0x7F) << shift
        if not b & 0x80:
            return val, i
        shift += 7


def _pb_strings(fields, names):
    out = {}
    for num, name in names.items():
        if num in fields:
            out[name] = fields[num][-1].decode()
    return out


def _pb_meta(raw):
    return _pb_strings(_pb_fields(raw), {1: "name", 2: "generateName", 3: "namespace"})


def _pb_delete_options(raw):
    f = _pb_fields(raw)
    out = {}
    if 1 in f:
        v = f[1][-1]
        out["gracePeriodSeconds"] = v - (1 << 64) if v >= 1 << 63 else v
    if 2 in f:
        out["preconditions"] = _pb_strings(_pb_fields(f[2][-1]), {1: "uid", 2: "resourceVersion"})
    if 4 in f:
        out["propagationPolicy"] = f[4][-1].decode()
    if 5 in f:
        out["dryRun"] = [x.decode() for x in f[5]]
    return out


def decode_protobuf_body(body):
    if not body.startswith(b"k8s\x00"):
        raise err_bad_request("protobuf body without the k8s envelope")
    env = _pb_fields(body[4:])
    tm = _pb_strings(_pb_fields(env.get(1, [b""])[-1]), {1: "apiVersion", 2: "kind"})
    raw = env.get(2, [b""])[-1]
    f = _pb_fields(raw)
    obj = dict(tm)
    if 1 in f:
        obj["metadata"] = _pb_meta(f[1][-1])
    kind = tm.get("kind")
    if kind == "SelfSubjectAccessReview" and 2 in f:
        spec = _pb_fields(f[2][-1])
        obj["spec"] = {}
        if 1 in spec:
            obj["spec"]["resourceAttributes"] = _pb_strings(_pb_fields(spec[1][-1]), {
                1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource", 7: "name"})
        if 2 in spec:
            obj["spec"]["nonResourceAttributes"] = _pb_strings(_pb_fields(spec[2][-1]), {1: "path", 2: "verb"})
    elif kind == "Eviction":
        if 2 in f:
            obj["deleteOptions"] = _pb_delete_options(f[2][-1])
    elif kind == "Binding":
        if 2 in f:
            obj["target"] = _pb_strings(_pb_fields(f[2][-1]), {1: "kind", 2: "namespace", 3: "name", 4: "uid",
                                                                5: "apiVersion", 6: "resourceVersion"})
    elif kind == "DeleteOptions":
        obj.update(_pb_delete_options(raw))
    else:
        raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                       "accepted media types include: application/json, application/yaml (stratos sim decodes "
                       "protobuf only for SelfSubjectAccessReview, Eviction, Binding and DeleteOptions)")
    return obj


# --------------------------------------------------------------------------
# Structural schemas of CRDs: prune, default, validate.

def schema_prune_default(schema, value, path, unknown):
    """Returns value pruned of unknown fields and nulls, with defaults applied.
    Unknown field paths are appended to `unknown`."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        embedded = schema.get("x-kubernetes-embedded-resource") is True
        out = {}
        for k, v in value.items():
            sub = None
            if props is not None and k in props:
                sub = props[k]
            elif isinstance(addl, dict):
                sub = addl
            elif addl is True or preserve or (embedded and k in ("apiVersion", "kind", "metadata")):
                out[k] = v
                continue
            else:
                unknown.append(path + "." + k if path else k)
                continue
            if v is None and not sub.get("nullable"):
                continue
            out[k] = schema_prune_default(sub, v, (path + "." + k) if path else k, unknown)
        if props:
            for k, sub in props.items():
                if k not in out and isinstance(sub, dict) and "default" in sub:
                    out[k] = schema_prune_default(sub, copy.deepcopy(sub["default"]),
                                                  (path + "." + k) if path else k, [])
        return out
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            return [schema_prune_default(items, v, "%s[%d]" % (path, i), unknown)
                    for i, v in enumerate(value)]
    return value


def _to_jsonschema(s):
    if isinstance(s, list):
        return [_to_jsonschema(x) for x in s]
    if not isinstance(s, dict):
        return s
    out = {}
    for k, v in s.items():
        if k.startswith("x-kubernetes-") or k in ("nullable", "format", "default", "example",
                                                  "externalDocs", "description"):
            continue
        if k in ("properties", "patternProperties", "definitions"):
            out[k] = {pk: _to_jsonschema(pv) for pk, pv in v.items()}
        else:
            out[k] = _to_jsonschema(v)
    if s.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if s.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def _jpath(err_path):
    p = ""
    for x in err_path:
        p += "[%d]" % x if isinstance(x, int) else ("." + x if p else x)
    return p


def schema_validate(schema, obj):
    """FieldErr list for obj (without metadata) against an openAPIV3Schema."""
    if jsonschema is None or not isinstance(schema, dict):
        return []
    js = _to_jsonschema(schema)
    props = dict(js.get("properties") or {})
    for k in ("apiVersion", "kind", "metadata"):
        props.pop(k, None)
    js["properties"] = props
    doc = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    errs = []
    try:
        validator = jsonschema.Draft4Validator(js)
        found = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    except jsonschema.exceptions.SchemaError as e:
        return [FieldErr("spec", "Invalid", "schema error: %s" % e.message)]
    for e in found:
        path = _jpath(e.absolute_path)
        v = e.instance
        kw = e.validator
        if kw == "required":
            m = re.search(r"'([^']+)' is a required property", e.message)
            name = m.group(1) if m else "?"
            errs.append(FieldErr((path + "." + name) if path else name, "Required"))
        elif kw == "enum":
            errs.append(FieldErr(path, "Unsupported", "supported values: " + ", ".join(
                json.dumps(x) for x in e.validator_value), v, True))
        elif kw == "type":
            t = e.validator_value
            t = t[0] if isinstance(t, list) else t
            errs.append(FieldErr(path, "Invalid", "%s in body must be of type %s: %s" % (
                path, t, json.dumps(type(v).__name__ if not isinstance(v, str) else "string")), v, True))
        elif kw in ("minimum", "maximum"):
            rel = "greater than or equal to" if kw == "minimum" else "less than or equal to"
            errs.append(FieldErr(path, "Invalid", "%s in body should be %s %s" % (path, rel, e.validator_value), v, True))
        elif kw == "pattern":
            errs.append(FieldErr(path, "Invalid", "%s in body should match '%s'" % (path, e.validator_value), v, True))
        elif kw == "maxLength":
            errs.append(FieldErr(path, "TooLong", "may not be more than %d bytes" % e.validator_value, v, True))
        elif kw == "minLength":
            errs.append(FieldErr(path, "Invalid", "%s in body should be at least %d chars long" % (path, e.validator_value), v, True))
        elif kw == "minItems":
            errs.append(FieldErr(path, "Invalid", "%s in body should have at least %d items" % (path, e.validator_value), len(v) if isinstance(v, list) else v, True))
        elif kw == "maxItems":
            errs.append(FieldErr(path, "TooMany", "must have at most %d items" % e.validator_value, len(v) if isinstance(v, list) else v, True))
        elif kw in ("minProperties", "maxProperties"):
            errs.append(FieldErr(path, "Invalid", "%s in body should have %s %d properties" % (
                path, "at least" if kw == "minProperties" else "at most", e.validator_value), len(v), True))
        else:
            errs.append(FieldErr(path or "<root>", "Invalid", e.message, None, False))
    return errs


# --------------------------------------------------------------------------
# A subset of CEL for x-kubernetes-validations: literals, self/oldSelf,
# field selection, indexing, ! && || ?: == != < <= > >= in + - * / %,
# has(), size(), bytes(), duration(), int(), string(), startsWith(),
# endsWith(), contains(), matches(), all(), exists().  A rule using anything
# else is skipped (and logged once), never guessed.

class CelUnsupported(Exception):
    pass


class CelError(Exception):
    pass


_CEL_TOKEN = re.compile(r"""\s*(?:(?P<num>\d+\.\d+|\d+u?)|(?P<str>'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")|"""
                        r"""(?P<id>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>&&|\|\||==|!=|<=|>=|[-+*/%<>!?:()\[\].,{}]))""")


def _cel_tokens(src):
    out, pos = [], 0
    src = src.strip()
    while pos < len(src):
        m = _CEL_TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise CelUnsupported("cannot tokenize at %r" % src[pos:pos + 10])
        pos = m.end()
        kind = m.lastgroup
        val = m.group(kind)
        if kind == "str":
            body = val[1:-1]
            val = re.sub(r"\\(.)", lambda mm: {"n": "\n", "t": "\t"}.get(mm.group(1), mm.group(1)), body)
        elif kind == "num":
            val = float(val) if "." in val else int(val.rstrip("u"))
        out.append((kind, val))
    out.append(("end", None))
    return out


class _CelParser:
    def __init__(self, src):
        self.t = _cel_tokens(src)
        self.i = 0

    def peek(self, v=None):
        k, val = self.t[self.i]
        return val == v and k in ("op", "id") if v is not None else (k, val)

    def take(self, v=None):
        k, val = self.t[self.i]
        if v is not None and not (val == v and k in ("op", "id")):
            raise CelUnsupported("expected %r, got %r" % (v, val))
        self.i += 1
        return k, val

    def parse(self):
        e = self.expr()
        if self.t[self.i][0] != "end":
            raise CelUnsupported("trailing input %r" % (self.t[self.i][1],))
        return e

    def expr(self):
        c = self.binary(0)
        if self.peek("?"):
            self.take("?")
            a = self.expr()
            self.take(":")
            b = self.expr()
            return ("?", c, a, b)
        return c

    LEVELS = [("||",), ("&&",), ("==", "!=", "<", "<=", ">", ">=", "in"), ("+", "-"), ("*", "/", "%")]

    def binary(self, lvl):
        if lvl == len(self.LEVELS):
            return self.unary()
        left = self.binary(lvl + 1)
        while self.t[self.i][1] in self.LEVELS[lvl] and self.t[self.i][0] in ("op", "id"):
            op = self.take()[1]
            left = (op, left, self.binary(lvl + 1))
        return left

    def unary(self):
        if self.peek("!"):
            self.take()
            return ("!", self.unary())
        if self.peek("-"):
            self.take()
            return ("neg", self.unary())
        return self.member()

    def args(self):
        out = []
        self.take("(")
        while not self.peek(")"):
            out.append(self.expr())
            if not self.peek(")"):
                self.take(",")
        self.take(")")
        return out

    def member(self):
        e = self.primary()
        while True:
            if self.peek("."):
                self.take()
                k, name = self.take()
                if k != "id":
                    raise CelUnsupported("bad selector")
                if self.peek("("):
                    e = ("call", name, e, self.args_macro(name))
                else:
                    e = ("sel", e, name)
            elif self.peek("["):
                self.take()
                idx = self.expr()
                self.take("]")
                e = ("idx", e, idx)
            else:
                return e

    def args_macro(self, name):
        if name in ("all", "exists"):
            self.take("(")
            k, var = self.take()
            self.take(",")
            body = self.expr()
            self.take(")")
            return [var, body]
        return self.args()

    def primary(self):
        k, v = self.take()
        if k in ("num", "str"):
            return ("lit", v)
        if k == "id":
            if v in ("true", "false"):
                return ("lit", v == "true")
            if v == "null":
                return ("lit", None)
            if self.peek("("):
                return ("fn", v, self.args())
            return ("var", v)
        if v == "(":
            e = self.expr()
            self.take(")")
            return e
        if v == "[":
            items = []
            while not self.peek("]"):
                items.append(self.expr())
                if not self.peek("]"):
                    self.take(",")
            self.take("]")
            return ("list", items)
        raise CelUnsupported("unexpected %r" % (v,))


_GO_DUR = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|μs|ms|s|m|h)")
_GO_DUR_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def go_duration(v):
    if v == "0":
        return 0.0
    parts = _GO_DUR.findall(v)
    if not parts or "".join(a + b for a, b in parts) != v:
        raise CelError("invalid duration %r" % v)
    return sum(float(a) * _GO_DUR_UNIT[b] for a, b in parts)


class CelDuration(float):
    pass


def cel_eval(node, env):
    op = node[0]
    if op == "lit":
        return node[1]
    if op == "var":
        if node[1] not in env:
            raise CelUnsupported("unknown variable %s" % node[1])
        return env[node[1]]
    if op == "list":
        return [cel_eval(x, env) for x in node[1]]
    if op == "sel":
        base = cel_eval(node[1], env)
        if not isinstance(base, dict) or node[2] not in base:
            raise CelError("no such key: %s" % node[2])
        return base[node[2]]
    if op == "idx":
        base, idx = cel_eval(node[1], env), cel_eval(node[2], env)
        try:
            return base[idx]
        except (KeyError, IndexError, TypeError):
            raise CelError("no such key: %r" % (idx,))
    if op == "!":
        return not _cel_bool(cel_eval(node[1], env))
    if op == "neg":
        return -cel_eval(node[1], env)
    if op == "?":
        return cel_eval(node[2] if _cel_bool(cel_eval(node[1], env)) else node[3], env)
    if op == "||":
        # CEL's commutative error handling: an error on one side is absorbed by a true on the other.
        try:
            if _cel_bool(cel_eval(node[1], env)):
                return True
            left_err = None
        except CelError as e:
            left_err = e
        if _cel_bool(cel_eval(node[2], env)):
            return True
        if left_err:
            raise left_err
        return False
    if op == "&&":
        try:
            if not _cel_bool(cel_eval(node[1], env)):
                return False
            left_err = None
        except CelError as e:
            left_err = e
        if not _cel_bool(cel_eval(node[2], env)):
            return False
        if left_err:
            raise left_err
        return True
    if op in ("==", "!=", "<", "<=", ">", ">=", "in", "+", "-", "*", "/", "%"):
        a, b = cel_eval(node[1], env), cel_eval(node[2], env)
        try:
            if op == "==":
                return a == b
            if op == "!=":
                return a != b
            if op == "in":
                return a in b
            if op == "<":
                return a < b
            if op == "<=":
                return a <= b
            if op == ">":
                return a > b
            if op == ">=":
                return a >= b
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op == "*":
                return a * b
            if op == "/":
                return a // b if isinstance(a, int) and isinstance(b, int) else a / b
            return a % b
        except (TypeError, ZeroDivisionError) as e:
            raise CelError(str(e))
    if op == "fn":
        name, args = node[1], node[2]
        if name == "has":
            if len(args) != 1 or args[0][0] != "sel":
                raise CelUnsupported("has() needs a field selection")
            base = cel_eval(args[0][1], env)
            return isinstance(base, dict) and args[0][2] in base
        vals = [cel_eval(a, env) for a in args]
        if name == "size" and len(vals) == 1:
            return len(vals[0])
        if name == "bytes" and len(vals) == 1:
            return vals[0].encode() if isinstance(vals[0], str) else bytes(vals[0])
        if name == "duration" and len(vals) == 1:
            return CelDuration(go_duration(vals[0]))
        if name == "int" and len(vals) == 1:
            return int(vals[0])
        if name == "string" and len(vals) == 1:
            return str(vals[0])
        raise CelUnsupported("function %s" % name)
    if op == "call":
        name, target, args = node[1], node[2], node[3]
        if name in ("all", "exists"):
            coll = cel_eval(target, env)
            var, body = args
            results = (_cel_bool(cel_eval(body, dict(env, **{var: x}))) for x in coll)
            return all(results) if name == "all" else any(results)
        t = cel_eval(target, env)
        vals = [cel_eval(a, env) for a in args]
        if not isinstance(t, str):
            raise CelUnsupported("method %s on non-string" % name)
        if name == "startsWith":
            return t.startswith(vals[0])
        if name == "endsWith":
            return t.endswith(vals[0])
        if name == "contains":
            return vals[0] in t
        if name == "matches":
            return re.search(vals[0], t) is not None
        if name == "size":
            return len(t)
        raise CelUnsupported("method %s" % name)
    raise CelUnsupported("node %s" % op)


def _cel_bool(v):
    if not isinstance(v, bool):
        raise CelError("no such overload: expected bool")
    return v


_CEL_CACHE = {}
_CEL_SKIPPED = set()


def cel_check(schema, value, path, errs, old=None):
    """Evaluate x-kubernetes-validations under schema for value (after
    defaulting); append FieldErr for each failing rule."""
    if not isinstance(schema, dict) or value is None:
        return
    for r in schema.get("x-kubernetes-validations") or []:
        rule = r.get("rule") or ""
        if rule in _CEL_SKIPPED:
            continue
        if "oldSelf" in rule and old is None:
            continue
        try:
            ast = _CEL_CACHE.get(rule)
            if ast is None:
                ast = _CEL_CACHE[rule] = _CelParser(rule).parse()
            ok = _cel_bool(cel_eval(ast, {"self": value, "oldSelf": old}))
            why = r.get("message") or "failed rule: %s" % rule
        except CelUnsupported as e:
            _CEL_SKIPPED.add(rule)
            log("skipping CEL rule %r: %s" % (rule, e))
            continue
        except CelError as e:
            ok, why = False, "failed rule: %s: %s" % (rule, e)
        if not ok:
            fp = (r.get("fieldPath") or "").lstrip(".")
            p = ".".join(x for x in (path, fp) if x) or "<nil>"
            typ = schema.get("type") or "object"
            errs.append(FieldErr(p, "Invalid", why, GoValue(json.dumps(typ)), True))
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        for k, v in value.items():
            sub = props.get(k) if k in props else (addl if isinstance(addl, dict) else None)
            if sub is not None:
                ov = old.get(k) if isinstance(old, dict) else None
                cel_check(sub, v, (path + "." + k) if path else k, errs, ov)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            cel_check(schema["items"], v, "%s[%d]" % (path, i), errs, None)


# --------------------------------------------------------------------------
# Mini JSONPath for CRD additionalPrinterColumns.

_JP_TOKEN = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*[\"']([^\"']*)[\"']\)\]")


def jsonpath_eval(expr, obj):
    expr = expr.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1]
    if expr.startswith("$"):
        expr = expr[1:]
    cur = [obj]
    pos = 0
    while pos < len(expr):
        m = _JP_TOKEN.match(expr, pos)
        if not m:
            return []
        pos = m.end()
        nxt = []
        for c in cur:
            if m.group(1) is not None:
                if isinstance(c, dict) and m.group(1) in c:
                    nxt.append(c[m.group(1)])
            elif m.group(2) is not None:
                if isinstance(c, list):
                    if m.group(2) == "*":
                        nxt.extend(c)
                    elif int(m.group(2)) < len(c):
                        nxt.append(c[int(m.group(2))])
            else:
                if isinstance(c, list):
                    for e in c:
                        v = e
                        for p in m.group(3).split("."):
                            v = v.get(p) if isinstance(v, dict) else None
                        if v is not None and str(v) == m.group(4):
                            nxt.append(e)
        cur = nxt
    return cur


# --------------------------------------------------------------------------
# Per-kind behaviour: defaults on create, validation, update rules, tables.

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _cond_status(obj, ctype):
    for c in _dig(obj, "status", "conditions") or []:
        if isinstance(c, dict) and c.get("type") == ctype:
            return c.get("status")
    return None


def pod_is_ready(pod):
    return _dig(pod, "status", "phase") == "Running" and _cond_status(pod, "Ready") == "True"


def pod_qos(spec):
    reqs = limits = False
    guaranteed = True
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        res = c.get("resources") or {}
        r, l = res.get("requests") or {}, res.get("limits") or {}
        if r or l:
            reqs = reqs or bool(r)
            limits = limits or bool(l)
        for k in ("cpu", "memory"):
            if k not in l or (k in r and str(r[k]) != str(l[k])):
                guaranteed = False
    if not reqs and not limits:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def pod_spec_defaults(spec):
    for k, v in (("restartPolicy", "Always"), ("terminationGracePeriodSeconds", 30),
                 ("dnsPolicy", "ClusterFirst"), ("schedulerName", "default-scheduler"),
                 ("securityContext", {})):
        spec.setdefault(k, v)
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if not isinstance(c, dict):
            continue
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("resources", {})
        img = c.get("image") or ""
        tail = img.rsplit("/", 1)[-1]
        if "imagePullPolicy" not in c:
            c["imagePullPolicy"] = "Always" if ("@" not in tail and (":" not in tail or tail.endswith(":latest"))) \
                else "IfNotPresent"
        for p in c.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")


def pod_scheme_defaults(pod):
    """What decoding a v1 Pod defaults (k8s.io/kubernetes/pkg/apis/core/v1 SetDefaults_*);
    applied again after every mutating webhook's patch, as the real server does."""
    try:
        decode_pod(pod)
    except DecodeError:
        pass                    # a create's body was checked already (decode_body)
    spec = pod.setdefault("spec", {})
    pod_spec_defaults(spec)
    # SetDefaults_Pod (pkg/apis/core/v1/defaults.go): "If limits are specified,
    # but requests are not, default requests to limits", per resource, for
    # containers and init containers.
    for group in ("containers", "initContainers"):
        for c in spec.get(group) or []:
            res = c.get("resources") if isinstance(c, dict) else None
            if isinstance(res, dict) and isinstance(res.get("limits"), dict):
                if not isinstance(res.get("requests"), dict):
                    res["requests"] = {}
                for k, v in res["limits"].items():
                    res["requests"].setdefault(k, v)
    for k, v in (("enableServiceLinks", True), ("preemptionPolicy", "PreemptLowerPriority")):
        spec.setdefault(k, v)


def pod_pre_admission(pod):
    """Scheme defaults plus what the built-in mutating admission plugins that
    run before the webhooks add on CREATE (ServiceAccount: the account name;
    Priority: 0; DefaultTolerationSeconds: the 300 s not-ready/unreachable
    NoExecute tolerations).  Idempotent."""
    pod_scheme_defaults(pod)
    spec = pod["spec"]
    spec.setdefault("priority", 0)
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = spec["serviceAccount"] = sa
    tols = spec.get("tolerations")
    if tols is None:
        tols = []
    # DefaultTolerationSeconds admission plugin.
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        covered = any(isinstance(t, dict) and t.get("effect") in (None, "", "NoExecute") and
                      (t.get("key") == key or (not t.get("key") and t.get("operator") == "Exists"))
                      for t in tols)
        if not covered:
            tols.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                         "tolerationSeconds": 300})
    spec["tolerations"] = tols


def pod_defaults(pod, keep_status):
    pod_pre_admission(pod)
    spec = pod["spec"]
    if not keep_status or "status" not in pod:
        pod["status"] = {"phase": "Pending", "qosClass": pod_qos(spec)}
    else:
        pod["status"].setdefault("phase", "Pending")
        pod["status"].setdefault("qosClass", pod_qos(spec))


def _validate_tolerations(tols, path):
    errs = []
    if not isinstance(tols, list):
        return [FieldErr(path, "Invalid", "must be a list", tols, True)]
    for i, t in enumerate(tols):
        p = "%s[%d]" % (path, i)
        if not isinstance(t, dict):
            errs.append(FieldErr(p, "Invalid", "must be an object", t, True))
            continue
        if t.get("key"):
            bad = check_qualified_name(t["key"])
            if bad:
                errs.append(FieldErr(p + ".key", "Invalid", bad, t["key"], True))
        op = t.get("operator") or "Equal"
        if op not in ("Equal", "Exists"):
            errs.append(FieldErr(p + ".operator", "Unsupported", 'supported values: "Equal", "Exists"', op, True))
        if op == "Exists" and t.get("value"):
            errs.append(FieldErr(p + ".operator", "Invalid", "value must be empty when `operator` is 'Exists'", t.get("value"), True))
        if not t.get("key") and op != "Exists":
            errs.append(FieldErr(p + ".operator", "Invalid", "operator must be Exists when `key` is empty, which means \"match all values and all keys\"", op, True))
        eff = t.get("effect")
        if eff and eff not in TAINT_EFFECTS:
            errs.append(FieldErr(p + ".effect", "Unsupported", 'supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"', eff, True))
        if t.get("tolerationSeconds") is not None and eff != "NoExecute":
            errs.append(FieldErr(p + ".effect", "Invalid", "effect must be 'NoExecute' when `tolerationSeconds` is set", eff, True))
    return errs


def validate_pod(pod, old):
    errs = []
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return [FieldErr("spec", "Required")]
    cs = spec.get("containers")
    if not isinstance(cs, list) or not cs:
        errs.append(FieldErr("spec.containers", "Required"))
    names = set()
    for group in ("containers", "initContainers"):
        for i, c in enumerate(spec.get(group) or []):
            p = "spec.%s[%d]" % (group, i)
            if not isinstance(c, dict):
                errs.append(FieldErr(p, "Invalid", "must be an object", c, True))
                continue
            n = c.get("name")
            if not n:
                errs.append(FieldErr(p + ".name", "Required"))
            else:
                bad = check_label_name(n)
                if bad:
                    errs.append(FieldErr(p + ".name", "Invalid", bad, n, True))
                if n in names:
                    errs.append(FieldErr(p + ".name", "Duplicate", "", n, True))
                names.add(n)
            if not c.get("image") and old is None:
                errs.append(FieldErr(p + ".image", "Required"))
    errs += _validate_tolerations(spec.get("tolerations") or [], "spec.tolerations")
    nn = spec.get("nodeName")
    if nn:
        bad = check_subdomain(nn)
        if bad:
            errs.append(FieldErr("spec.nodeName", "Invalid", bad, nn, True))
    if old is not None and not errs:
        errs += _pod_update_rules(pod, old)
    return errs


def _pod_spec_fixed_part(spec):
    s = copy.deepcopy(spec)
    for g in ("containers", "initContainers"):
        for c in s.get(g) or []:
            if isinstance(c, dict):
                c.pop("image", None)
    for k in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "schedulingGates"):
        s.pop(k, None)
    return s


def _pod_update_rules(pod, old):
    new_spec, old_spec = pod.get("spec") or {}, old.get("spec") or {}
    if _pod_spec_fixed_part(new_spec) != _pod_spec_fixed_part(old_spec):
        return [FieldErr("spec", "Forbidden",
                         "pod updates may not change fields other than `spec.containers[*].image`,"
                         "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                         "`spec.tolerations` (only additions to existing tolerations),"
                         "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
                         "previously negative)")]
    old_t = old_spec.get("tolerations") or []
    new_t = new_spec.get("tolerations") or []
    for t in old_t:
        if t not in new_t:
            return [FieldErr("spec.tolerations", "Forbidden",
                             "existing toleration can not be modified except its tolerationSeconds")]
    og = [g.get("name") for g in old_spec.get("schedulingGates") or []]
    for g in new_spec.get("schedulingGates") or []:
        if g.get("name") not in og:
            return [FieldErr("spec.schedulingGates", "Forbidden", "only deletion is allowed, but found new scheduling gate '%s'" % g.get("name"))]
    return []


def validate_node(node, old):
    errs = []
    spec = node.get("spec") or {}
    taints = spec.get("taints") or []
    if not isinstance(taints, list):
        return [FieldErr("spec.taints", "Invalid", "must be a list", taints, True)]
    seen = set()
    for i, t in enumerate(taints):
        p = "spec.taints[%d]" % i
        if not isinstance(t, dict):
            errs.append(FieldErr(p, "Invalid", "must be an object", t, True))
            continue
        key = t.get("key") or ""
        bad = check_qualified_name(key)
        if bad:
            errs.append(FieldErr(p + ".key", "Invalid", bad, key, True))
        if t.get("value"):
            bad = check_label_value(t["value"])
            if bad:
                errs.append(FieldErr(p + ".value", "Invalid", bad, t["value"], True))
        eff = t.get("effect")
        if not eff:
            errs.append(FieldErr(p + ".effect", "Required"))
        elif eff not in TAINT_EFFECTS:
            errs.append(FieldErr(p + ".effect", "Unsupported", 'supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"', eff, True))
        if (key, eff) in seen:
            errs.append(FieldErr("spec.taints", "Duplicate", "taints must be unique by key and effect pair", t, True))
        seen.add((key, eff))
    if old is not None:
        op = (old.get("spec") or {}).get("providerID")
        if op and spec.get("providerID") != op:
            errs.append(FieldErr("spec.providerID", "Forbidden",
                                 "node updates may not change providerID except from \"\" to valid"))
    return errs


def namespace_scheme_defaults(ns):
    meta = ns["metadata"]
    meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
    ns.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])


def namespace_defaults(ns, keep_status):
    namespace_scheme_defaults(ns)
    if not keep_status or not ns.get("status"):
        ns["status"] = {"phase": "Active"}


class IPAllocator:
    def __init__(self, cidr="10.96.0.0/12"):
        self.net = ipaddress.ip_network(cidr)
        self.next = 10
        self.used = set()

    def take(self, want=None):
        if want:
            self.used.add(want)
            return want
        while True:
            ip = str(self.net.network_address + self.next)
            self.next += 1
            if ip not in self.used:
                self.used.add(ip)
                return ip


def service_defaults(svc, alloc):
    spec = svc.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec.get("type") != "ExternalName":
        if spec.get("clusterIP") != "None":
            spec["clusterIP"] = alloc.take(spec.get("clusterIP"))
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for p in spec.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
            if "port" in p:
                p.setdefault("targetPort", p["port"])
    svc.setdefault("status", {"loadBalancer": {}})


def secret_defaults(sec, keep_status):
    sec.setdefault("type", "Opaque")
    sd = sec.pop("stringData", None)
    if isinstance(sd, dict):
        data = sec.setdefault("data", {})
        for k, v in sd.items():
            data[k] = base64.b64encode(str(v).encode()).decode()


def workload_defaults(obj, keep_status):
    workload_scheme_defaults(obj)
    if not keep_status:
        obj["status"] = {}


def workload_scheme_defaults(obj):
    kind = obj.get("kind")
    spec = obj.setdefault("spec", {})
    if kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        spec.setdefault("replicas", 1)
    if kind in ("Deployment", "DaemonSet", "StatefulSet"):
        spec.setdefault("revisionHistoryLimit", 10)
    if kind == "Deployment":
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault("strategy", {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    if kind == "DaemonSet":
        spec.setdefault("updateStrategy", {"type": "RollingUpdate",
                                           "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    tmpl = spec.get("template")
    if isinstance(tmpl, dict) and isinstance(tmpl.get("spec"), dict):
        pod_spec_defaults(tmpl["spec"])


def validate_workload(obj, old):
    errs = []
    spec = obj.get("spec") or {}
    sel = spec.get("selector")
    if obj.get("kind") in ("Deployment", "DaemonSet", "ReplicaSet", "StatefulSet"):
        if not isinstance(sel, dict):
            return [FieldErr("spec.selector", "Required")]
        try:
            pred = selector_from_label_selector(sel)
        except ApiError as e:
            return [FieldErr("spec.selector", "Invalid", e.message, sel, True)]
        labels = _dig(spec, "template", "metadata", "labels") or {}
        if not pred(labels):
            errs.append(FieldErr("spec.template.metadata.labels", "Invalid",
                                 "`selector` does not match template `labels`", labels, True))
        if old is not None and (old.get("spec") or {}).get("selector") != sel:
            errs.append(FieldErr("spec.selector", "Invalid", "field is immutable", sel, True))
    return errs


def selector_from_label_selector(sel):
    """metav1.LabelSelector -> predicate on labels; {} matches everything."""
    if sel is None:
        return lambda labels: False
    ml = sel.get("matchLabels") or {}
    exprs = sel.get("matchExpressions") or []

    def pred(labels):
        labels = labels or {}
        for k, v in ml.items():
            if labels.get(k) != v:
                return False
        for e in exprs:
            k, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
            if op == "In" and labels.get(k) not in vals:
                return False
            if op == "NotIn" and k in labels and labels[k] in vals:
                return False
            if op == "Exists" and k not in labels:
                return False
            if op == "DoesNotExist" and k in labels:
                return False
        return True
    for e in exprs:
        if e.get("operator") not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise err_bad_request("%r is not a valid label selector operator" % e.get("operator"))
    return pred


def validate_pdb(pdb, old):
    spec = pdb.get("spec") or {}
    errs = []
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        errs.append(FieldErr("spec", "Invalid", "minAvailable and maxUnavailable cannot be both set", spec, True))
    for k in ("minAvailable", "maxUnavailable"):
        v = spec.get(k)
        if isinstance(v, str) and not re.match(r"^\d+%$", v):
            errs.append(FieldErr("spec." + k, "Invalid", "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')", v, True))
        elif isinstance(v, int) and v < 0:
            errs.append(FieldErr("spec." + k, "Invalid", "must be greater than or equal to 0", v, True))
    return errs


def validate_lease(lease, old):
    spec = lease.get("spec") or {}
    d = spec.get("leaseDurationSeconds")
    if d is not None and (not isinstance(d, int) or d <= 0):
        return [FieldErr("spec.leaseDurationSeconds", "Invalid", "must be greater than 0", d, True)]
    return []


# --------------------------------------------------------------------------
# Decoding: what fails (400) or changes when the real server decodes JSON into
# its Go types, for the fields that matter here.  Decoding happens before
# admission and validation; a create or update that does not decode is
# transformDecodeError's 400 (handlers/rest.go), a patched object that does
# not decode is an Invalid "patch" error (handlers/patch.go).

class DecodeError(Exception):
    """The Go error text of a field that does not decode."""


def _go_quote(s):
    """Go's time.quote: double quotes, backslash before " and \\, \\x for the rest."""
    out = ['"']
    for ch in s:
        if ch < " " or ord(ch) >= 0x80:
            out.extend("\\x%02x" % b for b in ch.encode())
        else:
            out.append("\\" + ch if ch in '"\\' else ch)
    return "".join(out) + '"'


RFC3339_MICRO = "2006-01-02T15:04:05.000000Z07:00"


def go_parse_rfc3339_micro(value):
    """time.Parse(metav1.RFC3339Micro, value) as Go does it, chunk by chunk
    (time/format.go Parse), so the error text is Go's.  Exactly six
    fractional digits are required: stdFracSecond0 "requires the exact
    number of digits as specified in the layout".  Returns an aware
    datetime; raises DecodeError."""
    v = value

    def fail(layout_elem, value_elem, msg=""):
        if msg:
            raise DecodeError("parsing time %s%s" % (_go_quote(value), msg))
        raise DecodeError("parsing time %s as %s: cannot parse %s as %s" % (
            _go_quote(value), _go_quote(RFC3339_MICRO), _go_quote(value_elem), _go_quote(layout_elem)))

    def digit(i):
        return len(v) > i and "0" <= v[i] <= "9"

    def getnum(fixed):
        if not digit(0):
            return None
        if not digit(1):
            return None if fixed else (int(v[0]), v[1:])
        return int(v[:2]), v[2:]

    def go_atoi(t):
        neg = t[:1] == "-"
        if t[:1] in ("-", "+"):
            t = t[1:]
        if not t or not t.isdigit() or not t.isascii():
            return None
        return -int(t) if neg else int(t)

    fields = {}
    for prefix, std in (("", "2006"), ("-", "01"), ("-", "02"), ("T", "15"), (":", "04"), (":", "05"),
                        ("", ".000000"), ("", "Z07:00")):
        for ch in prefix:
            if not v or v[0] != ch:
                fail(prefix, v)
            v = v[1:]
        hold = v
        if std == "2006":
            if len(v) < 4 or not digit(0) or go_atoi(v[:4]) is None:
                fail(std, hold)
            fields["year"], v = go_atoi(v[:4]), v[4:]
        elif std in ("01", "02", "15", "04", "05"):
            got = getnum(std != "15")
            if got is None:
                fail(std, hold)
            n, v = got
            rng = {"01": ("month", 1, 12), "15": ("hour", 0, 23), "04": ("minute", 0, 59),
                   "05": ("second", 0, 59)}.get(std)
            if rng and not rng[1] <= n <= rng[2]:
                fail(std, v, ": %s out of range" % rng[0])
            fields[std] = n
        elif std == ".000000":
            if len(v) < 7 or v[0] not in ".,":
                fail(std, hold)
            ns = go_atoi(v[1:7])
            if ns is None:
                fail(std, hold)
            if ns < 0:
                fail(std, v[7:], ": fractional second out of range")
            fields["us"], v = ns, v[7:]
        else:
            if v[:1] == "Z":
                fields["tz"], v = 0, v[1:]
                continue
            if len(v) < 6 or v[3] != ":":
                fail(std, hold)
            sign, hh, mm, v = v[0], v[1:3], v[4:6], v[6:]
            if not (hh.isdigit() and mm.isdigit() and hh.isascii() and mm.isascii()):
                fail(std, hold)
            if int(hh) > 24:
                fail(std, v, ": time zone offset hour out of range")
            if int(mm) > 60:
                fail(std, v, ": time zone offset minute out of range")
            if sign not in "+-":
                fail(std, hold)
            fields["tz"] = (int(hh) * 60 + int(mm)) * (1 if sign == "+" else -1)
    if v:
        fail("", v, ": extra text: " + _go_quote(v))
    try:
        local = datetime.datetime(fields["year"], fields["01"], fields["02"], fields["15"], fields["04"],
                                  fields["05"], fields["us"])
    except ValueError:
        fail("", v, ": day out of range")
    return (local - datetime.timedelta(minutes=fields["tz"])).replace(tzinfo=datetime.timezone.utc)


def decode_micro_time(v):
    """metav1.MicroTime.UnmarshalJSON (apimachinery/pkg/apis/meta/v1/micro_time.go):
    null, or a string parsed with RFC3339Micro; MarshalJSON writes it back
    in UTC with six digits.  Returns the stored form; raises DecodeError."""
    if v is None:
        return None
    if not isinstance(v, str):
        kind = "bool" if isinstance(v, bool) else "number" if isinstance(v, (int, float)) else \
            "array" if isinstance(v, list) else "object"
        raise DecodeError("json: cannot unmarshal %s into Go value of type string" % kind)
    t = go_parse_rfc3339_micro(v)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%06dZ" % t.microsecond


# Quantities (apimachinery/pkg/api/resource/quantity.go, suffix.go, amount.go).
import functools  # noqa: E402  (kept here, with the one function that uses it)
QUANTITY_RE = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_DEC_SUFFIX = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BIN_SUFFIX = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_QUANTITY_MAX = 2 ** 63 - 1


def parse_quantity(text):
    """resource.ParseQuantity: (Fraction value, format) with the value
    rounded up to the nano unit; raises DecodeError with upstream's errors."""
    from fractions import Fraction
    if text == "":
        raise DecodeError("quantities must match the regular expression '%s'" % QUANTITY_RE)
    if text == "0":
        return Fraction(0), "DecimalSI"
    # parseQuantityString: sign, digits, optional .digits, then the suffix.
    pos, positive = 0, True
    if text[0] in "+-":
        positive, pos = text[0] == "+", 1
    i = pos
    while i < len(text) and "0" <= text[i] <= "9":
        i += 1
    num = text[pos:i]
    denom = ""
    if i < len(text) and text[i] == ".":
        j = i + 1
        while j < len(text) and "0" <= text[j] <= "9":
            j += 1
        denom, i = text[i + 1:j], j
    suffix = text[i:]
    j = 0
    while j < len(suffix) and suffix[j] in "eEinumkKMGTP":
        j += 1
    if j < len(suffix) and suffix[j] in "+-":
        j += 1
    if not all("0" <= ch <= "9" for ch in suffix[j:]):
        raise DecodeError("quantities must match the regular expression '%s'" % QUANTITY_RE)
    # suffixHandler.interpret
    if suffix in _DEC_SUFFIX:
        base, exp, fmt = 10, _DEC_SUFFIX[suffix], "DecimalSI"
    elif suffix in _BIN_SUFFIX:
        base, exp, fmt = 2, _BIN_SUFFIX[suffix], "BinarySI"
    elif len(suffix) > 1 and suffix[0] in "eE" and re.match(r"^[+-]?[0-9]+$", suffix[1:]):
        base, exp, fmt = 10, int(suffix[1:]), "DecimalExponent"
    else:
        raise DecodeError("unable to parse quantity's suffix")
    amount = Fraction(int(num or "0") * 10 ** len(denom) + int(denom or "0"), 10 ** len(denom))
    amount *= Fraction(base) ** exp
    # Non-zero values are rounded up to the nano unit; BinarySI is capped at
    # 2^63-1, and below 1 it is DecimalSI ("avoids rounding").
    nanos = amount * 10 ** 9
    if nanos != int(nanos):
        amount = Fraction(-(-nanos.numerator // nanos.denominator), 10 ** 9)
    if fmt == "BinarySI" and amount > _QUANTITY_MAX:
        amount = Fraction(_QUANTITY_MAX)
    if fmt == "BinarySI" and 0 < amount < 1:
        fmt = "DecimalSI"
    return (amount if positive else -amount), fmt


@functools.lru_cache(maxsize=4096)       # pods repeat the same few quantities
def canonical_quantity(text):
    """Quantity.String(): CanonicalizeBytes of the parsed value.  DecimalSI and
    DecimalExponent: all factors of ten moved into the exponent, then the
    exponent lowered to a multiple of three (AsCanonicalBytes), with the
    suffix of that exponent; BinarySI (|q| >= 1024 and a whole number):
    factors of 1024 into Ki..Ei (AsCanonicalBase1024Bytes), else DecimalSI."""
    amount, fmt = parse_quantity(text)
    if amount == 0:
        return "0"
    sign, mag = ("-" if amount < 0 else ""), abs(amount)
    if fmt == "BinarySI":
        if mag < 1024 or mag.denominator != 1:
            fmt = "DecimalSI"
        else:
            m, e = int(mag), 0
            while m % 1024 == 0 and e < 6:
                m, e = m // 1024, e + 1
            return sign + str(m) + ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][e]
    # the value is n / 10^9 at most: find mantissa m and exponent e (multiple of 3)
    e = -9
    m = mag * 10 ** 9
    m = m.numerator // m.denominator
    while m % 10 == 0:
        m, e = m // 10, e + 1
    while e % 3:
        m, e = m * 10, e - 1
    if fmt == "DecimalExponent":
        return sign + str(m) + ("e%d" % e if e else "")
    suffix = {v: k for k, v in _DEC_SUFFIX.items()}.get(e, "")
    return sign + str(m) + suffix


def decode_quantity(v):
    """Quantity.UnmarshalJSON: null, a JSON number or a (trimmed) string."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise DecodeError("quantities must match the regular expression '%s'" % QUANTITY_RE)
    text = v.strip() if isinstance(v, str) else json.dumps(v)
    return canonical_quantity(text)


def _decode_map(obj, path, fn):
    """Applies fn to every value of the map at path (a tuple) in obj, in place."""
    m = _dig(obj, *path)
    if isinstance(m, dict):
        for k in list(m):
            m[k] = fn(m[k])


def _decode_fields(obj, path, fn):
    parent = _dig(obj, *path[:-1]) if len(path) > 1 else obj
    if isinstance(parent, dict) and path[-1] in parent:
        parent[path[-1]] = fn(parent[path[-1]])


def decode_pod(pod):
    """Pod quantities in canonical form (containers' requests and limits,
    overhead, pod-level resources)."""
    spec = pod.get("spec") if isinstance(pod, dict) else None
    if not isinstance(spec, dict):
        return
    for group in ("containers", "initContainers", "ephemeralContainers"):
        for c in spec.get(group) or []:
            if isinstance(c, dict):
                for k in ("requests", "limits"):
                    _decode_map(c, ("resources", k), decode_quantity)
    _decode_map(pod, ("spec", "overhead"), decode_quantity)
    for k in ("requests", "limits"):
        _decode_map(pod, ("spec", "resources", k), decode_quantity)


def decode_lease(lease):
    for f in ("acquireTime", "renewTime"):
        _decode_fields(lease, ("spec", f), decode_micro_time)


def decode_event(ev):
    _decode_fields(ev, ("eventTime",), decode_micro_time)
    _decode_fields(ev, ("series", "lastObservedTime"), decode_micro_time)


DECODERS = {("", "Pod"): decode_pod, ("coordination.k8s.io", "Lease"): decode_lease,
            ("", "Event"): decode_event, ("events.k8s.io", "Event"): decode_event}


def decode_body(rt, obj):
    """A create or update body as the real server decodes it; a field that
    does not decode is transformDecodeError's 400
    ('<Kind> in version "<v>" cannot be handled as a <Kind>: <error>')."""
    fn = DECODERS.get((rt.group, rt.kind))
    if fn is None or not isinstance(obj, dict):
        return
    try:
        fn(obj)
    except DecodeError as e:
        raise err_bad_request('%s in version "%s" cannot be handled as a %s: %s' % (rt.kind, rt.version, rt.kind, e))


def decode_patched(rt, obj):
    """A patched object as applyPatchToCurrentObject decodes it: a field that
    does not decode is errors.NewInvalid(schema.GroupKind{}, "",
    field.Invalid(field.NewPath("patch"), <patched JSON>, err))."""
    fn = DECODERS.get((rt.group, rt.kind))
    if fn is None or not isinstance(obj, dict):
        return
    raw = dumps(obj).decode()
    try:
        fn(obj)
    except DecodeError as e:
        fe = FieldErr("patch", "Invalid", str(e), raw, True)
        raise ApiError(422, "Invalid", ' "" is invalid: ' + fe.text(), {"causes": [fe.cause()]})


# events.k8s.io/v1 <-> core/v1 Event (one storage, like the real server).
_EV_RENAMES = (("regarding", "involvedObject"), ("note", "message"),
               ("reportingController", "reportingComponent"), ("deprecatedSource", "source"),
               ("deprecatedFirstTimestamp", "firstTimestamp"),
               ("deprecatedLastTimestamp", "lastTimestamp"), ("deprecatedCount", "count"))


def event_v1_to_core(ev):
    out = {k: v for k, v in ev.items()}
    for a, b in _EV_RENAMES:
        if a in out:
            out[b] = out.pop(a)
    out["apiVersion"] = "v1"
    out["kind"] = "Event"
    return out


def event_core_to_v1(ev):
    out = {k: v for k, v in ev.items()}
    for a, b in _EV_RENAMES:
        if b in out:
            out[a] = out.pop(b)
    out["apiVersion"] = "events.k8s.io/v1"
    out["kind"] = "Event"
    return out


def validate_event(ev, old, via_events_group):
    """pkg/apis/core/validation/events.go for creation."""
    errs = []
    ns = ev["metadata"].get("namespace", "")
    inv = ev.get("involvedObject") or {}
    rc_name = "reportingController" if via_events_group else "reportingComponent"
    note_name = "note" if via_events_group else "message"
    if not ev.get("eventTime"):
        if via_events_group:
            errs.append(FieldErr("eventTime", "Required"))
        if not inv.get("namespace"):
            if ns not in ("", "default"):
                errs.append(FieldErr("involvedObject.namespace", "Invalid", "does not match event.namespace", inv.get("namespace", ""), True))
        elif ns != inv.get("namespace"):
            errs.append(FieldErr("involvedObject.namespace", "Invalid", "does not match event.namespace", inv.get("namespace"), True))
    else:
        if not inv.get("namespace") and ns not in ("default", "kube-system"):
            errs.append(FieldErr("involvedObject.namespace", "Invalid", "does not match event.namespace", "", True))
        rc = ev.get("reportingComponent") or ""
        if not rc:
            errs.append(FieldErr(rc_name, "Required"))
        else:
            bad = check_qualified_name(rc)
            if bad:
                errs.append(FieldErr(rc_name, "Invalid", bad, rc, True))
        ri = ev.get("reportingInstance") or ""
        if not ri:
            errs.append(FieldErr("reportingInstance", "Required"))
        elif len(ri) > 128:
            errs.append(FieldErr("reportingInstance", "Invalid", "can have at most 128 characters", "", True))
        for f in ("action", "reason"):
            v = ev.get(f) or ""
            if not v:
                errs.append(FieldErr(f, "Required"))
            elif len(v) > 128:
                errs.append(FieldErr(f, "Invalid", "can have at most 128 characters", "", True))
        if len(ev.get("message") or "") > 1024:
            errs.append(FieldErr(note_name, "Invalid", "can have at most 1024 characters", "", True))
        if via_events_group:
            if ev.get("type") not in ("Normal", "Warning"):
                errs.append(FieldErr("type", "Invalid", "has invalid value: %s" % (ev.get("type") or ""), "", True))
            for dep, core in (("deprecatedFirstTimestamp", "firstTimestamp"), ("deprecatedLastTimestamp", "lastTimestamp"),
                              ("deprecatedCount", "count"), ("deprecatedSource", "source")):
                if ev.get(core):
                    errs.append(FieldErr(dep, "Invalid", "needs to be unset", "", True))
    return errs


# Server-side table printers: (name, type, format, priority, cell function).

def _node_status(n):
    st = {"True": "Ready", "False": "NotReady"}.get(_cond_status(n, "Ready"), "Unknown")
    if _dig(n, "spec", "unschedulable"):
        st += ",SchedulingDisabled"
    return st


def _node_roles(n):
    roles = sorted(k.split("/", 1)[1] for k in (_dig(n, "metadata", "labels") or {})
                   if k.startswith("node-role.kubernetes.io/") and k.split("/", 1)[1])
    return ",".join(roles) or "<none>"


def _node_addr(n, t):
    for a in _dig(n, "status", "addresses") or []:
        if a.get("type") == t:
            return a.get("address")
    return "<none>"


def _pod_ready(p):
    total = len(_dig(p, "spec", "containers") or [])
    ready = sum(1 for c in _dig(p, "status", "containerStatuses") or [] if c.get("ready"))
    return "%d/%d" % (ready, total)


def _pod_status(p):
    if _dig(p, "metadata", "deletionTimestamp"):
        return "Terminating"
    reason = _dig(p, "status", "reason") or _dig(p, "status", "phase") or "Unknown"
    for c in _dig(p, "status", "containerStatuses") or []:
        w = _dig(c, "state", "waiting", "reason") or _dig(c, "state", "terminated", "reason")
        if w:
            reason = w
    if reason == "Pending" and not _dig(p, "spec", "nodeName"):
        return "Pending"
    return reason


def _pod_restarts(p):
    return sum(int(c.get("restartCount") or 0) for c in _dig(p, "status", "containerStatuses") or [])


def _ev_object(e):
    io = e.get("involvedObject") or {}
    return "%s/%s" % ((io.get("kind") or "").lower(), io.get("name") or "")


def _ev_last_seen(e):
    t = parse_time(e.get("lastTimestamp") or e.get("eventTime") or _dig(e, "metadata", "creationTimestamp"))
    return "<unknown>" if t is None else human_duration(time.time() - t)


def _ports(svc):
    out = []
    for p in _dig(svc, "spec", "ports") or []:
        s = "%s/%s" % (p.get("port"), p.get("protocol", "TCP"))
        if p.get("nodePort"):
            s = "%s:%s/%s" % (p.get("port"), p.get("nodePort"), p.get("protocol", "TCP"))
        out.append(s)
    return ",".join(out) or "<none>"


def _intstr(v):
    return "N/A" if v is None else str(v)


NAME_COL = ("Name", "string", "name", 0, lambda o: _dig(o, "metadata", "name"))
AGE_COL = ("Age", "string", "", 0, age_of)
_WEBHOOKS_COL = ("Webhooks", "integer", "", 0, lambda o: len(o.get("webhooks") or []))

TABLES = {
    "MutatingWebhookConfiguration": [NAME_COL, _WEBHOOKS_COL, AGE_COL],
    "ValidatingWebhookConfiguration": [NAME_COL, _WEBHOOKS_COL, AGE_COL],
    "Node": [NAME_COL, ("Status", "string", "", 0, _node_status), ("Roles", "string", "", 0, _node_roles),
             AGE_COL, ("Version", "string", "", 0, lambda n: _dig(n, "status", "nodeInfo", "kubeletVersion") or ""),
             ("Internal-IP", "string", "", 1, lambda n: _node_addr(n, "InternalIP")),
             ("External-IP", "string", "", 1, lambda n: _node_addr(n, "ExternalIP")),
             ("OS-Image", "string", "", 1, lambda n: _dig(n, "status", "nodeInfo", "osImage") or "<unknown>"),
             ("Kernel-Version", "string", "", 1, lambda n: _dig(n, "status", "nodeInfo", "kernelVersion") or "<unknown>"),
             ("Container-Runtime", "string", "", 1, lambda n: _dig(n, "status", "nodeInfo", "containerRuntimeVersion") or "<unknown>")],
    "Pod": [NAME_COL, ("Ready", "string", "", 0, _pod_ready), ("Status", "string", "", 0, _pod_status),
            ("Restarts", "string", "", 0, lambda p: str(_pod_restarts(p))), AGE_COL,
            ("IP", "string", "", 1, lambda p: _dig(p, "status", "podIP") or "<none>"),
            ("Node", "string", "", 1, lambda p: _dig(p, "spec", "nodeName") or "<none>"),
            ("Nominated Node", "string", "", 1, lambda p: _dig(p, "status", "nominatedNodeName") or "<none>"),
            ("Readiness Gates", "string", "", 1, lambda p: "<none>")],
    "Namespace": [NAME_COL, ("Status", "string", "", 0, lambda n: _dig(n, "status", "phase") or ""), AGE_COL],
    "Event": [("Last Seen", "string", "", 0, _ev_last_seen), ("Type", "string", "", 0, lambda e: e.get("type") or ""),
              ("Reason", "string", "", 0, lambda e: e.get("reason") or ""),
              ("Object", "string", "", 0, _ev_object), ("Message", "string", "", 0, lambda e: e.get("message") or e.get("note") or ""),
              ("Name", "string", "name", 1, lambda e: _dig(e, "metadata", "name"))],
    "Service": [NAME_COL, ("Type", "string", "", 0, lambda s: _dig(s, "spec", "type") or ""),
                ("Cluster-IP", "string", "", 0, lambda s: _dig(s, "spec", "clusterIP") or "<none>"),
                ("External-IP", "string", "", 0, lambda s: "<none>"), ("Port(s)", "string", "", 0, _ports), AGE_COL],
    "ConfigMap": [NAME_COL, ("Data", "integer", "", 0, lambda c: len(c.get("data") or {}) + len(c.get("binaryData") or {})), AGE_COL],
    "Secret": [NAME_COL, ("Type", "string", "", 0, lambda s: s.get("type") or ""),
               ("Data", "integer", "", 0, lambda s: len(s.get("data") or {})), AGE_COL],
    "ServiceAccount": [NAME_COL, ("Secrets", "integer", "", 0, lambda s: len(s.get("secrets") or [])), AGE_COL],
    "Deployment": [NAME_COL, ("Ready", "string", "", 0, lambda d: "%d/%d" % (_dig(d, "status", "readyReplicas") or 0, _dig(d, "spec", "replicas") or 0)),
                   ("Up-to-date", "integer", "", 0, lambda d: _dig(d, "status", "updatedReplicas") or 0),
                   ("Available", "integer", "", 0, lambda d: _dig(d, "status", "availableReplicas") or 0), AGE_COL],
    "DaemonSet": [NAME_COL] + [(n, "integer", "", 0, (lambda f: lambda d: _dig(d, "status", f) or 0)(f)) for n, f in
                               (("Desired", "desiredNumberScheduled"), ("Current", "currentNumberScheduled"),
                                ("Ready", "numberReady"), ("Up-to-date", "updatedNumberScheduled"),
                                ("Available", "numberAvailable"))] +
                 [("Node Selector", "string", "", 0, lambda d: ",".join("%s=%s" % kv for kv in (_dig(d, "spec", "template", "spec", "nodeSelector") or {}).items()) or "<none>"), AGE_COL],
    "ReplicaSet": [NAME_COL, ("Desired", "integer", "", 0, lambda d: _dig(d, "spec", "replicas") or 0),
                   ("Current", "integer", "", 0, lambda d: _dig(d, "status", "replicas") or 0),
                   ("Ready", "integer", "", 0, lambda d: _dig(d, "status", "readyReplicas") or 0), AGE_COL],
    "PodDisruptionBudget": [NAME_COL, ("Min Available", "string", "", 0, lambda p: _intstr(_dig(p, "spec", "minAvailable"))),
                            ("Max Unavailable", "string", "", 0, lambda p: _intstr(_dig(p, "spec", "maxUnavailable"))),
                            ("Allowed Disruptions", "integer", "", 0, lambda p: _dig(p, "status", "disruptionsAllowed") or 0), AGE_COL],
    "Lease": [NAME_COL, ("Holder", "string", "", 0, lambda l: _dig(l, "spec", "holderIdentity") or ""), AGE_COL],
    "CustomResourceDefinition": [NAME_COL, ("Created At", "date", "", 0, lambda c: _dig(c, "metadata", "creationTimestamp"))],
}


# --------------------------------------------------------------------------
# Resource types and storage.

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def encode_continue(start, rv):
    """storage.EncodeContinue (apiserver/pkg/storage/continue.go): unpadded
    base64url of {"v":"meta.k8s.io/v1","rv":rv,"start":key}."""
    return base64.urlsafe_b64encode(dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start})).decode().rstrip("=")


def decode_continue(token):
    """storage.DecodeContinue: (start key, rv); errors are the 400 of
    storage.ValidateListOptions ("invalid continue token: ...")."""
    def bad(why):
        return err_bad_request("invalid continue token: continue key is not valid" + why)
    try:
        tok = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError) as e:
        raise bad(": %s" % e)
    if not isinstance(tok, dict):
        raise bad(": json: cannot unmarshal into Go value of type storage.continueToken")
    if tok.get("v") != "meta.k8s.io/v1":
        raise bad(": server does not recognize this encoded version %s" % tok.get("v"))
    rv, start = tok.get("rv"), tok.get("start")
    if not isinstance(rv, int) or rv == 0:
        raise bad(": incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    if not isinstance(start, str) or not start:
        raise bad(": encoded start key empty (version meta.k8s.io/v1)")
    return start, rv


def validate_list_options(q, watch):
    """ValidateListOptions (apimachinery/pkg/apis/meta/internalversion/validation/
    validation.go) with the WatchList feature on; errors are the handler's
    errors.NewInvalid(GroupKind{meta.k8s.io, ListOptions}, "", errs): 422."""
    match = q.get("resourceVersionMatch", "")
    initial = q.get("sendInitialEvents") or None      # absent (nil) or a value
    errs = []
    if watch:
        if initial is not None and match != "NotOlderThan":
            errs.append(FieldErr("resourceVersionMatch", "Forbidden",
                                 "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"))
        if match:
            if initial is None:
                errs.append(FieldErr("resourceVersionMatch", "Forbidden",
                                     "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"))
            if match != "NotOlderThan":
                errs.append(FieldErr("resourceVersionMatch", "Unsupported", 'supported values: "NotOlderThan"',
                                     match, True))
            if q.get("continue"):
                errs.append(FieldErr("resourceVersionMatch", "Forbidden",
                                     "resourceVersionMatch is forbidden when continue is provided"))
    else:
        if match:
            if not q.get("resourceVersion"):
                errs.append(FieldErr("resourceVersionMatch", "Forbidden",
                                     "resourceVersionMatch is forbidden unless resourceVersion is provided"))
            if q.get("continue"):
                errs.append(FieldErr("resourceVersionMatch", "Forbidden",
                                     "resourceVersionMatch is forbidden when continue is provided"))
            if match not in ("Exact", "NotOlderThan"):
                errs.append(FieldErr("resourceVersionMatch", "Unsupported",
                                     'supported values: "Exact", "NotOlderThan", ""', match, True))
            if match == "Exact" and q.get("resourceVersion") == "0":
                errs.append(FieldErr("resourceVersionMatch", "Forbidden",
                                     'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'))
        if initial is not None:
            errs.append(FieldErr("sendInitialEvents", "Forbidden", "sendInitialEvents is forbidden for list"))
    if errs:
        raise err_invalid("ListOptions", "meta.k8s.io", "", errs)


class ResourceType:
    """One served group/version/resource.  Several may share one Store
    (core and events.k8s.io Events, or the versions of a CRD)."""

    def __init__(self, group, version, plural, kind, namespaced, short=(), subs=(), cats=(),
                 verbs=ALL_VERBS, fields=COMMON_FIELDS, generation=False, unconditional=True,
                 defaults=None, validate=None, convert_out=None, convert_in=None,
                 name_check=check_subdomain, crd=None, schema=None, columns=None,
                 pre_admit=None, scheme_defaults=None, defaults_on_update=False):
        self.group, self.version, self.plural, self.kind = group, version, plural, kind
        self.api_version = "%s/%s" % (group, version) if group else version
        self.singular = kind.lower()
        self.list_kind = kind + "List"
        self.namespaced = namespaced
        self.short, self.subs, self.cats, self.verbs = list(short), set(subs), list(cats), list(verbs)
        self.fields = fields
        self.generation = generation
        self.unconditional = unconditional
        self.defaults, self.validate = defaults, validate
        # Admission: pre_admit(obj) = what decoding and the built-in mutating
        # plugins apply before the webhooks see a CREATE; scheme_defaults(obj)
        # = decoding defaults, applied again after each webhook patch.
        self.pre_admit = pre_admit
        self.scheme_defaults = scheme_defaults
        self.defaults_on_update = defaults_on_update
        self.convert_out, self.convert_in = convert_out, convert_in
        self.name_check = name_check
        self.crd = crd                  # name of the owning CRD, for custom resources
        self.schema = schema            # openAPIV3Schema of this version
        self.columns = columns
        self.store = None

    @property
    def gr(self):
        return gr_string(self.group, self.plural)


class Store:
    def __init__(self, cluster, home):
        self.home = home                # the ResourceType whose shape is stored
        self.objects = {}               # "ns/name" -> [obj, cached json bytes or None]
        self.keys = []                  # sorted keys, etcd order
        self.history = []               # [rv, type, obj, prev, raw] oldest first
        self.history_rvs = []
        self.history_max = cluster.history_max
        self.trim_rv = 0                # events with rv <= trim_rv are gone
        self.compact_rv = 0             # watches from rv < compact_rv get 410
        self.expired_mode = "event"     # how 410 is delivered: "event" or "http"
        self.cond = threading.Condition(cluster.lock)
        self.drop_gen = 0
        self.drop_mode = "clean"
        self.watchers = 0
        # spec.nodeName -> set of keys, for pods (the real watch cache indexes it too)
        self.node_index = {} if home.kind == "Pod" and not home.group else None

    def ns_range(self, ns):
        if ns is None:
            return 0, len(self.keys)
        return (bisect.bisect_left(self.keys, ns + "/"), bisect.bisect_left(self.keys, ns + "0"))


def obj_key(ns, name):
    return "%s/%s" % (ns or "", name)


def _copy_meta(obj):
    out = dict(obj)
    out["metadata"] = dict(obj.get("metadata") or {})
    return out


class Cluster:
    """All API state.  Every mutation holds self.lock; stored dicts are never
    mutated in place (copy, change, commit), so readers may serialize them."""

    def __init__(self, history_max=10000, pod_termination=0.0):
        self.lock = threading.RLock()
        self.rv = 100
        self.history_max = history_max
        self.pod_termination = pod_termination
        self.types = {}                 # (group, version, plural) -> ResourceType
        self.by_kind = {}               # (apiVersion, kind) -> ResourceType
        self.stores = {}                # (group, plural) -> Store
        self.crd_types = {}             # CRD name -> [ResourceType]
        self.uids = {}                  # uid -> (store, key)
        self.dependents = {}            # owner uid -> set((store, key))
        self.ips = IPAllocator()
        self.batching = False
        self.touched = set()
        self.reap_heap = []
        self.reap_cond = threading.Condition(self.lock)
        self.stopping = False
        self.timeline = simtimeline.Timeline()     # /_sim/timeline, fed by _commit
        self._install_builtins()
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease", "stratos-system"):
            self.create(self.types[("", "v1", "namespaces")], None,
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, {})
        self.create(self.types[("", "v1", "services")], "default", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 6443}]}}, {})
        threading.Thread(target=self._reaper, name="reaper", daemon=True).start()

    # ---- registry

    def add_type(self, rt, store_owner=None):
        self.types[(rt.group, rt.version, rt.plural)] = rt
        self.by_kind[(rt.api_version, rt.kind)] = rt
        skey = store_owner or (rt.group, rt.plural)
        st = self.stores.get(skey)
        if st is None:
            st = self.stores[skey] = Store(self, rt)
        rt.store = st
        return rt

    def _install_builtins(self):
        T = ResourceType
        nodefault = lambda o, keep: None
        self.add_type(T("", "v1", "namespaces", "Namespace", False, ["ns"], ["status", "finalize"],
                        fields=NAMESPACE_FIELDS, defaults=namespace_defaults, name_check=check_label_name,
                        pre_admit=namespace_scheme_defaults, scheme_defaults=namespace_scheme_defaults))
        self.add_type(T("", "v1", "nodes", "Node", False, ["no"], ["status"], fields=NODE_FIELDS,
                        validate=validate_node))
        self.add_type(T("", "v1", "pods", "Pod", True, ["po"], ["status", "binding", "eviction"], ["all"],
                        fields=POD_FIELDS, defaults=pod_defaults, validate=validate_pod,
                        pre_admit=pod_pre_admission, scheme_defaults=pod_scheme_defaults))
        self.add_type(T("", "v1", "events", "Event", True, ["ev"], fields=EVENT_FIELDS,
                        validate=lambda o, old: validate_event(o, old, False) if old is None else []))
        self.add_type(T("", "v1", "services", "Service", True, ["svc"], ["status"], ["all"],
                        defaults=lambda o, keep: service_defaults(o, self.ips), name_check=check_label_name))
        self.add_type(T("", "v1", "configmaps", "ConfigMap", True, ["cm"]))
        self.add_type(T("", "v1", "secrets", "Secret", True, fields=SECRET_FIELDS, defaults=secret_defaults,
                        pre_admit=lambda o: secret_defaults(o, True)))
        self.add_type(T("", "v1", "serviceaccounts", "ServiceAccount", True, ["sa"]))
        self.add_type(T("", "v1", "endpoints", "Endpoints", True, ["ep"]))
        self.add_type(T("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ["pvc"], ["status"]))
        self.add_type(T("", "v1", "persistentvolumes", "PersistentVolume", False, ["pv"], ["status"]))
        for plural, kind, short in (("deployments", "Deployment", ["deploy"]), ("daemonsets", "DaemonSet", ["ds"]),
                                    ("replicasets", "ReplicaSet", ["rs"]), ("statefulsets", "StatefulSet", ["sts"])):
            self.add_type(T("apps", "v1", plural, kind, True, short, ["status"], ["all"], generation=True,
                            defaults=workload_defaults, validate=validate_workload,
                            pre_admit=workload_scheme_defaults, scheme_defaults=workload_scheme_defaults))
        self.add_type(T("apps", "v1", "controllerrevisions", "ControllerRevision", True))
        self.add_type(T("batch", "v1", "jobs", "Job", True, [], ["status"], ["all"], generation=True,
                        defaults=workload_defaults, pre_admit=workload_scheme_defaults,
                        scheme_defaults=workload_scheme_defaults))
        self.add_type(T("batch", "v1", "cronjobs", "CronJob", True, ["cj"], ["status"], ["all"], generation=True))
        self.add_type(T("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ["pdb"], ["status"],
                        generation=True, validate=validate_pdb))
        # pkg/registry/coordination/lease/strategy.go: AllowUnconditionalUpdate() is false.
        self.add_type(T("coordination.k8s.io", "v1", "leases", "Lease", True, validate=validate_lease,
                        unconditional=False))
        self.add_type(T("events.k8s.io", "v1", "events", "Event", True, ["ev"], fields=EVENTS_V1_FIELDS,
                        convert_out=event_core_to_v1, convert_in=event_v1_to_core,
                        validate=lambda o, old: validate_event(o, old, True) if old is None else []),
                      store_owner=("", "events"))
        self.add_type(T("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
                        False, ["crd", "crds"], ["status"], ["api-extensions"], generation=True,
                        unconditional=False, defaults=self._crd_defaults, validate=validate_crd))
        self.add_type(T("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview",
                        False, verbs=["create"]))
        for plural, kind, nsd in (("roles", "Role", True), ("rolebindings", "RoleBinding", True),
                                  ("clusterroles", "ClusterRole", False),
                                  ("clusterrolebindings", "ClusterRoleBinding", False)):
            self.add_type(T("rbac.authorization.k8s.io", "v1", plural, kind, nsd))
        for plural, kind, mutating in (("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", True),
                                       ("validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False)):
            self.add_type(T("admissionregistration.k8s.io", "v1", plural, kind, False, generation=True,
                            defaults=lambda o, keep, m=mutating: webhook_config_defaults(o, m),
                            validate=lambda o, old, m=mutating: validate_webhook_config(o, old, m),
                            defaults_on_update=True))
        self.add_type(T("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ["pc"]))
        self.add_type(T("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ["netpol"], generation=True))
        self.add_type(T("networking.k8s.io", "v1", "ingresses", "Ingress", True, ["ing"], ["status"], generation=True))
        self.add_type(T("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ["sc"]))
        self.add_type(T("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True,
                        ["hpa"], ["status"], ["all"]))
        del nodefault

    # ---- low level

    def next_rv(self):
        self.rv += 1
        return self.rv

    def raw(self, rt, entry):
        obj = entry[0]
        if rt.convert_out is None and obj.get("apiVersion") == rt.api_version:
            if entry[1] is None:
                entry[1] = dumps(obj)
            return entry[1]
        return dumps(self.ext(rt, obj))

    @staticmethod
    def ext(rt, obj):
        if rt.convert_out is not None:
            return rt.convert_out(obj)
        if obj.get("apiVersion") != rt.api_version:
            return dict(obj, apiVersion=rt.api_version)
        return obj

    def _commit(self, store, etype, key, obj, prev):
        rv = self.next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        if etype == "DELETED":
            if store.objects.pop(key, None) is not None:
                i = bisect.bisect_left(store.keys, key)
                if i < len(store.keys) and store.keys[i] == key:
                    del store.keys[i]
        else:
            if key not in store.objects:
                if not store.keys or store.keys[-1] < key:
                    store.keys.append(key)
                else:
                    bisect.insort(store.keys, key)
            store.objects[key] = [obj, None]
        store.history.append([rv, etype, obj, prev, None])
        store.history_rvs.append(rv)
        if len(store.history) > store.history_max + max(64, store.history_max // 4):
            cut = len(store.history) - store.history_max
            store.trim_rv = store.history_rvs[cut - 1]
            store.compact_rv = max(store.compact_rv, store.trim_rv)
            del store.history[:cut]
            del store.history_rvs[:cut]
        self._index_owners(store, key, obj if etype != "DELETED" else None, prev)
        if store.node_index is not None:
            old_node = _dig(prev, "spec", "nodeName") or "" if prev is not None else None
            new_node = (_dig(obj, "spec", "nodeName") or "") if etype != "DELETED" else None
            if old_node != new_node:
                if old_node is not None:
                    ks = store.node_index.get(old_node)
                    if ks is not None:
                        ks.discard(key)
                        if not ks:
                            del store.node_index[old_node]
                if new_node is not None:
                    store.node_index.setdefault(new_node, set()).add(key)
        if store.home.kind in ("Pod", "Node") and not store.home.group:
            self.timeline.observe(store.home.kind, etype, obj, prev)
        if self.batching:
            self.touched.add(store)
        else:
            store.cond.notify_all()
        return obj

    def _index_owners(self, store, key, obj, prev):
        if prev is not None:
            for r in _dig(prev, "metadata", "ownerReferences") or []:
                s = self.dependents.get(r.get("uid"))
                if s is not None:
                    s.discard((store, key))
            if obj is None:
                self.uids.pop(_dig(prev, "metadata", "uid"), None)
        if obj is not None:
            self.uids[obj["metadata"]["uid"]] = (store, key)
            for r in obj["metadata"].get("ownerReferences") or []:
                if isinstance(r, dict) and r.get("uid"):
                    self.dependents.setdefault(r["uid"], set()).add((store, key))

    def begin_batch(self):
        self.lock.acquire()
        self.batching = True

    def end_batch(self):
        self.batching = False
        for st in self.touched:
            st.cond.notify_all()
        self.touched.clear()
        self.lock.release()

    def lookup(self, rt, ns, name):
        e = rt.store.objects.get(obj_key(ns if rt.namespaced else None, name))
        if e is None:
            raise err_not_found(rt.group, rt.plural, name)
        return e

    def _namespace_gate(self, rt, ns, name):
        if not rt.namespaced:
            return
        nse = self.stores[("", "namespaces")].objects.get(obj_key(None, ns))
        if nse is None:
            raise err_not_found("", "namespaces", ns)
        if nse[0]["metadata"].get("deletionTimestamp"):
            raise err_forbidden(rt.group, rt.plural, name, "unable to create new content in namespace %s "
                                "because it is being terminated" % ns)

    # ---- create

    def create(self, rt, ns, obj, q, bulk=False, admit=None):
        """admit: an AdmissionRun when admission webhooks may apply (API
        requests), None for internal and bulk creates."""
        if not isinstance(obj, dict):
            raise err_bad_request("the body of the request was in an unknown format")
        home = rt.store.home
        av, kind = obj.get("apiVersion"), obj.get("kind")
        if av and av != rt.api_version and not bulk:
            raise err_bad_request("the API version in the data (%s) does not match the expected API version (%s)"
                                  % (av, rt.api_version))
        if kind and kind != rt.kind:
            raise err_bad_request("the kind in the data (%s) does not match the expected kind (%s)" % (kind, rt.kind))
        obj = rt.convert_in(obj) if rt.convert_in else dict(obj)
        obj["apiVersion"] = rt.api_version if rt.crd else home.api_version
        obj["kind"] = home.kind
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise err_bad_request("metadata must be an object")
        meta = obj["metadata"] = dict(meta)
        if rt.namespaced:
            bns = meta.get("namespace")
            if ns is None:
                ns = bns or "default"
            elif bns and bns != ns:
                raise err_bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
            ns = None
        if meta.get("resourceVersion") and not bulk:
            raise ApiError(500, "InternalError", "Internal error occurred: resourceVersion should not be set on objects to be created",
                           {"causes": [{"message": "resourceVersion should not be set on objects to be created"}]})
        for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"):
            meta.pop(k, None)
        if rt.crd and "status" in rt.subs and not bulk:
            obj.pop("status", None)
        if admit is not None:
            # Decoding, the built-in plugins and the mutating webhooks all see
            # the object before the store gives it a name, uid and timestamp.
            obj = self._admit_create(rt, ns, obj, q, admit)
            meta = obj["metadata"]
            q = {k: v for k, v in q.items() if k != "fieldValidation"}   # checked on the request body
        meta["uid"] = str(uuid.uuid4())
        if not (bulk and meta.get("creationTimestamp")):
            meta["creationTimestamp"] = now_rfc3339()
        if rt.generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if admit is None:
            with self.lock:
                self._create_prepare(rt, ns, obj, q, bulk)
                return self._create_commit(rt, ns, obj, q)
        # With webhooks: validating admission runs after the object is fully
        # formed (named, defaulted, validated) and outside the lock; a generated
        # name taken meanwhile is generated again, up to 8 times (RetryGenerateName).
        generated = not meta.get("name") and bool(meta.get("generateName"))
        for attempt in range(8):
            with self.lock:
                if generated:
                    meta.pop("name", None)
                self._create_prepare(rt, ns, obj, q, bulk)
            admit.validate(self, rt, "CREATE", ns, admit.create_name, obj, None)
            with self.lock:
                try:
                    return self._create_commit(rt, ns, obj, q)
                except ApiError as e:
                    if not (generated and e.reason == "AlreadyExists") or attempt == 7:
                        raise
        raise AssertionError("unreachable")

    def _admit_create(self, rt, ns, obj, q, admit):
        if rt.pre_admit:
            rt.pre_admit(obj)
        self._strict(q, self._schema_prune(rt, obj))
        meta = obj["metadata"]
        with self.lock:     # NamespaceLifecycle, the first admission plugin
            self._namespace_gate(rt, ns, meta.get("name") or "")
        admit.create_name = meta.get("name") or ""
        obj = admit.mutate(self, rt, "CREATE", ns, admit.create_name, obj, None)
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            raise err_bad_request("metadata must be an object")
        if rt.namespaced and meta.get("namespace") != ns:
            raise err_bad_request("the namespace of the provided object does not match the namespace sent on the request")
        if meta.get("resourceVersion"):
            raise ApiError(500, "InternalError", "Internal error occurred: resourceVersion should not be set on objects to be created",
                           {"causes": [{"message": "resourceVersion should not be set on objects to be created"}]})
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(k, None)
        return obj

    def _create_prepare(self, rt, ns, obj, q, bulk):
        """Under the lock: generateName, defaults, pruning, validation."""
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            for _ in range(8):
                cand = meta["generateName"] + "".join(random.choice(NAME_CHARS) for _ in range(5))
                if obj_key(ns, cand) not in rt.store.objects:
                    meta["name"] = cand
                    break
        if rt.defaults:
            rt.defaults(obj, bulk)
        unknown = self._schema_prune(rt, obj)
        self._strict(q, unknown)
        errs = validate_meta(obj, rt.namespaced, rt.name_check)
        if not errs and rt.validate:
            errs = rt.validate(obj, None)
        if errs:
            raise err_invalid(rt.kind, rt.group, meta.get("name", ""), errs)
        if rt.crd and not errs:
            errs = schema_validate(rt.schema, obj)
            if not errs:
                cel_check(rt.schema, obj, "", errs)
            if errs:
                raise err_invalid(rt.kind, rt.group, meta.get("name", ""), errs)

    def _create_commit(self, rt, ns, obj, q):
        """Under the lock: the namespace and name checks, then the write."""
        meta = obj["metadata"]
        name = meta["name"]
        self._namespace_gate(rt, ns, name)
        key = obj_key(ns, name)
        if key in rt.store.objects:
            raise err_already_exists(rt.group, rt.plural, name)
        if _is_dry_run(q):
            meta["resourceVersion"] = ""
            return obj
        self._commit(rt.store, "ADDED", key, obj, None)
        self._after_commit(rt.store, "ADDED", obj)
        return obj

    def _schema_prune(self, rt, obj, status_only=False):
        if not rt.crd or not isinstance(rt.schema, dict):
            return []
        unknown = []
        props = rt.schema.get("properties") or {}
        for k in list(obj.keys()):
            if k in ("apiVersion", "kind", "metadata"):
                continue
            if status_only and k != "status":
                continue
            if k in props:
                if obj[k] is None and not props[k].get("nullable"):
                    del obj[k]
                    continue
                obj[k] = schema_prune_default(props[k], obj[k], k, unknown)
            elif not rt.schema.get("x-kubernetes-preserve-unknown-fields"):
                unknown.append(k)
                del obj[k]
        for k, sub in props.items():
            if k not in obj and k not in ("apiVersion", "kind", "metadata") and isinstance(sub, dict) \
                    and "default" in sub and not status_only:
                obj[k] = schema_prune_default(sub, copy.deepcopy(sub["default"]), k, [])
        return unknown

    @staticmethod
    def _strict(q, unknown):
        if unknown and q.get("fieldValidation") == "Strict":
            raise err_bad_request("strict decoding error: " + ", ".join('unknown field "%s"' % u for u in unknown))

    # ---- update / patch

    def update(self, rt, ns, name, obj, q, sub=None, admit=None):
        if not isinstance(obj, dict):
            raise err_bad_request("the body of the request was in an unknown format")
        meta = obj.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise err_bad_request("the name of the object (%s) does not match the name on the URL (%s)" % (meta["name"], name))
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != ns:
            raise err_bad_request("the namespace of the provided object does not match the namespace sent on the request")
        obj = rt.convert_in(obj) if rt.convert_in else obj
        if admit is not None:
            return self._admitted_update(rt, ns, name, lambda entry: obj, q, sub, admit, False)
        with self.lock:
            cur = self.lookup(rt, ns, name)[0]
            self._check_update_rv(rt, cur, obj, False)
            new = self._prepare_update(rt, cur, obj, sub, q)
            return self._finish_update(rt, cur, new, q)

    def _check_update_rv(self, rt, cur, new, is_patch):
        """The optimistic-concurrency check of an update, on the object as it
        is after mutating admission (like the real store's GuaranteedUpdate)."""
        meta = new.get("metadata") if isinstance(new.get("metadata"), dict) else {}
        name = cur["metadata"]["name"]
        rv = meta.get("resourceVersion")
        if rv:
            if rv != cur["metadata"]["resourceVersion"]:
                raise err_modified(rt.group, rt.plural, name)
        elif not rt.unconditional and not is_patch:
            # registry/generic/registry/store.go Update: qualifiedKind is
            # GroupKind{Group: resource.Group, Kind: resource.Resource}, so
            # the message names the plural ("leases.coordination.k8s.io").
            raise err_invalid(rt.plural, rt.group, name, [FieldErr(
                "metadata.resourceVersion", "Invalid", "must be specified for an update", GoValue("0x0"), True)])

    def _admitted_update(self, rt, ns, name, make_new, q, sub, admit, is_patch):
        """An update (PUT or PATCH) with admission webhooks, called outside the
        lock: make_new(entry) gives the new object from the current one, the
        mutating webhooks change it, the update is prepared and validated, the
        validating webhooks judge it, and it is written only if the object has
        not changed meanwhile; otherwise everything runs again on the new
        current object (GuaranteedUpdate), so a stale resourceVersion still
        gets its 409."""
        strict_q = q
        q = {k: v for k, v in q.items() if k != "fieldValidation"}
        for _ in range(WEBHOOK_UPDATE_RETRIES):
            with self.lock:
                entry = self.lookup(rt, ns, name)
                cur = entry[0]
                cand = json.loads(dumps(make_new(entry)))
            if not isinstance(cand, dict):
                raise err_bad_request("the body of the request was in an unknown format")
            if not isinstance(cand.get("metadata"), dict):
                cand["metadata"] = {}
            if sub != "status":
                self._strict(strict_q, self._schema_prune(rt, cand))
            cand = admit.mutate(self, rt, "UPDATE", ns, name, cand, cur, sub)
            with self.lock:
                if self.lookup(rt, ns, name)[0] is not cur:
                    continue
                self._check_update_rv(rt, cur, cand, is_patch)
                new = self._prepare_update(rt, cur, cand, sub, q)
            admit.validate(self, rt, "UPDATE", ns, name, new, cur, sub)
            with self.lock:
                if self.lookup(rt, ns, name)[0] is not cur:
                    continue
                return self._finish_update(rt, cur, new, q)
        raise err_modified(rt.group, rt.plural, name)

    def patch(self, rt, ns, name, body, ctype, q, sub=None, admit=None):
        ctype = (ctype or "").split(";")[0].strip().lower()
        if ctype not in ("application/json-patch+json", "application/merge-patch+json",
                         "application/strategic-merge-patch+json", "application/apply-patch+yaml",
                         "application/apply-patch+cbor"):
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                           "accepted media types include: application/json-patch+json, application/merge-patch+json, "
                           "application/apply-patch+yaml")
        if ctype == "application/strategic-merge-patch+json" and rt.crd:
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                           "accepted media types include: application/json-patch+json, application/merge-patch+json, "
                           "application/apply-patch+yaml")
        try:
            if ctype == "application/apply-patch+yaml":
                if not q.get("fieldManager"):
                    raise err_invalid("PatchOptions", "meta.k8s.io", "", [FieldErr("fieldManager", "Required", "is required for apply patch")])
                patch = yaml.safe_load(body.decode() or "{}")
            else:
                patch = json.loads(body or b"null")
        except (ValueError, yaml.YAMLError) as e:
            raise err_bad_request("error decoding patch: %s" % e)
        key = obj_key(ns if rt.namespaced else None, name)

        def make_new(entry):
            cur = entry[0]
            doc = json.loads(self.raw(rt, entry))
            if ctype == "application/json-patch+json":
                patched = apply_json_patch(doc, patch)
            elif ctype == "application/merge-patch+json":
                patched = json_merge_patch(doc, patch)
            elif ctype == "application/strategic-merge-patch+json":
                if not isinstance(patch, dict):
                    raise err_bad_request("strategic merge patch must be an object")
                patched = strategic_merge(doc, patch, rt.kind)
            else:
                if not isinstance(patch, dict):
                    raise err_bad_request("apply patch must be an object")
                patched = json_merge_patch(doc, patch) if rt.crd else strategic_merge(doc, patch, rt.kind)
            if not isinstance(patched, dict):
                raise err_bad_request("the patched object is not an object")
            pmeta = patched.get("metadata") or {}
            if pmeta.get("uid") and pmeta["uid"] != cur["metadata"]["uid"]:
                raise err_conflict(rt.group, rt.plural, name, "Precondition failed: UID in precondition: %s, "
                                   "UID in object meta: %s" % (pmeta["uid"], cur["metadata"]["uid"]))
            if pmeta.get("name") != name:
                raise err_bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                                      % (pmeta.get("name"), name))
            decode_patched(rt, patched)
            return rt.convert_in(patched) if rt.convert_in else patched

        def apply_create():
            if not isinstance(patch, dict):
                raise err_bad_request("apply patch must be an object")
            p = dict(patch)
            p["metadata"] = dict(p.get("metadata") or {}, name=name)
            return p

        with self.lock:
            entry = rt.store.objects.get(key)
            if entry is None:
                if ctype == "application/apply-patch+yaml" and sub is None:
                    if admit is None:
                        return self.create(rt, ns, apply_create(), q), 201
                else:
                    raise err_not_found(rt.group, rt.plural, name)
            elif admit is None:
                cur = entry[0]
                patched = make_new(entry)
                self._check_update_rv(rt, cur, patched, True)
                new = self._prepare_update(rt, cur, patched, sub, q)
                return self._finish_update(rt, cur, new, q), 200
        if entry is None:
            return self.create(rt, ns, apply_create(), q, admit=admit), 201
        return self._admitted_update(rt, ns, name, make_new, q, sub, admit, True), 200

    def _prepare_update(self, rt, cur, new, sub, q):
        cm = cur["metadata"]
        if sub == "status":
            base = json.loads(dumps(cur))
            if "status" in new:
                base["status"] = new["status"]
            else:
                base.pop("status", None)
            new = base
            unknown = self._schema_prune(rt, new, status_only=True)
        else:
            new = dict(new)
            new["apiVersion"], new["kind"] = cur["apiVersion"], cur["kind"]
            if rt.crd:
                new["apiVersion"] = rt.api_version
            nm = new["metadata"] = dict(new.get("metadata") or {})
            if "status" in rt.subs:
                if "status" in cur:
                    new["status"] = cur["status"]
                else:
                    new.pop("status", None)
            for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                      "namespace", "name", "generation"):
                if k in cm:
                    nm[k] = cm[k]
                else:
                    nm.pop(k, None)
            nm.pop("managedFields", None)
            nm.pop("selfLink", None)
            if cm.get("deletionTimestamp"):
                added = [f for f in nm.get("finalizers") or [] if f not in (cm.get("finalizers") or [])]
                if added:
                    raise err_invalid(rt.kind, rt.group, cm["name"], [FieldErr(
                        "metadata.finalizers", "Forbidden", "no new finalizers can be added if the object is "
                        "being deleted, found new finalizers []string{%s}" % ", ".join('"%s"' % f for f in added))])
            if rt.kind == "Namespace":
                nm.setdefault("labels", {})["kubernetes.io/metadata.name"] = cm["name"]
            if rt.defaults_on_update and rt.defaults:
                rt.defaults(new, True)
            if rt.kind == "CustomResourceDefinition":
                crd_spec_defaults(new)
                st = dict(new.get("status") or {})
                fresh = crd_status(new)
                st["acceptedNames"] = fresh["acceptedNames"]
                st["storedVersions"] = fresh["storedVersions"]
                new["status"] = st
            if rt.kind == "Service":
                spec = new.setdefault("spec", {})
                old_ip = (cur.get("spec") or {}).get("clusterIP")
                if old_ip and not spec.get("clusterIP"):
                    spec["clusterIP"] = old_ip
                    spec.setdefault("clusterIPs", [old_ip])
            unknown = self._schema_prune(rt, new)
        self._strict(q, unknown)
        new["metadata"]["resourceVersion"] = cm["resourceVersion"]
        errs = validate_meta(new, rt.namespaced, rt.name_check)
        if not errs and rt.validate:
            errs = rt.validate(new, cur)
        if not errs and rt.crd:
            errs = schema_validate(rt.schema, new)
            if not errs:
                cel_check(rt.schema, new, "", errs, cur)
        if errs:
            raise err_invalid(rt.kind, rt.group, cm["name"], errs)
        if rt.generation:
            skip = ("metadata", "status") if "status" in rt.subs else ("metadata",)
            if {k: v for k, v in new.items() if k not in skip} != {k: v for k, v in cur.items() if k not in skip}:
                new["metadata"]["generation"] = int(cm.get("generation") or 1) + 1
        return new

    def _finish_update(self, rt, cur, new, q):
        if new == cur:
            return cur
        if _is_dry_run(q):
            return new
        store = rt.store
        key = obj_key(cur["metadata"].get("namespace"), cur["metadata"]["name"])
        m = new["metadata"]
        if m.get("deletionTimestamp") and not m.get("finalizers") and not m.get("deletionGracePeriodSeconds"):
            self._commit(store, "DELETED", key, new, cur)
            self._after_delete(store, new, "Background")
            return new
        self._commit(store, "MODIFIED", key, new, cur)
        self._after_commit(store, "MODIFIED", new)
        return new

    # ---- delete

    def delete(self, rt, ns, name, opts, q, admit=None, request_name=None):
        """request_name: the name admission webhooks are told (empty for the
        items of a deletecollection, as upstream)."""
        dry = _is_dry_run(q) or "All" in (opts.get("dryRun") or [])
        for _ in range(WEBHOOK_UPDATE_RETRIES):
            with self.lock:
                e = self.lookup(rt, ns, name)
                cur = e[0]
                self._check_preconditions(rt, cur, opts)
                if admit is None:
                    if dry:
                        return cur, 200
                    return self._delete(rt.store, cur, opts)[0], 200
            # DELETE admission: object null, oldObject the object; mutating
            # then validating, outside the lock; again if the object changed.
            rname = name if request_name is None else request_name
            admit.mutate(self, rt, "DELETE", ns, rname, None, cur)
            admit.validate(self, rt, "DELETE", ns, rname, None, cur)
            with self.lock:
                e = self.lookup(rt, ns, name)
                if e[0] is not cur:
                    continue
                if dry:
                    return cur, 200
                return self._delete(rt.store, cur, opts)[0], 200
        raise err_modified(rt.group, rt.plural, name)

    @staticmethod
    def _check_preconditions(rt, obj, opts):
        pre = opts.get("preconditions") or {}
        m = obj["metadata"]
        if pre.get("uid") and pre["uid"] != m["uid"]:
            raise err_conflict(rt.group, rt.plural, m["name"], "Precondition failed: UID in precondition: %s, "
                               "UID in object meta: %s" % (pre["uid"], m["uid"]))
        if pre.get("resourceVersion") and pre["resourceVersion"] != m["resourceVersion"]:
            raise err_conflict(rt.group, rt.plural, m["name"], "Precondition failed: ResourceVersion in "
                               "precondition: %s, ResourceVersion in object meta: %s"
                               % (pre["resourceVersion"], m["resourceVersion"]))

    def _delete(self, store, cur, opts):
        """Returns (object, deleted-now)."""
        m = cur["metadata"]
        key = obj_key(m.get("namespace"), m["name"])
        kind = store.home.kind
        if kind == "Namespace":
            return self._delete_namespace(store, cur)
        if kind == "Pod":
            grace = opts.get("gracePeriodSeconds")
            if grace is None:
                grace = (cur.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            grace = int(grace)
            if not _dig(cur, "spec", "nodeName") or _dig(cur, "status", "phase") in ("Succeeded", "Failed"):
                grace = 0
            if grace > 0 and self.pod_termination > 0:
                old_grace = m.get("deletionGracePeriodSeconds")
                if m.get("deletionTimestamp") and old_grace is not None and old_grace <= grace:
                    return cur, False
                new = _copy_meta(cur)
                new["metadata"]["deletionTimestamp"] = time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + grace))
                new["metadata"]["deletionGracePeriodSeconds"] = grace
                self._commit(store, "MODIFIED", key, new, cur)
                heapq.heappush(self.reap_heap, (time.time() + min(grace, self.pod_termination),
                                                id(store), store, key, m["uid"]))
                self.reap_cond.notify_all()
                return new, False
        if m.get("finalizers"):
            if m.get("deletionTimestamp"):
                if m.get("deletionGracePeriodSeconds"):
                    new = _copy_meta(cur)
                    new["metadata"]["deletionGracePeriodSeconds"] = 0
                    self._commit(store, "MODIFIED", key, new, cur)
                    return new, False
                return cur, False
            new = _copy_meta(cur)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            if store.home.generation and m.get("generation"):
                new["metadata"]["generation"] = int(m["generation"]) + 1
            self._commit(store, "MODIFIED", key, new, cur)
            return new, False
        final = _copy_meta(cur)
        self._commit(store, "DELETED", key, final, cur)
        self._after_delete(store, final, opts.get("propagationPolicy") or
                           ("Orphan" if opts.get("orphanDependents") else "Background"))
        return final, True

    def _after_delete(self, store, obj, propagation):
        m = obj["metadata"]
        kind = store.home.kind
        if kind == "CustomResourceDefinition":
            self._unregister_crd(obj)
        if propagation != "Orphan":
            for dstore, dkey in list(self.dependents.pop(m["uid"], ())):
                de = dstore.objects.get(dkey)
                if de is None:
                    continue
                refs = de[0]["metadata"].get("ownerReferences") or []
                if not any(r.get("uid") == m["uid"] for r in refs):
                    continue
                if any(r.get("uid") != m["uid"] and r.get("uid") in self.uids for r in refs):
                    continue
                if de[0]["metadata"].get("deletionTimestamp"):
                    continue
                self._delete(dstore, de[0], {})
        ns = m.get("namespace")
        if ns:
            nse = self.stores[("", "namespaces")].objects.get(obj_key(None, ns))
            if nse is not None and nse[0]["metadata"].get("deletionTimestamp"):
                self._maybe_finish_namespace(nse[0])

    def _delete_namespace(self, store, cur):
        name = cur["metadata"]["name"]
        if not cur["metadata"].get("deletionTimestamp"):
            new = _copy_meta(cur)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["status"] = {"phase": "Terminating"}
            self._commit(store, "MODIFIED", obj_key(None, name), new, cur)
            cur = new
        for st in list(self.stores.values()):
            if not st.home.namespaced:
                continue
            lo, hi = st.ns_range(name)
            for k in st.keys[lo:hi]:
                e = st.objects.get(k)
                if e is not None and not e[0]["metadata"].get("deletionTimestamp"):
                    self._delete(st, e[0], {"gracePeriodSeconds": 0})
        return self._maybe_finish_namespace(cur)

    def _maybe_finish_namespace(self, ns_obj):
        name = ns_obj["metadata"]["name"]
        for st in self.stores.values():
            if st.home.namespaced:
                lo, hi = st.ns_range(name)
                if hi > lo:
                    return ns_obj, False
        st = self.stores[("", "namespaces")]
        final = _copy_meta(ns_obj)
        self._commit(st, "DELETED", obj_key(None, name), final, ns_obj)
        return final, True

    def _reaper(self):
        """Finishes graceful pod deletion (what the kubelet does) when due."""
        with self.lock:
            while not self.stopping:
                now = time.time()
                while self.reap_heap and self.reap_heap[0][0] <= now:
                    _, _, store, key, uid = heapq.heappop(self.reap_heap)
                    e = store.objects.get(key)
                    if e is None or e[0]["metadata"]["uid"] != uid:
                        continue
                    m = e[0]["metadata"]
                    if not m.get("deletionTimestamp"):
                        continue
                    if m.get("finalizers"):
                        new = _copy_meta(e[0])
                        new["metadata"]["deletionGracePeriodSeconds"] = 0
                        self._commit(store, "MODIFIED", key, new, e[0])
                        continue
                    final = _copy_meta(e[0])
                    final["metadata"]["deletionGracePeriodSeconds"] = 0
                    self._commit(store, "DELETED", key, final, e[0])
                    self._after_delete(store, final, "Background")
                wait = (self.reap_heap[0][0] - now) if self.reap_heap else 5.0
                self.reap_cond.wait(max(0.01, min(wait, 5.0)))

    # ---- hooks for CRDs and namespaces

    def _after_commit(self, store, etype, obj):
        kind = store.home.kind
        if kind == "CustomResourceDefinition":
            self._register_crd(obj)
        elif kind == "Namespace" and etype == "ADDED":
            sa = self.stores[("", "serviceaccounts")]
            ns = obj["metadata"]["name"]
            if obj_key(ns, "default") not in sa.objects:
                self.create(self.types[("", "v1", "serviceaccounts")], ns, {
                    "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}, {})

    def _crd_defaults(self, crd, keep_status):
        crd_spec_defaults(crd)
        crd["status"] = crd_status(crd)

    def _register_crd(self, crd):
        name = crd["metadata"]["name"]
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group, plural, kind = spec.get("group"), names.get("plural"), names.get("kind")
        self._drop_crd_types(name)
        rts = []
        skey = (group, plural)
        for v in spec.get("versions") or []:
            if not v.get("served"):
                continue
            subs = ["status"] if "status" in ((v.get("subresources") or {})) else []
            rt = ResourceType(group, v["name"], plural, kind, spec.get("scope") == "Namespaced",
                              names.get("shortNames") or [], subs, names.get("categories") or [],
                              generation=True, unconditional=False, crd=name,
                              schema=(v.get("schema") or {}).get("openAPIV3Schema"),
                              columns=crd_columns(v.get("additionalPrinterColumns")))
            rt.singular = names.get("singular") or kind.lower()
            rt.list_kind = names.get("listKind") or kind + "List"
            self.add_type(rt, store_owner=skey)
            if v.get("storage"):
                rt.store.home = rt
            rts.append(rt)
        if rts and rts[0].store.home not in rts:
            rts[0].store.home = rts[0]
        self.crd_types[name] = rts

    def _drop_crd_types(self, name):
        for rt in self.crd_types.pop(name, []):
            self.types.pop((rt.group, rt.version, rt.plural), None)
            self.by_kind.pop((rt.api_version, rt.kind), None)

    def _unregister_crd(self, crd):
        name = crd["metadata"]["name"]
        rts = self.crd_types.get(name) or []
        if rts:
            st = rts[0].store
            for k in list(st.keys):
                e = st.objects.get(k)
                if e is not None:
                    final = _copy_meta(e[0])
                    self._commit(st, "DELETED", k, final, e[0])
            st.drop_gen += 1
            st.cond.notify_all()
            self.stores.pop((rts[0].group, rts[0].plural), None)
        self._drop_crd_types(name)

    # ---- subresources

    def bind(self, ns, name, body):
        target = (body or {}).get("target") or {}
        node = target.get("name")
        if not node:
            raise err_invalid("Binding", "", name, [FieldErr("target.name", "Required")])
        rt = self.types[("", "v1", "pods")]
        with self.lock:
            cur = self.lookup(rt, ns, name)[0]
            if cur["metadata"].get("deletionTimestamp"):
                raise err_conflict("", "pods/binding", name, "pod %s is being deleted, cannot be assigned to a host" % name)
            if _dig(cur, "spec", "nodeName"):
                raise err_conflict("", "pods/binding", name, 'pod %s is already assigned to node "%s"'
                                   % (name, cur["spec"]["nodeName"]))
            new = json.loads(dumps(cur))
            new["spec"]["nodeName"] = node
            conds = [c for c in (new.setdefault("status", {}).get("conditions") or []) if c.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                          "lastTransitionTime": now_rfc3339()})
            new["status"]["conditions"] = conds
            self._commit(rt.store, "MODIFIED", obj_key(ns, name), new, cur)
        return status_obj(201, None, None, status="Success")

    def _pdb_status(self, pdb):
        pods = self.stores[("", "pods")]
        ns = pdb["metadata"]["namespace"]
        sel = (pdb.get("spec") or {}).get("selector")
        pred = selector_from_label_selector(sel) if sel is not None else (lambda labels: False)
        lo, hi = pods.ns_range(ns)
        matched = [pods.objects[k][0] for k in pods.keys[lo:hi]
                   if pred(pods.objects[k][0]["metadata"].get("labels"))]
        live = [p for p in matched if _dig(p, "status", "phase") not in ("Succeeded", "Failed")]
        # Like the disruption controller: pods of a controller count as that
        # controller's spec.replicas (so an evicted, not yet replaced pod still
        # counts as missing); a pod without one counts as itself.
        expected, seen = 0, set()
        for p in live:
            ref = next((r for r in p["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
            loc = self.uids.get(ref.get("uid")) if ref else None
            owner = loc[0].objects.get(loc[1]) if loc else None
            reps = _dig(owner[0], "spec", "replicas") if owner else None
            if isinstance(reps, int):
                if ref["uid"] not in seen:
                    seen.add(ref["uid"])
                    expected += reps
            else:
                expected += 1
        healthy = sum(1 for p in live if pod_is_ready(p) and not p["metadata"].get("deletionTimestamp"))
        spec = pdb.get("spec") or {}
        if spec.get("maxUnavailable") is not None:
            mu = spec["maxUnavailable"]
            mu = math.ceil(int(mu[:-1]) * expected / 100) if isinstance(mu, str) else int(mu)
            desired = max(0, expected - mu)
        else:
            ma = spec.get("minAvailable", 1)
            desired = math.ceil(int(ma[:-1]) * expected / 100) if isinstance(ma, str) else int(ma)
        allowed = max(0, healthy - desired)
        st = dict(pdb.get("status") or {})
        st.update({"observedGeneration": pdb["metadata"].get("generation", 1), "currentHealthy": healthy,
                   "desiredHealthy": desired, "expectedPods": expected, "disruptionsAllowed": allowed})
        st.setdefault("conditions", [])
        st["conditions"] = [{"type": "DisruptionAllowed", "status": "True" if allowed > 0 else "False",
                             "reason": "SufficientPods" if allowed > 0 else "InsufficientPods",
                             "message": "", "observedGeneration": st["observedGeneration"],
                             "lastTransitionTime": next((c.get("lastTransitionTime") for c in st["conditions"]
                                                         if c.get("status") == ("True" if allowed > 0 else "False")),
                                                        now_rfc3339())}]
        return st

    def _refresh_pdb(self, pdb_store, pdb):
        st = self._pdb_status(pdb)
        if st != pdb.get("status"):
            new = dict(pdb, status=st)
            new["metadata"] = dict(pdb["metadata"])
            self._commit(pdb_store, "MODIFIED", obj_key(pdb["metadata"]["namespace"], pdb["metadata"]["name"]), new, pdb)
            return new
        return pdb

    def evict(self, ns, name, body):
        """registry/core/pod/storage/eviction.go EvictionREST.Create."""
        rt = self.types[("", "v1", "pods")]
        body = body or {}
        if (body.get("metadata") or {}).get("name") != name:
            raise err_bad_request("name in URL does not match name in Eviction object")
        opts = body.get("deleteOptions") or {}
        with self.lock:
            pod = self.lookup(rt, ns, name)[0]
            self._check_preconditions(rt, pod, opts)
            dry = "All" in (opts.get("dryRun") or [])
            ok = status_obj(201, None, None, status="Success")
            ignore = (_dig(pod, "status", "phase") in ("Succeeded", "Failed", "Pending")
                      or pod["metadata"].get("deletionTimestamp"))
            pdbs_store = self.stores[("policy", "poddisruptionbudgets")]
            lo, hi = pdbs_store.ns_range(ns)
            labels = pod["metadata"].get("labels") or {}
            pdbs = []
            for k in pdbs_store.keys[lo:hi]:
                p = pdbs_store.objects[k][0]
                sel = (p.get("spec") or {}).get("selector")
                if sel is not None and selector_from_label_selector(sel)(labels):
                    pdbs.append(p)
            if not pdbs or ignore:
                if not dry:
                    self._delete(rt.store, pod, opts)
                    for p in pdbs:
                        self._refresh_pdb(pdbs_store, pdbs_store.objects[obj_key(ns, p["metadata"]["name"])][0])
                return ok
            if len(pdbs) > 1:
                raise ApiError(500, "InternalError", "This pod has more than one PodDisruptionBudget, which the "
                               "eviction subresource does not support.")
            pdb = self._refresh_pdb(pdbs_store, pdbs[0])
            st = pdb["status"]
            allowed = False
            if not pod_is_ready(pod):
                # An unready pod goes without using the budget under AlwaysAllow,
                # or while the budget is met and non-zero; otherwise it falls
                # through to checkAndDecrement like a ready one.
                policy = (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") or "IfHealthyBudget"
                allowed = policy == "AlwaysAllow" or (st["currentHealthy"] >= st["desiredHealthy"] and
                                                      st["desiredHealthy"] > 0)
            if not allowed and st["disruptionsAllowed"] > 0:
                allowed = True
            if not allowed:
                raise ApiError(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.",
                               {"causes": [{"reason": "DisruptionBudget", "message":
                                            "The disruption budget %s needs %d healthy pods and has %d currently"
                                            % (pdb["metadata"]["name"], st["desiredHealthy"], st["currentHealthy"])}]})
            if not dry:
                self._delete(rt.store, pod, opts)
                self._refresh_pdb(pdbs_store, pdbs_store.objects[obj_key(ns, pdb["metadata"]["name"])][0])
            return ok


def _is_dry_run(q):
    return q.get("dryRun") == "All"


def crd_spec_defaults(crd):
    spec = crd.setdefault("spec", {})
    names = spec.setdefault("names", {})
    if names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("conversion", {"strategy": "None"})


def crd_status(crd):
    spec = crd.get("spec") or {}
    now = now_rfc3339()
    names = dict(spec.get("names") or {})
    storage = [v.get("name") for v in spec.get("versions") or [] if v.get("storage")]
    old = crd.get("status") or {}
    stored = list(old.get("storedVersions") or [])
    for v in storage:
        if v not in stored:
            stored.append(v)
    return {"conditions": [
        {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now,
         "reason": "NoConflicts", "message": "no conflicts found"},
        {"type": "Established", "status": "True", "lastTransitionTime": now,
         "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}],
        "acceptedNames": names, "storedVersions": stored}


def validate_crd(crd, old):
    errs = []
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group") or ""
    if not group:
        errs.append(FieldErr("spec.group", "Required"))
    elif "." not in group:
        errs.append(FieldErr("spec.group", "Invalid", "should be a domain with at least one dot", group, True))
    if not names.get("plural"):
        errs.append(FieldErr("spec.names.plural", "Required"))
    if not names.get("kind"):
        errs.append(FieldErr("spec.names.kind", "Required"))
    if names.get("plural") and group and crd["metadata"].get("name") != "%s.%s" % (names["plural"], group):
        errs.append(FieldErr("metadata.name", "Invalid", 'must be spec.names.plural+"."+spec.group',
                             crd["metadata"].get("name"), True))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        errs.append(FieldErr("spec.scope", "Unsupported", 'supported values: "Cluster", "Namespaced"', spec.get("scope"), True))
    versions = spec.get("versions") or []
    if not versions:
        errs.append(FieldErr("spec.versions", "Invalid", "must have exactly one version marked as storage version", versions, True))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        errs.append(FieldErr("spec.versions", "Invalid", "must have exactly one version marked as storage version", versions, True))
    for i, v in enumerate(versions):
        if not (v.get("schema") or {}).get("openAPIV3Schema"):
            errs.append(FieldErr("spec.versions[%d].schema.openAPIV3Schema" % i, "Required", "schemas are required"))
    if old is not None:
        if (old.get("spec") or {}).get("scope") != spec.get("scope"):
            errs.append(FieldErr("spec.scope", "Invalid", "field is immutable", spec.get("scope"), True))
    return errs


def crd_columns(apc):
    if not apc:
        return None
    cols = [NAME_COL]
    for c in apc:
        typ = c.get("type", "string")
        path = c.get("jsonPath", "")

        def fn(o, path=path, typ=typ):
            vals = jsonpath_eval(path, o)
            if not vals:
                return None
            v = vals[0]
            if typ == "date":
                t = parse_time(v) if isinstance(v, str) else None
                return "<unknown>" if t is None else human_duration(time.time() - t)
            if isinstance(v, (dict, list)):
                return json.dumps(v)
            if len(vals) > 1:
                return ",".join(str(x) for x in vals)
            return v
        cols.append((c.get("name", ""), "string" if typ == "date" else typ, c.get("format", ""),
                     int(c.get("priority") or 0), fn))
    return cols


# --------------------------------------------------------------------------
# Tables (Accept: application/json;as=Table;v=v1;g=meta.k8s.io).

def table_columns(rt):
    if rt.crd:
        return rt.columns or [NAME_COL, AGE_COL]
    return TABLES.get(rt.kind) or [NAME_COL, AGE_COL]


def table_row(rt, cols, obj, include):
    cells = []
    for c in cols:
        try:
            v = c[4](obj)
        except Exception:  # a printer must never fail a request
            v = None
        cells.append(v)
    row = {"cells": cells}
    if include == "Object":
        row["object"] = Cluster.ext(rt, obj)
    elif include != "None":
        row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                         "metadata": obj.get("metadata")}
    return row


def table_of(rt, objs, include, meta):
    cols = table_columns(rt)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
            "columnDefinitions": [{"name": c[0], "type": c[1], "format": c[2], "description": c[0],
                                   "priority": c[3]} for c in cols],
            "rows": [table_row(rt, cols, o, include) for o in objs]}


# --------------------------------------------------------------------------
# Discovery and OpenAPI.

def resource_list(cluster, group, version):
    out = []
    for rt in sorted((t for t in cluster.types.values() if t.group == group and t.version == version),
                     key=lambda t: t.plural):
        r = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
             "kind": rt.kind, "verbs": rt.verbs}
        if rt.short:
            r["shortNames"] = rt.short
        if rt.cats:
            r["categories"] = rt.cats
        r["storageVersionHash"] = base64.b64encode(hashlib.sha256(
            ("%s/%s/%s" % (rt.group, rt.version, rt.kind)).encode()).digest()[:8]).decode()
        out.append(r)
        for sub in sorted(rt.subs):
            if sub == "status":
                out.append({"name": rt.plural + "/status", "singularName": "", "namespaced": rt.namespaced,
                            "kind": rt.kind, "verbs": ["get", "patch", "update"]})
            elif sub == "binding":
                out.append({"name": rt.plural + "/binding", "singularName": "", "namespaced": True,
                            "kind": "Binding", "verbs": ["create"]})
            elif sub == "eviction":
                out.append({"name": rt.plural + "/eviction", "singularName": "", "namespaced": True,
                            "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]})
            elif sub == "finalize":
                out.append({"name": rt.plural + "/finalize", "singularName": "", "namespaced": False,
                            "kind": rt.kind, "verbs": ["update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": "%s/%s" % (group, version) if group else version, "resources": out}


def group_versions(cluster):
    groups = {}
    for rt in cluster.types.values():
        if rt.group:
            vs = groups.setdefault(rt.group, [])
            if rt.version not in vs:
                vs.append(rt.version)
    return groups


def _kube_version_key(v):
    m = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", v)
    if not m:
        return (3, 0, 0, v)
    return (0 if not m.group(2) else (1 if m.group(2) == "beta" else 2), -int(m.group(1)),
            -int(m.group(3) or 0), v)


def api_group(name, versions):
    vs = sorted(versions, key=_kube_version_key)
    gvs = [{"groupVersion": "%s/%s" % (name, v), "version": v} for v in vs]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


def openapi_paths(cluster):
    out = {"api/v1": None}
    for g, vs in group_versions(cluster).items():
        for v in vs:
            out["apis/%s/%s" % (g, v)] = None
    for k in out:
        out[k] = hashlib.sha512(dumps(openapi_doc(cluster, k))).hexdigest().upper()
    return out


def openapi_doc(cluster, gvpath):
    parts = gvpath.split("/")
    if parts[0] == "api":
        group, version = "", parts[1]
    else:
        group, version = parts[1], parts[2]
    paths = {}
    schemas = {}
    for rt in cluster.types.values():
        if rt.group != group or rt.version != version:
            continue
        prefix = "/api/v1" if not group else "/apis/%s/%s" % (group, version)
        base = prefix + ("/namespaces/{namespace}/" if rt.namespaced else "/") + rt.plural
        gvk = {"group": group, "version": version, "kind": rt.kind}
        ref = "%s.%s.%s" % (group or "io.k8s.api.core", version, rt.kind)
        schemas[ref] = {"type": "object", "x-kubernetes-group-version-kind": [gvk]}
        if rt.schema:
            schemas[ref] = dict(rt.schema, **{"x-kubernetes-group-version-kind": [gvk]})
        body = {"schema": {"$ref": "#/components/schemas/" + ref}}
        params = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                  for n in ("dryRun", "fieldManager", "fieldValidation", "force")]
        if "patch" in rt.verbs:
            paths[base + "/{name}"] = {
                "get": {"x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk,
                        "responses": {"200": {"description": "OK", "content": {"application/json": body}}}},
                "patch": {"x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk,
                          "parameters": params,
                          "requestBody": {"content": {
                              "application/json-patch+json": {"schema": {"type": "object"}},
                              "application/merge-patch+json": {"schema": {"type": "object"}},
                              "application/apply-patch+yaml": {"schema": {"type": "object"}}}},
                          "responses": {"200": {"description": "OK", "content": {"application/json": body}}}},
            }
        if "create" in rt.verbs:
            paths[base] = {"post": {"x-kubernetes-action": "post", "x-kubernetes-group-version-kind": gvk,
                                    "parameters": params,
                                    "requestBody": {"content": {"application/json": body}},
                                    "responses": {"201": {"description": "Created", "content": {"application/json": body}}}}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": schemas}}


# --------------------------------------------------------------------------
# Admission webhooks, as k8s.io/apiserver/pkg/admission/plugin/webhook calls
# them: MutatingWebhookConfigurations in name order, one webhook after the
# other (with one reinvocation round for reinvocationPolicy IfNeeded), then
# ValidatingWebhookConfigurations in parallel.  Rules, namespaceSelector,
# objectSelector, matchPolicy Equivalent, matchConditions (the CEL subset
# above), dry run, timeouts and failurePolicy behave as upstream; errors carry
# upstream's messages.  Services are not routable here: --webhook-service-map
# (or POST /_sim/webhook-services) says where a Service's endpoints are, and
# TLS still checks the name <service>.<namespace>.svc against the caBundle.

WEBHOOK_RESPONSE_MAX = 16 * 1024 * 1024   # bytes read from one webhook answer
WEBHOOK_CALL_LOG = 1000                   # calls kept for GET /_sim/webhook-calls
WEBHOOK_IDLE_CONNS = 8                    # idle keep-alive connections kept per webhook endpoint
WEBHOOK_UPDATE_RETRIES = 8                # rounds when the object changes during admission
WEBHOOK_MATCH_CONDITIONS_MAX = 64
WARNINGS_TOTAL_RUNES = 4096               # k8s.io/apiserver/pkg/endpoints/filters/warning.go
WARNINGS_ITEM_RUNES = 256
ADMISSION_REVIEW_VERSIONS = ("v1", "v1beta1")
ADMREG = "admissionregistration.k8s.io"
# rules.IsExemptAdmissionConfigurationResource: never sent to webhooks.
ADMISSION_EXEMPT = {"mutatingwebhookconfigurations", "validatingwebhookconfigurations",
                    "validatingadmissionpolicies", "validatingadmissionpolicybindings",
                    "mutatingadmissionpolicies", "mutatingadmissionpolicybindings"}
SUBRESOURCE_KINDS = {"binding": ("", "v1", "Binding"), "eviction": ("policy", "v1", "Eviction")}


def webhook_config_defaults(cfg, mutating):
    """admissionregistration/v1 SetDefaults_*Webhook."""
    for wh in cfg.get("webhooks") or []:
        if not isinstance(wh, dict):
            continue
        wh.setdefault("failurePolicy", "Fail")
        wh.setdefault("matchPolicy", "Equivalent")
        for k in ("namespaceSelector", "objectSelector"):
            if wh.get(k) is None:
                wh[k] = {}
        wh.setdefault("timeoutSeconds", 10)
        if mutating:
            wh.setdefault("reinvocationPolicy", "Never")
        for r in wh.get("rules") or []:
            if isinstance(r, dict):
                r.setdefault("scope", "*")
        svc = (wh.get("clientConfig") or {}).get("service") if isinstance(wh.get("clientConfig"), dict) else None
        if isinstance(svc, dict):
            svc.setdefault("port", 443)


def _supported(path, v, allowed):
    return FieldErr(path, "Unsupported", "supported values: " + ", ".join('"%s"' % a for a in allowed),
                    v, True)


def _validate_selector(sel, path):
    errs = []
    if sel is None:
        return errs
    if not isinstance(sel, dict):
        return [FieldErr(path, "Invalid", "must be a label selector", sel, True)]
    ml = sel.get("matchLabels") or {}
    if not isinstance(ml, dict):
        return [FieldErr(path + ".matchLabels", "Invalid", "must be a map", ml, True)]
    for k, v in ml.items():
        bad = check_qualified_name(k)
        if bad:
            errs.append(FieldErr(path + ".matchLabels", "Invalid", bad, k, True))
        bad = check_label_value(v) if isinstance(v, str) else "must be a string"
        if bad:
            errs.append(FieldErr(path + ".matchLabels", "Invalid", bad, v, True))
    for i, e in enumerate(sel.get("matchExpressions") or []):
        p = "%s.matchExpressions[%d]" % (path, i)
        if not isinstance(e, dict):
            errs.append(FieldErr(p, "Invalid", "must be an object", e, True))
            continue
        op, vals = e.get("operator"), e.get("values") or []
        if op in ("In", "NotIn"):
            if not vals:
                errs.append(FieldErr(p + ".values", "Required",
                                     "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if vals:
                errs.append(FieldErr(p + ".values", "Forbidden",
                                     "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errs.append(FieldErr(p + ".operator", "Invalid", "not a valid selector operator", op, True))
        bad = check_qualified_name(e.get("key") or "")
        if bad:
            errs.append(FieldErr(p + ".key", "Invalid", bad, e.get("key") or "", True))
    return errs


def _validate_rule(r, p):
    errs = []
    if not isinstance(r, dict):
        return [FieldErr(p, "Invalid", "must be an object", r, True)]
    ops = r.get("operations") or []
    if not ops:
        errs.append(FieldErr(p + ".operations", "Required"))
    if len(ops) > 1 and "*" in ops:
        errs.append(FieldErr(p + ".operations", "Invalid", "if '*' is present, must not specify other operations",
                             ops, True))
    for j, op in enumerate(ops):
        if op not in ("*", "CREATE", "UPDATE", "DELETE", "CONNECT"):
            errs.append(_supported("%s.operations[%d]" % (p, j), op, ("*", "CONNECT", "CREATE", "DELETE", "UPDATE")))
    for field in ("apiGroups", "apiVersions"):
        vals = r.get(field) or []
        if not vals:
            errs.append(FieldErr("%s.%s" % (p, field), "Required"))
        if len(vals) > 1 and "*" in vals:
            errs.append(FieldErr("%s.%s" % (p, field), "Invalid", "if '*' is present, must not specify other %s"
                                 % ("API groups" if field == "apiGroups" else "API versions"), vals, True))
        if field == "apiVersions":
            for j, v in enumerate(vals):
                if not v:
                    errs.append(FieldErr("%s.apiVersions[%d]" % (p, j), "Required"))
    res = r.get("resources") or []
    if not res:
        errs.append(FieldErr(p + ".resources", "Required"))
    seen = set()
    for j, x in enumerate(res):
        rp = "%s.resources[%d]" % (p, j)
        if not isinstance(x, str) or not x:
            errs.append(FieldErr(rp, "Required"))
            continue
        if x in seen:
            errs.append(FieldErr(rp, "Duplicate", "", x, True))
        seen.add(x)
        main_, _, sub = x.partition("/")
        if not main_:
            errs.append(FieldErr(rp, "Invalid", "must have resource", x, True))
        if "/" in x and not sub:
            errs.append(FieldErr(rp, "Invalid", "must have subresource", x, True))
    if "*/*" in res and len(res) > 1:
        errs.append(FieldErr(p + ".resources", "Invalid", "if '*/*' is present, must not specify other resources",
                             res, True))
    scope = r.get("scope")
    if scope is not None and scope not in ("*", "Cluster", "Namespaced"):
        errs.append(_supported(p + ".scope", scope, ("*", "Cluster", "Namespaced")))
    return errs


def _validate_client_config(cc, p):
    if not isinstance(cc, dict):
        return [FieldErr(p, "Required", "exactly one of url or service is required")]
    url, svc = cc.get("url"), cc.get("service")
    if bool(url) == bool(svc):
        return [FieldErr(p, "Required", "exactly one of url or service is required")]
    errs = []
    ca = cc.get("caBundle")
    if ca is not None:
        try:
            base64.b64decode(ca, validate=True)
        except (ValueError, TypeError):
            errs.append(FieldErr(p + ".caBundle", "Invalid", "illegal base64 data", GoValue("[]byte{...}"), True))
    if url:
        u = urlsplit(url)
        if u.scheme != "https":
            errs.append(FieldErr(p + ".url", "Invalid", "'https' is the only allowed URL scheme", url, True))
        if not u.hostname:
            errs.append(FieldErr(p + ".url", "Invalid", "host must be specified", url, True))
        if u.username or u.password:
            errs.append(FieldErr(p + ".url", "Invalid", "user information is not permitted in the URL", url, True))
        if u.fragment or url.endswith("#"):
            errs.append(FieldErr(p + ".url", "Invalid", "fragments are not permitted in the URL", url, True))
        if u.query or url.endswith("?"):
            errs.append(FieldErr(p + ".url", "Invalid", "query parameters are not permitted in the URL", url, True))
        try:
            u.port
        except ValueError:
            errs.append(FieldErr(p + ".url", "Invalid", "port is not valid", url, True))
        return errs
    if not isinstance(svc, dict):
        return errs + [FieldErr(p + ".service", "Invalid", "must be an object", svc, True)]
    sp = p + ".service"
    for k in ("name", "namespace"):
        if not svc.get(k):
            errs.append(FieldErr("%s.%s" % (sp, k), "Required", "service %s is required" % k))
    path = svc.get("path")
    if path is not None and path != "" and not str(path).startswith("/"):
        errs.append(FieldErr(sp + ".path", "Invalid", "must start with a '/'", path, True))
    port = svc.get("port")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536):
        errs.append(FieldErr(sp + ".port", "Invalid", "port is not valid: must be between 1 and 65535, inclusive",
                             port, True))
    return errs


def validate_webhook_config(cfg, old, mutating):
    """ValidateMutatingWebhookConfiguration / ValidateValidatingWebhookConfiguration (v1)."""
    hooks = cfg.get("webhooks")
    if hooks is None:
        return []
    if not isinstance(hooks, list):
        return [FieldErr("webhooks", "Invalid", "must be a list", hooks, True)]
    errs, names = [], set()
    for i, wh in enumerate(hooks):
        p = "webhooks[%d]" % i
        if not isinstance(wh, dict):
            errs.append(FieldErr(p, "Invalid", "must be an object", wh, True))
            continue
        name = wh.get("name") or ""
        if not name:
            errs.append(FieldErr(p + ".name", "Required"))
        else:
            bad = check_subdomain(name)
            if bad:
                errs.append(FieldErr(p + ".name", "Invalid", bad, name, True))
            elif len(name.split(".")) < 3:
                errs.append(FieldErr(p + ".name", "Invalid", "should be a domain with at least three segments "
                                     "separated by dots", name, True))
            if name in names:
                errs.append(FieldErr(p + ".name", "Duplicate", "", name, True))
            names.add(name)
        for j, r in enumerate(wh.get("rules") or []):
            errs += _validate_rule(r, "%s.rules[%d]" % (p, j))
        fp = wh.get("failurePolicy")
        if fp is not None and fp not in ("Fail", "Ignore"):
            errs.append(_supported(p + ".failurePolicy", fp, ("Fail", "Ignore")))
        mp = wh.get("matchPolicy")
        if mp is not None and mp not in ("Equivalent", "Exact"):
            errs.append(_supported(p + ".matchPolicy", mp, ("Equivalent", "Exact")))
        se = wh.get("sideEffects")
        if se is None:
            errs.append(FieldErr(p + ".sideEffects", "Required", "must specify one of None, NoneOnDryRun"))
        elif se not in ("None", "NoneOnDryRun"):
            errs.append(_supported(p + ".sideEffects", se, ("None", "NoneOnDryRun")))
        vers = wh.get("admissionReviewVersions")
        if not vers:
            errs.append(FieldErr(p + ".admissionReviewVersions", "Required",
                                 "must specify one of %s" % ", ".join(ADMISSION_REVIEW_VERSIONS)))
        elif not isinstance(vers, list):
            errs.append(FieldErr(p + ".admissionReviewVersions", "Invalid", "must be a list", vers, True))
        else:
            seen = set()
            for j, v in enumerate(vers):
                if v in seen:
                    errs.append(FieldErr("%s.admissionReviewVersions[%d]" % (p, j), "Invalid", "duplicate version",
                                         v, True))
                seen.add(v)
            if not any(v in ADMISSION_REVIEW_VERSIONS for v in vers):
                errs.append(FieldErr(p + ".admissionReviewVersions", "Invalid", "must include at least one of %s"
                                     % ", ".join(ADMISSION_REVIEW_VERSIONS), vers, True))
        ts = wh.get("timeoutSeconds")
        if ts is not None and (not isinstance(ts, int) or isinstance(ts, bool) or not 1 <= ts <= 30):
            errs.append(FieldErr(p + ".timeoutSeconds", "Invalid", "the timeout value must be between 1 and 30 "
                                 "seconds", ts, True))
        if mutating:
            rp = wh.get("reinvocationPolicy")
            if rp is not None and rp not in ("IfNeeded", "Never"):
                errs.append(_supported(p + ".reinvocationPolicy", rp, ("IfNeeded", "Never")))
        errs += _validate_client_config(wh.get("clientConfig"), p + ".clientConfig")
        errs += _validate_selector(wh.get("namespaceSelector"), p + ".namespaceSelector")
        errs += _validate_selector(wh.get("objectSelector"), p + ".objectSelector")
        mcs = wh.get("matchConditions") or []
        if len(mcs) > WEBHOOK_MATCH_CONDITIONS_MAX:
            errs.append(FieldErr(p + ".matchConditions", "TooMany", "must have at most %d items"
                                 % WEBHOOK_MATCH_CONDITIONS_MAX, len(mcs), True))
        mnames = set()
        for j, mc in enumerate(mcs):
            mp_ = "%s.matchConditions[%d]" % (p, j)
            if not isinstance(mc, dict):
                errs.append(FieldErr(mp_, "Invalid", "must be an object", mc, True))
                continue
            n = mc.get("name") or ""
            if not n:
                errs.append(FieldErr(mp_ + ".name", "Required"))
            else:
                bad = check_qualified_name(n)
                if bad:
                    errs.append(FieldErr(mp_ + ".name", "Invalid", bad, n, True))
                if n in mnames:
                    errs.append(FieldErr(mp_ + ".name", "Duplicate", "", n, True))
                mnames.add(n)
            if not mc.get("expression"):
                errs.append(FieldErr(mp_ + ".expression", "Required"))
    return errs


def _selector_empty(sel):
    return not isinstance(sel, dict) or not (sel.get("matchLabels") or sel.get("matchExpressions"))


def _labels_of(o):
    if not isinstance(o, dict) or not isinstance(o.get("metadata"), dict):
        return {}
    lb = o["metadata"].get("labels")
    return lb if isinstance(lb, dict) else {}


class Webhook:
    """One webhook of a configuration, parsed once per configuration version."""

    def __init__(self, cfg, index, wh, mutating):
        self.config = cfg["metadata"]["name"]
        self.name = wh.get("name") or ""
        self.uid = "%s/%s/%d" % (self.config, self.name, index)   # webhook accessor UID, as upstream
        self.mutating = mutating
        self.rules = [r for r in (wh.get("rules") or []) if isinstance(r, dict)]
        self.failure = wh.get("failurePolicy") or "Fail"
        self.match_policy = wh.get("matchPolicy") or "Equivalent"
        self.side_effects = wh.get("sideEffects")
        self.timeout = int(wh.get("timeoutSeconds") or 10)
        self.reinvoke = mutating and wh.get("reinvocationPolicy") == "IfNeeded"
        self.versions = [v for v in (wh.get("admissionReviewVersions") or []) if isinstance(v, str)]
        self.client = wh.get("clientConfig") if isinstance(wh.get("clientConfig"), dict) else {}
        self.ns_empty = _selector_empty(wh.get("namespaceSelector"))
        self.obj_empty = _selector_empty(wh.get("objectSelector"))
        self.selector_error = None
        try:
            self.ns_match = selector_from_label_selector(wh.get("namespaceSelector") or {})
            self.obj_match = selector_from_label_selector(wh.get("objectSelector") or {})
        except ApiError as e:
            self.selector_error = e.message
        self.conditions = []
        for mc in wh.get("matchConditions") or []:
            expr = str(mc.get("expression") or "")
            try:
                ast = _CelParser(expr).parse()
            except Exception as e:  # noqa: BLE001 - anything the subset cannot parse
                ast = CelUnsupported(str(e) or e.__class__.__name__)
            self.conditions.append((mc.get("name") or "", expr, ast))


class WebhookCallError(Exception):
    """ErrCallingWebhook: the call did not give a usable answer; failurePolicy decides."""

    def __init__(self, webhook, reason):
        super().__init__('failed calling webhook "%s": %s' % (webhook, reason))


class _CallFailure(Exception):
    pass


class _HostnameError(Exception):
    pass


def _go_hostname_error(cert, host):
    """crypto/x509 HostnameError.Error()."""
    sans = cert.get("subjectAltName") or ()
    try:
        ipaddress.ip_address(host)
        ips = [v for k, v in sans if k == "IP Address"]
        if not ips:
            return "x509: cannot validate certificate for %s because it doesn't contain any IP SANs" % host
        valid = ", ".join(ips)
    except ValueError:
        valid = ", ".join(v for k, v in sans if k == "DNS")
    if not valid:
        return "x509: certificate is not valid for any names, but wanted to match " + host
    return "x509: certificate is valid for %s, not %s" % (valid, host)


def _host_matches(cert, host):
    """RFC 6125 as crypto/x509 VerifyHostname: SANs only, never the CN."""
    sans = cert.get("subjectAltName") or ()
    try:
        ip = ipaddress.ip_address(host)
        return any(k == "IP Address" and ipaddress.ip_address(v.strip()) == ip for k, v in sans)
    except ValueError:
        pass
    host = host.lower().rstrip(".")
    for k, v in sans:
        if k != "DNS":
            continue
        v = v.lower().rstrip(".")
        if v == host:
            return True
        if v.startswith("*.") and "." in host and host.split(".", 1)[1] == v[2:]:
            return True
    return False


class _HookConnection(http.client.HTTPConnection):
    """HTTPS to an address that may differ from the name TLS verifies (a mapped Service)."""

    def __init__(self, addr, port, server_name, ctx, timeout):
        super().__init__(addr, port, timeout=timeout)
        self.server_name, self.ctx = server_name, ctx

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self.ctx.wrap_socket(sock, server_hostname=self.server_name)
        except BaseException:
            sock.close()
            raise
        cert = tls.getpeercert()
        if not _host_matches(cert, self.server_name):
            tls.close()
            raise _HostnameError(_go_hostname_error(cert, self.server_name))
        self.sock = tls


_GO_HTTP_ERRORS = {
    400: "the server rejected our request for an unknown reason",
    401: "the server has asked for the client to provide credentials",
    404: "the server could not find the requested resource",
    405: "the server does not allow this method on the requested resource",
    409: "the server reported a conflict",
    422: "the server rejected our request due to an error in our request",
    429: "the server has received too many requests and has asked us to try again later",
    503: "the server is currently unable to handle the request",
    504: "the server was unable to return a response in the time allotted, but may still be processing the request",
}


def _go_http_error(code, data, ctype):
    """What client-go's REST client reports for a non-2xx answer."""
    try:
        st = json.loads(data)
        if isinstance(st, dict) and st.get("kind") == "Status" and st.get("message"):
            return str(st["message"])
    except ValueError:
        pass
    text = data.decode("utf-8", "replace").strip() if (ctype or "").startswith("text/") or not ctype else "unknown"
    if code in (403, 415):
        return text
    if code in _GO_HTTP_ERRORS:
        return _GO_HTTP_ERRORS[code]
    if code >= 500:
        return "an error on the server (%s) has prevented the request from succeeding" % json.dumps(text)
    return "the server responded with the status code %d but did not return more information" % code


class _WebhookPatchError(Exception):
    pass


def apply_webhook_patch(doc, ops):
    """RFC 6902, one operation at a time, failing with evanphx/json-patch's messages."""
    for op in ops:
        if not isinstance(op, dict):
            raise _WebhookPatchError("Unexpected kind: %s" % json.dumps(op))
        kind, path = op.get("op"), op.get("path")
        if kind not in ("add", "remove", "replace", "move", "copy", "test"):
            raise _WebhookPatchError("Unexpected kind: %s" % kind)
        try:
            doc = jsonpatch.JsonPatch([op]).apply(doc, in_place=False)
        except jsonpatch.JsonPatchTestFailed:
            raise _WebhookPatchError("testing value %s failed: test failed" % path)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError, IndexError,
                TypeError, ValueError):
            if kind in ("move", "copy"):
                raise _WebhookPatchError('%s operation does not apply: doc is missing from path: "%s": missing value'
                                         % (kind, op.get("from")))
            raise _WebhookPatchError('%s operation does not apply: doc is missing path: "%s": missing value'
                                     % (kind, path))
    return doc


def webhook_denied(name, st):
    """webhookerrors.ToStatusErr."""
    st = dict(st) if isinstance(st, dict) else {}
    code = st.get("code") if isinstance(st.get("code"), int) and not isinstance(st.get("code"), bool) else 0
    if code < 400:
        code = 400
    msg, reason = str(st.get("message") or ""), str(st.get("reason") or "")
    denied = 'admission webhook "%s" denied the request' % name
    if msg:
        text = "%s: %s" % (denied, msg)
    elif reason:
        text = "%s: %s" % (denied, reason)
    else:
        text = denied + " without explanation"
    return ApiError(code, reason, text, st.get("details") if isinstance(st.get("details"), dict) else None)


def warning_headers(texts):
    """Warning header values as the apiserver's recorder writes them: deduplicated,
    truncated when they add up to more than 4096 runes."""
    uniq = []
    for t in texts:
        t = "".join(c if c.isprintable() else " " for c in str(t))
        if t and t not in uniq:
            uniq.append(t)
    if sum(len(t) for t in uniq) > WARNINGS_TOTAL_RUNES:
        out, total = [], 0
        for t in uniq:
            t = t[:WARNINGS_ITEM_RUNES]
            if total + len(t) > WARNINGS_TOTAL_RUNES:
                break
            out.append(t)
            total += len(t)
        uniq = out
    return ['299 - "%s"' % t.replace("\\", "\\\\").replace('"', '\\"') for t in uniq]


def parse_service_map_entry(spec):
    """'NS/NAME[:PORT]=HOST:PORT' -> (key, (host, port))."""
    key, sep, target = spec.partition("=")
    if not sep:
        raise ValueError("want NS/NAME[:PORT]=HOST:PORT, got %r" % spec)
    return normalize_service_key(key), parse_host_port(target)


def normalize_service_key(key):
    ns, sep, rest = key.strip().partition("/")
    name, psep, port = rest.partition(":")
    if not sep or not ns or not name or (psep and not port.isdigit()):
        raise ValueError("want NAMESPACE/SERVICE[:PORT], got %r" % key)
    return "%s/%s" % (ns, name) + (":%d" % int(port) if psep else "")


def parse_host_port(v):
    host, sep, port = str(v).strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("want HOST:PORT, got %r" % v)
    return host, int(port)


class Admission:
    """The webhook admission plugins of one server: reads the configurations
    from the store on every request, keeps the service map, TLS contexts,
    idle connections and the log of calls."""

    def __init__(self, cluster, service_map=None, verbose=False):
        self.cluster = cluster
        self.verbose = verbose
        self.lock = threading.Lock()
        self.service_map = dict(service_map or {})
        self.calls = collections.deque(maxlen=WEBHOOK_CALL_LOG)
        self.seq = 0
        self.parsed = {}        # (uid, resourceVersion, mutating) -> [Webhook]
        self.contexts = {}      # caBundle -> SSLContext
        self.idle = {}          # endpoint -> [connection]

    def active(self):
        st = self.cluster.stores
        return bool(st[(ADMREG, "mutatingwebhookconfigurations")].objects or
                    st[(ADMREG, "validatingwebhookconfigurations")].objects)

    def run(self, rt, user, groups, dry_run, options, warnings):
        """The AdmissionRun of one API request, or None when no webhook can apply."""
        if not self.active() or (rt.group == ADMREG and rt.plural in ADMISSION_EXEMPT):
            return None
        return AdmissionRun(self, user, groups, dry_run, options, warnings)

    def hooks(self, mutating):
        plural = "mutatingwebhookconfigurations" if mutating else "validatingwebhookconfigurations"
        with self.cluster.lock:
            st = self.cluster.stores[(ADMREG, plural)]
            cfgs = [st.objects[k][0] for k in st.keys]     # keys sort by name, as upstream orders them
        out = []
        with self.lock:
            for cfg in cfgs:
                key = (cfg["metadata"]["uid"], cfg["metadata"]["resourceVersion"], mutating)
                hs = self.parsed.get(key)
                if hs is None:
                    hs = self.parsed[key] = [Webhook(cfg, i, wh, mutating)
                                             for i, wh in enumerate(cfg.get("webhooks") or []) if isinstance(wh, dict)]
                out.extend(hs)
            if len(self.parsed) > 4 * len(cfgs) + 64:
                live = {(c["metadata"]["uid"], c["metadata"]["resourceVersion"], mutating) for c in cfgs}
                self.parsed = {k: v for k, v in self.parsed.items() if k in live or k[2] != mutating}
        return out

    # ---- matching (generic.Webhook.ShouldCallHook)

    def namespace_labels(self, a, obj):
        if a.is_namespace and a.op in ("CREATE", "UPDATE"):
            return _labels_of(obj)
        with self.cluster.lock:
            e = self.cluster.stores[("", "namespaces")].objects.get(obj_key(None, a.ns))
        if e is None:
            raise ApiError(500, "InternalError", 'Internal error occurred: namespaces "%s" not found' % a.ns)
        return _labels_of(e[0])

    @staticmethod
    def rule_matches(r, a, group, version, plural):
        scope = r.get("scope") or "*"
        if scope == "Namespaced" and (a.is_namespace or not a.ns):
            return False
        if scope == "Cluster" and not (a.is_namespace or not a.ns):
            return False
        ops = r.get("operations") or []
        if "*" not in ops and a.op not in ops:
            return False
        groups, versions = r.get("apiGroups") or [], r.get("apiVersions") or []
        if "*" not in groups and group not in groups:
            return False
        if "*" not in versions and version not in versions:
            return False
        for res in r.get("resources") or []:
            if not isinstance(res, str):
                continue
            main_, _, sub = res.partition("/")
            if (main_ == "*" or main_ == plural) and (sub == "*" or sub == a.sub):
                return True
        return False

    def should_call(self, h, a, obj, old):
        """The ResourceType to call h with (the request's, or an equivalent one),
        None to skip it; raises ApiError when matching itself fails."""
        if h.selector_error:
            raise ApiError(500, "InternalError", "Internal error occurred: " + h.selector_error)
        ns_ok, ns_err = True, None
        if (a.ns or a.is_namespace) and not h.ns_empty:
            try:
                ns_ok = h.ns_match(self.namespace_labels(a, obj))
            except ApiError as e:
                ns_ok, ns_err = False, e
        if not ns_ok and ns_err is None:
            return None
        if not h.obj_empty and not (h.obj_match(_labels_of(obj)) if obj is not None else False) \
                and not (h.obj_match(_labels_of(old)) if old is not None else False):
            return None
        inv = None
        for r in h.rules:
            if self.rule_matches(r, a, a.rt.group, a.rt.version, a.rt.plural):
                inv = a.rt
                break
        if inv is None and h.match_policy == "Equivalent":
            for r in h.rules:
                inv = next((t for t in a.equivalents() if self.rule_matches(r, a, t.group, t.version, t.plural)), None)
                if inv is not None:
                    break
        if inv is None:
            return None
        if ns_err is not None:
            raise ns_err
        if h.conditions and not self.match_conditions(h, inv, a, obj, old):
            return None
        return inv

    def match_conditions(self, h, inv, a, obj, old):
        """matchconditions.matcher: any false -> skip; errors and no false ->
        failurePolicy (Fail: 403, Ignore: skip)."""
        env = {"object": a.versioned(inv, obj), "oldObject": a.versioned(inv, old),
               "request": a.request_fields(inv, str(uuid.uuid4()))}
        errors = []
        for _, expr, ast in h.conditions:
            try:
                if isinstance(ast, Exception):
                    raise ast
                v = cel_eval(ast, env)
                if not isinstance(v, bool):
                    raise CelError("expected a bool, got %s" % type(v).__name__)
            except CelUnsupported as e:
                log("webhook %s: matchCondition %r is beyond the CEL subset: %s" % (h.name, expr, e))
                errors.append("expression '%s' resulted in error: %s" % (expr, e))
                continue
            except (CelError, RecursionError) as e:
                errors.append("expression '%s' resulted in error: %s" % (expr, e))
                continue
            if v is False:
                return False
        if errors:
            if h.failure == "Fail":
                why = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
                gr = gr_string(a.rt.group, a.rt.plural)
                d = {"name": a.name, "kind": a.rt.plural}
                if a.rt.group:
                    d["group"] = a.rt.group
                raise ApiError(403, "Forbidden", ('%s "%s" is forbidden: %s' % (gr, a.name, why)) if a.name
                               else "%s is forbidden: %s" % (gr, why), d)
            return False
        return True

    # ---- calling

    def endpoint(self, h):
        """(URL as errors print it, connect host, connect port, TLS name, request target, Host header)."""
        cc = h.client
        q = "?timeout=%ds" % h.timeout
        if cc.get("url"):
            u = urlsplit(cc["url"])
            path = u.path or "/"
            try:
                port = u.port or 443
            except ValueError:
                raise _CallFailure("could not get REST client: invalid URL %r" % cc["url"])
            return ("%s://%s%s%s" % (u.scheme, u.netloc, path, q), u.hostname or "", port,
                    u.hostname or "", path + q, u.netloc)
        svc = cc.get("service") or {}
        ns, name = svc.get("namespace") or "", svc.get("name") or ""
        port = int(svc.get("port") or 443)
        path = svc.get("path") or "/"
        host = "%s.%s.svc" % (name, ns)
        url = "https://%s:%d%s%s" % (host, port, path, q)
        with self.lock:
            target = self.service_map.get("%s/%s:%d" % (ns, name, port)) or self.service_map.get("%s/%s" % (ns, name))
        if target is None:
            with self.cluster.lock:
                known = obj_key(ns, name) in self.cluster.stores[("", "services")].objects
            raise _CallFailure('failed to call webhook: Post "%s": %s' % (
                url, ('no endpoints available for service "%s"' if known else 'service "%s" not found') % name))
        return url, target[0], target[1], host, path + q, host if port == 443 else "%s:%d" % (host, port)

    def ssl_context(self, ca_b64):
        with self.lock:
            ctx = self.contexts.get(ca_b64)
        if ctx is not None:
            return ctx
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = False          # done by _HookConnection, with crypto/x509's rules and messages
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.set_alpn_protocols(["http/1.1"])
        if ca_b64:
            try:
                pem = base64.b64decode(ca_b64).decode("ascii")
                if "-----BEGIN CERTIFICATE-----" not in pem:
                    raise ValueError("no PEM block")
                ctx.load_verify_locations(cadata=pem)
            except (ValueError, TypeError, ssl.SSLError):
                raise _CallFailure("could not get REST client: unable to load root certificates: "
                                   "unable to parse bytes as PEM block")
        else:
            ctx.load_default_certs()
        with self.lock:
            if len(self.contexts) > 64:
                self.contexts.clear()
            self.contexts[ca_b64] = ctx
        return ctx

    def _take_conn(self, key):
        """An idle kept-alive connection, skipping those the webhook has closed
        meanwhile (readable while idle: EOF or junk), as Go's transport does."""
        while True:
            with self.lock:
                conns = self.idle.get(key)
                conn = conns.pop() if conns else None
            if conn is None or conn.sock is None:
                return None
            try:
                readable = select.select([conn.sock], [], [], 0)[0]
            except (OSError, ValueError):
                readable = True
            if not readable:
                return conn
            conn.close()

    def _give_conn(self, key, conn):
        with self.lock:
            conns = self.idle.setdefault(key, [])
            if len(conns) < WEBHOOK_IDLE_CONNS:
                conns.append(conn)
                return
        conn.close()

    def post(self, h, body):
        """POSTs one AdmissionReview within h.timeout; returns (status, body, content type, URL).
        Raises _CallFailure with the text upstream puts after 'failed calling webhook'."""
        url, host, port, server_name, target, host_header = self.endpoint(h)
        ca = h.client.get("caBundle") or ""
        ctx = self.ssl_context(ca)
        key = (host, port, server_name, ca)
        deadline = time.monotonic() + h.timeout
        headers = {"Host": host_header, "Content-Type": "application/json",
                   "Accept": "application/json, */*", "User-Agent": "kube-apiserver-admission"}
        conn = self._take_conn(key)
        reused = conn is not None
        post = 'failed to call webhook: Post "%s": ' % url
        dial = "dial tcp %s: " % ("[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port))
        while True:
            if conn is None:
                conn = _HookConnection(host, port, server_name, ctx, max(0.001, deadline - time.monotonic()))
            try:
                if conn.sock is not None:
                    conn.sock.settimeout(max(0.001, deadline - time.monotonic()))
                conn.request("POST", target, body=body, headers=headers)
                conn.sock.settimeout(max(0.001, deadline - time.monotonic()))
                resp = conn.getresponse()
                data = resp.read(WEBHOOK_RESPONSE_MAX + 1)
                if time.monotonic() > deadline:
                    raise socket.timeout()
            except (socket.timeout, TimeoutError):
                conn.close()
                raise _CallFailure(post + "context deadline exceeded")
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    ssl.SSLEOFError, ssl.SSLZeroReturnError) as e:
                conn.close()
                conn = None
                if reused:              # the webhook closed a kept-alive connection: dial again
                    reused = False
                    continue
                raise _CallFailure(post + ("read: connection reset by peer" if isinstance(e, ConnectionResetError)
                                           and not isinstance(e, http.client.RemoteDisconnected) else "EOF"))
            except _HostnameError as e:
                conn.close()
                raise _CallFailure(post + "tls: failed to verify certificate: %s" % e)
            except ssl.SSLCertVerificationError as e:
                conn.close()
                why = (e.verify_message or str(e)).lower()
                raise _CallFailure(post + "tls: failed to verify certificate: " + (
                    "x509: certificate has expired or is not yet valid" if "expired" in why or "not yet valid" in why
                    else "x509: certificate signed by unknown authority"))
            except ssl.SSLError as e:
                conn.close()
                raise _CallFailure(post + "remote error: tls: %s" % (e.reason or str(e)).lower().replace("_", " "))
            except ConnectionRefusedError:
                conn.close()
                raise _CallFailure(post + dial + "connect: connection refused")
            except OSError as e:
                conn.close()
                raise _CallFailure(post + dial + (e.strerror or str(e)).lower())
            except http.client.HTTPException as e:
                conn.close()
                raise _CallFailure(post + "malformed HTTP response: %s" % (e.__class__.__name__))
            break
        if len(data) > WEBHOOK_RESPONSE_MAX:
            conn.close()
            raise _CallFailure(post + "the response from the webhook is larger than %d bytes" % WEBHOOK_RESPONSE_MAX)
        if resp.will_close:
            conn.close()
        else:
            self._give_conn(key, conn)
        return resp.status, data, resp.getheader("Content-Type") or "", url

    def call(self, h, a, inv, review, uid, entry):
        """One webhook call: returns the verified response (a dict, with the
        patch decoded into 'patchBytes').  Raises WebhookCallError."""
        t0 = time.monotonic()
        try:
            body = dumps(review)
            entry["_request"] = body        # exactly what was sent, decoded by GET /_sim/webhook-calls
            try:
                status, data, ctype, url = self.post(h, body)
            finally:
                entry["durationMs"] = round((time.monotonic() - t0) * 1000, 1)
            entry["url"], entry["httpStatus"] = url, status
            if not 200 <= status <= 206:
                raise _CallFailure("failed to call webhook: " + _go_http_error(status, data, ctype))
            try:
                doc = json.loads(data)
            except ValueError as e:
                raise _CallFailure("failed to call webhook: couldn't get version/kind; json parse error: %s" % e)
            if not isinstance(doc, dict):
                raise _CallFailure("failed to call webhook: couldn't get version/kind; json parse error: "
                                   "not a JSON object")
            if not doc.get("kind"):
                raise _CallFailure("failed to call webhook: Object 'Kind' is missing in '%s'"
                                   % data.decode("utf-8", "replace")[:512])
            entry["response"] = doc.get("response")
            return self.verify(h, review, uid, doc)
        except _CallFailure as e:
            raise WebhookCallError(h.name, e)

    @staticmethod
    def verify(h, review, uid, doc):
        """request.VerifyAdmissionResponse, plus the decoding errors of the response."""
        bad = "received invalid webhook response: "
        want = review["apiVersion"]
        r = doc.get("response")
        if r is None:
            raise _CallFailure(bad + "webhook response was absent")
        if not isinstance(r, dict):
            raise _CallFailure("failed to call webhook: json: cannot unmarshal %s into Go struct field "
                               "AdmissionReview.response of type v1.AdmissionResponse" % type(r).__name__)
        if r.get("uid") != uid:
            raise _CallFailure(bad + 'expected response.uid="%s", got "%s"' % (uid, r.get("uid") or ""))
        if doc.get("apiVersion") != want or doc.get("kind") != "AdmissionReview":
            raise _CallFailure(bad + "expected webhook response of %s, Kind=AdmissionReview, got %s, Kind=%s"
                               % (want, doc.get("apiVersion") or "", doc.get("kind")))
        if not isinstance(r.get("allowed", False), bool):
            raise _CallFailure("failed to call webhook: json: cannot unmarshal %s into Go struct field "
                               "AdmissionResponse.response.allowed of type bool" % type(r["allowed"]).__name__)
        patch, ptype = r.get("patch"), r.get("patchType") or ""
        if patch is not None and not isinstance(patch, str):
            raise _CallFailure("failed to call webhook: json: cannot unmarshal %s into Go struct field "
                               "AdmissionResponse.response.patch of type []uint8" % type(patch).__name__)
        try:
            raw = base64.b64decode(patch or "", validate=True)
        except (ValueError, TypeError) as e:
            raise _CallFailure("failed to call webhook: illegal base64 data (%s)" % e)
        if raw and not ptype:
            raise _CallFailure(bad + "webhook returned response.patch but not response.patchType")
        if ptype and not raw:
            raise _CallFailure(bad + "webhook returned response.patchType but not response.patch")
        if ptype and not h.mutating:
            raise _CallFailure(bad + "validating webhook may not return response.patch or response.patchType")
        w = r.get("warnings")
        if w is not None and (not isinstance(w, list) or not all(isinstance(x, str) for x in w)):
            raise _CallFailure("failed to call webhook: json: cannot unmarshal into Go struct field "
                               "AdmissionResponse.response.warnings of type []string")
        out = dict(r)
        out["patchBytes"] = raw
        return out

    def review(self, h, inv, a, vobj, vold):
        ver = next((v for v in h.versions if v in ADMISSION_REVIEW_VERSIONS), None)
        if ver is None:
            raise WebhookCallError(h.name, "webhook does not accept known AdmissionReview versions")
        uid = str(uuid.uuid4())
        req = a.request_fields(inv, uid)
        req["object"], req["oldObject"] = vobj, vold
        req["dryRun"] = a.run.dry_run
        req["options"] = a.run.options_for(a.op)
        return {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/" + ver, "request": req}, uid

    def dry_run_check(self, h, a):
        if not a.run.dry_run:
            return
        if h.side_effects is None:
            raise WebhookCallError(h.name, "Webhook SideEffects is nil")
        if h.side_effects not in ("None", "NoneOnDryRun"):
            raise ApiError(400, "BadRequest", 'admission webhook "%s" does not support dry run' % h.name)

    def new_entry(self, h, inv, a, rnd):
        return {"time": now_micro(), "webhook": h.name, "configuration": h.config,
                "type": "mutating" if h.mutating else "validating", "round": rnd, "operation": a.op,
                "group": inv.group, "version": inv.version, "resource": inv.plural, "subResource": a.sub,
                "namespace": a.ns, "name": a.name, "dryRun": a.run.dry_run, "failurePolicy": h.failure}

    def record(self, entry):
        with self.lock:
            self.seq += 1
            entry["seq"] = self.seq
            self.calls.append(entry)
        if self.verbose:
            log("webhook %s (%s) %s %s%s %s/%s -> %s %.1fms%s" % (
                entry["webhook"], entry["type"], entry["operation"], entry["resource"],
                "/" + entry["subResource"] if entry["subResource"] else "", entry["namespace"], entry["name"],
                entry.get("outcome"), entry.get("durationMs", 0), (": " + entry["error"]) if entry.get("error") else ""))

    def call_mutating(self, h, inv, a, obj, old, rnd):
        """Returns (changed, object in the request's representation)."""
        self.dry_run_check(h, a)
        vobj, vold = a.versioned(inv, obj, wire=True), a.versioned(inv, old)
        review, uid = self.review(h, inv, a, vobj, vold)
        entry = self.new_entry(h, inv, a, rnd)
        entry["uid"] = uid
        try:
            r = self.call(h, a, inv, review, uid, entry)
            a.run.warnings.extend(r.get("warnings") or [])
            if not r.get("allowed"):
                entry["outcome"] = "denied"
                raise webhook_denied(h.name, r.get("status"))
            entry["outcome"] = "allowed"
            raw = r["patchBytes"]
            if not raw:
                return False, obj
            try:
                ops = json.loads(raw)
                if not isinstance(ops, list):
                    raise ValueError("json: cannot unmarshal %s into Go value of type jsonpatch.Patch"
                                     % type(ops).__name__)
            except ValueError as e:
                raise WebhookCallError(h.name, "received undecodable patch in webhook response: %s" % e)
            if not ops:
                return False, obj
            entry["patch"] = ops
            if obj is None:
                entry["outcome"] = "patch-failed"
                raise ApiError(500, "InternalError", 'Internal error occurred: admission webhook "%s" attempted to '
                               "modify the object, which is not supported for this operation" % h.name)
            if r.get("patchType") != "JSONPatch":
                raise WebhookCallError(h.name, 'unsupported patch type "%s"' % r.get("patchType"))
            base = json.loads(dumps(vobj))
            try:
                patched = apply_webhook_patch(base, ops)
                if not isinstance(patched, dict):
                    raise _WebhookPatchError("couldn't get version/kind; json parse error: the patched "
                                             "object is not an object")
            except _WebhookPatchError as e:
                entry["outcome"] = "patch-failed"
                raise ApiError(500, "InternalError", "Internal error occurred: %s" % e)
            changed = patched != vobj
            entry["outcome"] = "patched"
            return changed, a.unversioned(inv, patched, obj)
        except WebhookCallError as e:
            entry["outcome"] = "failed-open" if h.failure == "Ignore" else "failed-closed"
            entry["error"] = str(e)
            raise
        except ApiError as e:
            entry.setdefault("outcome", "error")
            entry["error"] = e.message
            raise
        finally:
            self.record(entry)

    def call_validating(self, h, inv, a, obj, old):
        self.dry_run_check(h, a)
        review, uid = self.review(h, inv, a, a.versioned(inv, obj, wire=True), a.versioned(inv, old))
        entry = self.new_entry(h, inv, a, 0)
        entry["uid"] = uid
        try:
            r = self.call(h, a, inv, review, uid, entry)
            a.run.warnings.extend(r.get("warnings") or [])
            if not r.get("allowed"):
                entry["outcome"] = "denied"
                raise webhook_denied(h.name, r.get("status"))
            entry["outcome"] = "allowed"
        except WebhookCallError as e:
            entry["outcome"] = "failed-open" if h.failure == "Ignore" else "failed-closed"
            entry["error"] = str(e)
            raise
        except ApiError as e:
            entry["error"] = e.message
            raise
        finally:
            self.record(entry)


class _Attrs:
    """admission.Attributes of one operation on one object."""

    def __init__(self, run, cl, rt, op, ns, name, sub, kind):
        self.run, self.cl, self.rt, self.op = run, cl, rt, op
        self.is_namespace = rt.group == "" and rt.plural == "namespaces"
        self.name = name or ""
        self.ns = (self.name if self.is_namespace else ns) or ""
        self.sub = sub or ""
        self.kind = kind            # (group, version, kind) of a subresource's own object (Binding, Eviction)

    def equivalents(self):
        """Other resources stored together with this one (versions of a CRD, core
        and events.k8s.io Events), in registration order; matchPolicy Equivalent."""
        if self.kind is not None:
            return []
        with self.cl.lock:
            return [t for t in self.cl.types.values()
                    if t.store is self.rt.store and t is not self.rt and (not self.sub or self.sub in t.subs)]

    def kind_of(self, inv):
        return self.kind or (inv.group, inv.version, inv.kind)

    def request_fields(self, inv, uid):
        g, v, k = self.kind_of(inv)
        rg, rv, rk = self.kind_of(self.rt)
        req = {"uid": uid, "kind": {"group": g, "version": v, "kind": k},
               "resource": {"group": inv.group, "version": inv.version, "resource": inv.plural}}
        if self.sub:
            req["subResource"] = self.sub
        req["requestKind"] = {"group": rg, "version": rv, "kind": rk}
        req["requestResource"] = {"group": self.rt.group, "version": self.rt.version, "resource": self.rt.plural}
        if self.sub:
            req["requestSubResource"] = self.sub
        if self.name:
            req["name"] = self.name
        if self.ns:
            req["namespace"] = self.ns
        req["operation"] = self.op
        req["userInfo"] = {"username": self.run.user}
        if self.run.groups:
            req["userInfo"]["groups"] = list(self.run.groups)
        return req

    def versioned(self, inv, o, wire=False):
        """o (as the request handles it) in inv's version.  wire: also what the
        Go encoder always writes (creationTimestamp null, status {}) on CREATE."""
        if o is None:
            return None
        if self.kind is not None:
            v = o
        else:
            v = self.cl.ext(inv, o)
        if wire and self.op == "CREATE" and self.kind is None and not inv.crd:
            v = dict(v)
            v["metadata"] = dict(v.get("metadata") or {})
            v["metadata"].setdefault("creationTimestamp", None)
            if "status" in inv.subs and "status" not in v:
                v["status"] = {}
        return v

    def unversioned(self, inv, patched, before):
        """The patched object back in the request's representation, with the
        decoding defaults applied again (o.GetObjectDefaulter().Default)."""
        if self.kind is not None:
            return patched
        if inv.convert_in is not None:
            back = inv.convert_in(patched)
        else:
            back = patched
            back["apiVersion"] = before.get("apiVersion", back.get("apiVersion"))
        meta = back.get("metadata")
        if isinstance(meta, dict) and "creationTimestamp" in meta and meta["creationTimestamp"] is None:
            del meta["creationTimestamp"]
        if self.rt.scheme_defaults is not None and isinstance(meta, dict) and isinstance(back.get("spec", {}), dict):
            self.rt.scheme_defaults(back)
        if self.rt.crd:
            self.cl._schema_prune(self.rt, back)
        return back


class _Reinvocation:
    """webhookReinvokeContext."""

    def __init__(self):
        self.last = None
        self.previously = set()     # IfNeeded webhooks called since the last change
        self.reinvoke = set()       # webhooks to call again in the reinvocation round
        self.should = False

    def require(self):
        self.reinvoke |= self.previously
        self.previously = set()


class AdmissionRun:
    """Admission of one API request: who asks, dry run, the options object,
    and the list the webhooks' warnings go to (sent as Warning headers)."""

    def __init__(self, adm, user, groups, dry_run, options, warnings):
        self.adm, self.user, self.groups = adm, user, list(groups)
        self.dry_run, self.options, self.warnings = dry_run, options, warnings
        self.create_name = ""

    def options_for(self, op):
        o = self.options
        if op == "CREATE" and o.get("kind") in ("PatchOptions", "UpdateOptions"):   # apply creating the object
            o = {k: v for k, v in o.items() if k != "force"}
            o["kind"] = "CreateOptions"
        return o

    def mutate(self, cl, rt, op, ns, name, obj, old, sub=None, kind=None):
        """Runs the mutating webhooks; returns the (possibly) patched object."""
        hooks = self.adm.hooks(True)
        if not hooks:
            return obj
        a = _Attrs(self, cl, rt, op, ns, name, sub, kind)
        st = _Reinvocation()
        obj = self._round(a, hooks, obj, old, st, 0)
        if st.should and obj is not None:
            # The whole mutating chain runs once more: the built-in plugins
            # first (they may undo a webhook's change), then the webhooks
            # that asked for it and were called before a later change.
            if op == "CREATE" and rt.pre_admit is not None and kind is None:
                obj = json.loads(dumps(obj))
                rt.pre_admit(obj)
            obj = self._round(a, hooks, obj, old, st, 1)
        return obj

    def _round(self, a, hooks, obj, old, st, rnd):
        if rnd == 1 and st.last is not None and obj != st.last:
            st.require()
        try:
            for h in hooks:
                inv = self.adm.should_call(h, a, obj, old)
                if inv is None:
                    continue
                if rnd == 1 and h.uid not in st.reinvoke:
                    continue
                changed, err = False, None
                try:
                    changed, obj = self.adm.call_mutating(h, inv, a, obj, old, rnd)
                except WebhookCallError as e:
                    err = e
                if changed:
                    st.require()
                    st.should = True
                if h.reinvoke:
                    st.previously.add(h.uid)
                if err is not None:
                    if h.failure == "Ignore":
                        continue
                    raise ApiError(500, "InternalError", "Internal error occurred: %s" % err)
        finally:
            st.last = obj
        return obj

    def validate(self, cl, rt, op, ns, name, obj, old, sub=None, kind=None):
        """Runs the validating webhooks in parallel; raises the first failure."""
        hooks = self.adm.hooks(False)
        if not hooks:
            return
        a = _Attrs(self, cl, rt, op, ns, name, sub, kind)
        relevant = []
        for h in hooks:
            inv = self.adm.should_call(h, a, obj, old)
            if inv is not None:
                relevant.append((h, inv))
        errs = []

        def one(h, inv):
            try:
                self.adm.call_validating(h, inv, a, obj, old)
            except WebhookCallError as e:
                if h.failure != "Ignore":
                    errs.append(ApiError(500, "InternalError", "Internal error occurred: %s" % e))
            except ApiError as e:
                errs.append(e)
            except Exception as e:  # noqa: BLE001 - a bug must fail the request, not the thread
                log("validating webhook %s: %s\n%s" % (h.name, e, traceback.format_exc()))
                errs.append(ApiError(500, "InternalError", "Internal error occurred: %s" % e))

        if len(relevant) == 1:
            one(*relevant[0])
        else:
            threads = [threading.Thread(target=one, args=hi, daemon=True) for hi in relevant]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if errs:
            raise errs[0]

    def subresource_create(self, cl, rt, ns, name, sub, obj):
        """CREATE of pods/binding or pods/eviction: admission on the Binding or
        Eviction itself; returns it as the mutating webhooks left it."""
        if not isinstance(obj, dict):
            return obj
        g, v, k = SUBRESOURCE_KINDS[sub]
        obj = dict(obj, apiVersion="%s/%s" % (g, v) if g else v, kind=k)
        obj = self.mutate(cl, rt, "CREATE", ns, name, obj, None, sub, (g, v, k))
        self.validate(cl, rt, "CREATE", ns, name, obj, None, sub, (g, v, k))
        return obj


# --------------------------------------------------------------------------
# HTTP.

PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")


class Auth:
    """Bearer tokens (the generated one, or the lines of --token-file, re-read
    whenever it changes) and client certificates signed by our CA."""

    def __init__(self, token, token_file):
        self.token = token
        self.token_file = token_file
        self.file_sig = None
        self.file_tokens = set()
        self.lock = threading.Lock()

    def valid(self, tok):
        if not self.token_file:
            return tok == self.token
        with self.lock:
            try:
                st = os.stat(self.token_file)
                sig = (st.st_mtime_ns, st.st_size, st.st_ino)
                if sig != self.file_sig:
                    with open(self.token_file) as f:
                        self.file_tokens = {l.strip() for l in f if l.strip()}
                    self.file_sig = sig
            except OSError:
                self.file_tokens = set()
                self.file_sig = None
            return tok in self.file_tokens


class Controls:
    def __init__(self, bookmark_interval):
        self.lock = threading.Lock()
        self.counts = {}
        self.latency = 0.0
        self.ssar_deny = []
        self.failures = []
        self.bookmark_interval = bookmark_interval

    def count(self, key):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def take_failure(self, verb, resource):
        with self.lock:
            for f in self.failures:
                if f["count"] > 0 and f.get("verb", "*") in ("*", verb) and f.get("resource", "*") in ("*", resource):
                    f["count"] -= 1
                    return f
        return None

    def ssar_allowed(self, attrs):
        for rule in self.ssar_deny:
            if all(rule.get(k, "*") in ("*", attrs.get(k) or "") for k in ("verb", "resource", "group",
                                                                            "namespace", "subresource", "name")):
                return False
        return True


_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
            409: "Conflict", 410: "Expired", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
            503: "ServiceUnavailable", 504: "Timeout"}


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-sim"
    sys_version = ""
    timeout = 300

    # TLS handshake in the connection's own thread, never in the accept loop.
    def setup(self):
        self.tls_ok = False
        self.raw_sock = self.request
        try:
            self.raw_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.raw_sock.settimeout(15)
            self.request = self.server.sslctx.wrap_socket(self.raw_sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            if self.server.verbose:
                log("TLS handshake with %s failed: %s" % (self.client_address[0], e))
            try:
                self.raw_sock.close()
            except OSError:
                pass
            return
        self.tls_ok = True
        super().setup()

    def handle(self):
        if self.tls_ok:
            try:
                super().handle()
            except (ConnectionError, ssl.SSLError, TimeoutError, OSError):
                pass

    def finish(self):
        if self.tls_ok:
            try:
                super().finish()
            except (ConnectionError, ssl.SSLError, OSError):
                pass

    def log_request(self, code="-", size="-"):
        pass

    def log_message(self, fmt, *args):
        if self.server.verbose:
            log(fmt % args)

    do_GET = lambda self: self.dispatch("GET")
    do_POST = lambda self: self.dispatch("POST")
    do_PUT = lambda self: self.dispatch("PUT")
    do_PATCH = lambda self: self.dispatch("PATCH")
    do_DELETE = lambda self: self.dispatch("DELETE")

    # ---- plumbing

    def respond(self, code, payload, ctype="application/json", headers=None):
        body = payload if isinstance(payload, bytes) else dumps(payload)
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        for w in warning_headers(getattr(self, "warnings", ())):
            self._headers_buffer.append(("Warning: %s\r\n" % w).encode("utf-8"))   # UTF-8, as Go writes it
        self._headers_buffer.append(b"\r\n")
        self.wfile.write(b"".join(self._headers_buffer) + body)
        self._headers_buffer = []
        self.status_code = code

    def read_body(self, limit):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts, total = [], 0
            while True:
                n = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += n
                if total > limit:
                    self.close_connection = True
                    raise ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is %d" % limit)
                parts.append(self.rfile.read(n))
                self.rfile.readline()
            return b"".join(parts)
        n = int(self.headers.get("Content-Length") or 0)
        if n > limit:
            self.close_connection = True
            raise ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is %d" % limit)
        return self.rfile.read(n) if n else b""

    def authenticate(self, path):
        """Sets self.user to (name, groups), the userInfo admission webhooks see."""
        h = self.headers.get("Authorization")
        if h:
            if h.startswith("Bearer ") and self.server.auth.valid(h[7:].strip()):
                self.user = ("stratos-sim-admin", ["system:masters", "system:authenticated"])
                return self.user[0]
            raise ApiError(401, "Unauthorized", "Unauthorized")
        cert = self.request.getpeercert()
        if cert:
            name, groups = "client-cert", []
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        name = v
                    elif k == "organizationName":
                        groups.append(v)
            self.user = (name, groups + ["system:authenticated"])
            return name
        if path in PUBLIC_PATHS:
            self.user = ("system:anonymous", ["system:unauthenticated"])
            return "system:anonymous"
        raise ApiError(401, "Unauthorized", "Unauthorized")

    def dispatch(self, method):
        t0 = time.monotonic()
        self.status_code = 0
        self.verb_key = None
        self.warnings = []          # from admission webhooks, sent as Warning headers
        self.user = ("", [])
        url = urlsplit(self.path)
        path = url.path
        q = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            body = self.read_body(MAX_BULK_BODY if path == "/_sim/bulk" else MAX_BODY)
            self.authenticate(path)
            if path.startswith("/_sim/"):
                self.control(method, path, q, body)
            else:
                lat = self.server.controls.latency
                if lat > 0:
                    time.sleep(lat)
                self.route(method, path, q, body)
        except ApiError as e:
            hdrs = dict(e.headers)
            # responsewriters.ErrorNegotiated: Retry-After only when the Status
            # asks for a delay (details.retryAfterSeconds > 0); a PDB's 429 has none.
            ra = (e.details or {}).get("retryAfterSeconds") if isinstance(e.details, dict) else None
            if isinstance(ra, int) and ra > 0:
                hdrs.setdefault("Retry-After", str(ra))
            self.respond(e.code, e.status(), headers=hdrs)
        except (ConnectionError, ssl.SSLError, TimeoutError):
            self.close_connection = True
        except Exception as e:  # an unexpected bug must still answer like an apiserver
            log("internal error on %s %s: %s\n%s" % (method, self.path, e, traceback.format_exc()))
            try:
                self.respond(500, status_obj(500, "InternalError", "Internal error occurred: %s" % e))
            except OSError:
                self.close_connection = True
        if self.server.verbose:
            log('%s %s %s %d %.1fms' % (self.client_address[0], method, self.path[:200], self.status_code,
                                        (time.monotonic() - t0) * 1000))

    # ---- routing

    def route(self, method, path, q, body):
        cl = self.server.cluster
        segs = [unquote(s) for s in path.split("/") if s]
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            return self.respond(200, b"ok", "text/plain; charset=utf-8")
        if path == "/version":
            return self.respond(200, SERVER_VERSION)
        if path == "/openapi/v3":
            with cl.lock:
                paths = openapi_paths(cl)
            return self.respond(200, {"paths": {k: {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (k, h)}
                                                for k, h in paths.items()}})
        if path.startswith("/openapi/v3/"):
            gv = path[len("/openapi/v3/"):]
            with cl.lock:
                known = gv == "api/v1" or any(gv == "apis/%s/%s" % (g, v) for g, vs in group_versions(cl).items() for v in vs)
                doc = openapi_doc(cl, gv) if known else None
            if doc is None:
                return self.respond(404, b"404 page not found\n", "text/plain; charset=utf-8")
            return self.respond(200, doc, headers={"Etag": '"%s"' % hashlib.sha1(dumps(doc)).hexdigest()})
        if not segs or segs[0] not in ("api", "apis"):
            return self.respond(404, b"404 page not found\n", "text/plain; charset=utf-8")
        with cl.lock:
            if segs == ["api"]:
                host = "%s:%d" % self.server.server_address[:2]
                return self.respond(200, {"kind": "APIVersions", "versions": ["v1"],
                                          "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
            if segs == ["apis"]:
                return self.respond(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                          "groups": [api_group(g, vs) for g, vs in group_versions(cl).items()]})
            if segs[0] == "apis" and len(segs) == 2:
                vs = group_versions(cl).get(segs[1])
                if not vs:
                    return self.respond(404, b"404 page not found\n", "text/plain; charset=utf-8")
                return self.respond(200, dict(api_group(segs[1], vs), kind="APIGroup", apiVersion="v1"))
            if segs[0] == "api":
                group, version, rest = "", segs[1], segs[2:]
            else:
                group, version, rest = segs[1], segs[2], segs[3:]
            if not rest:
                if not any(t.group == group and t.version == version for t in cl.types.values()):
                    return self.respond(404, b"404 page not found\n", "text/plain; charset=utf-8")
                return self.respond(200, resource_list(cl, group, version))
        watch_path = False
        if rest[0] == "watch":
            watch_path, rest = True, rest[1:]
        if not rest:
            raise err_resource_not_found()
        if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
            ns, plural, name, sub, extra = rest[1], rest[2], (rest[3:4] or [None])[0], (rest[4:5] or [None])[0], rest[5:]
            ns_path = True
        else:
            ns, plural, name, sub, extra = None, rest[0], (rest[1:2] or [None])[0], (rest[2:3] or [None])[0], rest[3:]
            ns_path = False
        rt = cl.types.get((group, version, plural))
        if rt is None or extra or (ns_path and not rt.namespaced):
            raise err_resource_not_found()
        if sub is not None and sub not in rt.subs:
            raise err_resource_not_found()
        if not rt.namespaced:
            ns = None
        elif not ns_path and name is not None:
            raise err_resource_not_found()
        verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
        if method == "GET" and name is None:
            verb = "watch" if (watch_path or q.get("watch") in ("1", "true")) else "list"
        if method == "DELETE" and name is None:
            verb = "deletecollection"
        if watch_path and name is not None:
            verb = "watch"
            q["fieldSelector"] = "metadata.name=%s" % name
            name = None
        res = rt.gr + ("/" + sub if sub else "")
        self.server.controls.count("%s %s" % (verb, res))
        fail = self.server.controls.take_failure(verb, res)
        if fail is not None:
            code = int(fail.get("code", 500))
            raise ApiError(code, _REASONS.get(code, "InternalError"), fail.get("message") or
                           "injected failure (stratos sim)", headers={"Retry-After": "1"} if code == 429 else None)
        if verb not in rt.verbs and not (sub and verb in ("get", "update", "patch", "create")):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        table = self.table_mode()
        if verb == "get":
            return self.get(rt, ns, name, q, table)
        if verb == "list":
            return self.list(rt, ns, q, table)
        if verb == "watch":
            return self.watch(rt, ns, q, table)
        obj = None
        if method in ("POST", "PUT") or (method == "DELETE" and body):
            try:
                ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
                if ctype == "application/vnd.kubernetes.protobuf":
                    obj = decode_protobuf_body(body)
                elif ctype in ("application/yaml", "application/x-yaml"):
                    obj = yaml.safe_load(body.decode())
                else:
                    obj = json.loads(body or b"null")
            except (ValueError, yaml.YAMLError) as e:
                raise err_bad_request("couldn't get version/kind; json parse error: %s" % e)
            if verb in ("create", "update") and sub in (None, "status"):
                decode_body(rt, obj)
        admit = None
        if verb in ("create", "update", "patch", "delete", "deletecollection") and rt.kind != "SelfSubjectAccessReview":
            admit = self.admission_run(rt, verb, q, obj)
        if verb == "create":
            if rt.kind == "SelfSubjectAccessReview":
                return self.ssar(obj)
            if sub in ("binding", "eviction") and admit is not None:
                obj = admit.subresource_create(cl, rt, ns, name, sub, obj)
            if sub == "binding":
                return self.respond(201, cl.bind(ns, name, obj))
            if sub == "eviction":
                return self.respond(201, cl.evict(ns, name, obj))
            if name is not None or (rt.namespaced and ns is None):
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            out = cl.create(rt, ns, obj, q, admit=admit)
            return self.respond(201, cl.ext(rt, out))
        if verb == "update":
            if name is None or sub not in (None, "status"):
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            out = cl.update(rt, ns, name, obj, q, sub, admit=admit)
            return self.respond(200, cl.ext(rt, out))
        if verb == "patch":
            if name is None or sub not in (None, "status"):
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            out, code = cl.patch(rt, ns, name, body, self.headers.get("Content-Type"), q, sub, admit=admit)
            return self.respond(code, cl.ext(rt, out))
        if verb == "delete":
            out, code = cl.delete(rt, ns, name, self.delete_options(obj, q), q, admit=admit)
            return self.respond(code, cl.ext(rt, out))
        if verb == "deletecollection":
            return self.delete_collection(rt, ns, q, self.delete_options(obj, q), admit)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    @staticmethod
    def delete_options(obj, q):
        opts = dict(obj) if isinstance(obj, dict) else {}
        if q.get("gracePeriodSeconds"):
            opts["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
        if q.get("propagationPolicy"):
            opts["propagationPolicy"] = q["propagationPolicy"]
        return opts

    def admission_run(self, rt, verb, q, obj):
        """The AdmissionRun of this request (None when no webhook configuration
        exists), with the options object webhooks get in request.options."""
        adm = self.server.admission
        if not adm.active():
            return None
        dry = q.get("dryRun") == "All"
        if verb in ("delete", "deletecollection"):
            src = self.delete_options(obj, q)
            opts = {"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"}
            for k in ("gracePeriodSeconds", "preconditions", "orphanDependents", "propagationPolicy", "dryRun"):
                if src.get(k) is not None:
                    opts[k] = src[k]
            if dry:
                opts["dryRun"] = ["All"]
            dry = dry or "All" in (opts.get("dryRun") or [])
        else:
            opts = {"kind": {"create": "CreateOptions", "update": "UpdateOptions"}.get(verb, "PatchOptions"),
                    "apiVersion": "meta.k8s.io/v1"}
            if dry:
                opts["dryRun"] = ["All"]
            if verb == "patch" and q.get("force") in ("true", "1"):
                opts["force"] = True
            for k in ("fieldManager", "fieldValidation"):
                if q.get(k):
                    opts[k] = q[k]
        return adm.run(rt, self.user[0], self.user[1], dry, opts, self.warnings)

    def table_mode(self):
        acc = self.headers.get("Accept") or ""
        for part in acc.split(","):
            if "as=Table" in part and "g=meta.k8s.io" in part:
                return True
        return False

    # ---- reads

    def get(self, rt, ns, name, q, table):
        cl = self.server.cluster
        with cl.lock:
            e = cl.lookup(rt, ns, name)
            if table:
                return self.respond(200, table_of(rt, [e[0]], q.get("includeObject", "Partial"),
                                                  {"resourceVersion": e[0]["metadata"]["resourceVersion"]}))
            raw = cl.raw(rt, e)
        self.respond(200, raw)

    def select(self, rt, ns, q):
        label = parse_label_selector(q.get("labelSelector"))
        field = parse_field_selector(q.get("fieldSelector"), rt.fields)

        def match(o):
            m = o["metadata"]
            if ns is not None and m.get("namespace") != ns:
                return False
            if label is not None and not label(m.get("labels")):
                return False
            if field is not None and not field(o):
                return False
            return True
        match.field = field
        return match, (label is None and field is None)

    def list(self, rt, ns, q, table):
        cl = self.server.cluster
        match, unfiltered = self.select(rt, ns, q)
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            raise err_bad_request("invalid limit")
        cont = q.get("continue")
        validate_list_options(q, False)
        with cl.lock:
            store = rt.store
            cur = cl.rv
            rvq, rvm = q.get("resourceVersion", ""), q.get("resourceVersionMatch", "")
            # The version the list is served at.  Like the etcd3 store's GetList
            # (storage/etcd3/store.go, storage.ValidateListOptions): a continue
            # token carries the first page's version and every page is read at
            # it; resourceVersion with Exact (or the legacy limit+resourceVersion)
            # is read at that version; otherwise the current state.
            at, start = cur, None
            if cont:
                start, tok_rv = decode_continue(cont)
                if rvq not in ("", "0"):
                    raise err_bad_request("specifying resource version is not allowed when using continue")
                if tok_rv > 0:
                    at = tok_rv
                if 0 < tok_rv < store.compact_rv:
                    # etcd3 handleCompactedErrorForPaging: 410 with a token (rv -1)
                    # for the rest of the list at the latest version.
                    e = err_expired(
                        "The provided continue parameter is too old to display a consistent list "
                        "result. You can start a new list without the continue parameter, or use the "
                        "continue token in this response to retrieve the remainder of the results. "
                        "Continuing with the provided token results in an inconsistent list - objects "
                        "that were created, modified, or deleted between the time the first chunk was "
                        "returned and now may show up in the list.")
                    e.list_meta = {"continue": encode_continue(start, -1)}
                    raise e
            elif rvq not in ("", "0"):
                try:
                    want = int(rvq)
                except ValueError:
                    raise err_bad_request("invalid resource version: %s" % rvq)
                if want > cur:
                    raise ApiError(504, "Timeout", "Too large resource version: %d, current: %d" % (want, cur),
                                   {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                                    "retryAfterSeconds": 1})
                if rvm == "Exact" or (rvm == "" and limit > 0):
                    if want < store.compact_rv:
                        raise err_expired("The resourceVersion for the provided list is too old.")
                    at = want
            # Objects as of `at`: the current ones, with every change made since
            # undone from the history (the state before the first later event).
            changed = {}
            i = len(store.history) - 1
            while i >= 0 and store.history_rvs[i] > at:
                hm = store.history[i][2]["metadata"]
                changed[obj_key(hm.get("namespace"), hm["name"])] = store.history[i][3]
                i -= 1
            keys, objects = store.keys, store.objects
            field = match.field
            if store.node_index is not None and field is not None and "spec.nodeName" in field.equals:
                # Only the pods of that node, in key order (indexed like the real watch cache).
                keys = sorted(store.node_index.get(field.equals["spec.nodeName"], ()))
            if ns is None:
                lo, hi = 0, len(keys)
                ckeys = sorted(changed)
            else:
                lo, hi = bisect.bisect_left(keys, ns + "/"), bisect.bisect_left(keys, ns + "0")
                ckeys = sorted(k for k in changed if ns + "/" <= k < ns + "0")
            # The start key is inclusive; a token's is the last key + "\x00".
            ia = max(lo, bisect.bisect_left(keys, start)) if start is not None else lo
            ib = bisect.bisect_left(ckeys, start) if start is not None else 0
            items, last = [], None
            while (ia < hi or ib < len(ckeys)) and (limit <= 0 or len(items) < limit):
                ka = keys[ia] if ia < hi else None
                kb = ckeys[ib] if ib < len(ckeys) else None
                if kb is None or (ka is not None and ka <= kb):
                    k, ia, ib = ka, ia + 1, ib + (kb == ka)
                else:
                    k, ib = kb, ib + 1
                e = [changed[k], None] if k in changed else objects[k]
                if e[0] is None:
                    continue
                last = k
                if unfiltered or match(e[0]):
                    items.append(e)
            meta = {"resourceVersion": str(at)}
            if limit > 0 and (ia < hi or ib < len(ckeys)) and last is not None:
                meta["continue"] = encode_continue(last + "\x00", at)
                if unfiltered:
                    rest = (hi - ia) + sum((changed[k] is not None) - (k in objects) for k in ckeys[ib:])
                    meta["remainingItemCount"] = rest
            if table:
                return self.respond(200, table_of(rt, [e[0] for e in items], q.get("includeObject", "Partial"), meta))
            raws = [cl.raw(rt, e) for e in items]
        body = b'{"kind":"%s","apiVersion":"%s","metadata":%s,"items":[%s]}' % (
            rt.list_kind.encode(), rt.api_version.encode(), dumps(meta), b",".join(raws))
        self.respond(200, body)

    def delete_collection(self, rt, ns, q, opts, admit=None):
        cl = self.server.cluster
        match, _ = self.select(rt, ns, q)
        out = []
        if admit is not None:
            # Each object is deleted with its own DELETE admission (request.name empty, as upstream).
            with cl.lock:
                lo, hi = rt.store.ns_range(ns)
                found = [(e[0]["metadata"].get("namespace"), e[0]["metadata"]["name"])
                         for e in (rt.store.objects.get(k) for k in rt.store.keys[lo:hi])
                         if e is not None and match(e[0])]
            for ons, oname in found:
                try:
                    out.append(cl.delete(rt, ons, oname, opts, q, admit=admit, request_name="")[0])
                except ApiError as e:
                    if e.code != 404:
                        raise
            with cl.lock:
                body = {"kind": rt.list_kind, "apiVersion": rt.api_version,
                        "metadata": {"resourceVersion": str(cl.rv)}, "items": [cl.ext(rt, o) for o in out]}
            return self.respond(200, body)
        with cl.lock:
            lo, hi = rt.store.ns_range(ns)
            for k in list(rt.store.keys[lo:hi]):
                e = rt.store.objects.get(k)
                if e is not None and match(e[0]):
                    if _is_dry_run(q):
                        out.append(e[0])
                    else:
                        out.append(cl._delete(rt.store, e[0], opts)[0])
            body = {"kind": rt.list_kind, "apiVersion": rt.api_version,
                    "metadata": {"resourceVersion": str(cl.rv)}, "items": [cl.ext(rt, o) for o in out]}
        self.respond(200, body)

    # ---- watch

    def watch(self, rt, ns, q, table):
        cl = self.server.cluster
        ctl = self.server.controls
        match, unfiltered = self.select(rt, ns, q)
        try:
            timeout = int(q.get("timeoutSeconds") or 0)
        except ValueError:
            raise err_bad_request("invalid timeoutSeconds")
        if timeout <= 0:
            timeout = random.uniform(1800, 3600)
        validate_list_options(q, True)
        allow_bm = q.get("allowWatchBookmarks") in ("true", "1")
        send_initial = q.get("sendInitialEvents") == "true"
        include = q.get("includeObject", "Partial")
        rvq = q.get("resourceVersion", "")
        store = rt.store
        expired = None
        with cl.lock:
            if rvq in ("", "0") or send_initial:
                lo, hi = store.ns_range(ns)
                initial = [store.objects[k] for k in store.keys[lo:hi]]
                initial = [e for e in initial if unfiltered or match(e[0])]
                cursor = cl.rv
            else:
                initial = []
                try:
                    cursor = int(rvq)
                except ValueError:
                    raise err_bad_request("invalid resource version: %s" % rvq)
                if cursor > cl.rv:
                    raise ApiError(504, "Timeout", "Too large resource version: %d, current: %d" % (cursor, cl.rv),
                                   {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                                    "retryAfterSeconds": 1})
                if cursor < store.compact_rv:
                    msg = "too old resource version: %d (%d)" % (cursor, store.compact_rv)
                    if store.expired_mode == "http":
                        raise err_expired(msg)
                    expired = msg
            store.watchers += 1
            gen = store.drop_gen
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-cache, private")
            self.send_header("Transfer-Encoding", "chunked")
            self._headers_buffer.append(b"\r\n")
            self.wfile.write(b"".join(self._headers_buffer))
            self._headers_buffer = []
            self.status_code = 200
            if expired:
                self.chunk(b'{"type":"ERROR","object":%s}\n' % dumps(err_expired(expired).status()))
                self.end_stream()
                return
            for i in range(0, len(initial), MAX_WATCH_BATCH):
                self.chunk(b"".join(self.event_bytes(rt, "ADDED", e[0], table, include, e)
                                    for e in initial[i:i + MAX_WATCH_BATCH]))
            if send_initial and allow_bm:
                self.chunk(self.bookmark(rt, cursor, initial_end=True))
            deadline = time.monotonic() + timeout
            last_write = time.monotonic()
            while True:
                evs = None
                bookmark_rv = None
                ended = dropped = None
                with cl.lock:
                    while True:
                        if store.drop_gen != gen:
                            dropped = store.drop_mode
                            break
                        if cursor < store.trim_rv:
                            ended = "expired"
                            break
                        j = bisect.bisect_right(store.history_rvs, cursor)
                        if j < len(store.history):
                            evs = store.history[j:j + MAX_WATCH_BATCH]
                            cursor = evs[-1][0]
                            break
                        now = time.monotonic()
                        if now >= deadline:
                            ended = "timeout"
                            break
                        interval = ctl.bookmark_interval
                        if allow_bm and now - last_write >= interval:
                            bookmark_rv = cursor = max(cursor, cl.rv)
                            break
                        wait = min(deadline - now, WATCH_POLL)
                        if allow_bm:
                            wait = min(wait, interval - (now - last_write))
                        if not store.cond.wait(max(0.001, wait)):
                            break
                if dropped:
                    if dropped == "abort":
                        self.abort()
                    else:
                        self.end_stream()
                    return
                if ended == "expired":
                    self.chunk(b'{"type":"ERROR","object":%s}\n' % dumps(err_expired(
                        "too old resource version: %d (%d)" % (cursor, store.trim_rv)).status()))
                    self.end_stream()
                    return
                if ended == "timeout":
                    self.end_stream()
                    return
                out = []
                if evs:
                    for ev in evs:
                        b = self.filter_event(rt, ev, match, unfiltered, table, include)
                        if b:
                            out.append(b)
                if bookmark_rv is not None:
                    out.append(self.bookmark(rt, bookmark_rv))
                if out:
                    self.chunk(b"".join(out))
                    last_write = time.monotonic()
                elif self.client_gone():
                    self.close_connection = True
                    return
        finally:
            with cl.lock:
                store.watchers -= 1

    def filter_event(self, rt, ev, match, unfiltered, table, include):
        rv, etype, obj, prev = ev[0], ev[1], ev[2], ev[3]
        if unfiltered:
            if not table and rt.convert_out is None and obj.get("apiVersion") == rt.api_version:
                if ev[4] is None:
                    ev[4] = b'{"type":"%s","object":%s}\n' % (etype.encode(), dumps(obj))
                return ev[4]
            return self.event_bytes(rt, etype, obj, table, include)
        if etype != "MODIFIED":
            return self.event_bytes(rt, etype, obj, table, include) if match(obj) else None
        now_m = match(obj)
        old_m = prev is not None and match(prev)
        if now_m and old_m:
            return self.event_bytes(rt, "MODIFIED", obj, table, include)
        if now_m:
            return self.event_bytes(rt, "ADDED", obj, table, include)
        if old_m:
            gone = _copy_meta(prev)
            gone["metadata"]["resourceVersion"] = str(rv)
            return self.event_bytes(rt, "DELETED", gone, table, include)
        return None

    def event_bytes(self, rt, etype, obj, table, include, entry=None):
        if table:
            payload = dumps(table_of(rt, [obj], include, {"resourceVersion": obj["metadata"].get("resourceVersion", "")}))
        elif entry is not None:
            payload = self.server.cluster.raw(rt, entry)
        else:
            payload = dumps(Cluster.ext(rt, obj))
        return b'{"type":"%s","object":%s}\n' % (etype.encode(), payload)

    def bookmark(self, rt, rv, initial_end=False):
        meta = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return b'{"type":"BOOKMARK","object":%s}\n' % dumps({"kind": rt.kind, "apiVersion": rt.api_version,
                                                             "metadata": meta})

    def chunk(self, data):
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_stream(self):
        try:
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    def abort(self):
        self.close_connection = True
        try:
            self.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def client_gone(self):
        """On an idle watch the client sends nothing; readable means EOF or reset."""
        try:
            if self.request.pending():
                return True
            r, _, _ = select.select([self.request], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(r)

    # ---- authorization reviews

    def ssar(self, obj):
        if not isinstance(obj, dict):
            raise err_bad_request("the body of the request was in an unknown format")
        spec = obj.get("spec") or {}
        attrs = spec.get("resourceAttributes") or {}
        if not attrs and not spec.get("nonResourceAttributes"):
            raise err_invalid("SelfSubjectAccessReview", "authorization.k8s.io", "", [FieldErr(
                "spec.resourceAttributes", "Invalid", "exactly one of nonResourceAttributes or resourceAttributes must be specified", None, True)])
        allowed = self.server.controls.ssar_allowed(attrs)
        out = dict(obj, apiVersion="authorization.k8s.io/v1", kind="SelfSubjectAccessReview")
        out["metadata"] = dict(obj.get("metadata") or {}, creationTimestamp=None)
        out["status"] = {"allowed": True, "reason": "stratos-sim allows everything"} if allowed else \
            {"allowed": False, "denied": True, "reason": "denied by stratos-sim test control"}
        self.respond(201, out)

    # ---- test controls

    def find_stores(self, name):
        cl = self.server.cluster
        if not name:
            return list(cl.stores.values())
        out = [st for (g, p), st in cl.stores.items() if name in (p, gr_string(g, p))]
        if not out:
            raise err_bad_request("no such resource: %s" % name)
        return out

    def control(self, method, path, q, body):
        cl, ctl = self.server.cluster, self.server.controls
        try:
            req = json.loads(body) if body else {}
        except ValueError as e:
            raise err_bad_request("bad JSON: %s" % e)
        if path == "/_sim/health":
            return self.respond(200, {"ok": True, "resourceVersion": str(cl.rv)})
        if path == "/_sim/requests":
            if method == "DELETE":
                with ctl.lock:
                    ctl.counts.clear()
            with ctl.lock:
                return self.respond(200, {"counts": dict(ctl.counts)})
        if path == "/_sim/requests/reset" and method == "POST":
            with ctl.lock:
                ctl.counts.clear()
            return self.respond(200, {"counts": {}})
        if path == "/_sim/compact" and method == "POST":
            mode = req.get("mode", "event")
            if mode not in ("event", "http"):
                raise err_bad_request('mode must be "event" or "http"')
            with cl.lock:
                for st in self.find_stores(req.get("resource")):
                    st.compact_rv = cl.rv
                    st.expired_mode = mode
                return self.respond(200, {"compactedTo": str(cl.rv), "mode": mode})
        if path == "/_sim/drop-watches" and method == "POST":
            mode = req.get("mode", "clean")
            if mode not in ("clean", "abort"):
                raise err_bad_request('mode must be "clean" or "abort"')
            n = 0
            with cl.lock:
                for st in self.find_stores(req.get("resource")):
                    n += st.watchers
                    st.drop_gen += 1
                    st.drop_mode = mode
                    st.cond.notify_all()
            return self.respond(200, {"dropped": n})
        if path == "/_sim/watches":
            with cl.lock:
                return self.respond(200, {gr_string(g, p): st.watchers for (g, p), st in cl.stores.items()})
        if path == "/_sim/latency":
            if method == "POST":
                ctl.latency = max(0.0, float(req.get("seconds", 0)))
            return self.respond(200, {"seconds": ctl.latency})
        if path == "/_sim/ssar":
            if method == "POST":
                deny = req.get("deny", [])
                if not isinstance(deny, list):
                    raise err_bad_request("deny must be a list")
                ctl.ssar_deny = deny
            return self.respond(200, {"deny": ctl.ssar_deny})
        if path == "/_sim/fail":
            if method == "POST":
                if req.get("clear"):
                    with ctl.lock:
                        ctl.failures = []
                else:
                    f = {"verb": req.get("verb", "*"), "resource": req.get("resource", "*"),
                         "code": int(req.get("code", 500)), "count": int(req.get("count", 1)),
                         "message": req.get("message", "")}
                    with ctl.lock:
                        ctl.failures.append(f)
            with ctl.lock:
                return self.respond(200, {"failures": [f for f in ctl.failures if f["count"] > 0]})
        if path == "/_sim/config":
            if method == "POST":
                if "bookmarkInterval" in req:
                    ctl.bookmark_interval = max(0.01, float(req["bookmarkInterval"]))
                if "podTerminationSeconds" in req:
                    cl.pod_termination = max(0.0, float(req["podTerminationSeconds"]))
                if "history" in req:
                    with cl.lock:
                        cl.history_max = max(1, int(req["history"]))
                        for st in cl.stores.values():
                            st.history_max = cl.history_max
            return self.respond(200, {"bookmarkInterval": ctl.bookmark_interval,
                                      "podTerminationSeconds": cl.pod_termination,
                                      "history": cl.history_max, "latency": ctl.latency})
        if path == "/_sim/webhook-calls" or path == "/_sim/webhook-calls/reset":
            adm = self.server.admission
            if method == "DELETE" or path.endswith("/reset"):
                with adm.lock:
                    adm.calls.clear()
            with adm.lock:
                calls = [dict(c) for c in adm.calls]
            since = int(q.get("since") or 0)
            out = []
            for c in calls:
                if c["seq"] <= since or (q.get("webhook") and c["webhook"] != q["webhook"]):
                    continue
                raw = c.pop("_request", None)
                c["request"] = json.loads(raw)["request"] if raw else None
                out.append(c)
            return self.respond(200, {"calls": out})
        if path == "/_sim/webhook-services":
            adm = self.server.admission
            if method == "POST":
                svcs = req.get("services") if isinstance(req, dict) else None
                if not isinstance(svcs, dict):
                    raise err_bad_request('POST {"services": {"NAMESPACE/SERVICE[:PORT]": "HOST:PORT" or null}}')
                try:
                    changes = {normalize_service_key(k): (parse_host_port(v) if v is not None else None)
                               for k, v in svcs.items()}
                except ValueError as e:
                    raise err_bad_request(str(e))
                with adm.lock:
                    for k, v in changes.items():
                        if v is None:
                            adm.service_map.pop(k, None)
                        else:
                            adm.service_map[k] = v
                    for key in list(adm.idle):
                        for c in adm.idle.pop(key):
                            c.close()
            with adm.lock:
                return self.respond(200, {"services": {k: ("[%s]:%d" if ":" in h else "%s:%d") % (h, p)
                                                       for k, (h, p) in sorted(adm.service_map.items())}})
        if path == "/_sim/timeline":
            return self.respond(*cl.timeline.control(method, q, req))
        if path == "/_sim/bulk" and method == "POST":
            items = req.get("items") if isinstance(req, dict) else req
            if not isinstance(items, list):
                raise err_bad_request("POST a JSON list of objects, or {\"items\": [...]}")
            created, errors = 0, []
            cl.begin_batch()
            try:
                for i, o in enumerate(items):
                    try:
                        rt = cl.by_kind.get(((o or {}).get("apiVersion"), (o or {}).get("kind")))
                        if rt is None:
                            raise err_bad_request("no resource for %s %s" % ((o or {}).get("apiVersion"), (o or {}).get("kind")))
                        cl.create(rt, (o.get("metadata") or {}).get("namespace") if rt.namespaced else None, o, {}, bulk=True)
                        created += 1
                    except ApiError as e:
                        if len(errors) < 100:
                            errors.append({"index": i, "code": e.code, "message": e.message})
            finally:
                cl.end_batch()
            return self.respond(200, {"created": created, "failed": len(items) - created, "errors": errors,
                                      "resourceVersion": str(cl.rv)})
        raise ApiError(404, "NotFound", "no such control: %s %s" % (method, path))


# --------------------------------------------------------------------------
# Certificates, kubeconfig, main.

def make_pki(d):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stratos-sim-apiserver-ca")])
    ku = dict(content_commitment=False, data_encipherment=False, key_agreement=False,
              encipher_only=False, decipher_only=False)
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=True,
                                       crl_sign=True, **ku), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))

    def issue(cn, org, server):
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        b = (x509.CertificateBuilder().subject_name(x509.Name(attrs)).issuer_name(ca_name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=365))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                          crl_sign=False, **ku), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else
                                                   ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
        if server:
            b = b.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.DNSName("kubernetes"), x509.DNSName("kubernetes.default.svc"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1"))]),
                critical=False)
        return key, b.sign(ca_key, hashes.SHA256())

    def pem_cert(c):
        return c.public_bytes(serialization.Encoding.PEM)

    def pem_key(k):
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    skey, scert = issue("stratos-sim-apiserver", None, True)
    ckey, ccert = issue("stratos-sim-admin", "system:masters", False)
    files = {"apiserver-ca.crt": (pem_cert(ca), 0o644), "apiserver.crt": (pem_cert(scert) + pem_cert(ca), 0o644),
             "apiserver.key": (pem_key(skey), 0o600), "client.crt": (pem_cert(ccert), 0o644),
             "client.key": (pem_key(ckey), 0o600)}
    for name, (data, mode) in files.items():
        write_file(os.path.join(d, name), data, mode)
    return {k: v[0] for k, v in files.items()}


def write_file(path, data, mode=0o644):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.replace(tmp, path)


def kubeconfig(server_url, ca_pem, user):
    b64 = lambda b: base64.b64encode(b).decode()
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "stratos-sim", "cluster": {"server": server_url,
                                                         "certificate-authority-data": b64(ca_pem)}}],
        "contexts": [{"name": "stratos-sim", "context": {"cluster": "stratos-sim", "user": "stratos-sim",
                                                         "namespace": "default"}}],
        "current-context": "stratos-sim",
        "users": [{"name": "stratos-sim", "user": user}],
    }, sort_keys=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake Kubernetes API server (Stratos simulated environment).")
    ap.add_argument("--dir", required=True, help="state directory (certificates, kubeconfig, port file)")
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = any free port)")
    ap.add_argument("--bookmark-interval", type=float, default=5.0,
                    help="seconds of idle time after which a watch gets a BOOKMARK (default 5)")
    ap.add_argument("--history", type=int, default=10000,
                    help="watch events kept per resource for resuming; older resourceVersions get 410 (default 10000)")
    ap.add_argument("--token-file", default=None,
                    help="accept exactly the bearer tokens listed in FILE (one a line, re-read when it changes); "
                         "created with the generated token if missing")
    ap.add_argument("--pod-termination-seconds", type=float, default=0.0,
                    help="simulate graceful pod termination: a deleted pod bound to a node keeps a "
                         "deletionTimestamp for min(grace, this) seconds (default 0: removed at once)")
    ap.add_argument("--latency", type=float, default=0.0, help="artificial delay per API request, seconds")
    ap.add_argument("--time-scale", type=float, default=1.0,
                    help="multiply the simulated delays (--pod-termination-seconds) by F, as scripts/sim up "
                         "--time-scale does for every simulator")
    ap.add_argument("--quiet", action="store_true", help="do not log each request")
    ap.add_argument("--webhook-service-map", action="append", default=[], metavar="NS/SVC[:PORT]=HOST:PORT",
                    help="where admission webhooks with clientConfig.service are reached (repeatable); TLS still "
                         "verifies the name SVC.NS.svc. Also POST /_sim/webhook-services")
    args = ap.parse_args(argv)
    service_map = {}
    for spec in args.webhook_service_map:
        try:
            k, v = parse_service_map_entry(spec)
        except ValueError as e:
            ap.error("--webhook-service-map: %s" % e)
        service_map[k] = v

    d = os.path.abspath(args.dir)
    os.makedirs(d, exist_ok=True)
    port_file = os.path.join(d, "apiserver.port")
    try:
        os.unlink(port_file)
    except FileNotFoundError:
        pass
    pki = make_pki(d)
    token = base64.b32encode(os.urandom(20)).decode().lower().rstrip("=")
    if args.token_file:
        tf = os.path.abspath(args.token_file)
        if os.path.exists(tf):
            with open(tf) as f:
                first = [l.strip() for l in f if l.strip()]
            if first:
                token = first[0]
        else:
            write_file(tf, token + "\n", 0o600)
        args.token_file = tf
    write_file(os.path.join(d, "apiserver.token"), token + "\n", 0o600)

    sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sslctx.minimum_version = ssl.TLSVersion.TLSv1_2
    sslctx.load_cert_chain(os.path.join(d, "apiserver.crt"), os.path.join(d, "apiserver.key"))
    sslctx.load_verify_locations(cadata=pki["apiserver-ca.crt"].decode())
    sslctx.verify_mode = ssl.CERT_OPTIONAL
    sslctx.set_alpn_protocols(["http/1.1"])

    if args.time_scale <= 0:
        ap.error("--time-scale must be > 0")
    cluster = Cluster(history_max=args.history, pod_termination=args.pod_termination_seconds * args.time_scale)
    server = ApiServer(("127.0.0.1", args.port), Handler)
    server.sslctx = sslctx
    server.cluster = cluster
    server.controls = Controls(args.bookmark_interval)
    server.controls.latency = args.latency
    server.auth = Auth(token, args.token_file)
    server.verbose = not args.quiet
    server.admission = Admission(cluster, service_map, verbose=server.verbose)
    port = server.server_address[1]
    url = "https://127.0.0.1:%d" % port

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="accept", daemon=True)
    t.start()

    write_file(os.path.join(d, "kubeconfig"), kubeconfig(url, pki["apiserver-ca.crt"], {"token": token}), 0o600)
    write_file(os.path.join(d, "kubeconfig-clientcert"), kubeconfig(url, pki["apiserver-ca.crt"], {
        "client-certificate-data": base64.b64encode(pki["client.crt"]).decode(),
        "client-key-data": base64.b64encode(pki["client.key"]).decode()}), 0o600)
    write_file(port_file, "%d\n" % port)
    log("serving on %s (dir %s)" % (url, d))
    while not stop.wait(0.5):
        pass
    log("stopping")
    server.shutdown()
    with cluster.lock:
        cluster.stopping = True
        cluster.reap_cond.notify_all()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
