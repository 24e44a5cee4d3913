# Archiver tests: unit (decoding, SQL building) and integration (a real redis-server and
# mariadbd per test binary). The generic globs in tests/CMakeLists.txt may already have made targets
# for these files; then only the archiver's library and environment are added to them.

file(GLOB arch_unit_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_arch_*.c)
foreach(src ${arch_unit_tests})
    get_filename_component(name ${src} NAME_WE)
    if(TARGET unit_${name})
        target_link_libraries(unit_${name} PRIVATE rrm_archiver_core)
    else()
        add_cmocka_test(unit_${name} unit SOURCES ${src} LIBS rrm_archiver_core rrm_shared)
    endif()
endforeach()

file(GLOB arch_integration_tests CONFIGURE_DEPENDS
    ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_archiver*.c)
set(arch_harness ${CMAKE_CURRENT_SOURCE_DIR}/integration/archiver_harness.c)
foreach(src ${arch_integration_tests})
    get_filename_component(name ${src} NAME_WE)
    if(TARGET it_${name})
        target_sources(it_${name} PRIVATE ${arch_harness})
        target_link_libraries(it_${name} PRIVATE rrm_archiver_core)
    else()
        add_cmocka_test(it_${name} integration SOURCES ${src} ${arch_harness} LIBS
            rrm_archiver_core rrm_testsupport rrm_shared PkgConfig::HIREDIS PkgConfig::JANSSON
            TIMEOUT 180)
    endif()
    add_dependencies(it_${name} rrm-archiver)
    set_property(TEST it_${name} APPEND PROPERTY ENVIRONMENT
        "RRM_ARCHIVER_BIN=$<TARGET_FILE:rrm-archiver>")
endforeach()

# The dashboard check (k8s/grafana-dashboard.json against the live /metrics of both programs)
# starts frontends too.
if(TARGET it_test_archiver_dashboard)
    target_sources(it_test_archiver_dashboard PRIVATE
        ${CMAKE_CURRENT_SOURCE_DIR}/integration/fe_harness.c)
    add_dependencies(it_test_archiver_dashboard rrm-frontend)
endif()
