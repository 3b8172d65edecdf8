#!/bin/sh
# Watchdog for e2e/harness/control-plane.ts: kills a control plane's process groups when the Node process that started
# it is gone, however it ended (clean exit, crash, SIGKILL, OOM kill).
#
#   reaper.sh CLUSTER_DIR rm|keep      stdin: a pipe whose write end only the harness process holds
#
# The harness writes "+PGID" lines as it spawns etcd and kube-apiserver. When stdin reaches EOF (the kernel closes the
# pipe when the harness dies, even on SIGKILL), every registered group whose leader's command line still mentions
# CLUSTER_DIR/ (a guard against recycled pids) gets SIGTERM, newest first, and SIGKILL if it is still there after 2 s;
# with "rm" the dir is removed.
# A clean stop() kills this script once the processes are gone. It runs in its own session (setsid), so Ctrl-C in a
# terminal and kills of the test's process group do not reach it.
dir=$1
mode=${2:-keep}
marker="$dir/"
groups=""

ours() { # ours PGID: the group leader is alive and its command line mentions the cluster dir
  if [ -d /proc/self ]; then
    [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$marker"
  else
    ps -o command= -p "$1" 2>/dev/null | grep -qF -- "$marker"
  fi
}

while IFS= read -r line; do
  case $line in
    +[0-9]*) groups="$groups ${line#+}" ;;
  esac
done

echo "reaper: harness gone; stopping:$groups" >&2
# Newest first (kube-apiserver before etcd: with etcd gone it takes longer to shut down); SIGTERM, up to 2 s, SIGKILL.
order=""
for g in $groups; do order="$g $order"; done
for g in $order; do
  ours "$g" || continue
  kill -TERM -"$g" 2>/dev/null
  i=0
  while ours "$g" && [ $i -lt 20 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  if ours "$g"; then
    echo "reaper: group $g ignored SIGTERM; SIGKILL" >&2
    kill -KILL -"$g" 2>/dev/null
  fi
done
if [ "$mode" = rm ] && [ -f "$dir/control-plane.json" ]; then rm -rf "$dir"; fi
exit 0
