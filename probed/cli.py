"""probed run | check | once | demo. Parses flags and hands over; no probe logic lives here."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from probed import __version__
from probed.attempt import run_attempt
from probed.config import Config, ConfigError, ProbeSpec, load_config
from probed.logs import setup_logging
from probed.probes import ProbeContext, get_kind
from probed.redact import redact
from probed.result import ProbeResult

DEFAULT_LISTEN = "127.0.0.1:9470"
EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
log = logging.getLogger("probed")
T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return EXIT_CONFIG
    setup_logging(args.log_format, args.log_level)
    result: int = args.func(args)
    return result


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="probed", description="Synthetic probing and SLO monitoring daemon.")
    p.add_argument("--version", action="version", version=f"probed {__version__}")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    sub = p.add_subparsers(metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", default="probes.yaml", help="config file (default: ./probes.yaml)")
    run.add_argument("--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT to serve on (default {DEFAULT_LISTEN})")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check", help="validate a config and estimate its load")
    check.add_argument("--config", default="probes.yaml")
    check.set_defaults(func=cmd_check)

    once = sub.add_parser("once", help="run probes once and print the results")
    once.add_argument("--config", default="probes.yaml")
    once.add_argument("--json", action="store_true", help="one JSON object per line")
    once.add_argument("names", nargs="*", metavar="NAME", help="probes to run (default: all)")
    once.set_defaults(func=cmd_once)

    demo = sub.add_parser("demo", help="start local demo targets and probe them")
    demo.add_argument("--listen", default=DEFAULT_LISTEN)
    demo.add_argument("--seconds", type=float, default=0, help="stop after this long (default: run until Ctrl-C)")
    demo.set_defaults(func=cmd_demo)
    for sp in (run, check, once, demo):
        sp.add_argument("--log-format", choices=("text", "json"), default=argparse.SUPPRESS)
        sp.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default=argparse.SUPPRESS)
    return p


# --------------------------------------------------------------------------- event loop


def run_async(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run on uvloop when it is installed (it roughly doubles per-probe throughput)."""
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but not on every platform
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro_fn())


def _print_config_error(exc: ConfigError) -> None:
    for issue in exc.issues:
        print(issue, file=sys.stderr)
    print(f"{len(exc.issues)} error(s)", file=sys.stderr)


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"probed: --listen must be HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


# --------------------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace) -> int:
    return run_async(lambda: serve(args.config, args.listen))


async def serve(config_path: str, listen: str, ready: Callable[[str], None] | None = None,
                stop_after: float = 0) -> int:
    from aiohttp import web

    from probed.daemon import Daemon
    from probed.web import make_app

    host, port = _split_listen(listen)
    daemon = Daemon(config_path)
    try:
        await daemon.start()
    except ConfigError as exc:
        _print_config_error(exc)
        return EXIT_CONFIG
    runner = web.AppRunner(make_app(daemon), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        log.error("cannot listen on %s: %s", listen, exc.strerror or exc)
        await daemon.shutdown()
        await runner.cleanup()
        return EXIT_FAILED
    log.info("serving on http://%s:%d/ (metrics at /metrics)", host, port)
    if ready is not None:
        ready(f"http://{host}:{port}")

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(daemon.reload()))
    try:
        if stop_after > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), stop_after)
        else:
            await stop.wait()
    finally:
        log.info("shutting down")
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        await daemon.shutdown()
    return EXIT_OK


# --------------------------------------------------------------------------- check

# Series per probe that every type has (info, interval, totals, skips, histogram, percentiles,
# success, duration, last run), plus a per-type allowance for phases and values.
BASE_SERIES = 1 + 1 + 2 + 2 + 21 + 12 + 3
TYPE_SERIES = {"http": 20, "tcp": 3, "tls": 14, "dns": 8, "postgres": 12, "mysql": 12, "redis": 12, "aws": 8}


def cmd_check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        _print_config_error(exc)
        return EXIT_CONFIG
    for line in check_report(config):
        print(line)
    return EXIT_OK


