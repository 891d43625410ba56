#!/usr/bin/env bash
# gen.sh: make the TLS material of a Stratos deployment (serving CA and
# certificate for the webhook Service, client CA and the scheduler's client
# certificate) and print the webhooks' caBundle.
#
# Two CAs, on purpose: the serving CA goes to the API server (caBundle) and
# to the scheduler; the client CA is what stratosd trusts on /scheduler/*
# (--client-ca). Keeping them apart means that no certificate issued for
# serving can ever authenticate as a client, whatever the TLS library does
# with extended key usage. Both CA keys stay in OUTDIR, out of the cluster.
set -euo pipefail
shopt -s inherit_errexit

PROG=${0##*/}
SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd -P)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd -P)

usage() {
	cat <<EOF
usage: $PROG [options] OUTDIR

Writes into OUTDIR (created if missing; never inside the repository unless
git ignores the path):
  ca.crt ca.key                 serving CA (reused when present, see --force)
  tls.crt tls.key               serving certificate for the webhook Service
  client-ca.crt client-ca.key   client CA (reused when present)
  client.crt client.key         client certificate CN=stratos-scheduler
and prints the base64 caBundle (ca.crt) as the last line on stdout.

options:
  --san NAME|IP       extra subjectAltName for the serving certificate
                      (repeatable; IPv4/IPv6 addresses become IP SANs)
  --days N            validity of the leaf certificates (default 365)
  --ca-days N         validity of new CAs (default 3650)
  --key-type ec|rsa   EC P-256 (default) or RSA 2048 keys
  --service NAME      webhook Service name (default stratos-webhook)
  --namespace NS      its namespace (default stratos-system)
  --secrets           also write OUTDIR/secrets.yaml: the Secrets
                      stratos-webhook-tls, stratos-client-ca and
                      stratos-scheduler-client-tls, ready for kubectl apply
  --overlay DIR       also write OUTDIR/kustomization.yaml: DIR (a
                      kustomization, e.g. manifests/) + secrets.yaml + the
                      ca-bundle component, so that
                      'kubectl kustomize OUTDIR' renders a complete
                      deployment with the caBundle filled in (implies --secrets)
  --force             make new CAs even if OUTDIR has them
  -h, --help          this text
EOF
}

die() {
	echo "$PROG: $*" >&2
	exit 1
}

log() {
	echo "$PROG: $*" >&2
}

is_uint() {
	case $1 in '' | *[!0-9]*) return 1 ;; esac
	[ "$1" -gt 0 ]
}

