"""Kill points around the first ticket byte (issue 16, part 3): a server killed with SIGKILL
after it asked the printer's status but before it sent any of the ticket prints the order
once, without a REPRINT banner; killed after ticket bytes left, the copy says REPRINT.

The printer up to the kill is a plain socket that records what it receives and answers only
what the test tells it to: the kill lands exactly at the point under test. After the restart
the server prints to the real virtual printer.
"""

from __future__ import annotations

import signal
import socket
import threading

from spoonprint.domain.status import STATUS_PRINTER
from spoonprint.emulator.virtual_printer import VirtualPrinterThread

from .conftest import Server, ServerFactory, write_config

#: DLE EOT 1 answered "online": the bits ESC/POS always sets (0x12) and nothing else.
ONLINE = b"\x12"
ENCODING = "big5hkscs"  # the REPRINT 重印 banner prints as text
#: Long enough that the kill, sent as soon as the bytes arrive, lands while it waits.
STATUS_TIMEOUT = "20"


class SilentPrinter:
    """A TCP printer that receives, answers the first status question only if told to, and
    never answers anything else."""

    def __init__(self, *, answer_first_status: bool) -> None:
        self.answer = answer_first_status
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.received = bytearray()
        self.changed = threading.Condition()
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)
            answered = False
            while chunk := conn.recv(65536):
                with self.changed:
                    self.received += chunk
                    self.changed.notify_all()
                if self.answer and not answered and STATUS_PRINTER in self.received:
                    conn.sendall(ONLINE)
                    answered = True

    def wait_for(self, size: int, timeout: float = 10.0) -> bytes:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.received) >= size, timeout), (
                f"the printer got only {bytes(self.received)!r}"
            )
            return bytes(self.received)

    def close(self) -> None:
        self.sock.close()
        for conn in self.connections:
            conn.close()


def kill_and_restart_on(server: Server, printer: VirtualPrinterThread) -> None:
    proc = server.proc
    assert proc is not None
    proc.kill()
    assert proc.wait(timeout=10) == -signal.SIGKILL
    server.proc = None
    uri = f"tcp://127.0.0.1:{printer.port}"
    write_config(
        server.config, server.port, [{"name": "kitchen", "uri": uri, "text_encoding": ENCODING}]
    )
    server.start()


def order_at_kill_point(
    make_server: ServerFactory, big5_printer: VirtualPrinterThread, *, answer_first_status: bool
) -> tuple[dict[str, object], str, bytes]:
    """Order once, kill the server at the kill point, restart it on a working printer; the
    job once printed, its ticket's text, and what the first printer had received."""
    silent = SilentPrinter(answer_first_status=answer_first_status)
    try:
        uri = f"tcp://127.0.0.1:{silent.port}"
        server = make_server(
            [{"name": "kitchen", "uri": uri}], SPOONPRINT_DELIVERY__STATUS_TIMEOUT=STATUS_TIMEOUT
        )
        answer = server.client().post("/print", json={"text": "ORDER CH-0060", "order_id": "60"})
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["job_id"]
        # Only the status question; or it, then some of the ticket.
        received = silent.wait_for(len(STATUS_PRINTER) + (1 if answer_first_status else 0))
        kill_and_restart_on(server, big5_printer)
    finally:
        silent.close()
    job = server.wait_for_state(job_id, "printed")
    return job, big5_printer.wait_for_tickets(1, 10)[0].text, received


def test_killed_after_the_status_question_prints_without_reprint(
    make_server: ServerFactory, big5_printer: VirtualPrinterThread
) -> None:
    job, ticket, received = order_at_kill_point(
        make_server, big5_printer, answer_first_status=False
    )
    assert received == STATUS_PRINTER == b"\x10\x04\x01"
    assert "ORDER CH-0060" in ticket
    assert "REPRINT" not in ticket, ticket
    assert job["maybe_printed"] is False
    details = [event["detail"] for event in job["events"]]
    assert "recovered: its printer process stopped before sending any of its ticket" in details


def test_killed_after_ticket_bytes_left_prints_marked_reprint(
    make_server: ServerFactory, big5_printer: VirtualPrinterThread
) -> None:
    job, ticket, received = order_at_kill_point(make_server, big5_printer, answer_first_status=True)
    assert received.startswith(STATUS_PRINTER) and len(received) > 3
    assert "ORDER CH-0060" in ticket and "REPRINT" in ticket, ticket
    assert job["maybe_printed"] is True
