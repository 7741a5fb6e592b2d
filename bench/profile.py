"""Read a py-spy profile (``--format raw``: one collapsed stack and its sample count per line)
and print where the time went: functions by samples in them and below (inclusive) and by samples
in them alone (self), as shares of all samples.

``python -m bench --profile DIR ...`` writes one profile per spoonprint server the benches
start; summarise one with::

    python -m bench.profile DIR/latency.txt [--top 25] [--match spoonprint/]

``--match`` keeps only frames whose text contains it (e.g. ``spoonprint/`` for the project's
own functions, ``sqlite3`` for the database) in the inclusive table.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

#: ``function (file:line)``: the line number is dropped so a function is one row.
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


@dataclass(frozen=True)
class Profile:
    samples: int
    inclusive: Counter[str]
    own: Counter[str]


def frame_name(frame: str) -> str:
    """``Guard.blocked (spoonprint/security/guard.py:105)`` -> ``Guard.blocked
    (spoonprint/security/guard.py)``."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    return f"{match['function']} ({match['file']})"


def read_profile(path: Path) -> Profile:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(frame) for frame in stack.split(";")]
        total += count
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
    return Profile(total, inclusive, own)


def report(path: Path, top: int = 25, match: str = "") -> str:
    profile = read_profile(path)
    if profile.samples == 0:
        return f"{path}: no samples"
    lines = [f"{path}: {profile.samples} samples"]
    shown = [(name, n) for name, n in profile.inclusive.most_common() if match in name][:top]
    lines.append(
        f"  inclusive (the function and what it called){' matching ' + match * bool(match)}"
    )
    lines += [f"    {100 * n / profile.samples:5.1f}%  {name}" for name, n in shown]
    lines.append("  self (the function alone)")
    lines += [
        f"    {100 * n / profile.samples:5.1f}%  {name}" for name, n in profile.own.most_common(top)
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("profiles", nargs="+", type=Path, help="py-spy raw profile files")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="inclusive table: frames containing this")
    args = parser.parse_args()
    for path in args.profiles:
        print(report(path, args.top, args.match))


if __name__ == "__main__":
    main()
