# cmake -DIN=file -DOUT=file.cc -DNAME=symbol -P embed.cmake
# Writes a C++ source holding the bytes of IN as `const unsigned char NAME[]`.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR size "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE ${OUT} "// Generated from ${IN} by cmake/embed.cmake.\n#include <cstddef>\nextern const unsigned char ${NAME}[] = {\n${bytes}};\nextern const size_t ${NAME}_size = ${size};\n")
