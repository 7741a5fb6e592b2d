"""Render cost: a 30-item bilingual kitchen ticket, per printer dialect, at 576 dots: time
from document to printer bytes (median, p99, max) and bytes per ticket.

Reference, measured in the same run: drawing the same text with Pillow in one call per line
(what a straightforward raster renderer would do, without grid layout or glyph cache). Target:
the raster dialects (Star Graphic, ESC/POS raster) under 15 ms a ticket.

    python -m bench.render [-n 200] [--items 30] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from PIL import Image, ImageDraw

from bench.harness import summary
from bench.orders import kitchen_ticket
from spoonprint.domain.profile import PrinterProfile, Protocol
from spoonprint.domain.ticket import Style, compose
from spoonprint.render.base import renderer_for
from spoonprint.render.fonts import default_typeface
from spoonprint.render.layout import Line, layout

TARGET_MS = 15.0
#: The raster dialects (the whole ticket drawn as an image) with the target.
RASTER = ("star-graphic", "escpos-raster")


def time_calls(function: Any, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return samples


def run(count: int, items: int = 30) -> dict[str, Any]:
    typeface = default_typeface()
    document = compose(kitchen_ticket(items), Style.KITCHEN)
    results: dict[str, Any] = {"items": items, "renders": count, "target_ms": TARGET_MS}
    for protocol in Protocol:
        profile = PrinterProfile(protocol=protocol, style=Style.KITCHEN)
        render = renderer_for(protocol, typeface)
        data = render(document, profile, 1)
        results[protocol.value] = {
            **summary(time_calls(lambda r=render, p=profile: r(document, p, 1), count)),
            "bytes": len(data),
        }
    lines = [line for line in layout(document, 48) if isinstance(line, Line)]

    def naive() -> None:
        height = sum(30 * line.scale for line in lines)
        image = Image.new("1", (576, height), 255)
        pen = ImageDraw.Draw(image)
        y = 0
        for line in lines:
            pen.text((0, y), line.text, font=typeface.font(24 * line.scale), fill=0)
            y += 30 * line.scale

    results["reference_pillow_line_by_line"] = summary(time_calls(naive, count))
    reference = results["reference_pillow_line_by_line"]["median_ms"]
    for protocol in Protocol:
        results[protocol.value]["ratio_vs_reference"] = (
            results[protocol.value]["median_ms"] / reference
        )
    return results


def print_report(results: dict[str, Any]) -> None:
    print(
        f"Render: {results['items']}-item bilingual kitchen ticket, 576 dots, "
        f"{results['renders']} renders each"
    )
    for name, figures in results.items():
        if not isinstance(figures, dict):
            continue
        extra = f"  {figures['bytes']:7d} bytes" if "bytes" in figures else ""
        ratio = (
            f"  {figures['ratio_vs_reference']:.2f}x ref" if "ratio_vs_reference" in figures else ""
        )
        print(
            f"  {name:30} median {figures['median_ms']:6.2f} ms  p99 {figures['p99_ms']:6.2f} ms"
            f"  max {figures['max_ms']:6.2f} ms{extra}{ratio}"
        )
    raster = ", ".join(
        f"{name} {'meets' if results[name]['median_ms'] < results['target_ms'] else 'MISSES'}"
        for name in RASTER
    )
    print(f"  target: raster tickets under {results['target_ms']:g} ms: {raster}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=200, help="renders per dialect")
    parser.add_argument("--items", type=int, default=30, help="dishes on the ticket")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = run(10 if args.quick else args.n, args.items)
    if args.json:
        print(json.dumps(results))
    else:
        print_report(results)


if __name__ == "__main__":
    main()
