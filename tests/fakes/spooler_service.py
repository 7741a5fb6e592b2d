"""The Spooler service in the fake: ``win32serviceutil`` and the ``win32service`` calls the
transport makes, after pywin32's win32/Lib/win32serviceutil.py and win32service.i.

The service has dependents (``FakeSpooler.dependents``: name -> running); stopping the Spooler
while one runs fails with ERROR_DEPENDENT_SERVICES_RUNNING (1051), as the service control
manager says. ``FakeSpooler.stop_hangs`` makes it stay in STOP_PENDING: pywin32's
RestartService then tries StartService (ERROR_SERVICE_ALREADY_RUNNING, 1056) once a second for
``waitSeconds``, prints "Gave up waiting for the old service to stop!" and returns as if all
were well; StopServiceWithDeps and WaitForServiceStatus raise ERROR_SERVICE_REQUEST_TIMEOUT
(1053). Starting and stopping need administrator rights (SC_MANAGER_ALL_ACCESS).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.pywin32 import FakeSpooler

ERROR_ACCESS_DENIED = 5
ERROR_DEPENDENT_SERVICES_RUNNING = 1051
ERROR_SERVICE_REQUEST_TIMEOUT = 1053
ERROR_SERVICE_ALREADY_RUNNING = 1056
ERROR_SERVICE_DOES_NOT_EXIST = 1060
ERROR_SERVICE_NOT_ACTIVE = 1062
MESSAGES = {
    ERROR_DEPENDENT_SERVICES_RUNNING: "A stop control has been sent to a service that other "
    "running services are dependent on.",
    ERROR_SERVICE_REQUEST_TIMEOUT: "The service did not respond to the start or control "
    "request in a timely fashion.",
    ERROR_SERVICE_ALREADY_RUNNING: "An instance of the service is already running.",
    ERROR_SERVICE_DOES_NOT_EXIST: "The specified service does not exist as an installed service.",
    ERROR_SERVICE_NOT_ACTIVE: "The service has not been started.",
}
# winsvc.h
SERVICE_STOPPED = 1
SERVICE_START_PENDING = 2
SERVICE_STOP_PENDING = 3
SERVICE_RUNNING = 4
SERVICE_ACTIVE = 1
SERVICE_WIN32_OWN_PROCESS = 0x10
SERVICE_ACCEPT_STOP = 0x1
SC_MANAGER_CONNECT = 0x1
SC_MANAGER_ALL_ACCESS = 0xF003F
SERVICE_QUERY_CONFIG = 0x1
SERVICE_QUERY_STATUS = 0x4
SERVICE_START = 0x10
SERVICE_STOP = 0x20
SERVICE_ENUMERATE_DEPENDENTS = 0x8
SERVICE_ALL_ACCESS = 0xF01FF
CONSTANTS = {
    name: value
    for name, value in globals().items()
    if name.startswith(("SERVICE_", "SC_MANAGER_")) and isinstance(value, int)
}
_SPOOLER = "spooler"


class Services:
    """The service manager's view of the Spooler and its dependents."""

    def __init__(self, spooler: FakeSpooler) -> None:
        self._s = spooler
        self._handles: dict[int, str | None] = {}
        self._next = 0x1000

    def error(self, code: int, funcname: str) -> Exception:
        from tests.fakes.pywin32 import error

        return error(code, funcname, MESSAGES.get(code) or self._s.winerror(code, "").strerror)

    def state(self, name: str) -> int:
        s = self._s
        if name.casefold() == _SPOOLER:
            if s.stopping:
                return SERVICE_STOP_PENDING
            return SERVICE_RUNNING if s.running else SERVICE_STOPPED
        for dependent, running in s.dependents.items():
            if dependent.casefold() == name.casefold():
                return SERVICE_RUNNING if running else SERVICE_STOPPED
        raise self.error(ERROR_SERVICE_DOES_NOT_EXIST, "OpenService")

    def status(self, name: str) -> tuple[int, ...]:
        state = self.state(name)
        controls = SERVICE_ACCEPT_STOP if state == SERVICE_RUNNING else 0
        return (SERVICE_WIN32_OWN_PROCESS, state, controls, 0, 0, 0, 0)

    def stop(self, name: str) -> None:
        """SERVICE_CONTROL_STOP (needs administrator rights)."""
        s = self._s
        if not s.admin:
            raise self.error(ERROR_ACCESS_DENIED, "OpenSCManager")
        state = self.state(name)
        if state == SERVICE_STOPPED:
            raise self.error(ERROR_SERVICE_NOT_ACTIVE, "ControlService")
        if name.casefold() != _SPOOLER:
            s.dependents[next(d for d in s.dependents if d.casefold() == name.casefold())] = False
            return
        if any(s.dependents.values()):
            raise self.error(ERROR_DEPENDENT_SERVICES_RUNNING, "ControlService")
        if s.stop_hangs:
            s.stopping = True
        else:
            s.stop_service()

    def start(self, name: str) -> None:
        s = self._s
        if not s.admin:
            raise self.error(ERROR_ACCESS_DENIED, "OpenSCManager")
        if self.state(name) != SERVICE_STOPPED:
            raise self.error(ERROR_SERVICE_ALREADY_RUNNING, "StartService")
        if name.casefold() == _SPOOLER:
            s.restart()
        else:
            s.dependents[next(d for d in s.dependents if d.casefold() == name.casefold())] = True


