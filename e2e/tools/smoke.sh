#!/usr/bin/env bash
# Smoke test for the binaries e2e/tools/build.sh produces: starts etcd + kube-apiserver on free 127.0.0.1 ports with
# throw-away certificates, waits for /readyz, runs a few kubectl commands, then stops everything.
#
#   e2e/tools/smoke.sh            (set KEEP_TMP=1 to keep the temp dir with certs and logs for inspection)
#
# Everything lives in one temp dir; an EXIT/INT/TERM trap kills both processes (by pid) and removes it, also on
# failure or Ctrl-C.
set -euo pipefail
# shellcheck source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

for b in etcd kube-apiserver kubectl; do
  [[ -x "$BIN/$b" ]] || { echo "$BIN/$b missing: run e2e/tools/build.sh first" >&2; exit 1; }
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/stella-smoke.XXXXXX")"
etcd_pid="" apiserver_pid="" etcd_port="" etcd_peer_port="" api_port=""

stop() { # stop PID NAME: SIGTERM, wait up to 10 s, then SIGKILL
  local pid=$1 name=$2 i
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then log "$name did not stop on SIGTERM; killing"; kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop "$apiserver_pid" kube-apiserver
  stop "$etcd_pid" etcd
  if [[ $rc -ne 0 ]]; then
    for f in etcd.log kube-apiserver.log; do
      [[ -f "$tmp/$f" ]] && { echo "----- last lines of $f -----" >&2; tail -n 25 "$tmp/$f" >&2; }
    done
  fi
  if [[ "${KEEP_TMP:-0}" == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free TCP port on 127.0.0.1: a random one from 20000-59999 that nothing answers on and that we did not hand out yet
# (small race window until the server binds it).
used_ports=" "
free_port() { # free_port VAR
  local p
  while :; do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    [[ "$used_ports" == *" $p "* ]] && continue
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
    used_ports+="$p "
    printf -v "$1" '%s' "$p"
    return
  done
}

# ---- certificates ------------------------------------------------------------------------------------------------
t0=$(now_ms)
pki="$tmp/pki"
mkdir -p "$pki"
(
  cd "$pki"
  exec 2>openssl.log
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj "/CN=stella-e2e-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
  # API server serving certificate.
  openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc" \
    "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >apiserver.ext
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile apiserver.ext \
    -out apiserver.crt
  # Admin client certificate: O=system:masters is bound to cluster-admin, bypassing RBAC.
  openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=stella-e2e-admin"
  printf '%s\n' "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=clientAuth" >admin.ext
  openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile admin.ext -out admin.crt
  # Service-account token signing key pair.
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key
  openssl pkey -in sa.key -pubout -out sa.pub
)
log "certificates: $(fmt_ms $(($(now_ms) - t0)))"

# ---- etcd --------------------------------------------------------------------------------------------------------
free_port etcd_port
free_port etcd_peer_port
t_etcd=$(now_ms)
"$BIN/etcd" --name smoke --data-dir "$tmp/etcd-data" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster "smoke=http://127.0.0.1:$etcd_peer_port" \
  --unsafe-no-fsync --log-level warn >"$tmp/etcd.log" 2>&1 &
etcd_pid=$!
for ((i = 0; ; i++)); do
  kill -0 "$etcd_pid" 2>/dev/null || { echo "etcd exited" >&2; exit 1; }
  curl -fsS "http://127.0.0.1:$etcd_port/health" 2>/dev/null | grep -q '"health":"true"' && break
  ((i < 300)) || { echo "etcd not healthy after 30 s" >&2; exit 1; }
  sleep 0.1
done
log "etcd ready on 127.0.0.1:$etcd_port in $(fmt_ms $(($(now_ms) - t_etcd))) ($("$BIN/etcd" --version | head -1))"

# ---- kube-apiserver ----------------------------------------------------------------------------------------------
free_port api_port
t_api=$(now_ms)
"$BIN/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$etcd_port" \
  --bind-address=127.0.0.1 --secure-port="$api_port" \
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" \
  --authorization-mode=RBAC \
  --service-account-issuer=https://kubernetes.default.svc \
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
  --service-cluster-ip-range=10.0.0.0/24 \
  --disable-admission-plugins=ServiceAccount \
  --allow-privileged=true \
  >"$tmp/kube-apiserver.log" 2>&1 &
apiserver_pid=$!

url="https://127.0.0.1:$api_port"
curl_admin=(curl -sS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key")
for ((i = 0; ; i++)); do
  kill -0 "$apiserver_pid" 2>/dev/null || { echo "kube-apiserver exited" >&2; exit 1; }
  code="$("${curl_admin[@]}" -o /dev/null -w '%{http_code}' "$url/readyz" 2>/dev/null || true)"
  [[ "$code" == 200 ]] && break
  ((i < 1200)) || { echo "kube-apiserver not ready after 120 s (last /readyz: $code)" >&2; "${curl_admin[@]}" "$url/readyz?verbose" >&2 || true; exit 1; }
  sleep 0.1
done
ready_ms=$(($(now_ms) - t_api))
log "kube-apiserver ready on $url: start to /readyz 200 in $(fmt_ms "$ready_ms")"

# ---- kubectl -----------------------------------------------------------------------------------------------------
kubeconfig="$tmp/admin.kubeconfig"
k=("$BIN/kubectl" --kubeconfig "$kubeconfig")
"${k[@]}" config set-cluster smoke --server="$url" --certificate-authority="$pki/ca.crt" --embed-certs=true >/dev/null
"${k[@]}" config set-credentials admin --client-certificate="$pki/admin.crt" --client-key="$pki/admin.key" \
  --embed-certs=true >/dev/null
"${k[@]}" config set-context smoke --cluster=smoke --user=admin >/dev/null
"${k[@]}" config use-context smoke >/dev/null

echo "== kubectl version"
"${k[@]}" version
echo "== kubectl get ns"
"${k[@]}" get ns
echo "== kubectl api-resources | head"
# Not `kubectl ... | head`: with pipefail, kubectl dying of SIGPIPE once head has its 10 lines would fail the script.
api_resources="$("${k[@]}" api-resources)"
head <<<"$api_resources"
echo "($(($(wc -l <<<"$api_resources") - 1)) resources)"
# RBAC is really on: an unprivileged identity is refused (the default --authorization-mode would allow it).
echo "== kubectl auth can-i list pods --as=someone"
can="$("${k[@]}" auth can-i list pods --as=someone 2>/dev/null || true)"
echo "$can"
[[ "$can" == no ]] || { echo "expected RBAC to refuse an unprivileged user" >&2; exit 1; }

# Service-account tokens: the TokenRequest API signs with --service-account-signing-key-file (no controller-manager
# needed), and the token authenticates as the ServiceAccount.
echo "== kubectl create token (TokenRequest) + auth whoami with it"
"${k[@]}" create serviceaccount smoke -n default >/dev/null
token="$("${k[@]}" create token smoke -n default --duration=10m)"
who="$("$BIN/kubectl" --server="$url" --certificate-authority="$pki/ca.crt" --token="$token" auth whoami -o jsonpath='{.status.userInfo.username}')"
echo "$who"
[[ "$who" == system:serviceaccount:default:smoke ]] || { echo "unexpected token identity: $who" >&2; exit 1; }

log "smoke test passed (etcd ${etcd_port}, kube-apiserver ${api_port}; start-to-ready $(fmt_ms "$ready_ms"))"
