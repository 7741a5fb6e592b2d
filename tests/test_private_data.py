"""The data folder is private to the user spoonprint runs as (POSIX): folders 0700, files 0600,
whether spoonprint made them or an older version left them readable by others."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from .conftest import Server, ServerFactory, run_spoonprint

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


def modes(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (itself as ``.``) with its permission bits, e.g. ``0o600``."""
    entries = [folder, *folder.rglob("*")]
    return {
        str(path.relative_to(folder)): oct(stat.S_IMODE(path.lstat().st_mode)) for path in entries
    }


def assert_private(folder: Path, must_hold: set[str]) -> None:
    found = modes(folder)
    assert must_hold <= set(found), sorted(found)
    for name, mode in found.items():
        expected = "0o700" if (folder / name).is_dir() else "0o600"
        assert mode == expected, (name, mode)


@pytest.mark.e2e
def test_init_makes_a_private_data_folder(tmp_path: Path) -> None:
    result = run_spoonprint(tmp_path, "init")
    assert result.returncode == 0, result.stderr
    assert_private(tmp_path / "spoonprint-data", {".", "spoonprint.db"})


def test_everything_the_server_writes_is_private(server_with_tickets: Server) -> None:
    assert_private(
        server_with_tickets.data_dir,
        {
            ".",
            "spoonprint.db",
            "spoonprint.db-wal",
            "spoonprint.db-shm",
            "logs",
            "logs/spoonprint.log",
            "logs/security.jsonl",
            "virtual-printer",
        },
    )
    tickets = list((server_with_tickets.data_dir / "virtual-printer").iterdir())
    assert {path.suffix for path in tickets} >= {".bin", ".txt", ".png"}


@pytest.fixture
def server_with_tickets(make_server: ServerFactory) -> Server:
    """A server on the virtual printer that has printed a ticket and logged a strike."""
    server = make_server([])
    client = server.client()
    job_id = client.post("/print", json={"text": "Table 4\n1 x 叉燒飯"}).json()["job_id"]
    server.wait_for_state(job_id, "printed")
    client.get("/wp-login.php")  # a line in the security log
    return server


def test_a_readable_data_folder_is_made_private_on_start(make_server: ServerFactory) -> None:
    server = make_server([], start=False)
    assert run_spoonprint(server.config.parent, "init").returncode == 0  # db, folder
    server.data_dir.mkdir(exist_ok=True)
    (server.data_dir / "logs").mkdir(exist_ok=True)
    old_log = server.data_dir / "logs" / "spoonprint.log.1"
    old_log.write_text("an older version's log\n")
    for path in (server.data_dir, server.data_dir / "logs"):
        path.chmod(0o755)
    for path in (old_log, *server.data_dir.glob("spoonprint.db*")):
        path.chmod(0o644)
    server.start()
    assert_private(server.data_dir, {".", "spoonprint.db", "logs/spoonprint.log.1"})
    server.wait_for_log("private to this user")


@pytest.mark.e2e
def test_the_tls_key_is_private(tmp_path: Path) -> None:
    result = run_spoonprint(tmp_path, "tls", "self-signed", "--host", "127.0.0.1")
    assert result.returncode == 0, result.stderr
    assert oct(stat.S_IMODE((tmp_path / "tls" / "key.pem").stat().st_mode)) == "0o600"
    assert oct(stat.S_IMODE((tmp_path / "tls").stat().st_mode)) == "0o700"


def test_tickets_written_to_a_folder_stay_readable_by_other_programs(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    folder = tmp_path / "for-the-pos"
    server = make_server([{"name": "export", "uri": f"file:{folder}"}])
    job_id = server.client().post("/print", json={"text": "x"}).json()["job_id"]
    server.wait_for_state(job_id, "sent")  # a folder cannot confirm
    assert oct(stat.S_IMODE(folder.stat().st_mode)) == "0o755"
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in folder.iterdir()} == {"0o644"}
