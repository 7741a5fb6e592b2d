"""A systemd unit for spoonprint (Linux).

The unit runs ``<this python> -m spoonprint serve --config <abs config>`` from the config's
folder as a normal user, restarts it whenever it stops (``Restart=always``), stops it with
SIGTERM (the server finishes the ticket it is printing, bounded by its timeouts) and keeps the
hardening that cannot break a print server: no privilege gain, a read-only /usr and /etc, no
kernel tuning. Device access (USB ``/dev/usb/lp*``, serial ``/dev/ttyUSB*``) is left alone: the
``lp`` and ``dialout`` groups are added when the machine has them.

A unit in a ``systemd/user`` folder is a user unit: no ``User=``, ``systemctl --user``, and only
the hardening that works without privileges.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from spoonprint.service import DEFAULT_NAME, DESCRIPTION, ServiceError

SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
#: Groups that own printer and serial devices on Debian/Ubuntu/Fedora.
DEVICE_GROUPS = ("lp", "dialout")
#: Longest a stop may take: the server finishes the ticket in hand (connect + write + status
#: timeouts, a few seconds each) and closes; then systemd sends SIGKILL.
STOP_TIMEOUT = 30
_WHITESPACE = re.compile(r"\s")
_UNWRITABLE = re.compile(r"""["'\\\x00-\x1f\x7f]""")

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class UnitSpec:
    config: Path
    python: Path
    data_dir: Path
    name: str = DEFAULT_NAME
    #: ``User=``; None in a user unit.
    user: str | None = None
    groups: tuple[str, ...] = ()
    user_unit: bool = False


@dataclass
class Outcome:
    unit_path: Path
    #: The systemctl commands that finish the job (run already when ``ran``).
    commands: list[list[str]]
    ran: bool = False
    warnings: list[str] = field(default_factory=list)


def is_user_unit_dir(unit_dir: Path) -> bool:
    return unit_dir.parts[-2:] == ("systemd", "user")


def systemd_running() -> bool:
    """What sd_booted() checks: systemd is this machine's init (not so in most containers)."""
    return Path("/run/systemd/system").is_dir()


def unit_word(word: str, *, variables: bool = False) -> str:
    """One word of a unit setting: ``%`` specifiers escaped, and ``$`` too where the setting
    expands variables (the arguments of ``ExecStart=``, not its program), in double quotes when
    it holds whitespace. Paths with quotes or backslashes are refused by :func:`check_path`."""
    escaped = word.replace("%", "%%")
    if variables:
        escaped = escaped.replace("$", "$$")
    return f'"{escaped}"' if _WHITESPACE.search(word) else escaped


def check_path(path: Path) -> Path:
    """systemd takes no quotes, backslashes or control characters in a program's path, and
    they cannot be escaped in every setting used here: refuse them with the fix."""
    text = str(path)
    if _UNWRITABLE.search(text):
        raise ServiceError(
            f"systemd cannot use the path {text!r} (quotes, backslashes or control characters):"
            " move spoonprint to a folder without them"
        )
    return path


def render_unit(spec: UnitSpec) -> str:
    for path in (spec.python, spec.config, spec.data_dir):
        check_path(path)
    arguments = ["-m", "spoonprint", "serve", "--config", str(spec.config)]
    command = [unit_word(str(spec.python))] + [unit_word(a, variables=True) for a in arguments]
    service = [
        "Type=simple",
        *([f"User={spec.user}"] if spec.user else []),
        *([f"SupplementaryGroups={' '.join(spec.groups)}"] if spec.groups else []),
        f"WorkingDirectory={str(spec.config.parent).replace('%', '%%')}",
        "ExecStart=" + " ".join(command),
        "Environment=PYTHONUNBUFFERED=1",
        "Restart=always",
        "RestartSec=5",
        "KillSignal=SIGTERM",
        f"TimeoutStopSec={STOP_TIMEOUT}",
        # Hardening that leaves printing alone: no setuid escalation, ever.
        "NoNewPrivileges=yes",
    ]
    if not spec.user_unit:  # these need a system manager (mount namespaces)
        service += [
            "ProtectSystem=full",
            # The data folder stays writable even if someone put it under /etc or /usr.
            "ReadWritePaths=" + unit_word(f"-{spec.data_dir}"),
            "ProtectKernelTunables=yes",
            "ProtectKernelModules=yes",
            "ProtectControlGroups=yes",
            "RestrictSUIDSGID=yes",
            "RestrictRealtime=yes",
            "LockPersonality=yes",
        ]
    target = "default.target" if spec.user_unit else "multi-user.target"
    lines = [
        "# Written by 'spoonprint service install'; remove with 'spoonprint service uninstall'.",
        "[Unit]",
        f"Description={DESCRIPTION}",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        *service,
        "",
        "[Install]",
        f"WantedBy={target}",
    ]
    return "\n".join(lines) + "\n"