is_ipv4() {
	[[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]
}

is_ipv6() {
	[[ $1 == *:* && $1 =~ ^[0-9A-Fa-f:.]+$ ]]
}

# Relative path from directory $1 to path $2, both absolute and canonical:
# kustomize refuses absolute paths in resources.
relpath() {
	local to=$2 common=$1 up='' rest=''
	while :; do
		if [ "$common" = / ]; then
			rest=${to#/}
			break
		fi
		case $to in
		"$common") rest= ; break ;;
		"$common"/*) rest=${to#"$common"/} ; break ;;
		esac
		common=${common%/*}
		common=${common:-/}
		up="../$up"
	done
	rest="$up$rest"
	rest=${rest%/}
	echo "${rest:-.}"
}

# Run an openssl command quietly; show its messages only when it fails.
ossl() {
	if ! openssl "$@" 2>"$WORK/openssl.err"; then
		cat "$WORK/openssl.err" >&2
		die "openssl $1 failed"
	fi
}

# Canonical absolute form of a path that may not exist yet.
abspath() {
	local p=$1 rest=''
	[[ $p == /* ]] || p="$PWD/$p"
	while [ ! -d "$p" ]; do
		rest="/${p##*/}$rest"
		p=${p%/*}
		p=${p:-/}
	done
	echo "$(cd "$p" && pwd -P)$rest"
}

check_outside_repo() {
	case $1/ in
	"$REPO_DIR"/*)
		git -C "$REPO_DIR" check-ignore -q "$1/" 2>/dev/null ||
			die "$1 is inside the repository and not ignored by git: keys must not be committed"
		;;
	esac
}

b64() {
	openssl base64 -A <"$1"
}

serial() {
	echo "0x$(openssl rand -hex 16)"
}

genkey() {
	local out=$1
	case $KEY_TYPE in
	ec) ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out" ;;
	rsa) ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$out" ;;
	esac
	chmod 600 "$out"
}

pubkey_of_cert() {
	openssl x509 -in "$1" -noout -pubkey
}

pubkey_of_key() {
	openssl pkey -in "$1" -pubout
}

# make_ca NAME CN: NAME.crt + NAME.key in OUTDIR, reused unless --force.
make_ca() {
	local name=$1 cn=$2 crt="$OUTDIR/$1.crt" key="$OUTDIR/$1.key"
	if [ "$FORCE" = 0 ] && { [ -e "$crt" ] || [ -e "$key" ]; }; then
		if [ ! -f "$crt" ] || [ ! -f "$key" ]; then
			die "$OUTDIR has only one of $name.crt and $name.key; restore it or use --force"
		fi
		[ "$(pubkey_of_cert "$crt")" = "$(pubkey_of_key "$key")" ] ||
			die "$name.key does not match $name.crt; use --force to make a new CA"
		openssl x509 -in "$crt" -noout -checkend 86400 >/dev/null ||
			die "$name.crt expires within a day; use --force to make a new CA"
		log "reusing $crt"
		return 0
	fi
	cat >"$WORK/$name.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
O = stratos
CN = $cn
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
	genkey "$key"
	ossl req -x509 -new -key "$key" -config "$WORK/$name.cnf" -sha256 \
		-days "$CA_DAYS" -set_serial "$(serial)" -out "$crt"
	log "made new CA $crt"
}

# make_leaf NAME CA CN EKU [SAN...]: NAME.crt + NAME.key signed by CA.
make_leaf() {
	local name=$1 ca=$2 cn=$3 eku=$4 crt="$OUTDIR/$1.crt" key="$OUTDIR/$1.key"
	shift 4
	local usage=digitalSignature i=0 d=0 san
	# RSA key exchange needs keyEncipherment; ECDSA never does.
	[ "$KEY_TYPE" = rsa ] && usage="digitalSignature, keyEncipherment"
	cat >"$WORK/$name.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
O = stratos
CN = $cn
EOF
	cat >"$WORK/$name.ext" <<EOF
[v3]
basicConstraints = critical, CA:FALSE
keyUsage = critical, $usage
extendedKeyUsage = $eku
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
	if [ $# -gt 0 ]; then
		echo "subjectAltName = @alt" >>"$WORK/$name.ext"
		echo "[alt]" >>"$WORK/$name.ext"
		for san in "$@"; do
			if is_ipv4 "$san" || is_ipv6 "$san"; then
				i=$((i + 1))
				echo "IP.$i = $san" >>"$WORK/$name.ext"
			else
				d=$((d + 1))
				echo "DNS.$d = $san" >>"$WORK/$name.ext"
			fi
		done
	fi
	genkey "$key"
	ossl req -new -key "$key" -config "$WORK/$name.cnf" -out "$WORK/$name.csr"
	ossl x509 -req -in "$WORK/$name.csr" -CA "$OUTDIR/$ca.crt" \
		-CAkey "$OUTDIR/$ca.key" -set_serial "$(serial)" -sha256 \
		-days "$DAYS" -extfile "$WORK/$name.ext" -extensions v3 \
		-out "$crt"
}

write_secrets() {
	local f="$OUTDIR/secrets.yaml"
	cat >"$f.tmp" <<EOF
# Generated by certs/gen.sh. Contains private keys: do not commit.
# Serving certificate of stratosd (stratos-webhook.$NAMESPACE.svc) and its CA.
apiVersion: v1
kind: Secret
metadata:
  name: stratos-webhook-tls
  namespace: $NAMESPACE
  labels:
    app.kubernetes.io/part-of: stratos
type: kubernetes.io/tls
data:
  tls.crt: $(b64 "$OUTDIR/tls.crt")
  tls.key: $(b64 "$OUTDIR/tls.key")
  ca.crt: $(b64 "$OUTDIR/ca.crt")
---
# The CA stratosd trusts for client certificates on /scheduler/* (--client-ca).
apiVersion: v1
kind: Secret
metadata:
  name: stratos-client-ca
  namespace: $NAMESPACE
  labels:
    app.kubernetes.io/part-of: stratos
type: Opaque
data:
  ca.crt: $(b64 "$OUTDIR/client-ca.crt")
---
# The scheduler's client certificate, and the CA to verify stratosd with.
apiVersion: v1
kind: Secret
metadata:
  name: stratos-scheduler-client-tls
  namespace: $NAMESPACE
  labels:
    app.kubernetes.io/part-of: stratos
type: kubernetes.io/tls
data:
  tls.crt: $(b64 "$OUTDIR/client.crt")
  tls.key: $(b64 "$OUTDIR/client.key")
  ca.crt: $(b64 "$OUTDIR/ca.crt")
EOF
	chmod 600 "$f.tmp"
	mv "$f.tmp" "$f"
	log "wrote $f"
}

write_overlay() {
	local f="$OUTDIR/kustomization.yaml" base comp
	base=$(relpath "$OUTDIR" "$OVERLAY")
	comp=$(relpath "$OUTDIR" "$REPO_DIR/manifests/components/ca-bundle")
	cat >"$f.tmp" <<EOF
# Generated by certs/gen.sh: the deployment in $OVERLAY with this
# directory's certificates as Secrets and the webhooks' caBundle filled in.
# Render with: kubectl kustomize $OUTDIR
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $base
  - secrets.yaml
components:
  - $comp
EOF
	mv "$f.tmp" "$f"
	log "wrote $f"
}

FORCE=0
DAYS=365
CA_DAYS=3650
KEY_TYPE=ec
SERVICE=stratos-webhook
NAMESPACE=stratos-system
SECRETS=0
OVERLAY=
OUTDIR=
EXTRA_SANS=()

while [ $# -gt 0 ]; do
	case $1 in
	--force) FORCE=1 ;;
	--secrets) SECRETS=1 ;;
	--days | --ca-days | --san | --key-type | --service | --namespace | --overlay)
		[ $# -ge 2 ] || die "$1 needs a value"
		case $1 in
		--days) DAYS=$2 ;;
		--ca-days) CA_DAYS=$2 ;;
		--san) EXTRA_SANS+=("$2") ;;
		--key-type) KEY_TYPE=$2 ;;
		--service) SERVICE=$2 ;;
		--namespace) NAMESPACE=$2 ;;
		--overlay) OVERLAY=$2 ;;
		esac
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	--) shift; break ;;
	-*) usage >&2; die "unknown option $1" ;;
	*)
		[ -z "$OUTDIR" ] || die "only one OUTDIR, got $OUTDIR and $1"
		OUTDIR=$1
		;;
	esac
	shift
done
if [ $# -gt 0 ]; then
	if [ -n "$OUTDIR" ] || [ $# -ne 1 ]; then
		die "only one OUTDIR"
	fi
	OUTDIR=$1
fi
[ -n "$OUTDIR" ] || { usage >&2; exit 2; }

is_uint "$DAYS" || die "--days needs a positive integer"
is_uint "$CA_DAYS" || die "--ca-days needs a positive integer"
case $KEY_TYPE in ec | rsa) ;; *) die "--key-type is ec or rsa" ;; esac
dns_label='^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'
[[ $SERVICE =~ $dns_label ]] || die "--service must be a DNS label"
[[ $NAMESPACE =~ $dns_label ]] || die "--namespace must be a DNS label"
for san in ${EXTRA_SANS[@]+"${EXTRA_SANS[@]}"}; do
	is_ipv4 "$san" || is_ipv6 "$san" ||
		[[ $san =~ ^(\*\.)?[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$ ]] ||
		die "--san $san is neither a DNS name nor an IP address"
done
if [ -n "$OVERLAY" ]; then
	[ -f "$OVERLAY/kustomization.yaml" ] || die "--overlay $OVERLAY has no kustomization.yaml"
	OVERLAY=$(cd "$OVERLAY" && pwd -P)
	SECRETS=1
fi
command -v openssl >/dev/null || die "openssl not found"

# Checked before creating OUTDIR, and again on its real path (symlinks, ..).
check_outside_repo "$(abspath "$OUTDIR")"
umask 077
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd -P)
check_outside_repo "$OUTDIR"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/stratos-certs.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

make_ca ca "stratos-webhook-ca"
make_ca client-ca "stratos-client-ca"

svc=$SERVICE.$NAMESPACE
make_leaf tls ca "$svc.svc" serverAuth \
	"$SERVICE" "$svc" "$svc.svc" "$svc.svc.cluster.local" localhost \
	127.0.0.1 ::1 ${EXTRA_SANS[@]+"${EXTRA_SANS[@]}"}
make_leaf client client-ca stratos-scheduler clientAuth

# Certificates are public; keys stay 0600.
chmod 644 "$OUTDIR/ca.crt" "$OUTDIR/client-ca.crt" "$OUTDIR/tls.crt" "$OUTDIR/client.crt"

# Fail here, not in the API server, if anything above went wrong.
openssl verify -CAfile "$OUTDIR/ca.crt" -purpose sslserver \
	-verify_hostname "$svc.svc" "$OUTDIR/tls.crt" >/dev/null ||
	die "the serving certificate does not verify against ca.crt"
openssl verify -CAfile "$OUTDIR/client-ca.crt" -purpose sslclient \
	"$OUTDIR/client.crt" >/dev/null ||
	die "the client certificate does not verify against client-ca.crt"
log "wrote certificates to $OUTDIR"

# An existing secrets.yaml is rewritten too, so it never holds stale keys.
if [ "$SECRETS" = 1 ] || [ -e "$OUTDIR/secrets.yaml" ]; then
	write_secrets
fi
[ -z "$OVERLAY" ] || write_overlay

b64 "$OUTDIR/ca.crt"
echo
