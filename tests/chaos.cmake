# The chaos test (tests/integration/test_chaos.c): three frontends, an archiver, MySQL and a
# Redis with an append-only file, under node drains, kills and a Redis restart. It needs both
# binaries and the frontend and archiver harnesses. Registered with CTest (label integration)
# unless RRM_CHAOS is OFF.
option(RRM_CHAOS "Register the chaos test (no message lost across node and Redis failures)" ON)

if(RRM_CHAOS AND TARGET rrm-archiver)
    add_cmocka_test(it_test_chaos integration
        SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_chaos.c
                ${CMAKE_CURRENT_SOURCE_DIR}/integration/fe_harness.c
                ${CMAKE_CURRENT_SOURCE_DIR}/integration/archiver_harness.c
        LIBS rrm_testsupport rrm_shared PkgConfig::HIREDIS PkgConfig::JANSSON
        TIMEOUT 240)
    add_dependencies(it_test_chaos rrm-frontend rrm-archiver)
    set_property(TEST it_test_chaos APPEND PROPERTY ENVIRONMENT
        "RRM_ARCHIVER_BIN=$<TARGET_FILE:rrm-archiver>")
endif()
