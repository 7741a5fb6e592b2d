"""A Windows service for spoonprint, through pywin32 (imported only when used).

Installing registers a service that starts with Windows (``SERVICE_AUTO_START``), runs as
LocalSystem and is restarted by the service manager 5 s after any failure. Its command line is
``<python> -c <bootstrap> ... -- --config <abs config> --name <name>``: the process hosts the
service itself (``servicemanager.StartServiceCtrlDispatcher``) instead of pywin32's
``pythonservice.exe``, which cannot see a virtual environment's packages. For the same reason a
venv's ``python.exe`` (a launcher that runs the real interpreter as a child, which the service
manager would not recognise) is replaced by the base interpreter plus the venv's site folders.

At run time the server runs on the process's main thread exactly as ``spoonprint serve`` does;
the service control dispatcher runs on a second thread, started first. A stop request from the
service manager, or Windows shutting down (SvcShutdown), is turned into SIGTERM for this
process, which the server handles as Ctrl+C: it finishes the ticket it is printing, hands back
unfinished jobs and closes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from spoonprint.service import DEFAULT_NAME, DESCRIPTION, DISPLAY_NAME, ServiceError

# winerror.h
ERROR_ACCESS_DENIED = 5
ERROR_SERVICE_DOES_NOT_EXIST = 1060
ERROR_SERVICE_NOT_ACTIVE = 1062
ERROR_FAILED_SERVICE_CONTROLLER_CONNECT = 1063
ERROR_SERVICE_MARKED_FOR_DELETE = 1072
ERROR_SERVICE_EXISTS = 1073

#: After a failure the service manager starts it again after this long (ms), three times,
#: and the count of failures is forgotten after a day without one.
RESTART_DELAY_MS = 5000
RESET_PERIOD = 86400
#: Longest wait for the server to stop (it finishes the ticket in hand first).
STOP_WAIT = 60
#: Longest the server's start waits for the dispatcher to begin connecting.
CONNECT_WAIT = 10
#: Runs in the service process before spoonprint can be imported: adds the venv's site
#: folders (given before "--", with their .pth files) to the front of sys.path, so the venv's
#: packages win over the base interpreter's as in the venv itself, then hands the rest of the
#: arguments to :func:`main`.
BOOTSTRAP = (
    "import site,sys;a=sys.argv[1:];k=a.index('--');n=len(sys.path);"
    "[site.addsitedir(d) for d in a[:k]];v=sys.path[n:];sys.path[n:]=[];sys.path[:0]=v;"
    "from spoonprint.service.windows import main;sys.exit(main(a[k+1:]))"
)


def _pywin32(name: str) -> Any:
    """A pywin32 module (``win32service``, ``servicemanager`` ...), imported on first use."""
    return importlib.import_module(name)


def usable() -> str | None:
    """None when pywin32's service modules import here, else what to install."""
    try:
        for name in ("pywintypes", "servicemanager", "win32service", "win32serviceutil"):
            _pywin32(name)
    except ImportError:
        return "needs pywin32: pip install pywin32"
    return None


def service_command(
    config: Path,
    name: str = DEFAULT_NAME,
    *,
    executable: str | None = None,
    base_executable: str | None = None,
    in_venv: bool | None = None,
    site_dirs: list[str] | None = None,
) -> tuple[str, str]:
    """The service's program and its arguments (a Windows command line)."""
    import site

    in_venv = sys.prefix != sys.base_prefix if in_venv is None else in_venv
    program: str
    if in_venv:
        program = base_executable or str(getattr(sys, "_base_executable", sys.executable))
        dirs = site.getsitepackages() if site_dirs is None else site_dirs
    else:
        program = executable or sys.executable
        dirs = []
    args = ["-c", BOOTSTRAP, *dirs, "--", "--config", str(config.absolute()), "--name", name]
    return program, subprocess.list2cmdline(args)


def _modules() -> tuple[Any, Any, Any]:
    return _pywin32("pywintypes"), _pywin32("win32service"), _pywin32("win32serviceutil")


