#!/usr/bin/env bash
# Installs the uemlink connector (default) or the cloud relay (--cloud) as a hardened systemd service,
# from a checkout where `npm ci` has been run (so dist/ and node_modules/ exist).
#
# What it does, in this order (all checks first, then the step most likely to fail, so that a failure
# leaves the system as it was):
#   0. checks: root, node >= 20.19 (package.json "engines"), npm, a built checkout
#   1. program files: $PREFIX/lib/uemlink (package.json, package-lock.json, dist/src and production
#      node_modules only) and $PREFIX/bin/uemlink, a wrapper that runs it with the node found now.
#      They are staged next to the old copy and swapped in, so a failed install keeps the old one.
#   2. the system user and group (uemlink / uemlink-cloud): no login shell, no home
#   3. config, state and log directories with the owners and modes the unit expects
#   4. the example config, only if there is no config yet (an existing one is never touched)
#   5. the unit in /etc/systemd/system
#   6. systemctl daemon-reload + enable (not start: the config, and pairing, come first)
#
# Running it again changes nothing except refreshing the program files (that is how to upgrade).
# DESTDIR installs into a staging root (packaging, tests): users are added to $DESTDIR/etc/passwd and
# $DESTDIR/etc/group (`useradd --prefix`), ownership uses the ids found there, and systemctl is not run.
set -euo pipefail
umask 022

# useradd & co. live in sbin, which `su` (without -) and some sudo setups leave out of PATH.
PATH="${PATH}:/usr/sbin:/sbin"

