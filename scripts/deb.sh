#!/usr/bin/env bash
# Builds pitcher's Debian package: target/debian/pitcher_<version>-1_<arch>.deb
#
#   bash scripts/deb.sh [cargo-deb options, e.g. --deb-revision 2]
#
# What it holds (configured in Cargo.toml, [package.metadata.deb]): the
# release binary, stripped, as /usr/bin/pitcher; the systemd user unit
# (contrib/pitcher.service with ExecStart=/usr/bin/pitcher) as
# /usr/lib/systemd/user/pitcher.service; man pages pitcher(1),
# pitcher-<verb>(1) and pitcher-options(5), and bash, zsh and fish
# completions, all written by the binary itself (`pitcher generate`); a
# changelog and a copyright file. No maintainer scripts: installing it
# starts nothing.
#
# Installs cargo-deb (`cargo install cargo-deb --locked`) when missing.
# The release build is the slow part (minutes on 2 cores, cold); target/ is
# reused, so a second run takes seconds. Prints the .deb's path last.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*" >&2; }

if ! cargo deb --version >/dev/null 2>&1; then
  say "installing cargo-deb"
  cargo install cargo-deb --locked
fi

target=${CARGO_TARGET_DIR:-target}
assets=target/deb-assets # Cargo.toml's assets name this directory

say "building pitcher (release)"
cargo build --release --locked --bin pitcher
bin=$target/release/pitcher

say "writing man pages, completions and the unit into $assets"
rm -rf "$assets"
mkdir -p "$assets"
# The pages' date: the last commit's (reproducible), else today.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
"$bin" generate man "$assets/man" >/dev/null
"$bin" generate completions "$assets/completions" >/dev/null
# The unit as packaged: contrib/pitcher.service with the binary where the
# package puts it (and the default, HOME-relative directories).
{
  cat <<'UNIT'
# Installed by the pitcher package, enabled for nobody. To run pitcher's
# supervisor under systemd, as the user who owns the configs, either
#   systemctl --user enable --now pitcher   (this unit, default directories)
# or
#   pitcher systemd install   (a copy in ~/.config/systemd/user, which takes
#                              precedence, with your directories filled in)
#
UNIT
  sed -e 's|^ExecStart=.*pitcher supervise$|ExecStart=/usr/bin/pitcher supervise|' contrib/pitcher.service
} > "$assets/pitcher.service"
grep -qx 'ExecStart=/usr/bin/pitcher supervise' "$assets/pitcher.service" || {
  echo "contrib/pitcher.service: no ExecStart=… pitcher supervise line to point at /usr/bin/pitcher" >&2
  exit 1
}

say "packaging"
deb=$(cargo deb --no-build --locked "$@" | tail -n 1)
echo "$deb"
