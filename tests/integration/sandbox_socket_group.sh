#!/usr/bin/env bash
# pg-sandbox --socket-group: a user who is not the server's (here "nobody", group "nogroup")
# cannot connect to the sandbox's socket by default, and can with --socket-group. This is
# what pgcrond running as its own user needs. Needs root (it runs psql as nobody): skipped
# (77) otherwise.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "needs root; skipped"; exit 77; }
id nobody >/dev/null 2>&1 && getent group nogroup >/dev/null || { echo "no nobody/nogroup; skipped"; exit 77; }

dir=$(mktemp -d /tmp/pgsbx-group.XXXXXX)
chmod 755 "$dir"
trap '"$root/scripts/pg-sandbox" stop --dir "$dir/pg" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT

try() { # as nobody, through the socket of the sandbox in $dir/pg
  local ci; ci=$(cat "$dir/pg/conninfo")
  runuser -u nobody -- psql -X -At -d "$ci" -c "SELECT 'connected'" 2>&1 || true
}

"$root/scripts/pg-sandbox" start --dir "$dir/pg" --owner $$ >/dev/null
out=$(try)
case "$out" in
  *connected*) echo "FAIL: nobody connected without --socket-group: $out"; exit 1 ;;
  *"Permission denied"*) echo "ok: refused without --socket-group ($out)" ;;
  *) echo "FAIL: unexpected: $out"; exit 1 ;;
esac
"$root/scripts/pg-sandbox" stop --dir "$dir/pg"

"$root/scripts/pg-sandbox" start --dir "$dir/pg" --owner $$ --socket-group nogroup >/dev/null
out=$(try)
[ "$out" = connected ] || { echo "FAIL: nobody could not connect with --socket-group nogroup: $out"; exit 1; }
echo "ok: connected with --socket-group nogroup"
[ "$(stat -Lc '%G %a' "$dir/pg/sock")" = "nogroup 750" ] ||
  { echo "FAIL: socket dir is $(stat -Lc '%G %a' "$dir/pg/sock")"; exit 1; }

# a group that does not exist is refused with a clear message and exit 64
set +e
msg=$("$root/scripts/pg-sandbox" start --dir "$dir/pg2" --owner $$ --socket-group no-such-group-x 2>&1)
rc=$?
set -e
[ "$rc" -eq 64 ] && [ "$msg" = 'pg-sandbox: no group "no-such-group-x"; create it or name another' ] ||
  { echo "FAIL: rc $rc: $msg"; exit 1; }
echo "ok: unknown group refused"
