#!/usr/bin/env bash
# The peer admins use today instead of a connector: an OpenSSH reverse tunnel, all on loopback.
# Adapted from ../shared/bench/ssh-reverse-tunnel.sh for this harness:
#  - creates sshd's privilege separation directory (/run/sshd) when it is missing and we are root
#    (the shared script's sshd exits with "Missing privilege separation directory" on hosts where
#    the ssh service never ran, and the script still prints "ready");
#  - prints "ready" only once the forwarded port accepts connections (the harness checks too).
# A throwaway sshd listens on 127.0.0.1:SSH_PORT; `ssh -N -R` forwards FWD_PORT on the "cloud side"
# to the backend at 127.0.0.1:BACKEND_PORT. OpenSSH defaults (cipher, no compression) as an admin
# would run it. Runs in the foreground until killed (SIGTERM), then stops both and removes its keys.
#
# usage: ssh-reverse-tunnel.sh BACKEND_PORT FWD_PORT [SSH_PORT]
set -euo pipefail
backend=${1:?backend port}; fwd=${2:?forward port}; sshp=${3:-22022}
dir=$(mktemp -d)
cleanup() { [ -n "${sshpid:-}" ] && kill "$sshpid" 2>/dev/null; [ -n "${sshdpid:-}" ] && kill "$sshdpid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
trap 'exit 0' INT TERM
if [ ! -d /run/sshd ] && [ "$(id -u)" = 0 ]; then mkdir -p /run/sshd && chmod 0755 /run/sshd; fi
ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$dir/user_key"
cp "$dir/user_key.pub" "$dir/authorized_keys"
cat > "$dir/sshd_config" <<CFG
Port $sshp
ListenAddress 127.0.0.1
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PidFile $dir/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
AllowTcpForwarding yes
PermitRootLogin yes
CFG
/usr/sbin/sshd -D -e -f "$dir/sshd_config" 2>"$dir/sshd.log" & sshdpid=$!
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$sshp") 2>/dev/null && break; sleep 0.1; done
ssh -N -q -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ExitOnForwardFailure=yes \
  -i "$dir/user_key" -p "$sshp" -R "127.0.0.1:$fwd:127.0.0.1:$backend" "$(id -un)@127.0.0.1" & sshpid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$fwd") 2>/dev/null && break; sleep 0.1; done
echo "ssh -R ready: 127.0.0.1:$fwd -> 127.0.0.1:$backend (sshd pid $sshdpid, ssh pid $sshpid)"
wait "$sshpid"
