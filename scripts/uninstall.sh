#!/usr/bin/env bash
# Removes what scripts/install.sh installed for the uemlink connector (default) or the cloud relay
# (--cloud): the unit (stopped and disabled first when systemd runs) and the program files.
#
# Config, state (the connector's paired identity, the relay's database) and logs are kept, so that a
# reinstall picks up where it left off; --purge removes them and the system user and group too.
# The program files are shared by the connector and the cloud: they stay while the other one's unit
# is still installed. Running it again when there is nothing left to remove is fine.
# DESTDIR/PREFIX mean what they mean for install.sh.
set -euo pipefail
umask 022

# userdel & co. live in sbin, which `su` (without -) and some sudo setups leave out of PATH.
PATH="${PATH}:/usr/sbin:/sbin"

readonly DEFAULT_PREFIX=/opt/uemlink
prog=${0##*/}

usage() {
  cat <<EOF
Usage: $prog [--cloud] [--purge] [--prefix DIR] [--destdir DIR]

Removes the uemlink connector (default) or cloud relay (--cloud) installed by install.sh.
Config, state and logs are kept unless --purge.

Options:
  --connector      remove the connector (default)
  --cloud          remove the cloud relay
  --purge          also remove the config, state and log directories and the system user and group
  --prefix DIR     where the program was installed (default: \$PREFIX, else read from the installed
                   unit's ExecStart=, else $DEFAULT_PREFIX)
  --destdir DIR    act on a staging root (default: \$DESTDIR); systemctl is not run
  -h, --help       this text
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
say() { printf '%s\n' "$*"; }

# --- options ---------------------------------------------------------------------------------------
component=connector
purge=0
prefix=${PREFIX:-}
destdir=${DESTDIR:-}
need_arg() { [ "$2" -ge 2 ] || usage_error "$1 needs a value"; }
while [ "$#" -gt 0 ]; do
  case "$1" in
    --connector) component=connector ;;
    --cloud) component=cloud ;;
    --purge) purge=1 ;;
    --prefix) need_arg "$1" "$#"; prefix=$2; shift ;;
    --prefix=*) prefix=${1#*=} ;;
    --destdir) need_arg "$1" "$#"; destdir=$2; shift ;;
    --destdir=*) destdir=${1#*=} ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
  shift
done

# Same names as install.sh and the units.
case "$component" in
  connector) svc=uemlink unit=uemlink-connector.service other_unit=uemlink-cloud.service description="uemlink connector" ;;
  cloud) svc=uemlink-cloud unit=uemlink-cloud.service other_unit=uemlink-connector.service description="uemlink cloud relay" ;;
esac

# --- checks ----------------------------------------------------------------------------------------
if [ "$(id -u)" -ne 0 ]; then
  die "must run as root (it removes a systemd unit and files owned by root${destdir:+ and $svc})"
fi
if [ -n "$destdir" ]; then
  [ -d "$destdir" ] || die "DESTDIR $destdir does not exist"
  destdir=$(cd "$destdir" && pwd -P)
  [ "$destdir" != / ] || die "DESTDIR=/ : leave DESTDIR empty to uninstall for real"
fi
unit_dir=$destdir/etc/systemd/system
unit_file=$unit_dir/$unit

# Where the program is: what the installed unit runs, unless told otherwise (install.sh rewrites
# ExecStart= for a non-default PREFIX, so this finds it without the admin having to remember).
if [ -z "$prefix" ]; then
  prefix=$DEFAULT_PREFIX
  if [ -f "$unit_file" ]; then
    exec_start=$(sed -n 's#^ExecStart=\(/[^ ]*\)/bin/uemlink .*#\1#p' "$unit_file" | head -n 1)
    [ -z "$exec_start" ] || prefix=$exec_start
  fi
fi
prefix=${prefix%/}
case "$prefix" in
  /?*) ;;
  *) usage_error "--prefix must be an absolute path other than /, not \"${prefix:-/}\"" ;;
esac

