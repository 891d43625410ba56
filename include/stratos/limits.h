/* Every hard cap of the daemon in one place: buffers, caches, queues, retries. */
#ifndef STRATOS_LIMITS_H
#define STRATOS_LIMITS_H

/* HTTPS server (webhooks, extender). */
#define LIMITS_HTTP_BODY_DEFAULT        (4u * 1024 * 1024)   /* --max-body-bytes default */
#define LIMITS_HTTP_BODY_MAX            (256u * 1024 * 1024) /* largest --max-body-bytes accepted */
#define LIMITS_HTTP_CONNECTIONS_DEFAULT 1024u
#define LIMITS_HTTP_THREADS_MAX         64u
#define LIMITS_METRICS_BODY             (64u * 1024)         /* requests to the metrics port */
#define LIMITS_METRICS_CONNECTIONS      64u                  /* the metrics port's connection limit */
#define LIMITS_HTTP_BODY_DRAIN          (1u * 1024 * 1024)   /* chunked body read past the cap before
                                                                 the connection is dropped (no 413) */
#define LIMITS_HTTP_CONNECTION_MEMORY   (16u * 1024)         /* per connection: headers + read buffer
                                                                 (zeroed by libmicrohttpd per request) */
#define LIMITS_HTTP_ROUTES              64u                  /* routes per server */
#define LIMITS_HTTP_BLOCKING_THREADS    8u                   /* default workers of blocking routes */
#define LIMITS_HTTP_BLOCKING_QUEUE      64u                  /* blocking requests waiting for a
                                                                 worker before 503 */
#define LIMITS_HTTP_READY_CHECKS        32u                  /* /readyz checks */
#define LIMITS_HTTP_RESPONSE_MIN        (1u * 1024 * 1024)   /* response cap is max(this, 2 x body cap) */
#define LIMITS_TLS_FILE                 (1u * 1024 * 1024)   /* certificate, key or CA file */
#define LIMITS_TLS_CHAIN                16u                  /* certificates in the serving chain */

/* Outgoing HTTP (Kubernetes API, EC2, STS, IMDS). */
#define LIMITS_HTTPC_RESPONSE_DEFAULT   (16u * 1024 * 1024)
#define LIMITS_HTTPC_HEADERS            32u                  /* request headers per call */

/* JSON documents read by jsonscan (request bodies). */
#define LIMITS_JSON_DEPTH               2048u                /* nesting, as jansson's JSON_PARSER_MAX_DEPTH */

/* Logging. */
#define LIMITS_LOG_LINE                 (16u * 1024)         /* one JSON log line, truncated beyond */

/* Metrics registry. */
#define LIMITS_METRICS_FAMILIES         128u
#define LIMITS_METRICS_SERIES           4096u                /* label sets per family */
#define LIMITS_METRICS_LABELS           4u                   /* label names per family */

/* Configuration. */
#define LIMITS_CONFIG_FILE              (1u * 1024 * 1024)
#define LIMITS_CONFIG_VALUE             4096u

/* YAML documents (config file, pools file, kubeconfig, manifests). */
#define LIMITS_YAML_FILE                (16u * 1024 * 1024)
#define LIMITS_YAML_DEPTH               64u                  /* collection levels, aliases expanded */
#define LIMITS_YAML_ANCHORS             256u                 /* anchors per stream */
#define LIMITS_YAML_ALIASES             1024u                /* alias uses per stream */
#define LIMITS_YAML_ALIAS_NODES         100000u              /* nodes copied by all aliases of a stream
                                                                 (each is a deep copy): the bound on
                                                                 "billion laughs" memory and time */
#define LIMITS_YAML_DOCUMENTS           4096u

