"""`make bench`: measure, write bench/results/*.json, regenerate docs/performance.md.

.venv/bin/python -m bench.run                 # everything (~6 minutes on 2 cores)
.venv/bin/python -m bench.run --only http     # one stage; the report reuses the other stages' JSON
.venv/bin/python -m bench.run --only portal --only credential-process   # the issue's targets
.venv/bin/python -m bench.run --quick         # a small smoke run (not for the docs)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.credential_process import run_credential_process
from bench.deps import ensure_hyperfine, ensure_uvicorn, ensure_wrk
from bench.hot_read import Target, bench_database, measure_database, prepare
from bench.http_servers import run_http
from bench.machine import machine_facts
from bench.portal_api import QUICK_MINT, MintShape, PortalSetup, run_portal
from bench.report import write_report
from bench.seed import Org, OrgShape

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 20261125
QUICK_SHAPE = OrgShape(
    users=100,
    groups=10,
    accounts=20,
    permission_sets=5,
    group_assignments=400,
    direct_assignments=50,
    tokens=500,
)


def write_result(results: Path, name: str, payload: dict[str, Any]) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def _seed_all(targets: dict[str, Target], shape: OrgShape) -> dict[str, Org]:
    """Seed SQLite here and PostgreSQL in a worker process at the same time: seeding through the services
    is the slow part of the run, and the measurements that follow run one at a time on a quiet machine."""
    orgs: dict[str, Org] = {}
    remote: dict[str, Future[Org]] = {}
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        for kind, target in targets.items():
            if kind != "sqlite":
                remote[kind] = pool.submit(prepare, target, shape, SEED)
        if "sqlite" in targets:
            orgs["sqlite"] = prepare(targets["sqlite"], shape, SEED)
        for kind, future in remote.items():
            orgs[kind] = future.result()
    return orgs


def hot_read_stage(
    args: argparse.Namespace, machine: dict[str, Any], *, before_measuring: Callable[[], object] | None = None
) -> None:
    shape = QUICK_SHAPE if args.quick else OrgShape()
    with ExitStack() as stack:
        targets = {"sqlite": stack.enter_context(bench_database("sqlite"))}
        if not args.skip_postgres:
            try:
                targets["postgresql"] = stack.enter_context(bench_database("postgresql"))
            except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
                print(f"  PostgreSQL skipped: {exc}", flush=True)
        print(f"hot read: seeding {', '.join(targets)} through the services ...", flush=True)
        orgs = _seed_all(targets, shape)
        if before_measuring is not None:  # e.g. the portal stage's setup, seeding alongside: let it finish
            before_measuring()
        for kind, target in targets.items():
            result = measure_database(
                target,
                orgs[kind],
                iterations=args.iterations,
                max_seconds=args.max_variant_seconds,
                seed=SEED,
            )
            result["seeded_concurrently_with"] = [k for k in targets if k != kind]
            write_result(
                args.results, f"hot_read_{kind}", {"name": f"hot_read_{kind}", "machine": machine, **result}
            )


def http_stage(args: argparse.Namespace, machine: dict[str, Any]) -> None:
    wrk = ensure_wrk(install=not args.no_install)
    uvicorn = ensure_uvicorn(install=not args.no_install)
    if uvicorn is None:
        print("  uvicorn not available: comparing granian configurations only", flush=True)
    print(f"http: load from {wrk or 'bench/loadgen.py'}", flush=True)
    result = run_http(wrk=wrk, uvicorn=uvicorn, seconds=args.http_seconds, warmup_seconds=args.warmup_seconds)
    write_result(args.results, "http_servers", {"name": "http_servers", "machine": machine, **result})


def start_portal_setup(args: argparse.Namespace, stack: ExitStack) -> tuple[str, PortalSetup] | None:
    """Start preparing the portal stage's instances in the background (None when wrk is missing)."""
    wrk = ensure_wrk(install=not args.no_install)
    if wrk is None:  # bench/portal.lua needs wrk's Lua scripting; bench/loadgen.py cannot rotate tokens
        print("portal: skipped, wrk is not available", flush=True)
        return None
    setup = PortalSetup(
        stack,
        postgres=not args.skip_postgres,
        shape=QUICK_SHAPE if args.quick else OrgShape(),
        mint_shape=QUICK_MINT if args.quick else MintShape(),
        seed=SEED,
    )
    return wrk, setup


def portal_stage(args: argparse.Namespace, machine: dict[str, Any], wrk: str, setup: PortalSetup) -> None:
    result = run_portal(
        wrk=wrk,
        setup=setup,
        seed=SEED,
        seconds=max(1, round(args.http_seconds)),
        warmup_seconds=max(1, round(args.warmup_seconds)),
    )
    write_result(args.results, "portal_api", {"name": "portal_api", "machine": machine, **result})


def credential_process_stage(args: argparse.Namespace, machine: dict[str, Any]) -> None:
    hyperfine = ensure_hyperfine(install=not args.no_install)
    print(
        f"credential-process: {args.cp_runs} interleaved runs each (+ hyperfine: {bool(hyperfine)})",
        flush=True,
    )
    result = run_credential_process(runs=args.cp_runs, hyperfine=hyperfine)
    write_result(
        args.results, "credential_process", {"name": "credential_process", "machine": machine, **result}
    )


STAGES = ["hot-read", "http", "portal", "credential-process"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=STAGES, action="append", help="run only these stages")
    parser.add_argument("--quick", action="store_true", help="small org, short runs: a smoke test")
    parser.add_argument("--iterations", type=int, default=None, help="hot-read iterations per variant (5000)")
    parser.add_argument(
        "--max-variant-seconds", type=float, default=6.0, help="time cap per hot-read variant"
    )
    parser.add_argument(
        "--http-seconds", type=float, default=None, help="measured seconds per HTTP (and portal) run (5)"
    )
    parser.add_argument("--warmup-seconds", type=float, default=1.0, help="unmeasured load first (whole s)")
    parser.add_argument("--skip-postgres", action="store_true", help="hot read and portal on SQLite only")
    parser.add_argument("--cp-runs", type=int, default=None, help="credential-process runs per command (30)")
    parser.add_argument("--no-install", action="store_true", help="never install wrk or uvicorn")
    parser.add_argument("--report-only", action="store_true", help="only regenerate docs from stored JSON")
    args = parser.parse_args()
    args.iterations = args.iterations or (1000 if args.quick else 5000)
    args.http_seconds = args.http_seconds or (1.0 if args.quick else 5.0)
    args.cp_runs = args.cp_runs or (5 if args.quick else 30)
    stages = [] if args.report_only else (args.only or STAGES)
    args.results = RESULTS / "quick" if args.quick else RESULTS  # a smoke run never touches the docs

    started = time.perf_counter()
    machine = machine_facts()
    with ExitStack() as stack:
        # the portal stage's instances seed while the hot-read stage seeds (both before any measurement):
        # seeding through the services is most of the wall time, and the machine is not measuring then
        portal = start_portal_setup(args, stack) if "portal" in stages else None
        if "hot-read" in stages:
            hot_read_stage(args, machine, before_measuring=portal[1].result if portal else None)
            print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
        elif portal:
            portal[1].result()
        if "http" in stages:
            http_stage(args, machine)
            print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
        if portal:
            portal_stage(args, machine, *portal)
            print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    if "credential-process" in stages:
        credential_process_stage(args, machine)
    report = write_report(args.results, quick=args.quick)
    print(f"done in {time.perf_counter() - started:.0f} s: {args.results}/*.json, {report}", flush=True)


if __name__ == "__main__":
    main()
