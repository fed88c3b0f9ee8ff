"""probed run | check | once | demo. Parses flags and hands over; no probe logic lives here."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from probed import __version__
from probed.blackbox.endpoint import DEFAULT_MAX_CONCURRENCY, ProbeEndpointOptions
from probed.blackbox.importer import import_blackbox
from probed.config.schema import ConfigError, read_small_file
from probed.config.source import MAX_FILE_BYTES
from probed.demo import run_demo
from probed.generate import dashboards, rules
from probed.generate.rules import RuleOptions
from probed.logs import setup_logging
from probed.output.connections import WebLimits
from probed.output.report import check_report, format_once, shard_report
from probed.run import DEFAULT_LISTEN, EXIT_CONFIG, EXIT_FAILED, EXIT_OK, print_config_error, run_async, run_once, serve
from probed.runtime.probeset import load_config, load_config_for
from probed.runtime.shard import from_environment, split
from probed.slo.checkpoint import DEFAULT_INTERVAL_S, default_state_dir


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
    run.add_argument("--state-dir", default=os.environ.get("PROBED_STATE_DIR", default_state_dir()),
                     help="where probe history and SLO budgets are checkpointed (env PROBED_STATE_DIR; "
                          "default $XDG_STATE_HOME/probed or ~/.local/state/probed; '' keeps none)")
    run.add_argument("--shards", type=_positive_int, default=None,
                     help="split the config across this many replicas (env PROBED_SHARDS; default 1)")
    run.add_argument("--shard-index", type=_index, default=None,
                     help="this replica's shard, 0-based (env PROBED_SHARD_INDEX; default: the host name's "
                          "ordinal, as in a StatefulSet: probed-2 -> 2)")
    run.add_argument("--replicas-per-probe", type=_positive_int, default=None,
                     help="run each probe on this many shards (env PROBED_REPLICAS_PER_PROBE; default 1)")
    run.add_argument("--checkpoint-interval", type=float, default=DEFAULT_INTERVAL_S, metavar="SECONDS",
                     help=f"seconds between checkpoints (default {DEFAULT_INTERVAL_S:g})")
    run.add_argument("--web.config.file", dest="web_config_file", default=None, metavar="FILE",
                     help="exporter-toolkit web config: TLS and basic auth, the file every Prometheus exporter reads")
    run.add_argument("--web.max-connections", dest="web_max_connections", type=_positive_int,
                     default=WebLimits.max_connections, metavar="N",
                     help="connections the web port holds at once, at most a quarter of the open-file limit "
                          "(default %(default)s)")
    run.add_argument("--web.header-timeout", dest="web_header_timeout", type=_positive_float,
                     default=WebLimits.header_timeout_s, metavar="SECONDS",
                     help="a new connection must send a complete request head within this (default %(default)s)")
    run.add_argument("--web.idle-timeout", dest="web_idle_timeout", type=_positive_float,
                     default=WebLimits.idle_timeout_s, metavar="SECONDS",
                     help="close keep-alive connections idle this long (default %(default)s)")
    run.add_argument("--probe.allow-targets", dest="probe_allow_targets", action="append", default=[],
                     metavar="REGEXP|CIDR",
                     help="/probe?target= must fully match this regexp or resolve into this network (repeatable; "
                          "default: any target outside the denied networks)")
    run.add_argument("--probe.deny-nets", dest="probe_deny_nets", action="append", default=[], metavar="CIDR",
                     help="networks /probe never reaches (repeatable), on top of the always-denied link-local "
                          "169.254.0.0/16 (cloud metadata 169.254.169.254), fe80::/10 and fd00:ec2::254")
    run.add_argument("--probe.max-concurrency", dest="probe_max_concurrency", type=_positive_int,
                     default=DEFAULT_MAX_CONCURRENCY, metavar="N",
                     help="/probe requests probing at once, apart from the scheduled probes (default %(default)s)")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check", help="validate a config and estimate its load")
    check.add_argument("--config", default="probes.yaml")
    check.add_argument("--no-env", action="store_true",
                       help="do not read the environment: every ${VAR} is a placeholder, everything else is "
                            "checked (CI without the secrets)")
    check.add_argument("--shards", type=_positive_int, default=1, metavar="N",
                       help="also print how N shards would split the probes")
    check.add_argument("--replicas-per-probe", type=_positive_int, default=1, metavar="K",
                       help="with --shards: copies of each probe (at most N)")
    check.set_defaults(func=cmd_check)

    once = sub.add_parser("once", help="run probes once and print the results")
    once.add_argument("--config", default="probes.yaml")
    once.add_argument("--json", action="store_true",
                      help="JSON Lines: one JSON object per probe, one per line (not one JSON document)")
    once.add_argument("--json-array", action="store_true", help="one JSON array of every probe's object")
    once.add_argument("names", nargs="*", metavar="NAME", help="probes to run (default: all)")
    once.set_defaults(func=cmd_once)

    demo = sub.add_parser("demo", help="start local demo targets and probe them")
    demo.add_argument("--listen", default=DEFAULT_LISTEN)
    demo.add_argument("--seconds", type=float, default=0, help="stop after this long (default: run until Ctrl-C)")
    demo.add_argument("--write-config", metavar="FILE", help="write the demo's config to FILE and keep it")
    demo.set_defaults(func=cmd_demo)

    rules_p = sub.add_parser("rules", help="write Prometheus rules: SLO recordings, burn-rate and operational alerts")
    rules_p.add_argument("--config", default="probes.yaml")
    rules_p.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout)")
    rules_p.add_argument("--no-env", action="store_true",
                         help="do not read the environment: every ${VAR} in the config is a placeholder")
    rules_p.add_argument("--job", type=_job, default=RuleOptions.job,
                         help="the scrape job of probed: letters, digits and _ . : / - (default: %(default)s)")
    rules_p.add_argument("--probe-failing-for", type=_prometheus_duration, default=RuleOptions.probe_failing_for,
                         metavar="DURATION",
                         help="ProbedProbeFailing fires after this long of failed attempts (default: %(default)s)")
    rules_p.add_argument("--runbook-base", default="", metavar="URL",
                         help="link operational alerts to URL#<alert name> (the published alerts page)")
    rules_p.set_defaults(func=cmd_rules)

    dash_p = sub.add_parser("dashboards", help="write the Grafana dashboards (JSON) into a directory")
    dash_p.add_argument("-o", "--output", default="grafana/dashboards", metavar="DIR",
                        help="directory to write into (default: %(default)s)")
    dash_p.set_defaults(func=cmd_dashboards)

    bb = sub.add_parser("import-blackbox", help="convert a blackbox_exporter config into probes.yaml modules:")
    bb.add_argument("blackbox_config", metavar="BLACKBOX_YML", help="blackbox_exporter's config file")
    bb.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout)")
    bb.set_defaults(func=cmd_import_blackbox)
    for sp in (run, check, once, demo, rules_p, dash_p, bb):
        sp.add_argument("--log-format", choices=("text", "json"), default=argparse.SUPPRESS)
        sp.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default=argparse.SUPPRESS)
    return p


def _positive_int(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _index(text: str) -> int:
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0 (shards count from 0), got {value}")
    return value


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def _job(text: str) -> str:
    try:
        return rules.job_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _prometheus_duration(text: str) -> str:
    try:
        return rules.prometheus_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def cmd_run(args: argparse.Namespace) -> int:
    try:
        shard = from_environment(args.shards, args.shard_index, args.replicas_per_probe)
    except ValueError as exc:
        print(f"probed: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    limits = WebLimits(args.web_max_connections, args.web_header_timeout, args.web_idle_timeout)
    probe_endpoint = ProbeEndpointOptions(tuple(args.probe_allow_targets), tuple(args.probe_deny_nets),
                                          args.probe_max_concurrency)
    return run_async(lambda: serve(args.config, args.listen, state_dir=args.state_dir or None,
                                   checkpoint_interval_s=args.checkpoint_interval, shard=shard,
                                   web_config_file=args.web_config_file, limits=limits,
                                   probe_endpoint=probe_endpoint))


# --------------------------------------------------------------------------- check


def cmd_check(args: argparse.Namespace) -> int:
    if args.replicas_per_probe > args.shards:
        print(f"probed: --replicas-per-probe {args.replicas_per_probe} needs at least as many --shards "
              f"(got {args.shards}): each copy of a probe runs on a shard of its own", file=sys.stderr)
        return EXIT_CONFIG
    try:
        config = load_config(args.config, placeholder_env=args.no_env)
    except ConfigError as exc:
        print_config_error(exc)
        return EXIT_CONFIG
    for line in check_report(config):
        print(line)
    if args.shards > 1:
        for line in shard_report(split(config, args.shards, args.replicas_per_probe)):
            print(line)
    return EXIT_OK


# --------------------------------------------------------------------------- once


def cmd_once(args: argparse.Namespace) -> int:
    try:
        # Named probes need only their own variables; others' unset ones are placeholders.
        config = load_config_for(args.config, args.names) if args.names else load_config(args.config)
    except ConfigError as exc:
        print_config_error(exc)
        return EXIT_CONFIG
    names = args.names or [s.name for s in config.probes]
    unknown = [n for n in names if n not in {s.name for s in config.probes}]
    if unknown:
        print(f"probed: no probe named {', '.join(map(repr, unknown))} in {config.path}", file=sys.stderr)
        return EXIT_CONFIG
    results = run_async(lambda: run_once(config, names))
    if args.json_array:
        print("[" + ",\n ".join(format_once(config, results, as_json=True)) + "]")
    else:
        for line in format_once(config, results, as_json=args.json):
            print(line)
    return EXIT_OK if all(r.success for _, r in results) else EXIT_FAILED


# --------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    return run_async(lambda: run_demo(args.listen, args.seconds, args.write_config))


# --------------------------------------------------------------------------- rules, dashboards


def cmd_rules(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, placeholder_env=args.no_env)
    except ConfigError as exc:
        print_config_error(exc)
        return EXIT_CONFIG
    options = RuleOptions(job=args.job, probe_failing_for=args.probe_failing_for, runbook_base=args.runbook_base)
    try:
        text = rules.render(config, options)
    except ValueError as exc:  # what the generator refuses beyond the flags' own checks
        print(f"probed: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_dashboards(args: argparse.Namespace) -> int:
    for path in dashboards.write(Path(args.output)):
        print(path)
    return EXIT_OK


# --------------------------------------------------------------------------- import-blackbox


def cmd_import_blackbox(args: argparse.Namespace) -> int:
    try:
        text = read_small_file(args.blackbox_config, MAX_FILE_BYTES).decode("utf-8")
        imported = import_blackbox(text, args.blackbox_config)
    except (ValueError, OSError) as exc:
        print(f"probed: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ConfigError as exc:
        print_config_error(exc)
        return EXIT_CONFIG
    if args.output:
        Path(args.output).write_text(imported.text, encoding="utf-8")
    else:
        sys.stdout.write(imported.text)
    for issue in imported.skipped:
        print(f"cannot convert: {issue}", file=sys.stderr)
    print(f"probed: converted {len(imported.converted)} module(s), left out "
          f"{len({i.path.split('.')[1] for i in imported.skipped if i.path.count('.') >= 1})}", file=sys.stderr)
    return EXIT_OK if not imported.skipped else EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
