"""The grid-svc client against a server that drops a connection, as uvicorn does when it
closes an idle keep-alive connection just as the client reuses it."""

from __future__ import annotations

import asyncio
import json

from gridgov_common.gridclient import GridClient
from gridgov_common.settings import ServiceSettings

ANSWER = {
    "point": [113.9, 22.56],
    "grid": {"code": "440306001001001", "name": "G1", "level": "grid", "grid_class": "key"},
    "ancestors": [{"code": "440306", "name": "D", "level": "district"}],
}


async def test_a_dropped_connection_is_retried_once_and_the_lookup_answers() -> None:
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        if connections == 1:  # closed without an answer
            writer.close()
            return
        body = json.dumps(ANSWER).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%b" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = GridClient(ServiceSettings(grid_svc_url=f"http://127.0.0.1:{port}"))
    try:
        location = await client.locate(113.9, 22.56)
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
    assert location.grid_code == "440306001001001"
    assert connections == 2
