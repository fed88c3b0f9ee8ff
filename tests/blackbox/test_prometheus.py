"""A real Prometheus scraping probed two ways, as blackbox users do: blackbox's documented multi-target
scrape config pointed at probed's /probe, and the scheduled probes through the relabelling shipped in
deploy/prometheus/probed-scrape.yml. Blackbox dashboard queries (grafana.com 7587 / 13659's: their
`label_values(probe_success, instance)` variable and per-instance panels) must return data for every
target of both jobs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.generate.tools import free_port, tool

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SCRAPE = ROOT / "deploy" / "prometheus" / "probed-scrape.yml"
DEADLINE_S = 60.0

QUERIES = [
    "probe_success",
    "probe_duration_seconds",
    "probe_http_status_code",
    "probe_http_duration_seconds",
    "sum by (instance) (probe_http_duration_seconds)",
    "probe_dns_lookup_time_seconds",  # the target's name resolution, on http and tcp too (issue 13 item 4)
    "probe_http_ssl",
    "probe_http_redirects",
    "avg_over_time(probe_success[1m])",
]


class Live:
    def __init__(self, url: str, targets: dict[str, str]) -> None:
        self.url, self.targets = url, targets

    def get(self, path: str, **params: str) -> dict[str, object]:
        with urllib.request.urlopen(f"{self.url}{path}?" + urllib.parse.urlencode(params), timeout=10) as r:
            data: dict[str, object] = json.loads(r.read())
        return data

    def instances(self, expr: str) -> set[str]:
        result = self.get("/api/v1/query", query=expr)["data"]["result"]  # type: ignore[index]
        return {s["metric"].get("instance", "") for s in result}  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    binary = tool("prometheus")
    tmp = tmp_path_factory.mktemp("bbprom")
    web_port, probed_port, prom_port = free_port(), free_port(), free_port()
    target = f"http://127.0.0.1:{web_port}/"
    (tmp / "probes.yaml").write_text(
        "modules:\n  http_2xx: {prober: http, timeout: 2s}\n  tcp_connect: {prober: tcp, timeout: 2s}\n"
        "probes:\n"
        f"  - {{name: web, type: http, target: '{target}', interval: 1s}}\n"
        f"  - {{name: web-port, type: tcp, target: '127.0.0.1:{web_port}', interval: 1s}}\n")
    jobs = yaml.safe_load(SCRAPE.read_text())["scrape_configs"]
    for job in jobs:
        job["scrape_interval"], job["scrape_timeout"] = "1s", "1s"
        if job["job_name"] == "probed":
            job["static_configs"] = [{"targets": [f"127.0.0.1:{probed_port}"]}]
        else:
            job["static_configs"] = [{"targets": [target]}]
            job["relabel_configs"][-1]["replacement"] = f"127.0.0.1:{probed_port}"
    tcp_job = json.loads(json.dumps(jobs[1]))
    tcp_job.update(job_name="probed-blackbox-tcp", params={"module": ["tcp_connect"]},
                   static_configs=[{"targets": [f"127.0.0.1:{web_port}"]}])
    jobs.append(tcp_job)
    (tmp / "prometheus.yml").write_text(yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": jobs}))
    with (tmp / "probed.log").open("w") as log:
        procs = [
            subprocess.Popen([sys.executable, "-m", "http.server", str(web_port), "--bind", "127.0.0.1",
                              "--directory", str(tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            subprocess.Popen([sys.executable, "-m", "probed", "run", "--config", str(tmp / "probes.yaml"),
                              "--listen", f"127.0.0.1:{probed_port}", "--state-dir", ""], stdout=log, stderr=log),
            subprocess.Popen([binary, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
                              f"--web.listen-address=127.0.0.1:{prom_port}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        ]
        try:
            yield Live(f"http://127.0.0.1:{prom_port}",
                       {"blackbox": target, "blackbox-tcp": f"127.0.0.1:{web_port}", "http": "web", "tcp": "web-port"})
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=10)


def wait_for(live: Live, expr: str, want: set[str]) -> set[str]:
    deadline = time.monotonic() + DEADLINE_S
    got: set[str] = set()
    while time.monotonic() < deadline:
        try:
            got = live.instances(expr)
        except OSError:
            got = set()
        if want <= got:
            break
        time.sleep(0.5)
    return got


@pytest.mark.parametrize("expr", QUERIES)
def test_blackbox_queries_return_data_per_target(live: Live, expr: str) -> None:
    t = live.targets
    want = {t["blackbox"], t["http"]}  # http targets: both jobs
    if "http" not in expr:
        want |= {t["blackbox-tcp"], t["tcp"]}  # every module
    got = wait_for(live, expr, want)
    assert want <= got, f"{expr}: {sorted(got)}"


def test_the_instance_variable_lists_every_target_not_probed(live: Live) -> None:
    wait_for(live, "probe_success", set(live.targets.values()))
    values = live.get("/api/v1/label/instance/values", **{"match[]": "probe_success"})["data"]
    assert set(live.targets.values()) <= set(values)  # type: ignore[arg-type]
    # blackbox's success semantics and status code hold per target
    for instance in live.targets.values():
        assert live.instances(f'probe_success{{instance="{instance}"}} == 1') == {instance}
    assert live.instances("probe_http_status_code == 200") >= {live.targets["blackbox"], live.targets["http"]}
    # probed's own series keep probed as the instance: `up` is per scrape, one per job
    assert not live.instances('up{job="probed"}') & set(live.targets.values())
