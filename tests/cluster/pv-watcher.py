"""Makes every volume directory the hostpath provisioner creates world-writable.

The controller-manager's hostpath provisioner (behind StorageClass
`standard`) creates each volume's directory with mode 0750, owned by root,
and hostPath volumes get no fsGroup, so a pod running as non-root could not
write to its own volume. This watches the provisioner's base directory with
inotify and opens each new directory up at once (as kind's local-path
provisioner does): the provisioner makes the directory before it creates the
PersistentVolume, so the change is made long before a pod can mount it.

Usage: python3 pv-watcher.py DIRECTORY
"""

import ctypes
import os
import struct
import sys

IN_CREATE = 0x100
IN_MOVED_TO = 0x80
IN_ISDIR = 0x40000000
IN_CLOEXEC = 0o2000000
EVENT = struct.Struct("iIII")


def open_up(path: str) -> None:
    try:
        os.chmod(path, 0o777)
    except FileNotFoundError:
        pass  # already deleted again


def main() -> None:
    base = sys.argv[1]
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(IN_CLOEXEC)
    if fd < 0:
        sys.exit(f"pv-watcher: inotify_init1: {os.strerror(ctypes.get_errno())}")
    if libc.inotify_add_watch(fd, base.encode(), IN_CREATE | IN_MOVED_TO) < 0:
        sys.exit(f"pv-watcher: watching {base}: {os.strerror(ctypes.get_errno())}")
    # Directories made before the watch began.
    for entry in os.scandir(base):
        if entry.is_dir(follow_symlinks=False):
            open_up(entry.path)
    print(f"pv-watcher: watching {base}", flush=True)
    while True:
        buf = os.read(fd, 65536)
        offset = 0
        while offset < len(buf):
            _wd, mask, _cookie, length = EVENT.unpack_from(buf, offset)
            offset += EVENT.size
            name = buf[offset : offset + length].rstrip(b"\0").decode()
            offset += length
            if mask & IN_ISDIR:
                open_up(os.path.join(base, name))


if __name__ == "__main__":
    main()
