# scripts_redis_cluster: the local Redis Cluster that `RRM_UP_REDIS_CLUSTER=1 scripts/up` and
# `scripts/bench --redis-cluster` start (scripts/lib/redis-cluster.sh): created, started again
# as the same cluster, another node count refused, replicas in sync. Needs redis-server and
# redis-cli only.
add_test(NAME scripts_redis_cluster COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/scripts/redis_cluster_lib.sh)
set_tests_properties(scripts_redis_cluster PROPERTIES LABELS integration TIMEOUT 180)
