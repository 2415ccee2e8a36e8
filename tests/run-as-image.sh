#!/bin/sh
# Runs a command the way a container runtime runs deploy/Dockerfile's image
# with `--read-only`, on a machine that has no container engine:
#
#   unshare --mount --pid --fork --kill-child \
#     sh tests/run-as-image.sh ROOT UID:GID WORKDIR [HOST:IMAGE:ro|rw ...] -- COMMAND...
#
# In its own mount and PID namespaces (nothing is mounted on the host), it
# makes ROOT (an empty directory) the root of a file system that holds
# Debian's /usr from the host, read-only, and a copy of its /etc (the host is
# the Debian release the image's runtime stage is built on), an empty
# /usr/local, /tmp, /run and /var, a /dev of the few devices a container
# gets, /proc and a read-only /sys. Each HOST:IMAGE:MODE bind-mounts a host file or directory
# at IMAGE (the binary at its place in the image, the volume, a secret);
# those marked rw are the only writable places. The root itself is then
# made read-only, and COMMAND runs in it as PID 1 of the namespace, from
# WORKDIR, as UID:GID with no supplementary groups, no capabilities (not
# even in the bounding set) and no_new_privs: a container with
# `--cap-drop ALL --security-opt no-new-privileges`. The environment is the
# caller's, unchanged. Used by tests/tests/image_like.rs; needs root.
set -eu

root=$1 user=$2 workdir=$3
shift 3

# Nothing done here may reach the host's mounts.
mount --make-rprivate /

mount -t tmpfs -o mode=0755,nosuid,nodev image-root "$root"
for dir in usr proc sys dev tmp run var; do
  mkdir "$root/$dir"
done
chmod 1777 "$root/tmp"
# Debian's merged /usr: /bin, /lib… are links into it.
for dir in bin sbin lib lib32 lib64 libx32; do
  if [ -L "/$dir" ]; then
    ln -s "$(readlink "/$dir")" "$root/$dir"
  elif [ -d "/$dir" ]; then
    mkdir "$root/$dir"
    mount --bind -o ro "/$dir" "$root/$dir"
  fi
done
mount --bind -o ro /usr "$root/usr"
# A copy, not a mount: the runtime mounts secrets into the image's /etc.
cp -a /etc "$root/etc"
# /usr/local of the image holds only what the mounts below put there.
mount -t tmpfs -o mode=0755,nosuid,nodev image-usr-local "$root/usr/local"
mount -t tmpfs -o mode=0755,nosuid image-dev "$root/dev"
for device in null zero full random urandom tty; do
  touch "$root/dev/$device"
  mount --bind "/dev/$device" "$root/dev/$device"
done
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount --bind -o ro /sys "$root/sys"

while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  spec=$1
  shift
  host=${spec%%:*} rest=${spec#*:}
  target=${rest%:*} mode=${rest##*:}
  if [ -d "$host" ]; then
    mkdir -p "$root$target"
  else
    mkdir -p "$root$(dirname "$target")"
    touch "$root$target"
  fi
  mount --bind "$host" "$root$target"
  case $mode in
    ro) mount -o remount,bind,ro "$root$target" ;;
    rw) ;;
    *) echo "run-as-image.sh: $spec: the mode must be ro or rw" >&2; exit 2 ;;
  esac
done
[ "${1:-}" = "--" ] || { echo "run-as-image.sh: no -- COMMAND" >&2; exit 2; }
shift
# WORKDIR exists in the image (its VOLUME, usually, mounted above).
mkdir -p "$root$workdir"

# The root, /usr/local and /dev become read-only; only rw mounts stay
# writable.
mount -o remount,ro "$root/usr/local"
mount -o remount,ro "$root/dev"
mount -o remount,ro "$root"

exec chroot "$root" /usr/bin/env --chdir="$workdir" \
  /usr/bin/setpriv --reuid="${user%%:*}" --regid="${user##*:}" --clear-groups \
  --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@"
