# pgcrond_embed_sql(TARGET FILE.sql VAR): compile FILE.sql into TARGET as
#   static const char VAR[];   (NUL-terminated, the file's bytes exactly)
# declared in the generated header VAR.h, so a plugin's install DDL stays a plain .sql file
# that psql can also run, and the .so carries it. The header is regenerated at build time
# whenever the .sql changes. Bytes are written as hex, so no quoting or escaping can go wrong
# and no string-literal length limit applies.
#
# Include from a plugin's CMakeLists.txt:
#   include(${CMAKE_CURRENT_SOURCE_DIR}/../embed_sql.cmake)
#   pgcrond_add_plugin(lane_distribution lane_distribution.c)
#   pgcrond_embed_sql(lane_distribution lane_distribution.sql lane_distribution_sql)
#
# The same file, run with `cmake -DIN=... -DOUT=... -DVAR=... -P embed_sql.cmake`, writes the
# header (that is how the build step calls it).

if(CMAKE_SCRIPT_MODE_FILE)
  file(READ "${IN}" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  # 16 bytes a line, for diffs and editors (CMake regexes have no {n})
  string(REPEAT "0x[0-9a-f][0-9a-f]," 16 line)
  string(REGEX REPLACE "(${line})" "\\1\n\t" hex "${hex}")
  get_filename_component(src "${IN}" NAME)
  file(WRITE "${OUT}.tmp"
    "/* Generated from ${src} by embed_sql.cmake: do not edit. */\n"
    "static const char ${VAR}[] = {\n\t${hex}0x00\n};\n")
  file(RENAME "${OUT}.tmp" "${OUT}")
  return()
endif()

include_guard(GLOBAL)

function(pgcrond_embed_sql target sql var)
  set(script "${CMAKE_CURRENT_FUNCTION_LIST_FILE}")
  get_filename_component(in "${sql}" ABSOLUTE)
  set(dir "${CMAKE_CURRENT_BINARY_DIR}/embedded")
  set(out "${dir}/${var}.h")
  add_custom_command(
    OUTPUT "${out}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${dir}"
    COMMAND ${CMAKE_COMMAND} -DIN=${in} -DOUT=${out} -DVAR=${var}
            -P "${script}"
    DEPENDS "${in}" "${script}"
    COMMENT "Embedding ${sql} in ${target}"
    VERBATIM)
  target_sources(${target} PRIVATE "${out}")
  target_include_directories(${target} PRIVATE "${dir}")
endfunction()
