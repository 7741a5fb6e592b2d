"""A fake Windows service control manager (SCM) behind fake pywin32 service modules.

Two halves, as on Windows, where the SCM and the service are different processes:

- **The manager** (:class:`FakeServiceManager`, in the test process): the service database
  (name, display name, command line, start type, description, failure actions, pending delete)
  and the calls ``spoonprint service install|uninstall`` make: ``win32serviceutil``'s
  InstallService, ChangeServiceConfig, StartService, StopService, QueryServiceStatus,
  WaitForServiceStatus, RemoveService and ``win32service``'s OpenSCManager, OpenService,
  ChangeServiceConfig2, QueryServiceConfig2, CloseServiceHandle. :meth:`installed` puts them
  into ``sys.modules`` as ``pywintypes``, ``win32service`` and ``win32serviceutil`` (and a
  ``servicemanager`` whose dispatcher fails: the test process is no service). StartService
  really starts the service's command line (split as Windows' C runtime splits it) as a
  process, as the SCM does, from another working directory and with no console input.
- **The service side** (inside that process): ``servicemanager`` (Initialize,
  PrepareToHostSingle, StartServiceCtrlDispatcher, RegisterServiceCtrlHandler,
  SetEventSourceName, Log*Msg), ``win32service.SetServiceStatus`` and
  ``win32serviceutil.ServiceFramework``. They are put in place at interpreter start by the
  ``sitecustomize`` module that :meth:`FakeServiceManager.start_env` puts first on PYTHONPATH.

The two talk through files in a folder per service: the service appends each status it reports
(SetServiceStatus's 7-tuple) and each event-log message; the manager appends control codes
(SERVICE_CONTROL_STOP ...), which the dispatcher thread hands to the registered handler.

Each call keeps pywin32's name, argument order, return shape, constants and error type
(``pywintypes.error(winerror, funcname, strerror)``); docstrings name the real call. Sources:
pywin32's win32/Lib/win32serviceutil.py, win32/src/win32service.i (ChangeServiceConfig2's
SERVICE_FAILURE_ACTIONS dict: ResetPeriod, RebootMsg, Command, Actions, all required) and
win32/src/PythonService.cpp; winsvc.h and winerror.h. Behaviour modelled on the SCM:

- creating, changing, starting, stopping and deleting need administrator rights (the
  SC_MANAGER_ALL_ACCESS / SERVICE_ALL_ACCESS the utilities ask for), else ERROR_ACCESS_DENIED;
- a service process must call StartServiceCtrlDispatcher within 30 s (else
  ERROR_SERVICE_REQUEST_TIMEOUT and the process is killed); a process not started by the SCM
  gets ERROR_FAILED_SERVICE_CONTROLLER_CONNECT from it;
- a control the service did not accept in its last status fails with
  ERROR_INVALID_SERVICE_CONTROL, and one sent to a stopped service with
  ERROR_SERVICE_NOT_ACTIVE; deleting a running service marks it for delete (gone once stopped);
- the service reports SERVICE_STOPPED when SvcRun returns, with ERROR_SERVICE_SPECIFIC_ERROR if
  it raised, and when its process ends without reporting it, as after a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.importer import importable

# winerror.h
ERROR_ACCESS_DENIED = 5
ERROR_INVALID_HANDLE = 6
ERROR_INVALID_SERVICE_CONTROL = 1052
ERROR_SERVICE_REQUEST_TIMEOUT = 1053
ERROR_SERVICE_ALREADY_RUNNING = 1056
ERROR_SERVICE_DOES_NOT_EXIST = 1060
ERROR_SERVICE_NOT_ACTIVE = 1062
ERROR_FAILED_SERVICE_CONTROLLER_CONNECT = 1063
ERROR_SERVICE_SPECIFIC_ERROR = 1066
ERROR_SERVICE_MARKED_FOR_DELETE = 1072
ERROR_SERVICE_EXISTS = 1073
ERROR_PROCESS_ABORTED = 1067
MESSAGES = {
    ERROR_ACCESS_DENIED: "Access is denied.",
    ERROR_INVALID_HANDLE: "The handle is invalid.",
    ERROR_INVALID_SERVICE_CONTROL: "The requested control is not valid for this service.",
    ERROR_SERVICE_REQUEST_TIMEOUT: (
        "The service did not respond to the start or control request in a timely fashion."
    ),
    ERROR_SERVICE_ALREADY_RUNNING: "An instance of the service is already running.",
    ERROR_SERVICE_DOES_NOT_EXIST: "The specified service does not exist as an installed service.",
    ERROR_SERVICE_NOT_ACTIVE: "The service has not been started.",
    ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: (
        "The service process could not connect to the service controller."
    ),
    ERROR_SERVICE_SPECIFIC_ERROR: "The service has returned a service-specific error code.",
    ERROR_SERVICE_MARKED_FOR_DELETE: "The specified service has been marked for deletion.",
    ERROR_SERVICE_EXISTS: "The specified service already exists.",
}

# winsvc.h
SERVICE_WIN32_OWN_PROCESS = 0x10
SERVICE_INTERACTIVE_PROCESS = 0x100
SERVICE_STOPPED = 1
SERVICE_START_PENDING = 2
SERVICE_STOP_PENDING = 3
SERVICE_RUNNING = 4
SERVICE_ACCEPT_STOP = 0x1
SERVICE_ACCEPT_PAUSE_CONTINUE = 0x2
SERVICE_ACCEPT_SHUTDOWN = 0x4
#: HKLM\SYSTEM\CurrentControlSet\Control\WaitToKillServiceTimeout on Windows 10/11 (ms / 1000).
WAIT_TO_KILL_SERVICE = 5.0
#: Modules whose import takes seconds on a slow PC: the server and its web stack.
HEAVY_MODULES = ("fastapi", "uvicorn", "spoonprint.server", "spoonprint.app")
SERVICE_CONTROL_STOP = 1
SERVICE_CONTROL_PAUSE = 2
SERVICE_CONTROL_CONTINUE = 3
SERVICE_CONTROL_INTERROGATE = 4
SERVICE_CONTROL_SHUTDOWN = 5
SERVICE_AUTO_START = 2
SERVICE_DEMAND_START = 3
SERVICE_DISABLED = 4
SERVICE_ERROR_NORMAL = 1
SC_MANAGER_CONNECT = 0x1
SC_MANAGER_ALL_ACCESS = 0xF003F
SERVICE_QUERY_STATUS = 0x4
SERVICE_ALL_ACCESS = 0xF01FF
SERVICE_CONFIG_DESCRIPTION = 1
SERVICE_CONFIG_FAILURE_ACTIONS = 2
SERVICE_CONFIG_DELAYED_AUTO_START_INFO = 3
SERVICE_CONFIG_FAILURE_ACTIONS_FLAG = 4
SC_ACTION_NONE = 0
SC_ACTION_RESTART = 1
SC_ACTION_REBOOT = 2
SC_ACTION_RUN_COMMAND = 3
WIN32SERVICE_CONSTANTS = {
    name: value
    for name, value in globals().items()
    if name.startswith(("SERVICE_", "SC_")) and isinstance(value, int)
}
#: Seconds the SCM waits for a started process to connect (its default ServicesPipeTimeout).
CONNECT_TIMEOUT = 30.0
#: How often each side looks at the other's file (no cross-process event to wait on).
POLL = 0.02
ENV_FOLDER = "SPOONPRINT_FAKE_SCM"
ENV_SERVICE = "SPOONPRINT_FAKE_SCM_SERVICE"


class error(Exception):
    """pywintypes.error: ``args`` is (winerror, funcname, strerror), also as attributes."""

    def __init__(self, winerror: int, funcname: str, strerror: str) -> None:
        super().__init__(winerror, funcname, strerror)
        self.winerror = winerror
        self.funcname = funcname
        self.strerror = strerror


def winerror(code: int, funcname: str) -> error:
    return error(code, funcname, MESSAGES[code])


def split_command_line(line: str) -> list[str]:
    """Split a command line as CommandLineToArgvW and the C runtime do: the program is taken
    up to the closing quote (or the first space); then 2n backslashes before a quote are n
    backslashes and the quote toggles quoting, 2n+1 are n and a literal quote, other
    backslashes are literal, and whitespace outside quotes separates arguments."""
    line = line.lstrip()
    if line.startswith('"'):
        end = line.index('"', 1)
        words, rest = [line[1:end]], line[end + 1 :]
    else:
        program, _, rest = line.partition(" ")
        words = [program]
    word: list[str] | None = None
    quoted = False
    i = 0
    while i < len(rest):
        char = rest[i]
        if char == "\\":
            run = len(rest[i:]) - len(rest[i:].lstrip("\\"))
            if i + run < len(rest) and rest[i + run] == '"':
                word = (word or []) + ["\\" * (run // 2)]
                if run % 2:
                    word.append('"')
                    i += run + 1
                else:
                    i += run
                continue
            word = (word or []) + ["\\" * run]
            i += run
            continue
        if char == '"':
            quoted = not quoted
            word = word or []
        elif char in " \t" and not quoted:
            if word is not None:
                words.append("".join(word))
                word = None
        else:
            word = (word or []) + [char]
        i += 1
    if word is not None:
        words.append("".join(word))
    return words


def _module(name: str, **attributes: Any) -> types.ModuleType:
    module = types.ModuleType(name, f"fake {name} (tests/fakes/win32service_install.py)")
    for key, value in attributes.items():
        setattr(module, key, value)
    return module


# -- the manager (test process) -----------------------------------------------------------


@dataclass
class FakeService:
    name: str
    display_name: str
    command_line: str
    start_type: int
    service_type: int = SERVICE_WIN32_OWN_PROCESS
    error_control: int = SERVICE_ERROR_NORMAL
    user: str | None = None
    python_class: str | None = None
    description: str | None = None
    failure_actions: dict[str, Any] | None = None
    failure_actions_on_non_crash: bool = False
    marked_for_delete: bool = False
    process: subprocess.Popen[bytes] | None = None
    folder: Path | None = None


@dataclass
class FakeServiceManager:
    """The SCM's database and the service processes it started."""

    root: Path
    admin: bool = True
    services: dict[str, FakeService] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    _handles: dict[int, str | None] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def installed(self) -> Iterator[FakeServiceManager]:
        """The fake modules importable (not pre-imported: see importer.importable)."""
        with importable(self.modules()):
            try:
                yield self
            finally:
                self.kill_all()

    def modules(self) -> dict[str, types.ModuleType]:
        pywintypes = _module("pywintypes", error=error)
        win32service = _module("win32service", error=error, **WIN32SERVICE_CONSTANTS)
        for name in (
            "OpenSCManager",
            "OpenService",
            "CloseServiceHandle",
            "ChangeServiceConfig2",
            "QueryServiceConfig2",
        ):
            setattr(win32service, name, getattr(self, name))
        win32serviceutil = _module("win32serviceutil", error=RuntimeError)
        for name in (
            "InstallService",
            "ChangeServiceConfig",
            "StartService",
            "StopService",
            "QueryServiceStatus",
            "WaitForServiceStatus",
            "RemoveService",
        ):
            setattr(win32serviceutil, name, getattr(self, name))
        # This process was not started by the SCM: its dispatcher fails as it would.
        servicemanager = service_side_modules(_ServiceSide(None, None))["servicemanager"]
        return {
            "pywintypes": pywintypes,
            "servicemanager": servicemanager,
            "win32service": win32service,
            "win32serviceutil": win32serviceutil,
        }

    # -- win32service ---------------------------------------------------------------------

    def OpenSCManager(
        self, machineName: str | None, dbName: str | None, desiredAccess: int, /
    ) -> int:
        """win32service.OpenSCManager(machineName, dbName, desiredAccess) -> PySC_HANDLE."""
        self.calls.append("OpenSCManager")
        self._require_rights(desiredAccess, SC_MANAGER_CONNECT, "OpenSCManager")
        return self._new_handle(None)

    def OpenService(self, scHandle: int, name: str, desiredAccess: int, /) -> int:
        """win32service.OpenService(scHandle, name, desiredAccess) -> PySC_HANDLE."""
        self.calls.append("OpenService")
        self._handle(scHandle, "OpenService")
        self._require_rights(desiredAccess, SERVICE_QUERY_STATUS, "OpenService")
        return self._new_handle(self._service(name, "OpenService").name)

    def CloseServiceHandle(self, scHandle: int, /) -> None:
        """win32service.CloseServiceHandle(scHandle)."""
        self._handle(scHandle, "CloseServiceHandle")
        del self._handles[scHandle]

    def ChangeServiceConfig2(self, hService: int, InfoLevel: int, info: Any, /) -> None:
        """win32service.ChangeServiceConfig2(hService, InfoLevel, info): the dict for
        SERVICE_CONFIG_FAILURE_ACTIONS must hold exactly ResetPeriod (int), RebootMsg and
        Command (str or None) and Actions (a sequence of (type, delay ms) 2-tuples)."""
        self.calls.append("ChangeServiceConfig2")
        service = self.services[self._service_handle(hService, "ChangeServiceConfig2")]
        if InfoLevel == SERVICE_CONFIG_DESCRIPTION:
            service.description = _str_or_none(info, "ChangeServiceConfig2")
        elif InfoLevel == SERVICE_CONFIG_FAILURE_ACTIONS:
            service.failure_actions = _failure_actions(info)
        elif InfoLevel == SERVICE_CONFIG_FAILURE_ACTIONS_FLAG:
            service.failure_actions_on_non_crash = bool(info)
        elif InfoLevel == SERVICE_CONFIG_DELAYED_AUTO_START_INFO:
            pass
        else:
            raise ValueError(f"Info type {InfoLevel} is not supported")

    def QueryServiceConfig2(self, hService: int, InfoLevel: int, /) -> Any:
        """win32service.QueryServiceConfig2(hService, InfoLevel)."""
        service = self.services[self._service_handle(hService, "QueryServiceConfig2")]
        if InfoLevel == SERVICE_CONFIG_DESCRIPTION:
            return service.description
        if InfoLevel == SERVICE_CONFIG_FAILURE_ACTIONS:
            actions = service.failure_actions or {
                "ResetPeriod": 0,
                "RebootMsg": None,
                "Command": None,
                "Actions": (),
            }
            return {**actions, "Actions": tuple(actions["Actions"])}
        if InfoLevel == SERVICE_CONFIG_FAILURE_ACTIONS_FLAG:
            return service.failure_actions_on_non_crash
        raise NotImplementedError(f"QueryServiceConfig2: Level {InfoLevel} is not supported")

    # -- win32serviceutil -----------------------------------------------------------------

    def InstallService(
        self,
        pythonClassString: str | None,
        serviceName: str,
        displayName: str,
        startType: int | None = None,
        errorControl: int | None = None,
        bRunInteractive: int = 0,
        serviceDeps: Any = None,
        userName: str | None = None,
        password: str | None = None,
        exeName: str | None = None,
        perfMonIni: str | None = None,
        perfMonDll: str | None = None,
        exeArgs: str | None = None,
        description: str | None = None,
        delayedstart: bool | None = None,
    ) -> None:
        """win32serviceutil.InstallService: CreateService with the command line
        '"<exe>" <exeArgs>' (exeName must be a file, else pythonservice.exe is looked for),
        then the description, then the PythonClass registry value when given."""
        self.calls.append("InstallService")
        self._require_rights(SC_MANAGER_ALL_ACCESS, SC_MANAGER_CONNECT, "OpenSCManager")
        command = _command_line(exeName, exeArgs)
        with self._lock:
            if serviceName.casefold() in self.services:
                existing = self.services[serviceName.casefold()]
                code = (
                    ERROR_SERVICE_MARKED_FOR_DELETE
                    if existing.marked_for_delete
                    else ERROR_SERVICE_EXISTS
                )
                raise winerror(code, "CreateService")
            self.services[serviceName.casefold()] = FakeService(
                name=serviceName,
                display_name=displayName,
                command_line=command,
                start_type=SERVICE_DEMAND_START if startType is None else startType,
                service_type=SERVICE_WIN32_OWN_PROCESS
                | (SERVICE_INTERACTIVE_PROCESS if bRunInteractive else 0),
                error_control=SERVICE_ERROR_NORMAL if errorControl is None else errorControl,
                user=userName,
                python_class=pythonClassString or None,
                description=description,
            )

    def ChangeServiceConfig(
        self,
        pythonClassString: str | None,
        serviceName: str,
        startType: int | None = None,
        errorControl: int | None = None,
        bRunInteractive: int = 0,
        serviceDeps: Any = None,
        userName: str | None = None,
        password: str | None = None,
        exeName: str | None = None,
        displayName: str | None = None,
        perfMonIni: str | None = None,
        perfMonDll: str | None = None,
        exeArgs: str | None = None,
        description: str | None = None,
        delayedstart: bool | None = None,
    ) -> None:
        """win32serviceutil.ChangeServiceConfig: the same settings on an existing service
        (None start type / error control: SERVICE_NO_CHANGE)."""
        self.calls.append("ChangeServiceConfig")
        self._require_rights(SC_MANAGER_ALL_ACCESS, SC_MANAGER_CONNECT, "OpenSCManager")
        service = self._service(serviceName, "OpenService")
        service.command_line = _command_line(exeName, exeArgs)
        if startType is not None:
            service.start_type = startType
        if errorControl is not None:
            service.error_control = errorControl
        if displayName is not None:
            service.display_name = displayName
        if description is not None:
            service.description = description
        service.user = userName
        service.python_class = pythonClassString or service.python_class

    def StartService(self, serviceName: str, args: Any = None, machine: str | None = None) -> None:
        """win32serviceutil.StartService(serviceName, args=None, machine=None): the SCM starts
        the command line and returns once the process connected (StartServiceCtrlDispatcher),
        or fails with ERROR_SERVICE_REQUEST_TIMEOUT after 30 s."""
        self.calls.append("StartService")
        self._require_rights(SC_MANAGER_ALL_ACCESS, SC_MANAGER_CONNECT, "OpenSCManager")
        service = self._service(serviceName, "OpenService")
        if service.marked_for_delete:
            raise winerror(ERROR_SERVICE_MARKED_FOR_DELETE, "StartService")
        if self._state(service)[1] != SERVICE_STOPPED:
            raise winerror(ERROR_SERVICE_ALREADY_RUNNING, "StartService")
        service.folder = self._fresh_folder(service.name)
        workdir = self.root / "system32"  # services start in %SystemRoot%\System32
        workdir.mkdir(parents=True, exist_ok=True)
        log = (service.folder / "process.log").open("ab")
        service.process = subprocess.Popen(
            split_command_line(service.command_line),
            cwd=workdir,
            env=self.start_env(service.name, service.folder),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while not (service.folder / "status.jsonl").exists():
            if service.process.poll() is not None or time.monotonic() > deadline:
                service.process.kill()
                service.process.wait(10)
                raise winerror(ERROR_SERVICE_REQUEST_TIMEOUT, "StartService")
            time.sleep(POLL)

    def StopService(self, serviceName: str, machine: str | None = None) -> tuple[int, ...]:
        """win32serviceutil.StopService(serviceName, machine=None) = ControlService(STOP)."""
        self.calls.append("StopService")
        self._require_rights(SC_MANAGER_ALL_ACCESS, SC_MANAGER_CONNECT, "OpenSCManager")
        return self.control(self._service(serviceName, "OpenService"), SERVICE_CONTROL_STOP)

    def QueryServiceStatus(self, serviceName: str, machine: str | None = None) -> tuple[int, ...]:
        """win32serviceutil.QueryServiceStatus(serviceName, machine=None) -> SERVICE_STATUS
        (type, state, controls accepted, win32 exit code, service exit code, checkpoint,
        wait hint). Any user may ask."""
        self.calls.append("QueryServiceStatus")
        return self._state(self._service(serviceName, "OpenService"))

    def WaitForServiceStatus(
        self,
        serviceName: str,
        status: int,
        waitSecs: int,
        machine: str | None = None,
    ) -> None:
        """win32serviceutil.WaitForServiceStatus: polls QueryServiceStatus (4 times a second
        there) until ``status`` or ERROR_SERVICE_REQUEST_TIMEOUT after waitSecs."""
        deadline = time.monotonic() + waitSecs
        while self.QueryServiceStatus(serviceName, machine)[1] != status:
            if time.monotonic() > deadline:
                raise winerror(ERROR_SERVICE_REQUEST_TIMEOUT, "QueryServiceStatus")
            time.sleep(POLL)

    def RemoveService(self, serviceName: str) -> None:
        """win32serviceutil.RemoveService(serviceName): DeleteService; a running service is
        only marked for delete and goes when it stops."""
        self.calls.append("RemoveService")
        self._require_rights(SC_MANAGER_ALL_ACCESS, SC_MANAGER_CONNECT, "OpenSCManager")
        service = self._service(serviceName, "OpenService")
        if service.marked_for_delete:
            raise winerror(ERROR_SERVICE_MARKED_FOR_DELETE, "DeleteService")
        service.marked_for_delete = True
        self._state(service)  # deletes it at once when stopped

    # -- the manager's side of a running service ------------------------------------------

    def control(self, service: FakeService, code: int) -> tuple[int, ...]:
        status = self._state(service)
        if status[1] == SERVICE_STOPPED:
            raise winerror(ERROR_SERVICE_NOT_ACTIVE, "ControlService")
        accepted = status[2]
        needs = {
            SERVICE_CONTROL_STOP: SERVICE_ACCEPT_STOP,
            SERVICE_CONTROL_SHUTDOWN: SERVICE_ACCEPT_SHUTDOWN,
        }
        if code in needs and not accepted & needs[code]:
            raise winerror(ERROR_INVALID_SERVICE_CONTROL, "ControlService")
        assert service.folder is not None
        with (service.folder / "controls").open("a", encoding="utf-8") as handle:
            handle.write(f"{code}\n")
        return status

    def statuses(self, name: str) -> list[tuple[int, ...]]:
        """Every status the service reported, in order."""
        folder = self._service(name, "OpenService").folder
        return _read_statuses(folder) if folder else []

    def events(self, name: str) -> list[dict[str, str]]:
        """The service's event-log messages (servicemanager.Log*Msg)."""
        folder = self._service(name, "OpenService").folder
        if folder is None or not (folder / "events.jsonl").exists():
            return []
        lines = (folder / "events.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]

    def process_log(self, name: str) -> str:
        folder = self._service(name, "OpenService").folder
        if folder is None or not (folder / "process.log").exists():
            return ""
        return (folder / "process.log").read_text(encoding="utf-8", errors="replace")

    def start_env(self, name: str, folder: Path | None) -> dict[str, str]:
        """The service process's environment: the fake service side installed at start.
        Without a folder the process was not started by this manager (someone ran the
        command line by hand): StartServiceCtrlDispatcher fails as it would."""
        boot = self.root / "boot"
        boot.mkdir(parents=True, exist_ok=True)
        (boot / "sitecustomize.py").write_text(_SITECUSTOMIZE, encoding="utf-8")
        repo = Path(__file__).resolve().parents[2]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPOONPRINT_")}
        path = os.pathsep.join(p for p in (str(boot), str(repo), env.get("PYTHONPATH")) if p)
        env.update({"PYTHONPATH": path, ENV_SERVICE: name})
        if folder is not None:
            env[ENV_FOLDER] = str(folder)
        return env

    def shut_down_windows(self, wait: float = WAIT_TO_KILL_SERVICE) -> None:
        """Windows shutting down: each running service that accepts SERVICE_ACCEPT_SHUTDOWN
        is sent SERVICE_CONTROL_SHUTDOWN and given ``wait`` seconds (the registry's
        WaitToKillServiceTimeout) to end; the others, and the slow ones, are killed."""
        for service in self.services.values():
            if service.process is None or service.process.poll() is not None:
                continue
            if self._state(service)[2] & SERVICE_ACCEPT_SHUTDOWN:
                self.control(service, SERVICE_CONTROL_SHUTDOWN)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    service.process.wait(wait)
            if service.process.poll() is None:
                service.process.kill()
                service.process.wait(10)

    def kill_all(self) -> None:
        for service in self.services.values():
            if service.process is not None and service.process.poll() is None:
                service.process.kill()
                service.process.wait(10)

    def _state(self, service: FakeService) -> tuple[int, ...]:
        stopped = (SERVICE_WIN32_OWN_PROCESS, SERVICE_STOPPED, 0, 0, 0, 0, 0)
        status: tuple[int, ...] = stopped
        if service.process is not None:
            reported = _read_statuses(service.folder)
            status = reported[-1] if reported else (SERVICE_WIN32_OWN_PROCESS, 2, 0, 0, 0, 0, 0)
            if service.process.poll() is not None and status[1] != SERVICE_STOPPED:
                # The process ended without saying it stopped: a crash.
                status = (
                    SERVICE_WIN32_OWN_PROCESS,
                    SERVICE_STOPPED,
                    0,
                    ERROR_PROCESS_ABORTED,
                    0,
                    0,
                    0,
                )
        if status[1] == SERVICE_STOPPED and service.marked_for_delete:
            self.services.pop(service.name.casefold(), None)
        return status

    def _fresh_folder(self, name: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))

    def _require_rights(self, wanted: int, anyone: int, funcname: str) -> None:
        if wanted & ~anyone and not self.admin:
            raise winerror(ERROR_ACCESS_DENIED, funcname)

    def _new_handle(self, service: str | None) -> int:
        handle = 0x1000 + len(self._handles) * 8 + 8
        while handle in self._handles:
            handle += 8
        self._handles[handle] = service
        return handle

    def _handle(self, handle: object, funcname: str) -> str | None:
        if not isinstance(handle, int) or handle not in self._handles:
            raise winerror(ERROR_INVALID_HANDLE, funcname)
        return self._handles[handle]

    def _service_handle(self, handle: object, funcname: str) -> str:
        name = self._handle(handle, funcname)
        if name is None or name.casefold() not in self.services:
            raise winerror(ERROR_INVALID_HANDLE, funcname)
        return name.casefold()

    def _service(self, name: str, funcname: str) -> FakeService:
        service = self.services.get(name.casefold())
        if service is None:
            raise winerror(ERROR_SERVICE_DOES_NOT_EXIST, funcname)
        return service


def _command_line(exe_name: str | None, exe_args: str | None) -> str:
    """What LocatePythonServiceExe + _GetCommandLine make: the exe quoted, then the args."""
    if not exe_name or not os.path.isfile(exe_name):
        # The real one then looks for pythonservice.exe next to pywin32, which is not here.
        raise RuntimeError(f"Can't find '{os.path.join(sys.exec_prefix, 'pythonservice.exe')}'")
    command = f'"{os.path.abspath(exe_name)}"'
    return f"{command} {exe_args}" if exe_args is not None else command


def _str_or_none(value: Any, funcname: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{funcname}: expected a string or None, got {type(value).__name__}")
    return value


def _failure_actions(info: Any) -> dict[str, Any]:
    """PyWinObject_AsSERVICE_FAILURE_ACTIONS: a dict with exactly these keys, all required."""
    problem = (
        "SERVICE_FAILURE_ACTIONS must be a dictionary containing {'ResetPeriod':int,"
        "'RebootMsg':unicode,'Command':unicode,'Actions':sequence of 2 tuples(int,int)"
    )
    keys = {"ResetPeriod", "RebootMsg", "Command", "Actions"}
    if not isinstance(info, dict) or set(info) != keys:
        raise TypeError(problem)
    if not isinstance(info["ResetPeriod"], int):
        raise TypeError(problem)
    actions = []
    for action in info["Actions"] or ():
        if (
            not isinstance(action, tuple | list)
            or len(action) != 2
            or not all(isinstance(v, int) for v in action)
        ):
            raise TypeError("SC_ACTION must be a tuple of 2 ints (Type, Delay)")
        actions.append(tuple(action))
    return {
        "ResetPeriod": info["ResetPeriod"],
        "RebootMsg": _str_or_none(info["RebootMsg"], "SERVICE_FAILURE_ACTIONS"),
        "Command": _str_or_none(info["Command"], "SERVICE_FAILURE_ACTIONS"),
        "Actions": actions,
    }


def _read_statuses(folder: Path | None) -> list[tuple[int, ...]]:
    if folder is None or not (folder / "status.jsonl").exists():
        return []
    lines = (folder / "status.jsonl").read_text(encoding="utf-8").splitlines()
    return [tuple(json.loads(line)) for line in lines if line.strip()]


# -- the service side (service process) ----------------------------------------------------

_SITECUSTOMIZE = f'''\
"""Put the fake service side of pywin32 in place in a process started by the fake SCM."""
import os

if os.environ.get("{ENV_SERVICE}"):
    from tests.fakes.win32service_install import install_service_side

    install_service_side(os.environ.get("{ENV_FOLDER}") or None, os.environ["{ENV_SERVICE}"])
'''


class _ServiceSide:
    """servicemanager and SetServiceStatus in the service process."""

    def __init__(self, folder: Path | None, name: str | None) -> None:
        self.folder = folder
        self.name = name
        self.service_class: type | None = None
        self.handler: Callable[..., Any] | None = None
        self.handler_extra_args = False
        self._write = threading.Lock()

    # servicemanager

    def Initialize(
        self, eventSourceName: str | None = None, eventSourceFile: str | None = None
    ) -> None:
        """servicemanager.Initialize(eventSourceName=None, eventSourceFile=None)."""

    def PrepareToHostSingle(self, klass: type | None = None) -> None:
        """servicemanager.PrepareToHostSingle(klass): the class ServiceMain will build."""
        self.service_class = klass

    def StartServiceCtrlDispatcher(self) -> None:
        """servicemanager.StartServiceCtrlDispatcher(): connects to the SCM and returns when the
        service has stopped. ServiceMain (the class built with [name], then SvcRun) runs on
        a new thread; control requests are handed to the handler on this thread. What the
        process had imported by then is noted: the SCM gives a service 30 s to get here."""
        if self.folder is None:  # not started by the service manager
            raise winerror(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT, "StartServiceCtrlDispatcher")
        loaded = sorted(name for name in HEAVY_MODULES if name in sys.modules)
        self._event("info", f"dispatcher connected; loaded then: {', '.join(loaded) or 'none'}")
        if self.service_class is None:
            raise RuntimeError("PrepareToHostSingle was not called")
        self._status((SERVICE_WIN32_OWN_PROCESS, SERVICE_START_PENDING, 0, 0, 0, 0, 3000))
        main = threading.Thread(target=self._service_main, name="ServiceMain", daemon=True)
        main.start()
        seen = 0
        while main.is_alive():
            seen = self._dispatch_controls(seen)
            main.join(POLL)

    def RegisterServiceCtrlHandler(
        self, serviceName: str, callback: Callable[..., Any], extra_args: bool = False
    ) -> int:
        """servicemanager.RegisterServiceCtrlHandler(serviceName, callback, extra_args=False)
        -> the status handle SetServiceStatus takes."""
        if serviceName != self.name:
            raise winerror(ERROR_SERVICE_DOES_NOT_EXIST, "RegisterServiceCtrlHandlerEx")
        self.handler = callback
        self.handler_extra_args = extra_args
        return 0x5E5

    def SetEventSourceName(self, sourceName: str, registerNow: bool = False) -> None:
        """servicemanager.SetEventSourceName(sourceName, registerNow=False)."""

    def LogInfoMsg(self, msg: str) -> None:
        self._event("info", msg)

    def LogWarningMsg(self, msg: str) -> None:
        self._event("warning", msg)

    def LogErrorMsg(self, msg: str) -> None:
        self._event("error", msg)

    # win32service

    def SetServiceStatus(self, scHandle: int, serviceStatus: tuple[int, ...], /) -> None:
        """win32service.SetServiceStatus(scHandle, serviceStatus): a 7-tuple of ints."""
        if scHandle != 0x5E5:
            raise winerror(ERROR_INVALID_HANDLE, "SetServiceStatus")
        if len(serviceStatus) != 7 or not all(isinstance(v, int) for v in serviceStatus):
            raise TypeError("SERVICE_STATUS must be a tuple of 7 integers")
        self._status(tuple(serviceStatus))

    # insides

    def _service_main(self) -> None:
        assert self.service_class is not None and self.name is not None
        try:
            self.service_class([self.name]).SvcRun()
        except BaseException as exc:  # PythonService.cpp reports the failure and stops
            self._event("error", f"{type(exc).__name__}: {exc}")
            status = (SERVICE_WIN32_OWN_PROCESS, SERVICE_STOPPED, 0)
            self._status((*status, ERROR_SERVICE_SPECIFIC_ERROR, 1, 0, 0))
            return
        self._status((SERVICE_WIN32_OWN_PROCESS, SERVICE_STOPPED, 0, 0, 0, 0, 0))

    def _dispatch_controls(self, seen: int) -> int:
        assert self.folder is not None
        path = self.folder / "controls"
        if not path.exists():
            return seen
        codes = [int(line) for line in path.read_text(encoding="utf-8").split()]
        for code in codes[seen:]:
            if self.handler is not None:
                args = (code, 0, None) if self.handler_extra_args else (code,)
                self.handler(*args)
        return len(codes)

    def _status(self, status: tuple[int, ...]) -> None:
        assert self.folder is not None
        with self._write, (self.folder / "status.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(list(status)) + "\n")

    def _event(self, kind: str, message: str) -> None:
        if self.folder is None:
            return
        with self._write, (self.folder / "events.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"type": kind, "message": message}) + "\n")


def service_side_modules(side: _ServiceSide) -> dict[str, types.ModuleType]:
    servicemanager = _module("servicemanager", __file__=__file__)
    for name in (
        "Initialize",
        "PrepareToHostSingle",
        "StartServiceCtrlDispatcher",
        "RegisterServiceCtrlHandler",
        "SetEventSourceName",
        "LogInfoMsg",
        "LogWarningMsg",
        "LogErrorMsg",
    ):
        setattr(servicemanager, name, getattr(side, name))
    win32service = _module(
        "win32service",
        error=error,
        SetServiceStatus=side.SetServiceStatus,
        **WIN32SERVICE_CONSTANTS,
    )
    pywintypes = _module("pywintypes", error=error)
    win32serviceutil = _module("win32serviceutil", error=RuntimeError)
    win32serviceutil.ServiceFramework = _service_framework(servicemanager, win32service)
    return {
        "pywintypes": pywintypes,
        "servicemanager": servicemanager,
        "win32service": win32service,
        "win32serviceutil": win32serviceutil,
    }


def _service_framework(servicemanager: Any, win32service: Any) -> type:
    """win32serviceutil.ServiceFramework, as pywin32 writes it in Python."""

    class ServiceFramework:
        _svc_deps_ = None
        _exe_name_ = None
        _exe_args_ = None
        _svc_description_ = None

        def __init__(self, args: list[str]) -> None:
            self.ssh = servicemanager.RegisterServiceCtrlHandler(
                args[0], self.ServiceCtrlHandlerEx, True
            )
            servicemanager.SetEventSourceName(self._svc_name_)  # type: ignore[attr-defined]
            self.checkPoint = 0

        def GetAcceptedControls(self) -> int:
            """The controls the class can take, from the methods it has."""
            accepted = 0
            if hasattr(self, "SvcStop"):
                accepted |= win32service.SERVICE_ACCEPT_STOP
            if hasattr(self, "SvcPause") and hasattr(self, "SvcContinue"):
                accepted |= win32service.SERVICE_ACCEPT_PAUSE_CONTINUE
            if hasattr(self, "SvcShutdown"):
                accepted |= win32service.SERVICE_ACCEPT_SHUTDOWN
            return int(accepted)

        def ReportServiceStatus(
            self,
            serviceStatus: int,
            waitHint: int = 5000,
            win32ExitCode: int = 0,
            svcExitCode: int = 0,
        ) -> None:
            """No controls while starting; the checkpoint counts pending reports."""
            if self.ssh is None:
                return
            start_pending = serviceStatus == win32service.SERVICE_START_PENDING
            accepted = 0 if start_pending else self.GetAcceptedControls()
            if serviceStatus in (win32service.SERVICE_RUNNING, win32service.SERVICE_STOPPED):
                check_point = 0
            else:
                self.checkPoint += 1
                check_point = self.checkPoint
            status = (
                win32service.SERVICE_WIN32_OWN_PROCESS,
                serviceStatus,
                accepted,
                win32ExitCode,
                svcExitCode,
                check_point,
                waitHint,
            )
            win32service.SetServiceStatus(self.ssh, status)

        def SvcInterrogate(self) -> None:
            self.ReportServiceStatus(win32service.SERVICE_RUNNING)

        def SvcOther(self, control: int) -> None:
            pass

        def ServiceCtrlHandlerEx(self, control: int, event_type: int, data: Any) -> Any:
            if control == win32service.SERVICE_CONTROL_STOP:
                return self.SvcStop()  # type: ignore[attr-defined]
            if control == win32service.SERVICE_CONTROL_PAUSE:
                return self.SvcPause()  # type: ignore[attr-defined]
            if control == win32service.SERVICE_CONTROL_CONTINUE:
                return self.SvcContinue()  # type: ignore[attr-defined]
            if control == win32service.SERVICE_CONTROL_INTERROGATE:
                return self.SvcInterrogate()
            if control == win32service.SERVICE_CONTROL_SHUTDOWN:
                return self.SvcShutdown()  # type: ignore[attr-defined]
            return self.SvcOther(control)

        def SvcRun(self) -> None:
            """What the C framework calls: RUNNING, SvcDoRun, then STOP_PENDING (the framework
            reports STOPPED once this returns)."""
            self.ReportServiceStatus(win32service.SERVICE_RUNNING)
            self.SvcDoRun()  # type: ignore[attr-defined]
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING)

    return ServiceFramework


def install_service_side(folder: str | None, name: str | None) -> _ServiceSide:
    """Put the service side's fake modules into this process's ``sys.modules``."""
    side = _ServiceSide(Path(folder) if folder else None, name)
    sys.modules.update(service_side_modules(side))
    return side
