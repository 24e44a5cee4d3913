# shellcheck shell=bash
# A local Redis Cluster on 127.0.0.1, for scripts/up (RRM_UP_REDIS_CLUSTER=1) and scripts/bench
# (--redis-cluster). Sourced; needs redis-server and redis-cli 7 (rrm_packages).
#
#   rrm_redis_cluster_start DIR REPLICAS PORT...
#
# starts one redis-server per PORT (cluster bus on PORT+10000), each in DIR/PORT/ (nodes.conf,
# the AOF if the extra arguments turn it on, redis.log), with the extra arguments of the array
# rrm_redis_cluster_args, and appends their process ids to the caller's array `pids`. On first
# start (no node knows another) it runs `redis-cli --cluster create` with REPLICAS replicas per
# master (the first PORTs become the masters); when the nodes already form a cluster (nodes.conf
# kept in DIR from a previous run) it only starts them. Either way it returns once every node
# reports cluster_state:ok and every replica is in sync with its master (a replica that never
# synced cannot take over), within 30 s each, or prints why not and returns 1.

rrm_redis_cluster_args=()

rrm_redis_cluster_start() {
    local dir=$1 replicas=$2
    shift 2
    local ports=("$@") p n=$# known=() i
    for p in "${ports[@]}"; do
        mkdir -p "$dir/$p"
        # cluster-node-timeout 5 s: a killed master's replica takes over within about 10 s (the
        # default 15 s timeout would double that); a replica's full sync starts at once instead of
        # 5 s later; protected-mode is off because the nodes talk to each other over the loopback
        # without a password, bound to 127.0.0.1 only.
        redis-server --port "$p" --bind 127.0.0.1 --dir "$dir/$p" --protected-mode no \
            --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
            --repl-diskless-sync-delay 0 \
            "${rrm_redis_cluster_args[@]}" --daemonize no --logfile "$dir/$p/redis.log" &
        pids+=($!)
    done
    for p in "${ports[@]}"; do
        for i in $(seq 1 300); do
            [ "$(redis-cli -p "$p" ping 2>/dev/null)" = PONG ] && break
            if ((i == 300)); then
                echo "redis cluster node $p did not start; see $dir/$p/redis.log" >&2
                return 1
            fi
            sleep 0.1
        done
        known+=("$(redis-cli -p "$p" cluster info | tr -d '\r' | sed -n 's/^cluster_known_nodes://p')")
    done
    if [ "${known[*]}" = "$(printf '1 %.0s' "${ports[@]}" | sed 's/ $//')" ]; then
        local addrs=()
        for p in "${ports[@]}"; do addrs+=("127.0.0.1:$p"); done
        if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$replicas" \
            --cluster-yes >"$dir/cluster-create.log" 2>&1; then
            echo "redis-cli --cluster create failed; see $dir/cluster-create.log" >&2
            return 1
        fi
    else
        for i in "${!known[@]}"; do
            if [ "${known[i]}" != "$n" ]; then
                echo "the Redis Cluster in $dir is not the one asked for (node ${ports[i]} knows" \
                    "${known[i]} nodes, not $n): remove $dir to start a new one" >&2
                return 1
            fi
        done
    fi
    # Every node must also see every replica as one: right after the create, the roles spread
    # through the cluster bus for a moment.
    local want_replicas=$((n - n / (1 + replicas)))
    for p in "${ports[@]}"; do
        for i in $(seq 1 300); do
            redis-cli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' &&
                [ "$(redis-cli -p "$p" cluster nodes | awk '$3 ~ /slave/' | wc -l)" = "$want_replicas" ] && break
            if ((i == 300)); then
                echo "redis cluster node $p is not cluster_state:ok with $want_replicas replicas" \
                    "after 30 s; see $dir/$p/redis.log" >&2
                return 1
            fi
            sleep 0.1
        done
    done
    for p in "${ports[@]}"; do
        redis-cli -p "$p" info replication | grep -q '^role:slave' || continue
        for i in $(seq 1 300); do
            redis-cli -p "$p" info replication | grep -q '^master_link_status:up' && break
            if ((i == 300)); then
                echo "redis cluster replica $p is not in sync after 30 s; see $dir/$p/redis.log" >&2
                return 1
            fi
            sleep 0.1
        done
    done
}