def _explain(exc: Any) -> str:
    """A pywintypes.error in words, with the fix when there is one."""
    code = getattr(exc, "winerror", None)
    if code == ERROR_ACCESS_DENIED:
        return "Windows refused: run this in a terminal opened with 'Run as administrator'"
    if code == ERROR_SERVICE_MARKED_FOR_DELETE:
        return "Windows is still removing the old service: close the Services window, try again"
    return f"{getattr(exc, 'funcname', '')}: {getattr(exc, 'strerror', exc)}"


#: Where the Microsoft Store's Python lives (an app package, or its per-user alias).
_STORE_MARKS = ("\\windowsapps\\", "pythonsoftwarefoundation.python.")
STORE_PYTHON = (
    "this Python comes from the Microsoft Store: Windows runs it only for the user who "
    "installed it, never as a service. Install Python from python.org (tick 'Add python.exe "
    "to PATH'), install spoonprint with it, and run 'spoonprint service install' again"
)


def store_python(program: str) -> bool:
    """Whether ``program`` is the Microsoft Store's Python (a packaged app)."""
    return any(mark in program.replace("/", "\\").casefold() for mark in _STORE_MARKS)


def logon_task_command(config: Path, name: str = DEFAULT_NAME) -> str:
    """The schtasks command that starts spoonprint when the user logs on: the other set-up
    Microsoft supports for printing through a driver (it runs in the user's session)."""
    run = subprocess.list2cmdline(
        [sys.executable, "-m", "spoonprint", "start", "--config", str(config.absolute())]
    )
    return subprocess.list2cmdline(
        ["schtasks", "/Create", "/TN", name, "/SC", "ONLOGON", "/RL", "HIGHEST", "/TR", run]
    )


def session_advice(config: Path, name: str, account: str | None) -> list[str]:
    """What to know about the account the service runs under (KB2890836)."""
    if account is not None:
        return [f"It runs as {account}: that account must be allowed to print to the printer."]
    return [
        "It runs as LocalSystem, in session 0, where Microsoft does not support printing "
        "through a printer driver (KB2890836). For a windows: printer in gdi mode, use one of:",
        "  spoonprint service install --user .\\USER   (the PC's user account; asks for its "
        "password)",
        f"  {logon_task_command(config, name)}   (instead of the service: starts at logon)",
    ]


def printing_defaults_advice(printers: Sequence[str]) -> list[str]:
    """For each Windows printer whose Printing Defaults are not receipt paper: what to change.
    A service gets the Printing Defaults, not anyone's Printing Preferences."""
    from spoonprint.transports.windows_checks import printing_defaults

    advice = []
    for printer in printers:
        try:
            paper = printing_defaults(printer)
        except Exception as exc:  # the printer may be off or renamed; install goes on
            advice.append(f"Could not read the Printing Defaults of {printer!r}: {exc}")
            continue
        if paper is not None and not paper.receipt:
            advice.append(
                f"{printer!r}: its Printing Defaults are {paper.words()} paper. Open "
                f"Printers & scanners > {printer} > Printer properties > Advanced > Printing "
                "Defaults and choose the receipt paper (Star: '72mm x Receipt')."
            )
    return advice