systemd_running=0
if [ -z "$destdir" ] && [ -d /run/systemd/system ]; then
  systemd_running=1
fi

say "Removing the $description from $prefix${destdir:+ under DESTDIR $destdir}"

# --- unit ------------------------------------------------------------------------------------------
if [ -f "$unit_file" ]; then
  if [ "$systemd_running" -eq 1 ]; then
    # Stop (drains in-flight requests, see the unit's TimeoutStopSec=) before the program goes away.
    systemctl disable --now --quiet "$unit"
    say "  stopped and disabled $unit"
  fi
  rm -f -- "$unit_file"
  say "  removed   /etc/systemd/system/$unit"
fi
# `systemctl enable` run by hand where systemd was not running leaves this link; it would dangle.
wants_link=$unit_dir/multi-user.target.wants/$unit
if [ -L "$wants_link" ]; then
  rm -f -- "$wants_link"
  say "  removed   /etc/systemd/system/multi-user.target.wants/$unit"
fi
if [ "$purge" -eq 1 ] && [ -d "$unit_file.d" ]; then
  # Drop-ins (systemctl edit) are the admin's configuration: only --purge removes them.
  rm -rf -- "$unit_file.d"
  say "  removed   /etc/systemd/system/$unit.d"
fi
if [ "$systemd_running" -eq 1 ]; then
  systemctl daemon-reload
  systemctl reset-failed "$unit" 2>/dev/null || true # only fails when there is nothing to reset
fi

# --- program files ---------------------------------------------------------------------------------
if [ -f "$unit_dir/$other_unit" ]; then
  say "  kept      $prefix (${other_unit%.service} is still installed and uses it)"
else
  for p in "$prefix/bin/uemlink" "$prefix/lib/uemlink"; do
    if [ -e "$destdir$p" ] || [ -L "$destdir$p" ]; then
      rm -rf -- "$destdir$p"
      say "  removed   $p"
    fi
  done
  # Leftovers of an interrupted install.sh (its staging copies), then the directories if now empty.
  if [ -d "$destdir$prefix/lib" ]; then
    find "$destdir$prefix/lib" -mindepth 1 -maxdepth 1 -name '.uemlink.*' -exec rm -rf -- {} +
  fi
  # Only a prefix of uemlink's own (/opt/uemlink, /srv/uemlink): under a shared one (/usr/local)
  # bin/ and lib/ are the system's, empty or not, and were removed with --prefix /usr/local.
  if [ "${prefix##*/}" = uemlink ]; then
    for d in "$prefix/bin" "$prefix/lib" "$prefix"; do
      [ ! -d "$destdir$d" ] || rmdir --ignore-fail-on-non-empty -- "$destdir$d"
    done
  fi
fi

# --- config, state, logs, user ---------------------------------------------------------------------
if [ "$purge" -eq 0 ]; then
  say "  kept      /etc/$svc, /var/lib/$svc, /var/log/$svc and user $svc (--purge removes them)"
  exit 0
fi

for d in "/etc/$svc" "/var/lib/$svc" "/var/log/$svc"; do
  if [ -e "$destdir$d" ]; then
    rm -rf -- "$destdir$d"
    say "  removed   $d"
  fi
done

# The user before the group: groupdel refuses to remove a user's primary group.
# userdel/groupdel act on DESTDIR's etc/passwd and etc/group with --prefix, as install.sh's useradd.
prefix_args=()
[ -z "$destdir" ] || prefix_args=(--prefix "$destdir")
has_entry() { # has_entry passwd|group NAME
  if [ -n "$destdir" ]; then
    [ -f "$destdir/etc/$1" ] && grep -q "^$2:" "$destdir/etc/$1"
  else
    getent "$1" "$2" >/dev/null
  fi
}
if has_entry passwd "$svc"; then
  userdel "${prefix_args[@]}" "$svc"
  say "  removed   user $svc"
fi
if has_entry group "$svc"; then
  groupdel "${prefix_args[@]}" "$svc"
  say "  removed   group $svc"
fi
