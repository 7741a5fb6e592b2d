"""A private CUPS daemon for tests: the bench's (:mod:`bench.cups`), skipping the test when
CUPS is not installed or cupsd does not start here.

Its folder is under the system temp folder, not pytest's: cupsd runs backends as user ``lp``,
which must reach the spooled files, and pytest's folders are private to the user running the
tests. Clients reach it with ``CUPS_SERVER=<folder>/cups.sock`` (:attr:`Cupsd.env`), or by
passing :attr:`Cupsd.socket` as the server. See /work/shared/CUPS-NOTES.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from bench.cups import PrivateCups, private_cups

Cupsd = PrivateCups


@contextmanager
def private_cupsd() -> Iterator[Cupsd]:
    """A running private cupsd, stopped by PID at the end; skips the test without one."""
    with private_cups() as (daemon, why_not):
        if daemon is None:
            pytest.skip(f"no private CUPS daemon: {why_not}")
        yield daemon