class Win32ServiceUtil:
    """win32serviceutil's functions (positional, as pywin32 defines them)."""

    def __init__(self, spooler: FakeSpooler) -> None:
        self._s = spooler
        self._m = spooler.services

    def QueryServiceStatus(self, serviceName: str, machine: str | None = None, /) -> Any:
        """-> SERVICE_STATUS tuple; any user may ask."""
        with self._s.call("QueryServiceStatus", spooler=False):
            return self._m.status(serviceName)

    def StopService(self, serviceName: str, machine: str | None = None, /) -> Any:
        with self._s.call("StopService", spooler=False):
            self._m.stop(serviceName)
            return self._m.status(serviceName)

    def StartService(
        self, serviceName: str, args: Any = None, machine: str | None = None, /
    ) -> None:
        with self._s.call("StartService", spooler=False):
            self._m.start(serviceName)

    def WaitForServiceStatus(
        self, serviceName: str, status: int, waitSecs: int, machine: str | None = None, /
    ) -> None:
        """Polls QueryServiceStatus every 250 ms for ``waitSecs``; then 1053."""
        for _ in range(waitSecs * 4):
            if self.QueryServiceStatus(serviceName)[1] == status:
                return
            time.sleep(0.25)
        raise self._m.error(ERROR_SERVICE_REQUEST_TIMEOUT, "QueryServiceStatus")

    def StopServiceWithDeps(
        self, serviceName: str, machine: str | None = None, waitSecs: int = 30, /
    ) -> None:
        """Stops the dependents, then the service, each within ``waitSecs`` (else 1053)."""
        with self._s.call("StopServiceWithDeps", spooler=False):
            if not self._s.admin:
                raise self._m.error(ERROR_ACCESS_DENIED, "OpenSCManager")
            running = [name for name, up in self._s.dependents.items() if up]
        for name in [*running, serviceName]:
            try:
                self.StopService(name)
            except Exception as exc:
                if getattr(exc, "winerror", None) != ERROR_SERVICE_NOT_ACTIVE:
                    raise
            for _ in range(waitSecs):
                if self.QueryServiceStatus(name)[1] == SERVICE_STOPPED:
                    break
                time.sleep(1.0)
            else:
                raise self._m.error(ERROR_SERVICE_REQUEST_TIMEOUT, "ControlService")

    def RestartService(
        self, serviceName: str, args: Any = None, waitSeconds: int = 30,
        machine: str | None = None, /,
    ) -> None:  # fmt: skip
        """pywin32's own algorithm, "Gave up" printed and all."""
        try:
            self.StopService(serviceName)
        except Exception as exc:
            if getattr(exc, "winerror", None) != ERROR_SERVICE_NOT_ACTIVE:
                raise
        for _ in range(waitSeconds):
            try:
                self.StartService(serviceName, args)
                break
            except Exception as exc:
                if getattr(exc, "winerror", None) != ERROR_SERVICE_ALREADY_RUNNING:
                    raise
                time.sleep(1.0)
        else:
            print("Gave up waiting for the old service to stop!")


class Win32Service:
    """win32service's handle calls for listing a service's dependents."""

    def __init__(self, spooler: FakeSpooler) -> None:
        self._s = spooler
        self._m = spooler.services

    def OpenSCManager(self, machineName: Any, dbName: Any, desiredAccess: int, /) -> int:
        if desiredAccess & ~SC_MANAGER_CONNECT and not self._s.admin:
            raise self._m.error(ERROR_ACCESS_DENIED, "OpenSCManager")
        self._m._next += 4
        self._m._handles[self._m._next] = None
        return self._m._next

    def OpenService(self, scHandle: int, name: str, desiredAccess: int, /) -> int:
        """Any user may query; starting and stopping (or all access) need administrators."""
        if name.casefold() == self._s.service_name.casefold():
            if self._s.service_account is None:
                raise self._m.error(ERROR_SERVICE_DOES_NOT_EXIST, "OpenService")
        else:
            self._m.state(name)  # ERROR_SERVICE_DOES_NOT_EXIST for an unknown one
        if desiredAccess & (SERVICE_START | SERVICE_STOP) and not self._s.admin:
            raise self._m.error(ERROR_ACCESS_DENIED, "OpenService")
        self._m._next += 4
        self._m._handles[self._m._next] = name
        return self._m._next

    def EnumDependentServices(self, hService: int, ServiceState: int, /) -> tuple[Any, ...]:
        """-> ((ServiceName, DisplayName, SERVICE_STATUS), ...) in the given state."""
        name = self._m._handles[hService]
        assert name is not None and name.casefold() == _SPOOLER
        wanted = (lambda up: up) if ServiceState == SERVICE_ACTIVE else (lambda up: not up)
        return tuple(
            (dep, dep, self._m.status(dep)) for dep, up in self._s.dependents.items() if wanted(up)
        )

    def QueryServiceConfig(self, hService: int, /) -> tuple[Any, ...]:
        """-> (ServiceType, StartType, ErrorControl, BinaryPathName, LoadOrderGroup, TagId,
        Dependencies, ServiceStartName, DisplayName)."""
        name = self._m._handles[hService]
        assert name is not None
        account = self._s.service_account if name == self._s.service_name else "LocalSystem"
        return (SERVICE_WIN32_OWN_PROCESS, 2, 1, f'"python.exe" {name}', "", 0, [], account, name)

    def CloseServiceHandle(self, handle: int, /) -> None:
        self._m._handles.pop(handle, None)
