# Writes the bytes of a file as the body of a C array initializer
# ("0x3c,0x21,...", 16 to a line), for #include between braces: the
# dashboard page (src/dashboard.html) is compiled into mcfault this way.
# CMake alone, so the build needs no xxd or Python.
#   cmake -DIN=page.html -DOUT=page.inc -P embed.cmake
if(NOT DEFINED IN OR NOT DEFINED OUT)
  message(FATAL_ERROR "usage: cmake -DIN=FILE -DOUT=FILE.inc -P embed.cmake")
endif()
file(READ "${IN}" hex HEX)
if(hex STREQUAL "")
  message(FATAL_ERROR "embed: ${IN} is empty (a C array cannot be)")
endif()
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," out "${hex}")
string(REPEAT "0x[0-9a-f][0-9a-f]," 16 line)
string(REGEX REPLACE "(${line})" "\\1\n" out "${out}")
# Written aside, then copied only when it differs: an unchanged page does
# not recompile admin_page.c.
file(WRITE "${OUT}.tmp" "${out}\n")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp"
                        "${OUT}")
file(REMOVE "${OUT}.tmp")
