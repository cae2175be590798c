"""The TCP connection under an SSH session, with writes gathered per event-loop turn.

asyncssh writes every SSH packet to the socket at once, and before each encrypted
packet it sends an SSH_MSG_IGNORE packet of its own (a countermeasure for CBC
ciphers): two ``send`` system calls per SFTP request. For thousands of small files
(open, read and close each) the system calls, and the wake-ups of the server they
cause, cost more than the rest of the transfer. This transport keeps what asyncssh
writes during one turn of the event loop and sends it with one call at the end of the
turn, so the requests of all the files in flight leave together. Nothing waits longer
than that turn (a packet of file data, 16 KiB or more, goes out at once with what
waits before it): the latency of a single request is unchanged.

It is passed to ``asyncssh.connect`` as its ``tunnel`` (an object with
``create_connection(session_factory, host, port)``), the library's documented way to
supply the connection an SSH session runs over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

# A packet this large carries file data: sending it at once costs one system call for
# many bytes, and holding it back would only delay the transfer.
_BULK = 16 * 1024


class _Gathering(asyncio.Transport):
    """Forwards to the socket's transport; ``write`` is sent at the end of the turn."""

    def __init__(self, inner: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._inner = inner
        self._loop = loop
        self._chunks: list[bytes] = []
        self._handle: asyncio.Handle | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._chunks.append(bytes(data))
        if len(data) >= _BULK:  # file data (an upload): out at once, with what waits
            self.flush()
        elif self._handle is None:
            self._handle = self._loop.call_soon(self.flush)

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if not self._chunks:
            return
        data = b"".join(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        self._chunks.clear()
        if not self._inner.is_closing():
            self._inner.write(data)

    def _forget(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._chunks.clear()

    def close(self) -> None:
        self.flush()  # a disconnect message written just before goes out first
        self._forget()
        self._inner.close()

    def abort(self) -> None:
        self._forget()
        self._inner.abort()

    def is_closing(self) -> bool:
        return self._inner.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._inner.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return self._inner.get_write_buffer_size() + sum(map(len, self._chunks))

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._inner.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        return self._inner.can_write_eof()

    def write_eof(self) -> None:
        self.flush()
        self._inner.write_eof()

    def pause_reading(self) -> None:
        self._inner.pause_reading()

    def resume_reading(self) -> None:
        self._inner.resume_reading()

    def is_reading(self) -> bool:
        return self._inner.is_reading()


class _Relay(asyncio.Protocol):
    """The socket's protocol: hands the SSH session a gathering transport, passes the
    rest through."""

    def __init__(self, session: asyncio.Protocol, loop: asyncio.AbstractEventLoop) -> None:
        self.session = session
        self.loop = loop
        self.transport: _Gathering | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports (the API runs under uvicorn's uvloop)
        # have the same methods but are not asyncio.Transport subclasses.
        self.transport = _Gathering(cast(asyncio.Transport, transport), self.loop)
        self.session.connection_made(self.transport)

    def data_received(self, data: bytes) -> None:
        self.session.data_received(data)

    def eof_received(self) -> bool | None:
        return self.session.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.transport._forget()
        self.session.connection_lost(exc)

    def pause_writing(self) -> None:
        self.session.pause_writing()

    def resume_writing(self) -> None:
        self.session.resume_writing()


class GatheringTunnel:
    """``asyncssh.connect(addr, port, tunnel=GatheringTunnel(), ...)``: a direct TCP
    connection to ``addr`` whose writes are gathered per event-loop turn."""

    async def create_connection(
        self, session_factory: Callable[[], asyncio.Protocol], host: str, port: int
    ) -> tuple[asyncio.Transport, asyncio.Protocol]:
        loop = asyncio.get_running_loop()
        _, relay = await loop.create_connection(lambda: _Relay(session_factory(), loop), host, port)
        assert relay.transport is not None
        return relay.transport, relay.session
