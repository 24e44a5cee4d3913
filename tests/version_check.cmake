# Runs BIN --version and checks that it exits 0, that its first line is "NAME VERSION" (the build's
# git describe) and that every library named in LIBS (comma-separated) has a line "LIB <version>".
# Usage: cmake -DBIN=... -DNAME=... -DVERSION=... [-DLIBS=a,b] -P version_check.cmake
execute_process(COMMAND ${BIN} --version RESULT_VARIABLE rc OUTPUT_VARIABLE out
    ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NAME} --version exited with ${rc}: ${out}${err}")
endif()
string(REGEX MATCH "^[^\n]*" first "${out}")
if(NOT first STREQUAL "${NAME} ${VERSION}")
    message(FATAL_ERROR "${NAME} --version: first line '${first}', want '${NAME} ${VERSION}'")
endif()
string(REPLACE "," ";" libs "${LIBS}")
foreach(lib IN LISTS libs)
    string(REGEX MATCH "\n${lib} [0-9][^\n]*" found "${out}")
    if(NOT found)
        message(FATAL_ERROR "${NAME} --version names no version of ${lib}:\n${out}")
    endif()
endforeach()
message(STATUS "${out}")
