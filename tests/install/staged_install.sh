#!/usr/bin/env bash
# A staged install honours the prefix and DESTDIR everywhere: configure with the default
# prefix, `cmake --install BUILD --prefix /opt/x` into DESTDIR, then check that every file is
# under /opt/x, that pgcrond-plugin.pc, pgcrond.conf and the unit name /opt/x paths, and that a
# plugin builds against the staged pgcrond-plugin.pc.
#
#   staged_install.sh SOURCE_DIR WORK_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
work=$2
build=$work/build
stage=$work/stage
prefix=/opt/x
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$work"
# A build of its own, without tests and benchmarks (the plain build the README describes);
# kept between runs, so only what changed is rebuilt.
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGCROND_TESTS=OFF \
  -DPGCROND_BENCH=OFF >"$work/configure.log" 2>&1 ||
  { cat "$work/configure.log"; fail "configure"; }
cmake --build "$build" -j2 >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; fail "build"; }
rm -rf "$stage"
DESTDIR=$stage cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log"; fail "install"; }

# nothing outside the prefix
outside=$(cd "$stage" && find . -type f | sed 's|^\.||' | grep -v "^$prefix/" || true)
[ -z "$outside" ] || fail "installed outside $prefix: $outside"
for f in bin/pgcrond include/pgcrond/plugin.h share/pkgconfig/pgcrond-plugin.pc \
         etc/pgcrond/pgcrond.conf lib/systemd/system/pgcrond.service \
         lib/sysusers.d/pgcrond.conf lib/tmpfiles.d/pgcrond.conf; do
  [ -f "$stage$prefix/$f" ] || fail "$prefix/$f is missing; installed: $(cd "$stage" && find . -type f)"
done
# the analytics views' jobs are shipped off (a subdirectory is not loaded), with the README that
# says how to turn one on
for f in analytics-views/README analytics-views/10-lane-distribution.conf; do
  [ -f "$stage$prefix/etc/pgcrond/conf.d/examples/$f" ] || fail "$prefix/etc/pgcrond/conf.d/examples/$f is missing"
done
# the shipped files point at installed documents, not at the source tree's docs/
srcdocs=$(grep -rnE '(^|[^/])docs/[a-z-]+\.md' "$stage$prefix/etc/pgcrond" || true)
[ -z "$srcdocs" ] || fail "shipped files name documents that are not installed: $srcdocs"
ls "$stage$prefix"/share/pgcrond/sql/pgcrond--1.sql >/dev/null || fail "no schema SQL"
ls "$stage$prefix"/lib*/pgcrond/plugins/sql_view.so >/dev/null || fail "no plugins"
# every path a file names is under the prefix
grep -q "^ExecStart=$prefix/bin/pgcrond run -c $prefix/etc/pgcrond/pgcrond.conf\$" \
  "$stage$prefix/lib/systemd/system/pgcrond.service" || fail "unit: $(grep ExecStart "$stage$prefix/lib/systemd/system/pgcrond.service")"
grep -q "^conf_dir = \"$prefix/etc/pgcrond/conf.d\";" "$stage$prefix/etc/pgcrond/pgcrond.conf" ||
  fail "pgcrond.conf: $(grep conf_dir "$stage$prefix/etc/pgcrond/pgcrond.conf")"
grep -q "^plugin_dir = \"$prefix/lib[a-z0-9_-]*/pgcrond/plugins\";" "$stage$prefix/etc/pgcrond/pgcrond.conf" ||
  fail "pgcrond.conf: $(grep plugin_dir "$stage$prefix/etc/pgcrond/pgcrond.conf")"

# the documentation the man pages, pgcrond.conf and the unit point at: installed, and named
# at its installed place
for f in README.md configuration.md install.md operations.md security.md sql-api.md; do
  [ -f "$stage$prefix/share/doc/pgcrond/$f" ] || fail "$prefix/share/doc/pgcrond/$f is missing"
done
grep -q "^# $prefix/share/doc/pgcrond/configuration.md" "$stage$prefix/etc/pgcrond/pgcrond.conf" ||
  fail "pgcrond.conf does not name $prefix/share/doc/pgcrond/configuration.md: $(grep -n doc "$stage$prefix/etc/pgcrond/pgcrond.conf")"
grep -q "^Documentation=.* file:$prefix/share/doc/pgcrond/operations.md\$" \
  "$stage$prefix/lib/systemd/system/pgcrond.service" ||
  fail "unit: $(grep Documentation "$stage$prefix/lib/systemd/system/pgcrond.service")"

# the .pc, read through the staged tree as a cross build would
export PKG_CONFIG_PATH=$stage$prefix/share/pkgconfig PKG_CONFIG_SYSROOT_DIR=$stage
[ "$(pkg-config --variable=prefix pgcrond-plugin)" = "$stage$prefix" ] ||
  [ "$(pkg-config --variable=prefix pgcrond-plugin)" = "$prefix" ] || fail "prefix"
read -r cflags < <(pkg-config --cflags pgcrond-plugin) # read trims the trailing blank
[ "$cflags" = "-I$stage$prefix/include" ] || fail "cflags: $cflags"
plugindir=$(PKG_CONFIG_SYSROOT_DIR= pkg-config --variable=plugindir pgcrond-plugin)
case "$plugindir" in "$prefix"/lib*/pgcrond/plugins) ;; *) fail "plugindir: $plugindir" ;; esac
cc -shared -fPIC -fvisibility=hidden $cflags -Wl,-z,defs -o "$work/example.so" \
  "$src/plugins/example/example.c" || fail "the example plugin does not build against the staged SDK"
echo "ok: staged install under $prefix; plugin built with $cflags"
