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
foreach(src ${arch_integration_tests})
    get_filename_component(name ${src} NAME_WE)
    if(TARGET it_${name})
        target_link_libraries(it_${name} PRIVATE rrm_archiver_core)
    else()
        add_cmocka_test(it_${name} integration SOURCES ${src} LIBS rrm_archiver_core
            rrm_testsupport rrm_shared PkgConfig::HIREDIS PkgConfig::JANSSON TIMEOUT 180)
    endif()
    add_dependencies(it_${name} rrm-archiver)
    set_property(TEST it_${name} APPEND PROPERTY ENVIRONMENT
        "RRM_ARCHIVER_BIN=$<TARGET_FILE:rrm-archiver>")
endforeach()

# rrm-archive-bench: fills a fresh stream on private servers and times rrm-archiver draining it.
# Built here because it starts its servers with the test support library.
if(TARGET rrm_testsupport)
    add_executable(rrm-archive-bench ${PROJECT_SOURCE_DIR}/archiver/bench.c)
    target_link_libraries(rrm-archive-bench PRIVATE rrm_archiver_core rrm_testsupport)
    set_target_properties(rrm-archive-bench PROPERTIES
        RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/archiver)
    add_dependencies(rrm-archive-bench rrm-archiver)
    target_compile_definitions(rrm-archive-bench PRIVATE
        RRM_ARCHIVER_DEFAULT_BIN="$<TARGET_FILE:rrm-archiver>")
endif()
