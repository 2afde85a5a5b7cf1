"""uvicorn's WebSocket protocol (websockets' sans-I/O implementation) with one addition for
fan-out: an ASGI extension that writes a ready-made frame straight to the connection
(docs/adr/0024-websocket-fan-out-writes-frames.md).

An event delivered to 1 000 subscribers is otherwise sent 1 000 times through the ASGI
`send` chain: a task switch per subscriber, every middleware's send wrapper, Starlette's
state checks, and websockets framing the same bytes again. A server frame is not masked,
so with no extension negotiated its bytes are the same for every connection: the relay
frames each event once and hands each idle subscriber's socket those bytes.

The extension, under `scope["extensions"][FRAME_WRITER]["write"]`, takes a serialized
frame and writes it now, or returns False when the connection cannot take it at once
(not yet accepted, closing, or paused because the client reads slower than we write):
the caller then sends through ASGI as usual, which waits, and so keeps backpressure.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Final

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State

FRAME_WRITER: Final = "keel.websocket.frame_writer"

FrameWriter = Callable[[bytes], bool]


class FrameWritingProtocol(WebSocketsSansIOProtocol):
    """The sans-I/O protocol, offering `write` of ready-made frames to the app."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if not self.close_sent:  # the handshake request was valid: the app runs
            extensions = self.scope.setdefault("extensions", {}) or {}
            extensions[FRAME_WRITER] = {"write": self.write_frame}
            self.scope["extensions"] = extensions

    def write_frame(self, frame: bytes) -> bool:
        """Write one serialized frame now if the connection can take it without waiting."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.conn.state is not State.OPEN
            or self.conn.extensions  # a negotiated extension (compression) frames per peer
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frame)
        return True


@functools.lru_cache(maxsize=64)
def text_frame(text: str) -> bytes:
    """An unmasked, unfragmented server text frame (the same bytes for every subscriber
    without extensions). Cached: the relay offers one event to every subscriber in a row."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