/* Kubernetes API client, watches and caches. */
#define LIMITS_KUBE_RESPONSE            (64u * 1024 * 1024)  /* one GET/LIST page or write reply */
#define LIMITS_KUBE_LIST_PAGE           500u                 /* ?limit= of paginated LISTs */
#define LIMITS_KUBE_LIST_PAGES          10000u               /* pages of one LIST before giving up */
#define LIMITS_KUBE_WATCH_EVENT         (8u * 1024 * 1024)   /* one watch event (a JSON object) */
#define LIMITS_KUBE_CONNECTIONS         16u                  /* pooled request handles per client */
#define LIMITS_KUBE_EVENT_QUEUE         1024u                /* Events waiting to be posted */
#define LIMITS_KUBE_TOKEN               (64u * 1024)         /* bearer token file */
#define LIMITS_KUBECONFIG_FILE          (4u * 1024 * 1024)
#define LIMITS_KUBE_PEM                 (1u * 1024 * 1024)   /* one inline or file PEM (CA bundle) */
#define LIMITS_CACHE_OBJECTS            1000000u             /* objects of one cache */
#define LIMITS_CACHE_SUB_QUEUE          8192u                /* pending change events per subscriber */
#define LIMITS_CACHE_SUBSCRIBERS        16u                  /* subscriptions per cache */
#define LIMITS_POD_TOLERATIONS          128u                 /* kept per pod; more → cache entry refused */
#define LIMITS_POD_SELECTOR_TERMS       64u                  /* required node-affinity terms kept per pod */
#define LIMITS_POD_SELECTOR_EXPRS       256u                 /* selector requirements per pod, all terms */
#define LIMITS_RESOURCES_EXTENDED       32u                  /* extended resources per pod or node */
#define LIMITS_NODE_LABELS              256u
#define LIMITS_NODE_TAINTS              128u
#define LIMITS_RESERVATIONS_PER_NODE    256u                 /* pending pods promised to one starting node */
#define LIMITS_RESERVATIONS_TEXT        (128u * 1024)        /* stratos.sh/reservations: half of the API
                                                                 server's 256 KiB for all annotations */
#define LIMITS_RESERVATION_UID          128u                 /* bytes of a pod uid (36 in practice) */
#define LIMITS_RESERVATION_POD          317u                 /* "namespace/name": 63 + 1 + 253 */
#define LIMITS_WORKQUEUE_ITEMS          65536u               /* distinct keys queued or running in one
                                                                 work queue (nodes + pools, with room) */
#define LIMITS_WORKQUEUE_WORKERS        64u                  /* worker threads of one work queue */
#define LIMITS_WORKQUEUE_KEY            512u                 /* bytes of a key ("node/<253-byte name>") */

/* AWS: SigV4, credentials, EC2. */
#define LIMITS_SIGV4_HEADERS            16u                  /* signed headers per request */
#define LIMITS_SIGV4_CANONICAL          (1u * 1024 * 1024)   /* canonical request text (bodies are hashed, not copied) */
#define LIMITS_AWS_ACCESS_KEY_ID        128u                 /* bytes, without the NUL */
#define LIMITS_AWS_SECRET_KEY           128u
#define LIMITS_AWS_SESSION_TOKEN        8192u
#define LIMITS_AWS_CREDS_RESPONSE       (64u * 1024)         /* STS / container / IMDS replies */
#define LIMITS_AWS_TOKEN_FILE           (64u * 1024)         /* web identity / container token files */
#define LIMITS_AWS_REGION               64u
#define LIMITS_AWS_URL                  1024u
#define LIMITS_AWS_XML_DEPTH            64u                  /* nesting accepted in AWS XML replies */
#define LIMITS_EC2_CONNECTIONS_MAX      64u                  /* pooled keep-alive connections to EC2 */
#define LIMITS_EC2_QUERY                (256u * 1024)        /* one form-encoded EC2 request body */
#define LIMITS_EC2_RESPONSE             (32u * 1024 * 1024)  /* one EC2 reply (a Describe page) */
#define LIMITS_EC2_IDS_PER_CALL         1000u                /* instance ids in one call */
#define LIMITS_EC2_TAGS                 50u                  /* tags per resource (EC2's own limit) */
#define LIMITS_EC2_FILTERS              50u                  /* filters in one Describe call */
#define LIMITS_EC2_FILTER_VALUES        200u                 /* values per filter */
#define LIMITS_EC2_SECURITY_GROUPS      16u
#define LIMITS_EC2_BLOCK_DEVICES        32u
#define LIMITS_EC2_USER_DATA            (16u * 1024)         /* before base64 (EC2's own limit) */
#define LIMITS_EC2_DESCRIBE_INSTANCES   20000u               /* instances gathered over all pages */
#define LIMITS_EC2_DESCRIBE_PAGES       200u
#define LIMITS_EC2_ATTEMPTS_MAX         10u                  /* attempts per call, whatever is configured */

