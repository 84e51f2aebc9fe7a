#!/usr/bin/env bash
# A throw-away sshd on loopback for tests/test_launch.py, so 127.0.0.1 and 127.0.0.2 act as two machines.
#
#   bash tests/sshd_fixture.sh install         # apt-get openssh-server and rsync when missing (root; CI)
#   bash tests/sshd_fixture.sh start DIR PORT  # keys, configs and an sshd on PORT, all in the empty DIR
#   bash tests/sshd_fixture.sh stop DIR
#
# The sshd lets only the current user in, with the key made in DIR. After `start`, DIR/bin/ssh is an ssh
# that uses that key and accepts the throw-away host key: put DIR/bin first on PATH (launch.py and rsync
# call `ssh`).
set -euo pipefail

# Exits non-zero, saying what is missing, unless sshd, ssh, ssh-keygen and rsync are all there afterwards.
install() {
  local missing=()
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  { command -v ssh && command -v ssh-keygen; } >/dev/null || missing+=(openssh-client)
  command -v rsync >/dev/null || missing+=(rsync)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "sshd_fixture.sh: ${missing[*]} missing, and installing them needs root" >&2
      return 1
    fi
    if ! { apt-get update -qq &&
           DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
    then
      echo "sshd_fixture.sh: apt-get could not install ${missing[*]}" >&2
      return 1
    fi
  fi
  local tool
  for tool in /usr/sbin/sshd ssh ssh-keygen rsync; do
    if ! command -v "$tool" >/dev/null; then
      echo "sshd_fixture.sh: $tool is still missing after installing ${missing[*]}" >&2
      return 1
    fi
  done
}

start() {
  local dir port user real_ssh
  dir=$(cd "$1" && pwd)
  port=$2
  user=$(id -un)
  real_ssh=$(command -v ssh)
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key"
  cp "$dir/client_key.pub" "$dir/authorized_keys"
  cat >"$dir/sshd_config" <<EOF
ListenAddress 127.0.0.1:$port
ListenAddress 127.0.0.2:$port
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
AllowUsers $user
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
EOF
  cat >"$dir/ssh_config" <<EOF
Host *
  User $user
  IdentityFile $dir/client_key
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
EOF
  mkdir -p "$dir/bin"
  printf '#!/bin/sh\nexec %q -F %q "$@"\n' "$real_ssh" "$dir/ssh_config" >"$dir/bin/ssh"
  chmod +x "$dir/bin/ssh"
  if [ "$(id -u)" = 0 ]; then mkdir -p /run/sshd; fi  # sshd's privilege separation directory
  /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
  for _ in $(seq 50); do
    if "$dir/bin/ssh" -o BatchMode=yes -p "$port" 127.0.0.2 true 2>/dev/null; then return; fi
    sleep 0.1
  done
  echo "sshd on port $port does not let $user in; its log says: $(tail -n 1 "$dir/sshd.log")" >&2
  return 1
}

stop() {
  if [ -f "$1/sshd.pid" ]; then kill "$(cat "$1/sshd.pid")" 2>/dev/null || true; fi
}

case "${1:-}" in
  install) install ;;
  start) start "$2" "$3" ;;
  stop) stop "$2" ;;
  *) echo "usage: $0 install | start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