def install(
    config: Path,
    name: str = DEFAULT_NAME,
    *,
    start: bool = True,
    account: str | None = None,
    password: str | None = None,
    printers: Sequence[str] = (),
) -> list[str]:
    """Register (or update) the service, make it restart on failure, and start it. With
    ``account`` (".\\USER" or "DOMAIN\\USER") and its password it runs under that account
    instead of LocalSystem. ``printers`` (Windows queue names) have their Printing Defaults
    checked."""
    program, args = service_command(config, name)
    if store_python(program) or store_python(sys.executable):
        raise ServiceError(STORE_PYTHON)
    pywintypes, win32service, win32serviceutil = _modules()
    done = []
    options: dict[str, Any] = {
        "startType": win32service.SERVICE_AUTO_START,
        "exeName": program,
        "exeArgs": args,
        "description": DESCRIPTION,
        "userName": account,
        "password": password,
    }
    try:
        try:
            # No Python class string: the process hosts the service itself (see the docstring).
            win32serviceutil.InstallService(None, name, DISPLAY_NAME, **options)
            done.append(f"Installed the Windows service {name!r} (starts with Windows).")
        except pywintypes.error as exc:
            if exc.winerror != ERROR_SERVICE_EXISTS:
                raise
            win32serviceutil.ChangeServiceConfig(None, name, displayName=DISPLAY_NAME, **options)
            done.append(f"Updated the Windows service {name!r}.")
        _restart_on_failure(name)
        if start:
            win32serviceutil.StartService(name)
            done.append(f"Started it. Stop it with: sc stop {name}")
    except pywintypes.error as exc:
        raise ServiceError(_explain(exc)) from None
    return done + session_advice(config, name, account) + printing_defaults_advice(printers)


def _restart_on_failure(name: str) -> None:
    """The Windows twin of systemd's Restart=always: restart after a crash or an exit with an
    error (the failure-actions flag), 5 s later."""
    win32service = _pywin32("win32service")
    manager = win32service.OpenSCManager(None, None, win32service.SC_MANAGER_ALL_ACCESS)
    try:
        handle = win32service.OpenService(manager, name, win32service.SERVICE_ALL_ACCESS)
        try:
            actions = {
                "ResetPeriod": RESET_PERIOD,
                "RebootMsg": None,
                "Command": None,
                "Actions": [(win32service.SC_ACTION_RESTART, RESTART_DELAY_MS)] * 3,
            }
            win32service.ChangeServiceConfig2(
                handle, win32service.SERVICE_CONFIG_FAILURE_ACTIONS, actions
            )
            win32service.ChangeServiceConfig2(
                handle, win32service.SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, True
            )
        finally:
            win32service.CloseServiceHandle(handle)
    finally:
        win32service.CloseServiceHandle(manager)


def uninstall(name: str = DEFAULT_NAME) -> list[str]:
    """Stop the service (waiting for the server to finish) and remove it."""
    pywintypes, win32service, win32serviceutil = _modules()
    done = []
    try:
        try:
            state = win32serviceutil.QueryServiceStatus(name)[1]
        except pywintypes.error as exc:
            if exc.winerror == ERROR_SERVICE_DOES_NOT_EXIST:
                raise ServiceError(f"there is no Windows service named {name!r}") from None
            raise
        if state != win32service.SERVICE_STOPPED:
            try:
                win32serviceutil.StopService(name)
            except pywintypes.error as exc:
                if exc.winerror != ERROR_SERVICE_NOT_ACTIVE:
                    raise
            win32serviceutil.WaitForServiceStatus(name, win32service.SERVICE_STOPPED, STOP_WAIT)
            done.append(f"Stopped the Windows service {name!r}.")
        win32serviceutil.RemoveService(name)
        done.append(f"Removed the Windows service {name!r}.")
    except pywintypes.error as exc:
        raise ServiceError(_explain(exc)) from None
    return done


# -- inside the service process -----------------------------------------------------------


class _Host:
    """What the service's threads share with the server on the main thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.server_done = threading.Event()
        self.stop_wanted = threading.Event()
        self.failure: str | None = None
        self.dispatch_error: BaseException | None = None
        #: The dispatcher is connecting (or could not): the server may load now.
        self.connecting = threading.Event()

    def note_signal(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM before the server has its own handler (or after it gave it back): the
        stopper keeps asking until the server is done, so noting it is enough."""

    def ask_stop(self) -> None:
        self.stop_wanted.set()

    def stopper(self) -> None:
        """Turn a stop request into SIGTERM for this process, again every half second until
        the server is done: one sent before the server installed its handler is only noted."""
        while not self.stop_wanted.wait(1.0):
            if self.server_done.is_set():
                return
        deadline = time.monotonic() + STOP_WAIT
        while not self.server_done.is_set() and time.monotonic() < deadline:
            signal.raise_signal(signal.SIGTERM)
            self.server_done.wait(0.5)

    def dispatch(self, service_class: type) -> None:
        """Connect to the service manager; blocks until the service has stopped."""
        servicemanager = _pywin32("servicemanager")
        try:
            servicemanager.Initialize(self.name, os.path.abspath(servicemanager.__file__))
            servicemanager.PrepareToHostSingle(service_class)
            self.connecting.set()
            servicemanager.StartServiceCtrlDispatcher()
        except Exception as exc:  # pywintypes.error 1063: not started by the service manager
            self.dispatch_error = exc
            self.ask_stop()
        finally:
            self.connecting.set()


