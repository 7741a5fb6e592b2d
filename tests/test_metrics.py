"""Prometheus ``/metrics`` on a real server, read with prometheus_client's own parser: who may
scrape it, and that the jobs, queue, latency, printer, recovery and security numbers follow
what really happened."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from spoonprint.emulator.virtual_printer import PrinterMode, VirtualPrinterThread
from spoonprint.http.metrics import LogFollower

from .conftest import Server, ServerFactory

SCANNER = "198.51.100.23"


def scrape(client: httpx.Client) -> dict[str, list[Sample]]:
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    samples: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    (found,) = [s.value for s in samples[name] if labels.items() <= s.labels.items()]
    return found


def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the server did not get there in time"
        time.sleep(0.05)  # the state lives in the server process: poll it


def test_only_an_admin_key_may_scrape(server: Server) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "spoonprint", "keys", "create", "till", "--role", "print",
         "--config", str(server.config)],
        env=server.env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert server.client(key=None).get("/metrics").status_code == 401
    assert server.client(key="sp_wrong_" + "w" * 30).get("/metrics").status_code == 401
    assert server.client(key=made.stdout.strip()).get("/metrics").status_code == 403
    assert server.client().get("/metrics").status_code == 200
    bearer = {"Authorization": f"Bearer {server.key}"}
    assert httpx.get(f"{server.url}/metrics", headers=bearer).status_code == 200
    basic = httpx.get(f"{server.url}/metrics", auth=("prometheus", server.key))
    assert basic.status_code == 200


def test_open_to_the_shops_own_network_when_configured(make_server: ServerFactory) -> None:
    server = make_server(
        [],
        SPOONPRINT_METRICS__OPEN_TO_ALLOWED_NETWORKS="true",
        SPOONPRINT_SECURITY__TRUSTED_PROXIES='["127.0.0.1/32"]',
    )
    assert scrape(server.client(key=None))["spoonprint_uptime_seconds"][0].value > 0
    outside = {"X-Forwarded-For": SCANNER}
    assert httpx.get(f"{server.url}/metrics", headers=outside).status_code == 401


def test_jobs_queue_and_latency_follow_what_printed(
    server: Server, printer: VirtualPrinterThread
) -> None:
    client = server.client()
    before = scrape(client)
    assert value(before, "spoonprint_print_latency_seconds_count", printer="kitchen") == 0
    assert value(before, "spoonprint_printer_up", printer="kitchen") == 1
    assert value(before, "spoonprint_printer_breaker_state", state="closed") == 1
    assert value(before, "spoonprint_printer_breaker_state", state="open") == 0
    for n in range(3):
        job_id = client.post("/print", json={"text": f"order {n}"}).json()["job_id"]
        server.wait_for_state(job_id, "printed")
    printer.set_mode(PrinterMode.PAPER_OUT)
    waiting = client.post("/print", json={"text": "no paper", "order_id": "W-1"}).json()
    server.wait_for_job(waiting["job_id"], lambda job: job["last_error"] is not None)
    after = scrape(client)
    assert value(after, "spoonprint_jobs", state="printed") == 3
    # It is retried meanwhile: queued between attempts, printing during one.
    waiting_jobs = [value(after, "spoonprint_jobs", state=s) for s in ("queued", "printing")]
    assert sum(waiting_jobs) == 1
    assert value(after, "spoonprint_queue_depth", printer="kitchen") == 1
    assert value(after, "spoonprint_queue_oldest_age_seconds", printer="kitchen") > 0
    assert value(after, "spoonprint_printer_up", printer="kitchen") == 0
    count = value(after, "spoonprint_print_latency_seconds_count", printer="kitchen")
    assert count == 3 and value(after, "spoonprint_print_latency_seconds_sum") > 0
    buckets = [
        (s.labels["le"], s.value)
        for s in after["spoonprint_print_latency_seconds_bucket"]
        if s.labels["printer"] == "kitchen"
    ]
    assert buckets[-1] == ("+Inf", 3)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert value(after, "spoonprint_build_info") == 1
    assert "process_resident_memory_bytes" in after  # the process collector (Linux)
    # Counted once: a second scrape adds nothing that did not happen.
    again = scrape(client)
    assert value(again, "spoonprint_print_latency_seconds_count", printer="kitchen") == 3


def test_printer_faults_recoveries_and_blocks(
    printer: VirtualPrinterThread, make_server: ServerFactory
) -> None:
    # The printer first: its fixture is then torn down after the server's (whose monitor
    # probes it every second here), not while the server may be connecting to it.
    with VirtualPrinterThread(mode=PrinterMode.OFFLINE) as patio:
        server = make_server(
            [
                {"name": "kitchen", "uri": f"tcp://127.0.0.1:{printer.port}"},
                {"name": "patio", "uri": f"tcp://127.0.0.1:{patio.port}"},
            ],
            SPOONPRINT_RECOVERY__INTERVAL="1",
            SPOONPRINT_SECURITY__TRUSTED_PROXIES='["127.0.0.1/32"]',
        )
        client = server.client()
        printer.set_mode(PrinterMode.COVER_OPEN)
        for name in ("kitchen", "patio"):
            client.post("/print", json={"text": "tea", "printer": name})
        for _ in range(5):
            client.get("/.env", headers={"X-Forwarded-For": SCANNER})

        def settled() -> bool:
            samples = scrape(client)
            faults = {(s.labels["printer"], s.labels["fault"]) for s in samples.get(
                "spoonprint_printer_fault", [])}  # fmt: skip
            return {("kitchen", "cover-open"), ("patio", "unreachable")} <= faults and any(
                s.labels.get("printer") == "patio" and s.value > 0
                for s in samples.get("spoonprint_recovery_actions_total", [])
            )

        until(settled)
        samples = scrape(client)
        assert value(samples, "spoonprint_printer_up", printer="patio") == 0
        assert value(samples, "spoonprint_printer_up", printer="kitchen") == 0
        failed = value(
            samples,
            "spoonprint_recovery_actions_total",
            printer="patio",
            strategy="reconnect",
            result="failed",
        )
        assert failed >= 1
        assert value(samples, "spoonprint_blocked_addresses") == 1
        assert value(samples, "spoonprint_security_events_total", event="blocked") == 1
        assert value(samples, "spoonprint_security_events_total", event="strike") == 5
        printer.set_mode(PrinterMode.ONLINE)

        def recovered() -> bool:
            samples = scrape(client)
            return value(samples, "spoonprint_printer_recoveries_total", printer="kitchen") == 1

        until(recovered)
        # Resumed by the monitor; "up" once the worker's waiting ticket has printed.
        until(lambda: value(scrape(client), "spoonprint_printer_up", printer="kitchen") == 1)


def test_the_security_count_survives_log_rotation(tmp_path: Path) -> None:
    log = tmp_path / "security.jsonl"
    log.write_text('{"event": "strike"}\n')
    follower = LogFollower(log)  # counts from now on
    assert follower.update() == {}
    with log.open("a") as file:
        file.write('{"event": "strike"}\n{"event": "blo')
    assert follower.update() == {"strike": 1}
    with log.open("a") as file:
        file.write('cked"}\n')
    assert follower.update() == {"strike": 1, "blocked": 1}
    log.rename(tmp_path / "security.jsonl.1")
    log.write_text('{"event": "refused"}\n')
    assert follower.update() == {"strike": 1, "blocked": 1, "refused": 1}


def test_openapi_media_type_is_prometheus_clients_own() -> None:
    """/metrics is described without loading prometheus_client; the type it declares must be
    the one prometheus_client writes."""
    import prometheus_client

    from spoonprint.http.metrics import CONTENT_TYPE

    assert prometheus_client.CONTENT_TYPE_LATEST == CONTENT_TYPE