readonly DEFAULT_PREFIX=/opt/uemlink
# package.json "engines": ">=20.19".
readonly NODE_MIN_MAJOR=20 NODE_MIN_MINOR=19
prog=${0##*/}

usage() {
  cat <<EOF
Usage: $prog [--cloud] [--prefix DIR] [--destdir DIR] [--node PATH] [--source DIR]

Installs the uemlink connector (default) or the cloud relay (--cloud) as a systemd service.
Run as root from a checkout where \`npm ci\` has been run.

Options:
  --connector      install the connector (default): user uemlink, /etc/uemlink, uemlink-connector.service
  --cloud          install the cloud relay: user uemlink-cloud, /etc/uemlink-cloud, uemlink-cloud.service
  --prefix DIR     where the program goes (default: \$PREFIX or $DEFAULT_PREFIX)
  --destdir DIR    install into a staging root (default: \$DESTDIR); users are added to
                   DIR/etc/passwd and DIR/etc/group, which must exist; systemctl is not run
  --node PATH      node binary the service runs (default: \$NODE or \`node\` on PATH); >= 20.19
  --source DIR     the built checkout (default: the one holding this script)
  -h, --help       this text

Config, state and logs are never overwritten; running it again only refreshes the program files.
EOF
}

die() {
  printf '%s: error: %s\n' "$prog" "$*" >&2
  exit 1
}
usage_error() {
  printf '%s: %s (see --help)\n' "$prog" "$*" >&2
  exit 2
}
warn() { printf '%s: warning: %s\n' "$prog" "$*" >&2; }
say() { printf '%s\n' "$*"; }

# Quotes a string for /bin/sh (the wrapper embeds the node path, which may contain anything).
sh_quote() {
  printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}

# --- options ---------------------------------------------------------------------------------------
component=connector
prefix=${PREFIX:-}
destdir=${DESTDIR:-}
node=${NODE:-}
src_dir=
need_arg() { [ "$2" -ge 2 ] || usage_error "$1 needs a value"; }
while [ "$#" -gt 0 ]; do
  case "$1" in
    --connector) component=connector ;;
    --cloud) component=cloud ;;
    --prefix) need_arg "$1" "$#"; prefix=$2; shift ;;
    --prefix=*) prefix=${1#*=} ;;
    --destdir) need_arg "$1" "$#"; destdir=$2; shift ;;
    --destdir=*) destdir=${1#*=} ;;
    --node) need_arg "$1" "$#"; node=$2; shift ;;
    --node=*) node=${1#*=} ;;
    --source) need_arg "$1" "$#"; src_dir=$2; shift ;;
    --source=*) src_dir=${1#*=} ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
  shift
done

# Names must match the unit files (User=, ConfigurationDirectory=, StateDirectory=, LogsDirectory=).
case "$component" in
  connector)
    svc=uemlink unit=uemlink-connector.service conf_name=connector.json
    example=config/connector.example.json description="uemlink connector"
    ;;
  cloud)
    svc=uemlink-cloud unit=uemlink-cloud.service conf_name=cloud.json
    example=config/cloud.example.json description="uemlink cloud relay"
    ;;
esac
conf_dir=/etc/$svc
state_dir=/var/lib/$svc
log_dir=/var/log/$svc
conf_file=$conf_dir/$conf_name

unit_dir=$destdir/etc/systemd/system
unit_file=$unit_dir/$unit

# An upgrade (a run with a unit already installed) goes where the first run put the program, with
# the node it chose, unless told otherwise: a plain re-run after `--prefix /srv/uemlink` installed a
# second copy in the default place, pointed the unit at it and orphaned the first.
if [ -z "$prefix" ]; then
  prefix=$DEFAULT_PREFIX
  if [ -f "$unit_file" ] && [ ! -L "$unit_file" ]; then
    installed_prefix=$(sed -n 's#^ExecStart=\(/[^ ]*\)/bin/uemlink .*#\1#p' "$unit_file" | head -n 1)
    if [ -n "$installed_prefix" ] && [ "$installed_prefix" != "$DEFAULT_PREFIX" ]; then
      prefix=$installed_prefix
      say "  upgrading the install in $prefix (the installed unit runs it; --prefix to move it)"
    fi
  fi
fi

# --- checks ----------------------------------------------------------------------------------------
# PREFIX ends up in the unit's ExecStart= (where %, spaces and quotes mean something) and in a sed
# expression: keep it to plain path characters.
prefix=${prefix%/}
case "$prefix" in
  /*) ;;
  *) usage_error "--prefix must be an absolute path, not \"$prefix\"" ;;
esac
if ! [[ "$prefix" =~ ^[A-Za-z0-9._/+-]+$ ]]; then
  usage_error "--prefix may only contain letters, digits and . _ / + -: \"$prefix\""
fi

if [ "$(id -u)" -ne 0 ]; then
  if [ -n "$destdir" ]; then
    die "must run as root, even with DESTDIR: files are chowned to the service user and useradd --prefix needs root (fakeroot works for packaging)"
  fi
  die "must run as root (it creates the system user $svc, directories in /etc and /var, and a systemd unit); try: sudo $0"
fi

if [ -n "$destdir" ]; then
  [ -d "$destdir" ] || die "DESTDIR $destdir does not exist"
  destdir=$(cd "$destdir" && pwd -P)
  # "/" as DESTDIR would be a real install with the DESTDIR code paths: refuse the confusion.
  [ "$destdir" != / ] || die "DESTDIR=/ : leave DESTDIR empty for a real install"
  for f in passwd group; do
    [ -f "$destdir/etc/$f" ] || die "$destdir/etc/$f does not exist: under DESTDIR the user $svc is added to DESTDIR's own etc/passwd and etc/group (a line for root is enough to start with)"
  done
fi

if [ -z "$src_dir" ]; then
  src_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
fi
[ -d "$src_dir" ] || die "source checkout $src_dir does not exist"
src_dir=$(cd "$src_dir" && pwd -P)
for f in package.json package-lock.json; do
  [ -f "$src_dir/$f" ] || die "$src_dir is not a uemlink checkout ($f missing)"
done
[ -f "$src_dir/dist/src/cli/main.js" ] ||
  die "$src_dir/dist/src/cli/main.js not found: build first with \`npm ci\` (or \`npm run build\`) in $src_dir"
[ -d "$src_dir/node_modules" ] || die "$src_dir/node_modules not found: run \`npm ci\` in $src_dir first"
[ -f "$src_dir/systemd/$unit" ] || die "$src_dir/systemd/$unit not found"
[ -f "$src_dir/$example" ] || die "$src_dir/$example not found"
# The directories created below must be the ones the unit uses.
grep -qx "User=$svc" "$src_dir/systemd/$unit" || die "systemd/$unit does not say User=$svc: this script and the unit disagree"

# The service runs the node found now, by absolute path (systemd does not search PATH the way a login
# shell does, and a later `nvm use` must not change what the service runs).
if [ -z "$node" ] && [ -f "$destdir$prefix/bin/uemlink" ]; then
  # The node the installed wrapper runs (written by this script: exec 'NODE' FLAGS 'MAIN' "$@").
  installed_node=$(sed -n "s#^exec '\\([^']*\\)' .*#\\1#p" "$destdir$prefix/bin/uemlink" | head -n 1)
  if [ -n "$installed_node" ] && [ -x "$installed_node" ]; then
    node=$installed_node
  elif [ -n "$installed_node" ]; then
    warn "the installed wrapper ran $installed_node, which is gone: using the node on PATH (--node to choose)"
  fi
fi
if [ -z "$node" ]; then
  node=$(command -v node || true)
  [ -n "$node" ] || die "node not found on PATH: install Node.js >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR or pass --node PATH"
fi
case "$node" in
  /*) ;;
  */*) node="$(cd "$(dirname "$node")" && pwd -P)/${node##*/}" ;;
  *) node=$(command -v "$node" || true) ;;
esac
if [ -z "$node" ] || [ ! -f "$node" ] || [ ! -x "$node" ]; then
  die "node binary ${node:-(none)} is missing or not executable: pass --node PATH"
fi
node_version=$("$node" -p 'process.versions.node' 2>/dev/null) || die "$node does not run (tried \`$node -p process.versions.node\`)"
IFS=. read -r node_major node_minor _ <<<"$node_version"
if ! [[ "$node_major" =~ ^[0-9]+$ && "$node_minor" =~ ^[0-9]+$ ]] ||
  [ "$node_major" -lt "$NODE_MIN_MAJOR" ] ||
  { [ "$node_major" -eq "$NODE_MIN_MAJOR" ] && [ "$node_minor" -lt "$NODE_MIN_MINOR" ]; }; then
  die "$node is Node.js $node_version; uemlink needs >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR (pass --node PATH for another one)"
fi
# The unit sets ProtectHome=yes: the service cannot see /root, /home or /run/user.
case "$node" in
  /root/* | /home/* | /run/user/*)
    warn "$node is under a home directory, which the unit hides (ProtectHome=yes): the service will not start; install Node.js system-wide or pass --node" ;;
esac
case "$prefix" in
  /root/* | /home/* | /run/user/*) warn "PREFIX $prefix is under a home directory, which the unit hides (ProtectHome=yes)" ;;
esac

# npm only prunes the copy of node_modules (offline); prefer the one that came with this node.
npm=$(dirname "$node")/npm
[ -x "$npm" ] || npm=$(command -v npm || true)
[ -n "$npm" ] || die "npm not found (it comes with Node.js; it is used offline to drop devDependencies)"

for tool in useradd groupadd; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (Debian package passwd)"
done

# --- helpers ---------------------------------------------------------------------------------------
# Numeric ids: under DESTDIR the user exists only in DESTDIR/etc/passwd, not for the host's chown.
db_id() { # db_id passwd|group NAME -> id, empty if absent
  if [ -n "$destdir" ]; then
    awk -F: -v n="$2" '$1 == n { print $3; exit }' "$destdir/etc/$1"
  else
    getent "$1" "$2" | cut -d: -f3 || true
  fi
}
# useradd/groupadd/userdel act on DESTDIR's files with --prefix (shadow >= 4.9; Debian 12 has 4.13).
prefix_args=()
[ -z "$destdir" ] || prefix_args=(--prefix "$destdir")

# ensure_dir PATH MODE UID GID: creates or fixes one directory (not its contents).
ensure_dir() {
  local d=$destdir$1
  if [ -d "$d" ]; then
    local now
    now=$(stat -c '%a %u %g' "$d")
    if [ "$now" != "$(printf '%o %s %s' "$((8#$2))" "$3" "$4")" ]; then
      say "  fixed     $1 (was mode $now, now $2 $3:$4)"
    fi
  else
    mkdir -p "$d"
    say "  created   $1"
  fi
  chown "+$3:+$4" "$d"
  chmod "$2" "$d"
}

stage='' old='' npm_cache='' tmp_file=''
cleanup() {
  # Whatever an interrupted run left behind; the installed copy is only replaced by a rename.
  local p
  for p in "$stage" "$old" "$npm_cache" "$tmp_file"; do
    [ -z "$p" ] || rm -rf -- "$p"
  done
}
trap cleanup EXIT

say "Installing the $description into $prefix${destdir:+ under DESTDIR $destdir}"

# --- 1. program files ------------------------------------------------------------------------------
lib_parent=$destdir$prefix/lib
lib_dir=$lib_parent/uemlink
bin_dir=$destdir$prefix/bin
mkdir -p "$lib_parent" "$bin_dir"
stage=$(mktemp -d "$lib_parent/.uemlink.new.XXXXXX")
say "  copying   program files from $src_dir"
cp -- "$src_dir/package.json" "$src_dir/package-lock.json" "$stage/"
mkdir "$stage/dist"
cp -R -- "$src_dir/dist/src" "$stage/dist/src"
cp -R -- "$src_dir/node_modules" "$stage/node_modules"

# Production dependencies only, without the network: prune removes what the lock file marks as dev.
# The user's ~/.npmrc is ignored and the cache is a throw-away one, so the result does not depend on
# who runs this; --ignore-scripts because nothing is being built.
npm_cache=$(mktemp -d "${TMPDIR:-/tmp}/uemlink-npm-cache.XXXXXX")
if ! (cd "$stage" && npm_config_userconfig=/dev/null npm_config_cache="$npm_cache" npm_config_update_notifier=false \
  "$npm" prune --omit=dev --offline --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null); then
  die "\`npm prune --omit=dev --offline\` failed in the staging copy; nothing was changed"
fi
# prune leaves empty scope directories (node_modules/@types, ...) behind.
find "$stage/node_modules" -mindepth 1 -maxdepth 1 -type d -name '@*' -empty -delete

# Node flags V8 reads only at start, for every run of the program (the wrapper below), kept equal to
# src/common/v8-tuning.ts NODE_FLAGS by a test.
node_flags='--initial-old-space-size=128'

# Smoke test before anything is replaced: --version imports every module, so a dependency that was
# pruned but is needed fails here rather than in the service; and a node that refuses the flags.
# shellcheck disable=SC2086 # node_flags is a list of words
version=$("$node" $node_flags "$stage/dist/src/cli/main.js" --version 2>&1) ||
  die "the staged copy does not run (\`node $node_flags dist/src/cli/main.js --version\`): $version; nothing was changed"
# The cloud's inventory database is a native module, loaded at its first use, not by --version: one
# built by another node (npm ci under nvm's node, then --node /usr/bin/node) would install fine and
# fail when the service first opens it.
if [ "$component" = cloud ]; then
  sqlite=$(cd "$stage" && "$node" -e "new (require('better-sqlite3'))(':memory:').close()" 2>&1) ||
    die "the cloud's SQLite module (better-sqlite3) does not load with $node: $(printf '%s' "$sqlite" | head -n 3); run \`npm rebuild better-sqlite3\` in the checkout with this node; nothing was changed"
fi

# Program files belong to root and are read-only for everyone else (the checkout may belong to
# another user, and the service must never be able to change its own code).
chown -R 0:0 "$stage"
chmod -R a+rX,go-w "$stage"

if [ -e "$lib_dir" ]; then
  old=$lib_parent/.uemlink.old.$$
  mv -- "$lib_dir" "$old"
fi
mv -- "$stage" "$lib_dir"
stage=
if [ -n "$old" ]; then
  rm -rf -- "$old"
  old=
fi
say "  installed $prefix/lib/uemlink (uemlink $version, production dependencies only)"

# The wrapper points at the final location ($prefix, not $destdir$prefix): it must work where the
# unit runs it. Written aside and renamed, so a concurrent `uemlink` call never sees half a file.
tmp_file=$(mktemp "$bin_dir/.uemlink.XXXXXX")
{
  printf '#!/bin/sh\n'
  printf '# Generated by uemlink scripts/install.sh: runs uemlink with the node binary found at install time.\n'
  printf 'exec %s %s %s "$@"\n' "$(sh_quote "$node")" "$node_flags" "$(sh_quote "$prefix/lib/uemlink/dist/src/cli/main.js")"
} >"$tmp_file"
chown 0:0 "$tmp_file"
chmod 0755 "$tmp_file"
mv -- "$tmp_file" "$bin_dir/uemlink"
tmp_file=
say "  installed $prefix/bin/uemlink (runs $node)"

# --- 2. user and group -----------------------------------------------------------------------------
if [ -z "$(db_id group "$svc")" ]; then
  groupadd "${prefix_args[@]}" --system "$svc"
  say "  created   group $svc"
fi
if [ -z "$(db_id passwd "$svc")" ]; then
  nologin=/usr/sbin/nologin
  [ -x "$nologin" ] || nologin=/sbin/nologin
  [ -x "$nologin" ] || nologin=/bin/false
  # No home (/nonexistent is the Debian convention for system users) and no login shell.
  useradd "${prefix_args[@]}" --system --gid "$svc" --no-create-home --home-dir /nonexistent \
    --shell "$nologin" --comment "$description" "$svc"
  say "  created   user $svc"
fi
uid=$(db_id passwd "$svc")
gid=$(db_id group "$svc")
if [ -z "$uid" ] || [ -z "$gid" ]; then
  die "user or group $svc could not be created"
fi

# --- 3. directories --------------------------------------------------------------------------------
# Same modes as the unit's *DirectoryMode=. The config dir stays root's: the service reads it (group)
# but cannot change its own configuration.
ensure_dir "$conf_dir" 0750 0 "$gid"
ensure_dir "$state_dir" 0700 "$uid" "$gid"
ensure_dir "$log_dir" 0750 "$uid" "$gid"

# --- 4. config -------------------------------------------------------------------------------------
if [ -e "$destdir$conf_file" ] || [ -L "$destdir$conf_file" ]; then
  say "  kept      $conf_file (exists; not overwritten)"
else
  tmp_file=$(mktemp "$destdir$conf_dir/.$conf_name.XXXXXX")
  cp -- "$src_dir/$example" "$tmp_file"
  chown "0:+$gid" "$tmp_file"
  chmod 0640 "$tmp_file"
  mv -- "$tmp_file" "$destdir$conf_file"
  tmp_file=
  say "  created   $conf_file (from $example: edit it)"
fi

# --- 5. unit ---------------------------------------------------------------------------------------
unit_dir=$destdir/etc/systemd/system # destdir is absolute by now
unit_file=$unit_dir/$unit
mkdir -p "$unit_dir"
# What the admin decided about the unit stays decided: a masked unit (a link to /dev/null) is not
# replaced, and only a first install enables it (an upgrade re-enabled a connector taken out of
# service on purpose, and two connectors with one identity then take each other's tunnel).
masked=0
first_install=1
if [ -L "$unit_file" ] && [ "$(readlink -- "$unit_file")" = /dev/null ]; then
  masked=1
  first_install=0
elif [ -e "$unit_file" ]; then
  first_install=0
fi
if [ "$masked" -eq 1 ]; then
  say "  kept      /etc/systemd/system/$unit masked (systemctl unmask ${unit%.service}, then run this again to install the unit)"
else
  tmp_file=$(mktemp "$unit_dir/.$unit.XXXXXX")
  # The unit runs $DEFAULT_PREFIX/bin/uemlink; point it at the wrapper for any other PREFIX.
  sed "s#^ExecStart=$DEFAULT_PREFIX/bin/uemlink #ExecStart=$prefix/bin/uemlink #" "$src_dir/systemd/$unit" >"$tmp_file"
  grep -q "^ExecStart=$prefix/bin/uemlink " "$tmp_file" || die "systemd/$unit: ExecStart= does not start with $DEFAULT_PREFIX/bin/uemlink"
  if [ -f "$unit_file" ] && cmp -s "$tmp_file" "$unit_file"; then
    rm -f -- "$tmp_file"
    say "  unchanged /etc/systemd/system/$unit"
  else
    chown 0:0 "$tmp_file"
    chmod 0644 "$tmp_file"
    mv -- "$tmp_file" "$unit_file"
    say "  installed /etc/systemd/system/$unit (local changes belong in: systemctl edit ${unit%.service})"
  fi
  tmp_file=
fi

# --- 6. systemd ------------------------------------------------------------------------------------
if [ -n "$destdir" ]; then
  if [ "$first_install" -eq 1 ]; then
    say "  DESTDIR:  systemctl not run; on the target: systemctl daemon-reload && systemctl enable $unit"
  else
    say "  DESTDIR:  systemctl not run; on the target: systemctl daemon-reload"
  fi
elif [ -d /run/systemd/system ]; then
  # Always: the unit file may be unchanged but never loaded (installed while systemd was not running).
  systemctl daemon-reload
  if [ "$first_install" -eq 1 ]; then
    # Enabled (starts at boot), not started: it needs a config and, for the connector, pairing first.
    systemctl enable --quiet "$unit"
    say "  enabled   $unit (not started)"
  else
    say "  kept      $unit $(systemctl is-enabled "$unit" 2>/dev/null || true) (as it was; systemctl enable/disable to change it)"
  fi
  # The program files are shared: the other component, if installed, runs the previous version too.
  for u in uemlink-connector.service uemlink-cloud.service; do
    if systemctl is-active --quiet "$u"; then
      say "  note:     $u is running the previous version: systemctl restart ${u%.service}"
    fi
  done
else
  say "  note:     systemd is not running here; later: systemctl daemon-reload && systemctl enable $unit"
fi

# --- next steps ------------------------------------------------------------------------------------
say ""
say "Next steps:"
if [ "$component" = connector ]; then
  cat <<EOF
  1. Edit $conf_file: the UEM targets and their allow lists. Secrets (passwords, API keys) go in
     files next to it, owned by $svc with mode 0600.
  2. Pair the connector with a pairing token from the cloud, as the service user so that the
     identity it stores in $state_dir belongs to $svc (the token file must be readable by $svc):
       runuser -u $svc -- $prefix/bin/uemlink connector pair --config $conf_file --token-file FILE
  3. Start it:
       systemctl start ${unit%.service}
EOF
else
  cat <<EOF
  1. Edit $conf_file (publicUrl, listen, TLS). The files it names (admin token, TLS key) go in
     $conf_dir, owned by $svc with mode 0600.
  2. Start it:
       systemctl start ${unit%.service}
  3. Issue pairing tokens for connectors, as the service user (it writes the relay's state):
       runuser -u $svc -- $prefix/bin/uemlink cloud token create --config $conf_file --tenant TENANT > pairing.token
EOF
fi
