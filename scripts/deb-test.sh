#!/usr/bin/env bash
# The install test: builds the .deb (scripts/deb.sh), installs it on this
# machine with dpkg -i and uses it as a user would, upgrades it with configs
# and state in place, then purges it and checks nothing is left behind.
# Also checks the README's other install command, `cargo install --locked
# --path .` (into a throwaway root).
#
#   bash scripts/deb-test.sh
#
# Needs root (dpkg). Installs man-db when missing. Refuses to touch a
# pitcher package that is already installed (exits 77: skipped). Each
# check prints one line; the exit status is 0 only when all pass.
# scripts/test.sh runs this as one test.
#
# The cost is the release build: minutes cold, seconds when target/ is
# up to date (the .deb and `cargo install` share target/release).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "deb-test: needs root (dpkg -i)" >&2
  exit 77
fi
# One install test at a time on this machine: they share the package.
exec 9>/var/lock/pitcher-deb-test.lock
flock 9

if dpkg-query -W -f='${Status}' pitcher 2>/dev/null | grep -q 'ok installed'; then
  echo "deb-test: skipped: a pitcher package is installed already (dpkg -r pitcher to run this test)" >&2
  exit 77
fi

if ! command -v man >/dev/null || ! dpkg-query -W -f='${Status}' man-db 2>/dev/null | grep -q 'ok installed'; then
  say "installing man-db"
  apt-get update -qq && apt-get install -y -qq man-db >/dev/null
fi
# cargo-deb reads a binary's library needs with dpkg-shlibdeps.
if ! command -v dpkg-shlibdeps >/dev/null; then
  say "installing dpkg-dev (dpkg-shlibdeps)"
  apt-get update -qq && apt-get install -y -qq dpkg-dev >/dev/null
fi

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
work=$(mktemp -d /tmp/pitcher-deb-test.XXXXXX)
chmod 755 "$work"
PITCHER=/usr/bin/pitcher
installed=0

passed=0
failed=0
check() { # NAME COMMAND…: runs the command, one line for the result
  local name=$1
  shift
  if "$@" >"$work/out" 2>&1; then
    passed=$((passed + 1))
    echo "ok   $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name"
    sed 's/^/     | /' "$work/out" | tail -n 20
  fi
}

# pitcher as a user whose HOME is $1, in a clean environment (no
# directories from the caller's).
as_user() {
  local home=$1
  shift
  env -u PITCHER_CONFIG_DIR -u PITCHER_STATE_DIR -u XDG_CONFIG_HOME -u XDG_CACHE_HOME \
    -u PITCHER_SSH_CONFIG -u PITCHER_SYSTEMD HOME="$home" "$@"
}