def default_user(config: Path) -> str:
    """Who the service runs as: the person who ran sudo, else the config file's owner."""
    import pwd

    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user and sudo_user != "root":
        return sudo_user
    try:
        return pwd.getpwuid(config.stat().st_uid).pw_name
    except (KeyError, OSError):
        return pwd.getpwuid(os.getuid()).pw_name


def plan(
    config: Path,
    data_dir: Path,
    *,
    unit_dir: Path = SYSTEM_UNIT_DIR,
    user: str | None = None,
    name: str = DEFAULT_NAME,
) -> tuple[UnitSpec, list[str]]:
    """The unit for ``config`` and the warnings a person should read."""
    import pwd

    config = config.absolute()
    python = Path(sys.executable).absolute()  # not resolved: a venv's python is a symlink
    if is_user_unit_dir(unit_dir):
        return UnitSpec(config, python, data_dir, name, user_unit=True), []
    account = user or default_user(config)
    try:
        entry = pwd.getpwnam(account)
    except KeyError:
        raise ServiceError(f"there is no user named {account!r} on this machine") from None
    warnings = []
    groups: tuple[str, ...] = ()
    if entry.pw_uid == 0:
        warnings.append("the service will run as root; to run it as a normal user: --user NAME")
    else:
        groups = tuple(g for g in DEVICE_GROUPS if _group_exists(g))
    owner = _owner(data_dir)
    if owner is not None and owner != entry.pw_uid:
        warnings.append(
            f"the data folder {data_dir} belongs to another user; give it to {account}: "
            f"sudo chown -R {account} {data_dir}"
        )
    return UnitSpec(config, python, data_dir, name, account, groups), warnings


def _group_exists(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _owner(path: Path) -> int | None:
    try:
        return path.stat().st_uid
    except OSError:
        return None


def _systemctl(user_unit: bool, *args: str) -> list[str]:
    return ["systemctl", *(["--user"] if user_unit else []), *args]


def _should_run(unit_dir: Path, wanted: bool) -> bool:
    return (
        wanted
        and unit_dir == SYSTEM_UNIT_DIR
        and shutil.which("systemctl") is not None
        and systemd_running()
    )


def _run_all(commands: list[list[str]], runner: Runner) -> None:
    for command in commands:
        result = runner(command)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout or "").strip()
            raise ServiceError(f"{' '.join(command)} failed: {detail}")


def _default_runner(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=120, check=False)


def install(
    spec: UnitSpec,
    unit_dir: Path,
    *,
    start: bool = True,
    run_systemctl: bool | None = None,
    runner: Runner = _default_runner,
) -> Outcome:
    """Write the unit; enable and start it when ``run_systemctl`` (default: when ``start``,
    the unit is a system unit in /etc/systemd/system and systemd runs this machine)."""
    path = unit_dir / f"{spec.name}.service"
    try:
        unit_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(render_unit(spec), encoding="utf-8")
        tmp.chmod(0o644)
        os.replace(tmp, path)
    except PermissionError:
        raise ServiceError(f"cannot write {path}: run it with sudo") from None
    commands = [
        _systemctl(spec.user_unit, "daemon-reload"),
        _systemctl(spec.user_unit, "enable", "--now", spec.name),
    ]
    ran = _should_run(unit_dir, start) if run_systemctl is None else run_systemctl
    if ran:
        _run_all(commands, runner)
    return Outcome(path, commands, ran)


def uninstall(
    name: str,
    unit_dir: Path,
    *,
    stop: bool = True,
    run_systemctl: bool | None = None,
    runner: Runner = _default_runner,
) -> Outcome:
    """Stop and disable the service (when this is the machine's systemd), remove the unit."""
    path = unit_dir / f"{name}.service"
    if not path.exists():
        raise ServiceError(f"no service unit {path}: nothing to remove")
    user_unit = is_user_unit_dir(unit_dir)
    before = [_systemctl(user_unit, "disable", "--now", name)]
    after = [_systemctl(user_unit, "daemon-reload")]
    ran = _should_run(unit_dir, stop) if run_systemctl is None else run_systemctl
    if ran:
        _run_all(before, runner)
    try:
        path.unlink()
    except PermissionError:
        raise ServiceError(f"cannot remove {path}: run it with sudo") from None
    if ran:
        _run_all(after, runner)
    return Outcome(path, before + after, ran)