def check_report(config: Config) -> list[str]:
    rate = sum(1.0 / s.interval for s in config.probes)
    series = sum(BASE_SERIES + TYPE_SERIES.get(s.type, 8) for s in config.probes) + 40
    by_type: dict[str, int] = {}
    for s in config.probes:
        by_type[s.type] = by_type.get(s.type, 0) + 1
    lines = [
        f"{config.path}: OK, {len(config.probes)} probes ({', '.join(f'{n} {t}' for t, n in by_type.items())})",
        f"load: {rate:.1f} probes per second",
        f"prometheus: about {series} series per scrape",
    ]
    if "aws" in by_type:
        lines.extend(_aws_lines([s for s in config.probes if s.type == "aws"]))
    return lines


def _aws_lines(specs: list[ProbeSpec]) -> list[str]:
    """AWS APIs cost money and share account-wide rate limits: show the calls this config makes."""
    import importlib

    module = importlib.import_module("probed.probes.aws")
    calls: dict[str, float] = module.api_calls_per_minute(specs)
    budget: float = getattr(module, "API_CALLS_PER_MINUTE_BUDGET", 600)
    lines = []
    for service, n in sorted(calls.items()):
        warn = f"  WARNING: above {budget:g}/min; this shares {service}'s API rate limit" if n > budget else ""
        lines.append(f"aws: {service}: {n:.3g} API calls per minute{warn}")
    return lines


# --------------------------------------------------------------------------- once


def cmd_once(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        _print_config_error(exc)
        return EXIT_CONFIG
    names = args.names or [s.name for s in config.probes]
    unknown = [n for n in names if n not in {s.name for s in config.probes}]
    if unknown:
        print(f"probed: no probe named {', '.join(map(repr, unknown))} in {config.path}", file=sys.stderr)
        return EXIT_CONFIG
    results = run_async(lambda: _run_once(config, names))
    for line in format_once(config, results, as_json=args.json):
        print(line)
    return EXIT_OK if all(r.success for _, r in results) else EXIT_FAILED


async def _run_once(config: Config, names: list[str]) -> list[tuple[str, ProbeResult]]:
    ctx = ProbeContext(secrets=config.secrets)
    specs = [config.probe(n) for n in names]
    for spec in specs:
        kind = get_kind(spec.type)
        if kind.shared is not None and spec.type not in ctx.shared:
            ctx.shared[spec.type] = kind.shared()
    probes = [get_kind(s.type).factory(s, ctx) for s in specs]
    try:
        results = await asyncio.gather(*(run_attempt(p, s.timeout) for p, s in zip(probes, specs, strict=True)))
    finally:
        await asyncio.gather(*(p.aclose() for p in probes), return_exceptions=True)
        for obj in ctx.shared.values():
            close = getattr(obj, "aclose", None)
            if close is not None:
                await close()
    return list(zip(names, results, strict=True))


def format_once(config: Config, results: list[tuple[str, ProbeResult]], as_json: bool) -> list[str]:
    secrets = config.secrets
    if as_json:
        return [json.dumps(once_json(config, name, r), default=str) for name, r in results]
    rows = [("PROBE", "TYPE", "RESULT", "TIME", "DETAIL")]
    extra: dict[str, list[str]] = {}
    for name, r in results:
        spec = config.probe(name)
        rows.append((name, spec.type, "ok" if r.success else r.reason.value, f"{r.duration_s * 1000:.1f} ms",
                     redact(r.detail, secrets)))
        describe = get_kind(spec.type).describe
        if describe is not None:
            extra[name] = [redact(line, secrets) for line in describe(r)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
        lines.extend("    " + e for e in extra.get(row[0], []))
    failed = sum(1 for _, r in results if not r.success)
    lines.append(f"{len(results) - failed} ok, {failed} failing")
    return lines


def once_json(config: Config, name: str, r: ProbeResult) -> dict[str, Any]:
    spec = config.probe(name)
    secrets = config.secrets
    return {
        "name": name,
        "type": spec.type,
        "target": redact(spec.target, secrets),
        "success": r.success,
        "reason": r.reason.value,
        "duration_seconds": r.duration_s,
        "phases": dict(r.phases),
        "values": dict(r.values),
        "detail": redact(r.detail, secrets),
        "facts": json.loads(redact(json.dumps(r.facts, default=str), secrets)),
        "timestamp": time.time(),
    }


# --------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from probed.demo import run_demo

    return run_async(lambda: run_demo(args.listen, args.seconds))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
