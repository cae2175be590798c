"""The gathering transport under SSH sessions (wire.py): writes made in one turn of the
event loop leave together, in order, and nothing written before a close is lost."""

from __future__ import annotations

import asyncio

import uvloop

from app.integrations.sftp.wire import GatheringTunnel


class _Session(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()


async def test_writes_of_one_turn_arrive_together_in_order_and_close_flushes() -> None:
    await _one_turn_then_close()


def test_the_same_under_uvloop() -> None:
    """The API process runs under uvicorn's uvloop (its verify probes open SFTP sessions)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_one_turn_then_close())


async def _one_turn_then_close() -> None:
    received: list[bytes] = []
    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            received.append(chunk)
        writer.close()
        done.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        transport, session = await GatheringTunnel().create_connection(_Session, "127.0.0.1", port)
        assert isinstance(session, _Session)
        assert session.transport is transport
        assert transport.get_extra_info("peername")[1] == port
        for part in (b"one ", b"two ", b"three"):
            transport.write(part)
        assert transport.get_write_buffer_size() == len(b"one two three")  # not sent yet
        await asyncio.sleep(0.2)
        assert received == [b"one two three"]  # one send for the turn's three writes
        transport.write(b" and the last words")
        transport.close()  # before the turn ends: still sent, then closed
        await asyncio.wait_for(done.wait(), 5)
        await asyncio.wait_for(session.lost.wait(), 5)
    finally:
        server.close()
        await server.wait_closed()
    assert b"".join(received) == b"one two three and the last words"
