"""Render cost: a 30-item bilingual kitchen ticket, per printer dialect, at 576 dots.

Reference, measured in the same run: drawing the same text with Pillow in one call per line
(what a straightforward raster renderer would do, without grid layout or glyph cache).

    python -m bench.render [-n 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from PIL import Image, ImageDraw

from bench.harness import summary
from spoonprint.domain.profile import PrinterProfile, Protocol
from spoonprint.domain.receipt import Receipt
from spoonprint.domain.ticket import Style, compose
from spoonprint.render.base import renderer_for
from spoonprint.render.fonts import default_typeface
from spoonprint.render.layout import Line, layout

DISHES = [
    ("BBQ Pork Rice", "叉燒飯"), ("Wonton Noodles", "雲吞麵"), ("Milk Tea", "奶茶"),
    ("Beef Brisket Noodles", "牛腩麵"), ("Pineapple Bun", "菠蘿包"), ("Steamed Fish", "蒸魚"),
    ("Fried Rice Yeung Chow", "揚州炒飯"), ("Choi Sum", "菜心"), ("Egg Tart", "蛋撻"),
    ("Curry Fish Balls", "咖喱魚蛋"),
]  # fmt: skip


def kitchen_ticket(items: int = 30) -> Receipt:
    return Receipt.model_validate(
        {
            "order_no": "A-1023",
            "table": "12",
            "order_type": "dine-in",
            "created_at": "2026-11-28T12:34:00+08:00",
            "items": [
                {
                    "name": DISHES[i % len(DISHES)][0],
                    "name_zh": DISHES[i % len(DISHES)][1],
                    "qty": 1 + i % 3,
                    "options": ["少甜", "走冰"] if i % 4 == 0 else [],
                    "note": "no spring onion 唔要蔥" if i % 5 == 0 else "",
                }
                for i in range(items)
            ],
            "notes": "allergy: peanuts 花生敏感",
        }
    )


def time_calls(function: Any, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    typeface = default_typeface()
    document = compose(kitchen_ticket(), Style.KITCHEN)
    results: dict[str, Any] = {}
    for protocol in Protocol:
        profile = PrinterProfile(protocol=protocol, style=Style.KITCHEN)
        render = renderer_for(protocol, typeface)
        data = render(document, profile, 1)
        results[protocol.value] = {
            **summary(time_calls(lambda r=render, p=profile: r(document, p, 1), args.n)),
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

    results["reference_pillow_line_by_line"] = summary(time_calls(naive, args.n))
    reference = results["reference_pillow_line_by_line"]["median_ms"]
    for protocol in Protocol:
        results[protocol.value]["ratio_vs_reference"] = (
            results[protocol.value]["median_ms"] / reference
        )
    if args.json:
        print(json.dumps(results))
        return
    print(f"30-item bilingual kitchen ticket, 576 dots, {args.n} renders each")
    for name, figures in results.items():
        extra = f"  {figures['bytes']:7d} bytes" if "bytes" in figures else ""
        ratio = (
            f"  {figures['ratio_vs_reference']:.2f}x ref" if "ratio_vs_reference" in figures else ""
        )
        print(
            f"  {name:30} median {figures['median_ms']:6.2f} ms  p99 {figures['p99_ms']:6.2f} ms"
            f"{extra}{ratio}"
        )
    print("  target: star-graphic under 15 ms per ticket")


if __name__ == "__main__":
    main()
