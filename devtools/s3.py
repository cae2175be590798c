"""The demo's S3-compatible server (moto) and a folder that keeps its buckets across runs.

moto accepts any key unless told otherwise: ``enable_auth`` makes it check every request's
signature and the key's IAM policy, as a real provider does, so a wrong secret fails
(``SignatureDoesNotMatch``) in the demo too. Its key is moto's own, new on every start.

moto keeps buckets in memory only. ``ServerMirror`` copies every bucket's objects into a
folder (``sync``: new objects are downloaded, vanished ones deleted; one sub-folder per
bucket) and puts them into a fresh server on the next start (``restore``). restic's
objects never change once written, so a mirror taken at any moment is a usable
repository; lock files are left out (a lock from a stopped run would only block the next
one), and so are verification probes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

_VENV_MOTO = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "moto_server"
SKIP = ("locks/", ".podbackup-verify/")


def moto_binary() -> str | None:
    """The moto_server executable, or None when moto is not installed."""
    if _VENV_MOTO.exists():
        return str(_VENV_MOTO)
    return shutil.which("moto_server")


def moto_argv(binary: str, port: int) -> list[str]:
    return [binary, "-H", "127.0.0.1", "-p", str(port)]


def moto_env() -> dict[str, str]:
    """The environment of the server (its parent's, minus AWS_* values)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    return env


def wait_ready(url: str, timeout: float = 30.0, alive: Callable[[], bool] | None = None) -> None:
    """Until moto answers at ``url`` (``alive()`` false: it died, give up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{url}/moto-api/data.json", timeout=2)
            return
        except httpx.HTTPError:
            if alive is not None and not alive():
                raise RuntimeError("moto_server exited during start-up") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not answer at {url}") from None
            time.sleep(0.1)


def enable_auth(url: str, user: str = "demo") -> tuple[str, str]:
    """Create ``user`` with an allow-all policy while moto still lets every call through,
    then make it check signatures and policies from the next request on (its
    ``INITIAL_NO_AUTH_ACTION_COUNT``, set to 0 through ``/moto-api/reset-auth``). Returns
    the user's (access key id, secret)."""
    import boto3

    iam: Any = boto3.client(
        "iam",
        endpoint_url=url,
        aws_access_key_id="bootstrap",  # not checked yet
        aws_secret_access_key="bootstrap",
        region_name="us-east-1",
    )
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="all",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName=user)["AccessKey"]
    r = httpx.post(
        f"{url}/moto-api/reset-auth",
        content=b"0",
        headers={"Content-Type": "text/plain"},  # a form type would hide the body
        timeout=10,
    )
    r.raise_for_status()
    return str(key["AccessKeyId"]), str(key["SecretAccessKey"])


class ServerMirror:
    """The buckets of an S3 server and the folder that keeps their objects."""

    def __init__(self, url: str, folder: Path, key_id: str, secret: str) -> None:
        import boto3
        from botocore.config import Config

        self.folder = folder
        self.s3: Any = boto3.client(
            "s3",
            endpoint_url=url,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"max_attempts": 2},
            ),
        )

    def ensure_bucket(self, bucket: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_bucket(Bucket=bucket)
        except ClientError:
            self.s3.create_bucket(Bucket=bucket)

    def has(self, bucket: str, key: str) -> bool:
        return (self.folder / bucket / key).is_file()

    def wipe(self, bucket: str) -> None:
        shutil.rmtree(self.folder / bucket, ignore_errors=True)

    def _remote(self, bucket: str) -> dict[str, int]:
        found: dict[str, int] = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                if not obj["Key"].startswith(SKIP):
                    found[obj["Key"]] = int(obj["Size"])
        return found

    def _local(self, bucket: str) -> Iterator[tuple[str, Path]]:
        folder = self.folder / bucket
        if not folder.is_dir():
            return
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.endswith(".part"):
                yield path.relative_to(folder).as_posix(), path

    def restore(self) -> int:
        """Create every kept bucket in the (fresh) server with its objects; how many."""
        count = 0
        buckets = sorted(p.name for p in self.folder.iterdir()) if self.folder.is_dir() else []
        for bucket in buckets:
            self.ensure_bucket(bucket)
            for key, path in self._local(bucket):
                self.s3.upload_file(str(path), bucket, key)
                count += 1
        return count

    def sync(self) -> None:
        """Make the folder equal the server's buckets (minus locks and probes)."""
        buckets = [b["Name"] for b in self.s3.list_buckets().get("Buckets", [])]
        for bucket in buckets:
            self._sync(bucket)
        if self.folder.is_dir():
            for gone in {p.name for p in self.folder.iterdir()} - set(buckets):
                self.wipe(gone)

    def _sync(self, bucket: str) -> None:
        remote = self._remote(bucket)
        local = dict(self._local(bucket))
        (self.folder / bucket).mkdir(parents=True, exist_ok=True)
        for key, length in remote.items():
            path = local.get(key)
            if path is not None and path.stat().st_size == length:
                continue
            dest = self.folder / bucket / key
            dest.parent.mkdir(parents=True, exist_ok=True)
            part = dest.with_name(dest.name + ".part")
            self.s3.download_file(bucket, key, str(part))
            part.replace(dest)  # whole files only: a sync cut short leaves no half object
        for key, path in local.items():
            if key not in remote:
                path.unlink()
