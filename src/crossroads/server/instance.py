"""One gateway per port and data directory: the lock a serving gateway holds on its data
directory, the check that nothing else listens on its port before workers bind it with
SO_REUSEPORT (which would let them listen beside another gateway's), and workers that die with
their supervisor."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import signal
import socket
import sys
from pathlib import Path

__all__ = ["LOCK_FILE", "AlreadyServingError", "check_port_free", "die_with_parent", "lock"]

log = logging.getLogger(__name__)

LOCK_FILE = "crossroads.lock"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class AlreadyServingError(Exception):
    """Another process holds the port or the data directory. The message says which."""


def lock(data_dir: Path) -> int:
    """Takes an exclusive lock on `data_dir/crossroads.lock` (created, with the directory, if
    missing) and returns its file descriptor, to keep open while serving: the kernel releases
    the lock when the last process holding it (the supervisor and its forked workers) exits,
    however it ends. Raises AlreadyServingError when another process holds it. The file holds
    the holder's pid, for people; nothing reads it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyServingError(
            f"another crossroads is already serving with data dir {data_dir} "
            f"(it holds {path}); stop it first"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def check_port_free(host: str, port: int) -> None:
    """Raises AlreadyServingError when a socket is bound to `port` on `host`. Bound without
    SO_REUSEPORT, so that another gateway's workers listening with it still make the bind
    fail. Port 0 (pick a free one) always passes."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise port_in_use(host, port) from None
            raise


def port_in_use(host: str, port: int) -> AlreadyServingError:
    return AlreadyServingError(
        f"another crossroads (or another program) is already serving on {host}:{port}; "
        "stop it first or choose another port"
    )


def die_with_parent(parent: int) -> None:
    """In a forked worker: asks the kernel to send it SIGTERM when its parent dies (Linux
    `prctl(PR_SET_PDEATHSIG)`), so the workers of a supervisor killed with SIGKILL shut down
    gracefully instead of serving on as orphans. If `parent` has already gone, sends itself
    SIGTERM at once. Does nothing on other systems."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
