#!/usr/bin/env bash
# scripts_redis_cluster: the local Redis Cluster of scripts/up and scripts/bench
# (scripts/lib/redis-cluster.sh), on free ports in a temporary directory:
#   - 3 masters: created, every node cluster_state:ok, the 16384 slots on 3 masters, a key
#     written through one node is read through another (redirection);
#   - stopped and started again in the same directory: the same cluster (same node ids, the
#     create not run again, the key still there with the append-only file);
#   - the same directory asked for with another node count: refused with a message;
#   - 3 masters + 3 replicas: every node sees 3 replicas and every replica is in sync.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/redis-cluster.sh

tmp=$(mktemp -d /tmp/rrm-rc-test.XXXXXX)
pids=()
stop_all() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
}
trap 'stop_all; rm -rf "$tmp"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
taken=" "
free_ports() { # free_ports N: N ports whose bus ports (+10000) are free too, all distinct
    local out=() p
    while ((${#out[@]} < $1)); do
        p=$((10000 + RANDOM % 12000))
        [[ $taken == *" $p "* || $taken == *" $((p + 10000)) "* || $taken == *" $((p - 10000)) "* ]] && continue
        if ! port_free "$p" || ! port_free $((p + 10000)); then continue; fi
        out+=("$p")
        taken+="$p $((p + 10000)) "
    done
    echo "${out[@]}"
}
info() { redis-cli -p "$1" cluster info | tr -d '\r' | sed -n "s/^$2://p"; }

# --- 3 masters
read -r -a ports <<<"$(free_ports 3)"
rrm_redis_cluster_args=(--save "" --appendonly yes)
rrm_redis_cluster_start "$tmp/c3" 0 "${ports[@]}" || fail "3 masters did not start"
((${#pids[@]} == 3)) || fail "expected 3 process ids in pids, got ${#pids[@]}"
ids=()
for p in "${ports[@]}"; do
    [ "$(info "$p" cluster_state)" = ok ] || fail "node $p: cluster_state is not ok"
    [ "$(info "$p" cluster_slots_assigned)" = 16384 ] || fail "node $p: not all slots assigned"
    [ "$(info "$p" cluster_size)" = 3 ] || fail "node $p: cluster_size is not 3"
    ids+=("$(redis-cli -p "$p" cluster myid)")
done
[ "$(redis-cli -c -p "${ports[0]}" set '{7}k' v1)" = OK ] || fail "SET through node ${ports[0]}"
for p in "${ports[@]}"; do
    [ "$(redis-cli -c -p "$p" get '{7}k')" = v1 ] || fail "GET through node $p"
done
created=$(stat -c %Y "$tmp/c3/cluster-create.log")
echo "ok: 3 masters created on ${ports[*]}"

# --- started again: the same cluster, not created again
stop_all
rm "$tmp/c3/cluster-create.log"
rrm_redis_cluster_start "$tmp/c3" 0 "${ports[@]}" || fail "3 masters did not start again"
[ ! -e "$tmp/c3/cluster-create.log" ] || fail "the cluster was created again (created first at $created)"
for i in 0 1 2; do
    [ "$(redis-cli -p "${ports[i]}" cluster myid)" = "${ids[i]}" ] || fail "node ${ports[i]} is a new node"
    [ "$(info "${ports[i]}" cluster_state)" = ok ] || fail "node ${ports[i]}: cluster_state not ok after restart"
done
[ "$(redis-cli -c -p "${ports[2]}" get '{7}k')" = v1 ] || fail "the key did not survive the restart"
echo "ok: started again, the same cluster"

# --- the same directory with another node count
stop_all
# (not in $(...): the nodes it starts would hold the pipe open, and their ids would be lost)
if rrm_redis_cluster_start "$tmp/c3" 0 "${ports[@]:0:2}" 2>"$tmp/err"; then
    fail "2 nodes of a 3-node cluster were accepted"
fi
msg=$(cat "$tmp/err")
[[ $msg == *"not the one asked for"* ]] || fail "unexpected message: $msg"
stop_all
echo "ok: another node count refused: $msg"

# --- 3 masters + 3 replicas
read -r -a ports6 <<<"$(free_ports 6)"
rrm_redis_cluster_args=(--save "" --appendonly no)
rrm_redis_cluster_start "$tmp/c6" 1 "${ports6[@]}" || fail "3 masters + 3 replicas did not start"
masters=0
for p in "${ports6[@]}"; do
    [ "$(info "$p" cluster_state)" = ok ] || fail "node $p: cluster_state is not ok"
    n=$(redis-cli -p "$p" cluster nodes | awk '$3 ~ /slave/' | wc -l)
    ((n == 3)) || fail "node $p sees $n replicas, not 3"
    role=$(redis-cli -p "$p" info replication | tr -d '\r')
    if grep -q '^role:slave' <<<"$role"; then
        grep -q '^master_link_status:up' <<<"$role" || fail "replica $p is not in sync"
    else
        masters=$((masters + 1))
    fi
done
((masters == 3)) || fail "$masters masters, not 3"
echo "ok: 3 masters + 3 replicas on ${ports6[*]}, replicas in sync"
