# k8s_check: renders k8s/ and every overlay beside it (k8s-tls/, k8s-monitoring/, k8s-redis-cluster/)
# with kubectl kustomize and checks the manifests (scripts/check-k8s),
# including that every RRM_* variable they set is accepted by the rrm-frontend and rrm-archiver
# built here.
add_test(NAME k8s_check COMMAND ${PROJECT_SOURCE_DIR}/scripts/check-k8s ${PROJECT_BINARY_DIR})
set_tests_properties(k8s_check PROPERTIES LABELS integration TIMEOUT 120)
