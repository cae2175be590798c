"""The demo's servers, started through the caller's ``spawn`` (which stops them later):
the SFTP server of the pod's files and the S3 server (moto) of its backups."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devtools import s3

# (name, argv, its whole environment) -> the started process; the caller stops it on exit.
Spawn = Callable[[str, list[str], dict[str, str]], "subprocess.Popen[bytes]"]


class DemoError(RuntimeError):
    """A demo step failed; the message says which and what to do."""


@dataclass
class S3Server:
    url: str  # http://127.0.0.1:PORT
    key_id: str
    secret: str
    restored: int  # objects put back from the folder that keeps the buckets
    mirror: s3.ServerMirror


def free_or(preferred: int) -> int:
    """``preferred`` when it is free on 127.0.0.1, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            # As a server binds: a port whose old connections linger in TIME_WAIT is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise DemoError("no free port on 127.0.0.1")


def start_sftp(
    spawn: Spawn, demo: Path, pod_files: Path, port: int, password: str
) -> tuple[int, str]:
    """Serve the pod folder; return (port, host key line)."""
    info = demo / "sftp.json"
    info.unlink(missing_ok=True)
    port = free_or(port)
    argv = [sys.executable, "-m", "devtools.sftp", "--root", str(pod_files)]
    argv += ["--info", str(info), "--host-key", str(demo / "sftp-host-key")]
    env = {**os.environ, "SFTP_PASSWORD": password}
    proc = spawn("demo-sftp", [*argv, "--port", str(port)], env)
    deadline = time.monotonic() + 30
    while not info.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise DemoError("the demo SFTP server did not start; see var/log/demo-sftp.log")
        time.sleep(0.1)
    data = json.loads(info.read_text())
    return int(data["port"]), str(data["host_key_line"])


def start_s3(spawn: Spawn, demo: Path, port: int, keep: bool, bucket: str) -> S3Server | None:
    """moto, checking signatures, with the kept buckets put back (``bucket`` itself only
    when ``keep``); None without moto. Objects are kept in ``demo``/s3/<bucket>/
    (``S3Server.mirror.sync()``)."""
    binary = s3.moto_binary()
    if binary is None:
        return None
    port = free_or(port)
    proc = spawn("demo-s3", s3.moto_argv(binary, port), s3.moto_env())
    url = f"http://127.0.0.1:{port}"
    if not keep:
        shutil.rmtree(demo / "s3" / bucket, ignore_errors=True)
    try:
        s3.wait_ready(url, alive=lambda: proc.poll() is None)
        key_id, secret = s3.enable_auth(url)
        mirror = s3.ServerMirror(url, demo / "s3", key_id, secret)
        restored = mirror.restore()
        mirror.ensure_bucket(bucket)
    except Exception as exc:  # moto or boto: the message and the log tell
        raise DemoError(f"the demo S3 server failed ({exc}); see var/log/demo-s3.log") from exc
    return S3Server(url=url, key_id=key_id, secret=secret, restored=restored, mirror=mirror)
