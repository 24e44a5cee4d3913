# Writes OUT, a C file with every SQL_DIR/NNN_name.sql as a byte array and a table of
# {version, name, text} sorted by version, so the archiver needs no SQL files at run time.
file(GLOB files "${SQL_DIR}/*.sql")
list(SORT files)
set(arrays "")
set(table "")
set(count 0)
foreach(f IN LISTS files)
    get_filename_component(base "${f}" NAME_WE)
    if(NOT base MATCHES "^0*([0-9]+)_([A-Za-z0-9_]+)$")
        message(FATAL_ERROR "migration file name must be NNN_name.sql: ${f}")
    endif()
    set(version "${CMAKE_MATCH_1}")
    set(name "${CMAKE_MATCH_2}")
    file(READ "${f}" hex HEX)
    string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
    string(APPEND arrays "static const char migration_${count}[] = {${bytes}0x00};\n")
    string(APPEND table "    {${version}, \"${name}\", migration_${count}},\n")
    math(EXPR count "${count} + 1")
endforeach()
if(count EQUAL 0)
    message(FATAL_ERROR "no migrations in ${SQL_DIR}")
endif()
file(WRITE "${OUT}.tmp"
    "/* Generated from sql/migrations by archiver/embed_sql.cmake; do not edit. */\n"
    "#include \"schema.h\"\n\n"
    "${arrays}\n"
    "const struct arch_migration arch_migrations[] = {\n${table}};\n"
    "const size_t arch_migration_count = ${count};\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