def service_class(host: _Host) -> type:
    """The ServiceFramework subclass for ``host`` (pywin32 is imported here, not before)."""
    servicemanager, win32service, win32serviceutil = (
        _pywin32(name) for name in ("servicemanager", "win32service", "win32serviceutil")
    )

    framework: Any = win32serviceutil.ServiceFramework

    class SpoonprintService(framework):  # type: ignore[misc]
        _svc_name_ = host.name
        _svc_display_name_ = DISPLAY_NAME
        _svc_description_ = DESCRIPTION

        def SvcStop(self) -> None:
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING, waitHint=STOP_WAIT * 1000)
            host.ask_stop()

        def SvcShutdown(self) -> None:
            """Windows is shutting down: the same graceful stop (having this method makes
            the framework accept SERVICE_CONTROL_SHUTDOWN; without it the process is
            killed, cutting the ticket being printed)."""
            self.SvcStop()

        def SvcDoRun(self) -> None:
            servicemanager.LogInfoMsg(f"{host.name}: spoonprint is running")
            while not host.server_done.wait(1.0):
                continue  # the server runs on the main thread; this thread is the service's
            if host.failure:
                servicemanager.LogErrorMsg(f"{host.name}: {host.failure}")
                # Raising makes the framework report a failure: the restart policy applies.
                raise RuntimeError(host.failure)
            servicemanager.LogInfoMsg(f"{host.name}: spoonprint stopped")

    return SpoonprintService


def run_service(config: Path, name: str = DEFAULT_NAME) -> int:
    """The service process: the server on this (main) thread, the dispatcher on another.

    The dispatcher is started before the server's modules are imported: the service manager
    gives a service 30 s to connect, and importing the web stack on a slow PC's first boot
    can take much of that."""
    for stream in ("stdout", "stderr"):  # a service has no console
        if getattr(sys, stream) is None:
            setattr(sys, stream, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115
    host = _Host(name)
    previous = signal.signal(signal.SIGTERM, host.note_signal)
    threads = [
        threading.Thread(target=host.dispatch, args=(service_class(host),), daemon=True),
        threading.Thread(target=host.stopper, daemon=True),
    ]
    for thread in threads:
        thread.start()
    host.connecting.wait(CONNECT_WAIT)
    from spoonprint.config import load_settings
    from spoonprint.errors import SpoonprintError
    from spoonprint.server import serve

    try:
        serve(load_settings(config, required=True))
    except SpoonprintError as exc:
        host.failure = f"cannot start: {exc}"
    finally:
        host.server_done.set()
        for thread in threads:
            thread.join(timeout=STOP_WAIT)
        signal.signal(signal.SIGTERM, previous)
    if host.dispatch_error is not None:
        print(
            f"not started by the Windows service manager ({host.dispatch_error}); "
            "to run spoonprint by hand use: spoonprint serve",
            file=sys.stderr,
        )
        return 2
    return 1 if host.failure else 0


def main(argv: list[str]) -> int:
    """Entry of the service's command line (see :data:`BOOTSTRAP`)."""
    parser = argparse.ArgumentParser(prog="spoonprint-service")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--name", default=DEFAULT_NAME)
    options = parser.parse_args(argv)
    return run_service(options.config, options.name)
