"""``spoonprint service install|uninstall``: the systemd unit it writes (read back, checked by
``systemd-analyze verify`` and its command really run), and the Windows service against a fake
service manager that starts the service's command line as a real process."""

from __future__ import annotations

import configparser
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from spoonprint.db import DB_FILENAME, connect
from spoonprint.emulator.virtual_printer import VirtualPrinterThread
from spoonprint.housekeeping import data_folder_free
from spoonprint.security.keys import KeyStore
from spoonprint.service import DESCRIPTION, DISPLAY_NAME, ServiceError, systemd, windows

from .conftest import Server, ServerFactory, run_spoonprint
from .fakes import win32service_install as scm
from .fakes.importer import importable
from .fakes.pywin32 import FakeSpooler
from .fakes.win32service_install import FakeServiceManager, split_command_line

pytestmark = pytest.mark.e2e

ME = pwd.getpwuid(os.getuid()).pw_name


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_spoonprint(cwd, *args)


def read_unit(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read(path, encoding="utf-8")
    return unit


def command_words(value: str) -> list[str]:
    """``ExecStart=`` as systemd reads it: whitespace separates words except inside double
    quotes, where backslash escapes; ``%%`` is a percent sign everywhere and ``$$`` a dollar
    in the arguments (the program's path takes no variables)."""
    words: list[str] = []
    word: list[str] | None = None
    quoted = False
    chars = iter(value)
    for char in chars:
        if quoted and char == "\\":
            word = (word or []) + [next(chars)]
        elif char == '"':
            quoted = not quoted
            word = word or []
        elif char.isspace() and not quoted:
            if word is not None:
                words.append("".join(word))
                word = None
        else:
            word = (word or []) + [char]
    if word is not None:
        words.append("".join(word))
    program, *arguments = (w.replace("%%", "%") for w in words)
    return [program, *(a.replace("$$", "$") for a in arguments)]


def verify(unit_path: Path) -> None:
    """``systemd-analyze verify``: the unit parses, its program exists and is executable."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (Debian package: systemd)")
    result = subprocess.run(
        [analyze, "verify", str(unit_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr + result.stdout
    problems = [
        line
        for line in result.stderr.splitlines()
        if unit_path.name in line and "network-online.target" not in line
    ]
    assert problems == [], problems


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A folder made by ``spoonprint init`` (config and data folder)."""
    folder = tmp_path / "My Shop"
    folder.mkdir()
    assert cli("init", cwd=folder).returncode == 0
    return folder


# -- systemd ----------------------------------------------------------------------------


def test_the_unit_runs_this_python_on_the_config_and_passes_verify(
    shop: Path, tmp_path: Path
) -> None:
    units = tmp_path / "units"
    config = shop / "spoonprint.toml"
    result = cli(
        "service", "install", "--config", str(config), "--unit-dir", str(units), "--user", ME
    )
    assert result.returncode == 0, result.stderr
    path = units / "spoonprint.service"
    assert f"Wrote {path}" in result.stdout
    assert "systemctl daemon-reload && sudo systemctl enable --now spoonprint" in result.stdout

    unit = read_unit(path)
    service = unit["Service"]
    assert command_words(service["ExecStart"]) == [
        sys.executable,
        "-m",
        "spoonprint",
        "serve",
        "--config",
        str(config),
    ]
    assert service["WorkingDirectory"] == str(shop)
    assert service["User"] == ME
    assert (service["Restart"], service["KillSignal"]) == ("always", "SIGTERM")
    assert int(service["TimeoutStopSec"]) >= 20
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "full"
    assert command_words(service["ReadWritePaths"])[0] == f"-{shop / 'spoonprint-data'}"
    assert "PrivateDevices" not in service, "USB and serial printers need /dev"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert unit["Unit"]["After"] == "network-online.target"
    assert unit["Unit"]["Description"] == DESCRIPTION
    verify(path)

    removed = cli("service", "uninstall", "--unit-dir", str(units))
    assert removed.returncode == 0, removed.stderr
    assert not path.exists()
    assert "systemctl disable --now spoonprint" in removed.stdout
    again = cli("service", "uninstall", "--unit-dir", str(units))
    assert again.returncode == 1 and "nothing to remove" in again.stderr


def test_paths_with_spaces_percent_and_dollar_survive(tmp_path: Path) -> None:
    folder = tmp_path / "shop 50% $HOME"
    folder.mkdir()
    python = folder / "python"
    python.symlink_to(sys.executable)
    spec = systemd.UnitSpec(
        config=folder / "spoonprint.toml", python=python, data_dir=folder / "data", user=ME
    )
    outcome = systemd.install(spec, tmp_path / "units", run_systemctl=False)
    service = read_unit(outcome.unit_path)["Service"]
    words = command_words(service["ExecStart"])
    assert words[0] == str(python) and words[-1] == str(folder / "spoonprint.toml")
    assert service["WorkingDirectory"].replace("%%", "%") == str(folder)
    # verify finds the program only if systemd unescaped its path as we meant.
    verify(outcome.unit_path)


def test_paths_systemd_cannot_take_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / 'the "shop"'
    spec = systemd.UnitSpec(folder / "spoonprint.toml", Path(sys.executable), folder, user=ME)
    with pytest.raises(ServiceError, match="move spoonprint to a folder without them"):
        systemd.install(spec, tmp_path / "units", run_systemctl=False)


def test_a_user_unit(shop: Path, tmp_path: Path) -> None:
    units = tmp_path / "home" / ".config" / "systemd" / "user"
    result = cli(
        "service", "install", "--config", str(shop / "spoonprint.toml"), "--unit-dir", str(units)
    )
    assert result.returncode == 0, result.stderr
    assert "  systemctl --user daemon-reload && systemctl --user enable --now" in result.stdout
    unit = read_unit(units / "spoonprint.service")
    assert "User" not in unit["Service"], "a user manager runs it as its own user"
    assert "ProtectSystem" not in unit["Service"], "needs a system manager"
    assert unit["Service"]["NoNewPrivileges"] == "yes"
    assert unit["Install"]["WantedBy"] == "default.target"
    verify(units / "spoonprint.service")


def test_user_option_and_device_groups(shop: Path, tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    spec, warnings = systemd.plan(
        shop / "spoonprint.toml", shop / "spoonprint-data", unit_dir=tmp_path, user="nobody"
    )
    assert spec.user == nobody.pw_name
    groups = [g for g in systemd.DEVICE_GROUPS if _group_exists(g)]
    assert list(spec.groups) == groups
    assert any("sudo chown -R nobody" in w for w in warnings), "root owns the data folder"
    with pytest.raises(ServiceError, match="no user named 'no-such-user'"):
        systemd.plan(shop / "spoonprint.toml", shop, unit_dir=tmp_path, user="no-such-user")
    root_spec, root_warnings = systemd.plan(
        shop / "spoonprint.toml", shop, unit_dir=tmp_path, user="root"
    )
    assert root_spec.groups == () and any("--user NAME" in w for w in root_warnings)


def _group_exists(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def test_systemctl_commands_when_systemd_runs_the_machine(tmp_path: Path) -> None:
    """systemd is not PID 1 on this machine: systemctl is recorded, not run."""
    ran: list[list[str]] = []

    def runner(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
        ran.append(list(command))
        failing = command[-1] == "broken"
        return subprocess.CompletedProcess(command, int(failing), "", "Unit not found.")

    spec = systemd.UnitSpec(tmp_path / "c.toml", Path(sys.executable), tmp_path, user=ME)
    outcome = systemd.install(spec, tmp_path, run_systemctl=True, runner=runner)
    assert outcome.ran
    assert ran == [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "spoonprint"]]
    ran.clear()
    systemd.uninstall("spoonprint", tmp_path, run_systemctl=True, runner=runner)
    assert ran == [["systemctl", "disable", "--now", "spoonprint"], ["systemctl", "daemon-reload"]]
    broken = systemd.UnitSpec(tmp_path / "c.toml", Path(sys.executable), tmp_path, "broken", ME)
    with pytest.raises(ServiceError, match="enable --now broken failed: Unit not found"):
        systemd.install(broken, tmp_path, run_systemctl=True, runner=runner)
    assert not systemd._should_run(tmp_path, True), "only /etc/systemd/system is the system's"


def test_the_units_command_runs_the_server_and_sigterm_stops_it(
    make_server: ServerFactory, printer: VirtualPrinterThread, tmp_path: Path
) -> None:
    """Start what the unit says, where it says, as systemd would; stop it with KillSignal."""
    server = make_server(
        [{"name": "kitchen", "uri": f"tcp://127.0.0.1:{printer.port}"}], start=False
    )
    spec, _ = systemd.plan(server.config, server.data_dir, unit_dir=tmp_path, user=ME)
    outcome = systemd.install(spec, tmp_path, run_systemctl=False)
    service = read_unit(outcome.unit_path)["Service"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOONPRINT_")}
    env.update(dict([service["Environment"].split("=", 1)]))
    env["SPOONPRINT_API_KEY"] = server.key
    log = (tmp_path / "unit.log").open("wb")
    proc = subprocess.Popen(
        command_words(service["ExecStart"]),
        cwd=service["WorkingDirectory"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        _wait_up(server.url, proc, tmp_path / "unit.log")
        answer = httpx.post(
            f"{server.url}/print", json={"text": "from the unit"}, headers={"X-API-Key": server.key}
        )
        assert answer.status_code == 202
        server.wait_for_state(answer.json()["job_id"], "printed")
        proc.send_signal(getattr(signal, service["KillSignal"]))
        code = proc.wait(timeout=int(service["TimeoutStopSec"]))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert code in (0, -signal.SIGTERM), (tmp_path / "unit.log").read_text()
    with data_folder_free(server.data_dir) as free:
        assert free, "the server let go of its data folder"


def _wait_up(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/status", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)  # the port is not open yet: nothing to await
    raise AssertionError(f"not up in {timeout} s:\n{log.read_text(errors='replace')}")


# -- Windows ----------------------------------------------------------------------------


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[FakeServiceManager]:
    with FakeServiceManager(root=tmp_path / "scm").installed() as fake:
        yield fake


def test_windows_install_registers_an_auto_start_service_that_restarts(
    manager: FakeServiceManager, shop: Path
) -> None:
    config = shop / "spoonprint.toml"
    done = windows.install(config, start=False)
    assert done[0] == "Installed the Windows service 'spoonprint' (starts with Windows)."
    service = manager.services["spoonprint"]
    assert service.start_type == scm.SERVICE_AUTO_START
    assert (service.display_name, service.description) == (DISPLAY_NAME, DESCRIPTION)
    assert service.user is None, "LocalSystem"
    assert service.failure_actions == {
        "ResetPeriod": 86400,
        "RebootMsg": None,
        "Command": None,
        "Actions": [(scm.SC_ACTION_RESTART, 5000)] * 3,
    }
    assert service.failure_actions_on_non_crash
    words = split_command_line(service.command_line)
    # This test runs in a venv: the service runs the base interpreter with the venv's packages.
    assert words[0] == os.path.abspath(sys._base_executable)  # type: ignore[attr-defined]
    assert words[1:3] == ["-c", windows.BOOTSTRAP]
    separator = words.index("--")
    assert words[3:separator] == __import__("site").getsitepackages()
    assert words[separator + 1 :] == ["--config", str(config), "--name", "spoonprint"]

    again = windows.install(config, start=False)
    assert again[0] == "Updated the Windows service 'spoonprint'."
    assert "ChangeServiceConfig" in manager.calls and len(manager.services) == 1


def test_windows_command_line_outside_a_venv(tmp_path: Path) -> None:
    program, args = windows.service_command(
        tmp_path / "shop dir" / "spoonprint.toml",
        "till",
        executable=r"C:\Python311\python.exe",
        in_venv=False,
    )
    assert program == r"C:\Python311\python.exe"
    words = split_command_line(f'"{program}" {args}')
    assert words == [
        program,
        "-c",
        windows.BOOTSTRAP,
        "--",
        "--config",
        str(tmp_path / "shop dir" / "spoonprint.toml"),
        "--name",
        "till",
    ]


def test_windows_needs_an_administrator(manager: FakeServiceManager, shop: Path) -> None:
    manager.admin = False
    with pytest.raises(ServiceError, match="Run as administrator"):
        windows.install(shop / "spoonprint.toml")
    assert manager.services == {}
    result = windows.usable()
    assert result is None, "the fake modules import"


def test_without_pywin32_windows_says_what_to_install() -> None:
    assert windows.usable() == "needs pywin32: pip install pywin32"


def test_windows_uninstall_of_a_missing_service(manager: FakeServiceManager) -> None:
    with pytest.raises(ServiceError, match="no Windows service named 'spoonprint'"):
        windows.uninstall()


def _service_key(server: Server) -> str:
    """An admin key in the server's database (a service has no SPOONPRINT_API_KEY)."""
    keys = KeyStore(connect(server.data_dir / DB_FILENAME))
    try:
        return keys.create("service-test", "admin")
    finally:
        keys.close()


def test_windows_service_runs_the_server_and_stops_it_gracefully(
    manager: FakeServiceManager, make_server: ServerFactory, printer: VirtualPrinterThread
) -> None:
    server = make_server(
        [{"name": "kitchen", "uri": f"tcp://127.0.0.1:{printer.port}"}], start=False
    )
    key = _service_key(server)
    done = windows.install(server.config)  # starts it: the fake SCM runs the command line
    assert "Started it. Stop it with: sc stop spoonprint" in done
    service = manager.services["spoonprint"]
    assert service.process is not None
    log = service.folder / "process.log"  # type: ignore[operator]
    _wait_up(server.url, service.process, log)
    status = manager.QueryServiceStatus("spoonprint")
    assert status[1] == scm.SERVICE_RUNNING and status[2] & scm.SERVICE_ACCEPT_STOP

    answer = httpx.post(
        f"{server.url}/print", json={"text": "from the service"}, headers={"X-API-Key": key}
    )
    assert answer.status_code == 202
    job_id = answer.json()["job_id"]
    server.key = key
    server.wait_for_state(job_id, "printed")

    removed = windows.uninstall()
    assert removed == [
        "Stopped the Windows service 'spoonprint'.",
        "Removed the Windows service 'spoonprint'.",
    ]
    assert manager.services == {}
    assert service.process.wait(10) == 0, log.read_text()
    states = [s[1] for s in scm._read_statuses(service.folder)]
    assert states[:2] == [scm.SERVICE_START_PENDING, scm.SERVICE_RUNNING]
    assert scm.SERVICE_STOP_PENDING in states and states[-1] == scm.SERVICE_STOPPED
    final = scm._read_statuses(service.folder)[-1]
    assert final[3] == 0, "stopped without an error"
    with data_folder_free(server.data_dir) as free:
        assert free, "the server let go of its data folder"
    text = (server.data_dir / "logs" / "spoonprint.log").read_text()
    assert "job(s) stopped mid-ticket" not in text


def test_windows_install_offers_the_supported_set_ups_for_printing_through_a_driver(
    manager: FakeServiceManager, shop: Path
) -> None:
    config = shop / "spoonprint.toml"
    done = windows.install(config, start=False)
    advice = "\n".join(done[1:])
    assert "runs as LocalSystem, in session 0" in advice and "KB2890836" in advice
    assert "spoonprint service install --user .\\USER" in advice
    task = split_command_line(windows.logon_task_command(config))
    assert task[:8] == ["schtasks", "/Create", "/TN", "spoonprint", "/SC", "ONLOGON", "/RL",
                        "HIGHEST"]  # fmt: skip
    assert split_command_line(task[9])[1:] == [
        "-m", "spoonprint", "start", "--config", str(config.absolute()),
    ]  # fmt: skip
    assert windows.logon_task_command(config) in advice

    done = windows.install(config, start=False, account=".\\kitchen", password="secret")
    assert manager.services["spoonprint"].user == ".\\kitchen"
    assert (
        done[-1] == "It runs as .\\kitchen: that account must be allowed to print to the printer."
    )


def test_windows_install_says_what_to_change_in_a_printers_printing_defaults(
    manager: FakeServiceManager, shop: Path
) -> None:
    spooler = FakeSpooler()
    spooler.add_printer("Kitchen", defaults_paper=(2100, 2970))  # A4
    spooler.add_printer("Bar")  # receipt paper
    # The spooler's win32print beside the service manager's win32service.
    with importable({"win32print": spooler.modules()["win32print"]}):
        done = windows.install(shop / "spoonprint.toml", start=False, printers=["Kitchen", "Bar"])
    (advice,) = [line for line in done if "Printing Defaults" in line]
    assert advice.startswith("'Kitchen': its Printing Defaults are 210 mm x 297 mm paper.")
    assert "Advanced > Printing Defaults and choose the receipt paper" in advice


def test_windows_install_refuses_microsoft_store_python_and_says_what_to_do(
    manager: FakeServiceManager, shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = (
        r"C:\Program Files\WindowsApps\PythonSoftwareFoundation.Python.3.12_3.12.2032.0_x64"
        r"__qbz5n2kfra8p0\python3.12.exe"
    )
    monkeypatch.setattr(sys, "executable", store)
    monkeypatch.setattr(sys, "_base_executable", store, raising=False)
    with pytest.raises(ServiceError) as refused:
        windows.install(shop / "spoonprint.toml")
    assert "comes from the Microsoft Store" in str(refused.value)
    assert "python.org" in str(refused.value)
    assert manager.services == {}


def test_windows_shutting_down_stops_the_service_gracefully_and_it_connects_early(
    manager: FakeServiceManager, make_server: ServerFactory, printer: VirtualPrinterThread
) -> None:
    server = make_server(
        [{"name": "kitchen", "uri": f"tcp://127.0.0.1:{printer.port}"}], start=False
    )
    windows.install(server.config)
    service = manager.services["spoonprint"]
    assert service.process is not None
    log = service.folder / "process.log"  # type: ignore[operator]
    _wait_up(server.url, service.process, log)
    # The dispatcher connected before the server's imports (the SCM allows 30 s).
    connected = [e["message"] for e in manager.events("spoonprint") if "dispatcher" in e["message"]]
    assert connected == ["dispatcher connected; loaded then: none"]
    assert manager.QueryServiceStatus("spoonprint")[2] & scm.SERVICE_ACCEPT_SHUTDOWN

    manager.shut_down_windows()  # a service that does not take it is killed
    assert service.process.wait(10) == 0, log.read_text()
    final = scm._read_statuses(service.folder)[-1]
    assert final[1] == scm.SERVICE_STOPPED and final[3] == 0
    with data_folder_free(server.data_dir) as free:
        assert free


def test_windows_service_that_cannot_start_reports_a_failure(
    manager: FakeServiceManager, tmp_path: Path
) -> None:
    config = tmp_path / "spoonprint.toml"
    config.write_text('[server]\nport = "not a port"\n', encoding="utf-8")
    windows.install(config)
    service = manager.services["spoonprint"]
    assert service.process is not None
    assert service.process.wait(30) == 1
    final = manager.QueryServiceStatus("spoonprint")
    assert final[1] == scm.SERVICE_STOPPED
    assert final[3] == scm.ERROR_SERVICE_SPECIFIC_ERROR, "a failure: the restart policy applies"
    errors = [e["message"] for e in manager.events("spoonprint") if e["type"] == "error"]
    assert any("cannot start: invalid configuration" in m and "server.port" in m for m in errors)


def test_the_service_command_run_by_hand_says_what_to_do(
    manager: FakeServiceManager, shop: Path, tmp_path: Path
) -> None:
    config = shop / "spoonprint.toml"
    text = config.read_text().replace("port = 8080", "port = 0").replace("0.0.0.0", "127.0.0.1")
    config.write_text(text)
    windows.install(config, start=False)
    words = split_command_line(manager.services["spoonprint"].command_line)
    result = subprocess.run(
        words,
        env=manager.start_env("spoonprint", None),  # not started by the service manager
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "not started by the Windows service manager" in result.stderr
    assert "spoonprint serve" in result.stderr
