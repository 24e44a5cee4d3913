# cmake -DIN=page.html -DOUT=page.c -DNAME=symbol -P embed.cmake: writes IN as a C array NAME
# (NUL-terminated, NAME_len without the NUL), so that pages stay editable files yet are served
# from the binary (pages.h).
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(LENGTH "${hex}" n)
math(EXPR n "${n} / 2")
file(WRITE ${OUT} "/* Generated from ${IN} by embed.cmake: do not edit. */\n#include <stddef.h>\n"
    "const unsigned char ${NAME}[] = {${bytes}0x00};\nconst size_t ${NAME}_len = ${n};\n")
