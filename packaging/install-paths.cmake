# Run by `cmake --install` (install(CODE) in packaging/CMakeLists.txt): write the installed
# files that name installed paths, with the paths of this installation. CMAKE_INSTALL_PREFIX
# is the install-time prefix here (--prefix), so a relative location follows it; an absolute
# one is kept. Files go under $ENV{DESTDIR} and into the install manifest.

# The absolute path of LOCATION: as it is, or under the prefix.
function(pgcrond_full out location)
  if(IS_ABSOLUTE "${location}")
    set(${out} "${location}" PARENT_SCOPE)
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${location}" PARENT_SCOPE)
  endif()
endfunction()

function(pgcrond_install_text path content)
  set(dest "$ENV{DESTDIR}${path}")
  message(STATUS "Installing: ${dest}")
  get_filename_component(dir "${dest}" DIRECTORY)
  file(MAKE_DIRECTORY "${dir}")
  file(WRITE "${dest}" "${content}")
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${dest}")
  set(CMAKE_INSTALL_MANIFEST_FILES "${CMAKE_INSTALL_MANIFEST_FILES}" PARENT_SCOPE)
endfunction()

pgcrond_full(plugin_dir "${pgcrond_plugin_dir}")
pgcrond_full(sql_dir "${pgcrond_sql_dir}")
pgcrond_full(conf_file "${pgcrond_conf_file}")
pgcrond_full(bindir "${pgcrond_bindir}")
pgcrond_full(pcdir "${pgcrond_pcdir}")
pgcrond_full(unit_dir "${pgcrond_unit_dir}")
pgcrond_full(docdir "${pgcrond_docdir}")
get_filename_component(conf_dir "${conf_file}" DIRECTORY)

# pgcrond.conf: the shipped one names the packaged paths; an install elsewhere gets its own.
if(EXISTS "${pgcrond_source_dir}/conf.d/pgcrond.conf")
  file(READ "${pgcrond_source_dir}/conf.d/pgcrond.conf" text)
  string(REPLACE "\"/usr/lib/pgcrond/plugins\"" "\"${plugin_dir}\"" text "${text}")
  string(REPLACE "\"/etc/pgcrond/conf.d\"" "\"${conf_dir}/conf.d\"" text "${text}")
  string(REPLACE "/usr/share/doc/pgcrond" "${docdir}" text "${text}")
  pgcrond_install_text("${conf_file}" "${text}")
endif()

# pgcrond-plugin.pc: the include directory relative to ${prefix} when it is under it, so
# pkg-config --define-prefix and PKG_CONFIG_SYSROOT_DIR work on a staged tree.
if(IS_ABSOLUTE "${pgcrond_includedir}")
  set(includedir "${pgcrond_includedir}")
else()
  set(includedir "\${prefix}/${pgcrond_includedir}")
endif()
set(PGCROND_PC_INCLUDEDIR "${includedir}")
set(PGCROND_PLUGIN_DIR "${plugin_dir}")
set(PGCROND_SQL_DIR "${sql_dir}")
set(PGCROND_PLUGIN_ABI_MAJOR "${pgcrond_abi_major}")
set(PROJECT_VERSION "${pgcrond_version}")
file(READ "${pgcrond_packaging_dir}/pkgconfig/pgcrond-plugin.pc.in" text)
string(CONFIGURE "${text}" text @ONLY)
# Architecture-independent: plugins link against nothing of pgcrond, so no Libs and no libdir.
pgcrond_install_text("${pcdir}/pgcrond-plugin.pc" "${text}")

# pgcrond.service: the unit in the source tree names the packaged paths.
if(pgcrond_systemd)
  file(READ "${pgcrond_packaging_dir}/systemd/pgcrond.service" text)
  string(REPLACE "/usr/bin/pgcrond" "${bindir}/pgcrond" text "${text}")
  string(REPLACE "/etc/pgcrond/pgcrond.conf" "${conf_file}" text "${text}")
  string(REPLACE "/usr/share/doc/pgcrond" "${docdir}" text "${text}")
  pgcrond_install_text("${unit_dir}/pgcrond.service" "${text}")
endif()
