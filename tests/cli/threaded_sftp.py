"""The test SFTP server on its own event loop thread, for tests whose main thread blocks
(here: on CLI subprocesses)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from devtools.sftp import SftpServerHandle, start_sftp_server


class ThreadedSftp:
    def __init__(self, root: Path, **options: Any) -> None:
        self.root = root
        self.options = options
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.handle: SftpServerHandle | None = None

    def __enter__(self) -> SftpServerHandle:
        self.thread.start()
        started = start_sftp_server(self.root, **self.options)
        self.handle = asyncio.run_coroutine_threadsafe(started, self.loop).result(timeout=30)
        return self.handle

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            asyncio.run_coroutine_threadsafe(self.handle.close(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()