/* NodePools and AWSNodeClasses (DESIGN §3) and the pools registry. */
#define LIMITS_POOLS_MAX                4096u  /* NodePools in one snapshot; likewise AWSNodeClasses */
#define LIMITS_NODEPOOL_LABELS          64u    /* spec.template.labels entries */
#define LIMITS_NODEPOOL_STARTUP_TAINTS  16u    /* spec.template.startupTaints items (the CRD's maxItems) */
#define LIMITS_NODEPOOL_IMAGES          64u    /* spec.preWarm.imagesToPull items (DESIGN §3.2) */
#define LIMITS_NODEPOOL_IMAGE_REF       512u   /* characters of one image reference */
#define LIMITS_NODEPOOL_NAME            63u    /* a pool name is the value of the stratos.sh/pool label */
#define LIMITS_DURATION                 64u    /* characters of a duration string */
#define LIMITS_NODECLASS_SUBNETS        16u    /* spec.subnetIds items */
#define LIMITS_NODECLASS_SECURITY_GROUPS 16u   /* EC2's maximum per network interface */
#define LIMITS_NODECLASS_BLOCK_DEVICES  16u    /* spec.blockDeviceMappings items */
#define LIMITS_NODECLASS_TAGS           45u    /* EC2 allows 50 tags per resource; Stratos sets 5 */
#define LIMITS_NODECLASS_USER_DATA      LIMITS_EC2_USER_DATA
#define LIMITS_VALIDATE_ISSUES          200u   /* violations + warnings kept per object */
#define LIMITS_VALIDATE_PATH            768u   /* one field path ("spec.template.labels[...]") */

/* The scheduler extender and its claims (DESIGN §6.3). */
#define LIMITS_EXTENDER_NODES           100000u /* candidate nodes of one extender call */
#define LIMITS_EXTENDER_POOLS           LIMITS_POOLPOD_POOLS /* pools named by a pod's annotation */
#define LIMITS_CLAIM_STARTS             3u     /* StartInstances attempts per claim (§6.3: at most 3) */
#define LIMITS_CLAIM_PATCHES            16u    /* guarded claim PATCHes per claim (lost races included) */
#define LIMITS_CLAIM_RETRIES            3u     /* guarded reserve/release/rollback retries after a conflict */
#define LIMITS_PLACED_PODS              65536u /* pods the extender follows until bound (oldest forgotten) */
#define LIMITS_PLACED_NODES             65536u /* pool nodes whose usable-since time is kept */

/* Pool controller (DESIGN §5). */
#define LIMITS_CONTROLLER_WORKERS       64u    /* --controller-workers at most */
#define LIMITS_CONTROLLER_QUEUE         65536u /* distinct keys waiting in the work queue */
#define LIMITS_LAUNCH_RECORDS           64u    /* pending launches recorded on one NodePool */
#define LIMITS_LAUNCHES_PER_PASS        10u    /* RunInstances of one pool reconcile */
#define LIMITS_TERMINATIONS_PER_PASS    50u    /* instances one pool reconcile retires */
#define LIMITS_LAUNCH_TOKEN             64u    /* ClientToken (EC2's limit) */
#define LIMITS_PREPULL_POD_NAME         253u   /* a pod name (DNS subdomain) */
#define LIMITS_DRAIN_PODS               1024u  /* pods evicted by one drain pass */
#define LIMITS_FALLBACK_PODS            512u   /* pending pods one fallback pass packs */
#define LIMITS_POOL_NODES_STATUS        100000u /* nodes counted for one NodePool's status */

/* Admission webhooks. */
#define LIMITS_POOLPOD_POOLS            32u    /* pools one pod may name in its node affinity */
#define LIMITS_ADMISSION_WARNING        119u   /* bytes per warning (Kubernetes wants < 120) */
#define LIMITS_ADMISSION_WARNINGS       16u    /* warnings per response */
#define LIMITS_ADMISSION_MESSAGE        (16u * 1024) /* denial message */
#define LIMITS_ADMISSION_PATCH          (64u * 1024) /* serialized JSON Patch of one pod */

#endif
