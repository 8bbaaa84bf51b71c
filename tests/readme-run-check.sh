#!/usr/bin/env bash
# CI: the README's "Run it" command works with only what it installs.
#
# The command is read from README.md (the first sh block after "**Run it**")
# and run as written in a fresh clone of this repository (committed files
# only, its own build directory), as root, with:
#   - CMake unable to find GoogleTest and Google Benchmark, as on a machine
#     without the test packages: CMAKE_TOOLCHAIN_FILE, which CMake reads
#     from the environment, names a file that sets
#     CMAKE_DISABLE_FIND_PACKAGE_GTest and ..._benchmark;
#   - a sudo first on PATH that fails: as root nothing may need sudo.
# Every step but the last (install, configure, build) must succeed, and
# configure must have left the tests out.  The last step, the daemon in the
# foreground, runs in the background here: it must listen on
# 127.0.0.1:8891, answer a milter option negotiation, run as its
# milter.user (portcullis), and exit 0 on SIGTERM.
# contrib/as-root is checked first: as root it runs the command itself, as
# another user (nobody) it runs it through sudo.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
listen_port=8891

fail() {
  echo "readme-run-check: $*" >&2
  exit 1
}

if [ "$(id -u)" -ne 0 ]; then fail "run as root: contrib/as-root $0"; fi

# The lines of the first sh block after the line starting "**Run it**".
run_command=$(awk '/^\*\*Run it\*\*/ { after = 1 }
                   after && inside && /^```/ { exit }
                   inside { print }
                   after && /^```sh$/ { inside = 1 }' "$repo/README.md")
case "$run_command" in
  *$'\n'*) fail "the README's run command is more than one line: $run_command" ;;
  *" && "*"portcullis run -f"*) ;;
  *) fail "no 'SETUP && ... portcullis run -f ...' in the sh block after **Run it** in README.md" ;;
esac
setup_steps=${run_command% && *}
daemon_step=${run_command##* && }
echo "readme-run-check: setup: $setup_steps"
echo "readme-run-check: daemon: $daemon_step"

work=$(mktemp -d /tmp/portcullis-readme.XXXXXX)
chmod 755 "$work"   # nobody runs as-root from here
daemon=""
# The daemon makes the control socket's directory; leave none behind that
# was not here before.
runtime_dir=/run/portcullis
runtime_dir_was_here=$([ -e "$runtime_dir" ] && echo yes || echo no)
cleanup() {
  if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then kill -KILL "$daemon"; fi
  if [ "$runtime_dir_was_here" = no ]; then rm -rf "$runtime_dir"; fi
  rm -rf "$work"
}
trap cleanup EXIT

# contrib/as-root, with a sudo that only says how it was called.
mkdir -m 755 "$work/echo-sudo"
printf '#!/bin/sh\necho "sudo $*"\n' > "$work/echo-sudo/sudo"
install -m 755 "$repo/contrib/as-root" "$work/echo-sudo/as-root"
chmod 755 "$work/echo-sudo/sudo"
as_root=$(PATH="$work/echo-sudo:$PATH" "$work/echo-sudo/as-root" echo itself)
[ "$as_root" = "itself" ] || fail "contrib/as-root as root gave '$as_root', not 'itself'"
as_user=$(runuser -u nobody -- env PATH="$work/echo-sudo:$PATH" "$work/echo-sudo/as-root" echo itself)
[ "$as_user" = "sudo echo itself" ] || fail "contrib/as-root as nobody gave '$as_user', not 'sudo echo itself'"

mkdir "$work/no-sudo"
printf '#!/bin/sh\necho "sudo called as root: $*" >&2\nexit 1\n' > "$work/no-sudo/sudo"
chmod 755 "$work/no-sudo/sudo"
cat > "$work/no-test-packages.cmake" <<'EOF'
set(CMAKE_DISABLE_FIND_PACKAGE_GTest TRUE)
set(CMAKE_DISABLE_FIND_PACKAGE_benchmark TRUE)
EOF

git -c safe.directory="$repo" clone --quiet "$repo" "$work/clone"
cd "$work/clone"
export PATH="$work/no-sudo:$PATH"
CMAKE_TOOLCHAIN_FILE="$work/no-test-packages.cmake" bash -c "$setup_steps" ||
  fail "the README's setup steps failed"
grep -qx 'PORTCULLIS_TESTS:BOOL=OFF' build/CMakeCache.txt ||
  fail "configure did not leave the tests out: GoogleTest was found"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$listen_port") 2>/dev/null; }
if listening; then fail "something already listens on 127.0.0.1:$listen_port"; fi
bash -c "exec $daemon_step" > "$work/daemon.log" 2>&1 &
daemon=$!
show_log() { sed 's/^/  | /' "$work/daemon.log" >&2; }

for _ in $(seq 300); do
  if listening; then break; fi
  kill -0 "$daemon" 2>/dev/null || { show_log; fail "the daemon exited before listening"; }
  sleep 0.1
done
listening || { show_log; fail "the daemon did not listen on 127.0.0.1:$listen_port within 30 s"; }

# SMFIC_OPTNEG: length 13, 'O', version 6, every action, every protocol
# step; the daemon answers with its own 'O' packet.
exec 3<>"/dev/tcp/127.0.0.1/$listen_port"
printf '\000\000\000\015O\000\000\000\006\000\000\001\377\000\037\377\377' >&3
answer=$(timeout 10 head -c 5 <&3 | tail -c 1) || true
exec 3<&-
[ "$answer" = "O" ] || { show_log; fail "no milter option negotiation from the daemon (got '$answer')"; }

daemon_uid=$(awk '/^Uid:/ { print $2 }' "/proc/$daemon/status")
[ "$daemon_uid" = "$(id -u portcullis)" ] || { show_log; fail "the daemon runs as uid $daemon_uid, not portcullis"; }

# Ended: gone, or a zombie until we wait for it.
ended() { ! grep -q '^State:[[:space:]]*[^Z]' "/proc/$daemon/status" 2>/dev/null; }
kill -TERM "$daemon"
for _ in $(seq 400); do
  if ended; then break; fi
  sleep 0.1
done
ended || { show_log; fail "the daemon did not exit within 40 s of SIGTERM"; }
status=0
wait "$daemon" || status=$?
daemon=""
[ "$status" -eq 0 ] || { show_log; fail "the daemon exited $status on SIGTERM"; }
show_log
echo "readme-run-check: ok: the README's run command installs, builds, listens and stops"