# Ends the supervisors this test started (by the pids in its own state
# directories), then their instances.
stop_ours() {
  local f pid
  for f in "$work"/*/.cache/pitcher/supervisor.pid "$work"/demo/pitcher-demo/state/supervisor.pid; do
    [ -f "$f" ] || continue
    pid=$(tr -dc 0-9 <"$f")
    # Only a pitcher this test ran (a pid file may outlive its process).
    [ -n "$pid" ] && [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$PITCHER"* ]] &&
      kill "$pid" 2>/dev/null || true
  done
}

cleanup() {
  set +e
  stop_ours
  if [ "$installed" = 1 ]; then dpkg --purge pitcher >/dev/null 2>&1; fi
  rm -rf "$work"
}
trap cleanup EXIT

# ------------------------------------------------------------------ build
say "building the package (bash scripts/deb.sh)"
t0=$(date +%s)
# A later revision of the same build, to upgrade to (first: cargo deb
# clears other versions from target/debian).
deb2=$(bash scripts/deb.sh --deb-revision 2 --output "$work/" | tail -n 1)
deb=$(bash scripts/deb.sh | tail -n 1)
say "built $deb in $(($(date +%s) - t0)) s"

no_maintainer_scripts() { ! dpkg-deb --ctrl-tarfile "$deb" | tar -t | grep -E 'preinst|postinst|prerm|postrm'; }
depends() {
  local d
  d=$(dpkg-deb -f "$deb" Depends) && echo "Depends: $d" &&
    [[ $d == *libc6* && $d == *openssh-client* ]]
}
changelog_version() { [ "$(dpkg-parsechangelog -l contrib/debian/changelog -S Version)" = "$version-1" ]; }
check "the .deb has no maintainer scripts (it starts nothing)" no_maintainer_scripts
check "Depends: libc6 and openssh-client" depends
check "the changelog's version is the package's ($version-1)" changelog_version

# ---------------------------------------------------------------- install
# --path-include: a Docker image's dpkg.cfg.d may exclude man pages.
dpkg_i() { dpkg -i --path-include='/usr/share/man/man[15]/pitcher*' "$1"; }
say "installing it: dpkg -i"
if dpkg_i "$deb"; then installed=1; fi
check "dpkg -i installs it" test "$installed" = 1
dpkg -L pitcher >"$work/files" 2>/dev/null || true

# Processes running the installed binary.
running_installed() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/exe" 2>/dev/null)" = "$PITCHER" ] && echo "${p#/proc/}"
  done
  return 0
}
version_ok() { [ "$($PITCHER --version)" = "pitcher $version" ]; }
stripped() {
  local s
  s=$(readelf -S "$PITCHER") && ! grep -Eq '\.debug_info|\.symtab' <<<"$s"
}
options_page() {
  local page
  page=$(man -P cat pitcher-options 2>/dev/null) &&
    grep -q accelThreshold <<<"$page" && grep -q verifyDelivery <<<"$page"
}
nothing_started() {
  ! ls /etc/systemd/user/*.wants/pitcher.service 2>/dev/null && [ -z "$(running_installed)" ]
}
bash_completion() {
  bash -c 'source /usr/share/bash-completion/completions/pitcher || exit 1
    complete -p pitcher | grep -q " -F _pitcher " || exit 1
    COMP_WORDS=(pitcher sta); COMP_CWORD=1; _pitcher pitcher sta pitcher
    echo "pitcher sta<TAB>: ${COMPREPLY[*]}"
    [[ " ${COMPREPLY[*]} " == *" start "* && " ${COMPREPLY[*]} " == *" status "* ]]'
}
check "$PITCHER --version" version_ok
check "the binary is stripped (no debug info, no symbol table)" stripped
check "man -w pitcher" man -w pitcher
check "man -w pitcher-options" man -w pitcher-options
check "man -w pitcher-start (one page per verb)" man -w pitcher-start
check "man pitcher-options shows the keywords" options_page
check "the user unit runs /usr/bin/pitcher" \
  grep -qx 'ExecStart=/usr/bin/pitcher supervise' /usr/lib/systemd/user/pitcher.service
check "nothing enabled or started by the install" nothing_started
check "bash completion: sourcing it defines pitcher's, which completes verbs" bash_completion
check "zsh and fish completions in place" \
  test -s /usr/share/zsh/vendor-completions/_pitcher -a -s /usr/share/fish/vendor_completions.d/pitcher.fish
if command -v zsh >/dev/null; then
  check "zsh reads its completion" zsh -n /usr/share/zsh/vendor-completions/_pitcher
fi
if command -v fish >/dev/null; then
  check "fish reads its completion" fish --no-execute /usr/share/fish/vendor_completions.d/pitcher.fish
fi

say "the installed pitcher demo --once"
mkdir -p "$work/demo/home"
demo() {
  (cd "$work/demo" && as_user "$work/demo/home" timeout 120 $PITCHER demo --once) &&
    test -f "$work/demo/pitcher-demo/dest/hello.txt" &&
    test -f "$work/demo/pitcher-demo/dest/reports/2026/summary.csv" &&
    test "$(stat -c %s "$work/demo/pitcher-demo/dest/reports/data.bin")" = 100000
}
check "pitcher demo --once (in a temp dir) delivers its samples" demo

# ---------------------------------------------------------------- upgrade
say "upgrading with configs and state in place"
H=$work/user
hot=$work/user-hot
dest=$work/user-dest
mkdir -p "$H/.config/pitcher/watch" "$H/.config/pitcher/sender" "$hot" "$dest"
printf '%s\n' "post_broker local:" "post_exchange xs_upgrade" "post_baseUrl file:$hot" \
  "path $hot" "nodupe_ttl on" 'reject .*\.tmp$' "accept .*" >"$H/.config/pitcher/watch/hot.conf"
printf '%s\n' "broker local:" "exchange xs_upgrade" "sendTo file:" "directory $dest" \
  "inflight .tmp" "nodupe_ttl on" 'reject .*\.tmp$' "accept .*" >"$H/.config/pitcher/sender/hot.conf"
pu() { as_user "$H" $PITCHER "$@"; }
arrives() { # FILE: waits up to 60 s for it at the destination
  for _ in $(seq 120); do [ -f "$dest/$1" ] && return 0; sleep 0.5; done
  echo "$1 did not arrive in $dest" >&2
  return 1
}
stop_user() { # pitcher stop, then wait for the supervisor to be gone
  local pid
  pu stop || return 1
  pid=$(cat "$H/.cache/pitcher/supervisor.pid" 2>/dev/null) || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  echo "the supervisor ($pid) is still running" >&2
  return 1
}
snapshot() { # every config and state file, with its checksum
  (cd "$H" && find .config/pitcher .cache/pitcher -type f -print0 | sort -z | xargs -0 -r sha256sum) || true
}
deliver() { pu start && echo "$1" >"$hot/$1.txt" && arrives "$1.txt"; }
upgrade() { dpkg_i "$deb2" && [ "$(dpkg-query -W -f='${Version}' pitcher)" = "$version-2" ]; }
listed() { local l; l=$(pu list) && grep -q 'sender/hot' <<<"$l" && grep -q 'watch/hot' <<<"$l"; }
same_inode() { sleep 2; [ "$(stat -c %i "$dest/one.txt")" = "$(cat "$work/one.inode")" ]; }
check "before: the installed pitcher delivers (pitcher start)" deliver one
check "before: pitcher stop" stop_user
snapshot >"$work/before"
stat -c %i "$dest/one.txt" >"$work/one.inode" 2>/dev/null || true
check "dpkg -i of the next revision upgrades it" upgrade
snapshot >"$work/after"
check "configs and state are as they were ($(wc -l <"$work/before") files)" diff "$work/before" "$work/after"
check "after: pitcher list shows the configs" listed
check "after: the upgraded pitcher delivers a new file" deliver two
check "after: what was delivered before is not sent again (state kept)" same_inode
check "after: pitcher stop" stop_user

# ----------------------------------------------------------------- remove
say "removing it: dpkg --purge"
check "dpkg --purge removes it" dpkg --purge pitcher
installed=0
nothing_left() {
  local p bad=0
  while IFS= read -r p; do
    [ -e "$p" ] || [ -L "$p" ] || continue
    # A directory may stay when another package owns it too.
    if [ -d "$p" ] && [ ! -L "$p" ] && dpkg-query -S "$p" >/dev/null 2>&1; then continue; fi
    echo "left behind: $p"
    bad=1
  done <"$work/files"
  echo "$(wc -l <"$work/files") paths checked"
  [ -s "$work/files" ] && [ "$bad" = 0 ]
}
forgotten() { ! dpkg-query -W -f='${Status}' pitcher 2>/dev/null | grep -Eq 'installed|config-files'; }
check "nothing the package installed is left behind" nothing_left
check "dpkg no longer knows the package" forgotten
check "the user's configs and state stay" test -f "$H/.config/pitcher/sender/hot.conf" -a -d "$H/.cache/pitcher"

# --------------------------------------------------------- cargo install
say "cargo install --locked --path . (into a throwaway root)"
cargo_install() {
  cargo install --locked --path . --root "$work/cargo" --quiet &&
    [ "$("$work/cargo/bin/pitcher" --version)" = "pitcher $version" ]
}
check "cargo install --locked --path . installs a working pitcher" cargo_install


echo "deb-test: $passed checks passed, $failed failed"
[ "$failed" = 0 ]
