"""This build against an earlier one, side by side, alternately, in one sitting.

    python bench/versus.py                          # against dfbef12 (the build of 2026-11-29)
    python bench/versus.py --base dfbef12 --rounds 3 --dry-products 200000 --live-products 3000

Builds the earlier commit into its own git worktree and venv (pinned by its constraints.txt),
then runs each measurement on both builds in turn, `--rounds` times, alternating which goes
first, and prints the medians and the ratio this/base:

- dry run: `localize estimate` of --dry-products × 2 locales: CPU seconds (user + system) and
  peak RSS of the process;
- live run: `localize run` of --live-products × 2 locales against bench/relay_server.py (80 ms
  latency, --concurrency 64, one product per request so both builds send the same requests):
  CPU milliseconds per job and peak RSS of the client, never the relay's. With two cores or
  more, the relay runs on one and the measured process on the others.

Both builds read the same catalog (the bench's generator) from a fresh OUT each time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from common import free_port, start_relay, stop_relay, write_catalog  # noqa: E402

LOCALES = "de-DE,ja-JP"


def build(rev: str, where: Path) -> Path:
    """The earlier build's python: its worktree at `where`, its own venv, its pinned install."""
    python = where / ".venv" / "bin" / "python"
    if python.exists():
        return python
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(where), rev], check=True)
    venv.create(where / ".venv", with_pip=True)
    constraints = where / "constraints.txt"
    pin = ["-c", str(constraints)] if constraints.exists() else []
    subprocess.run([str(python), "-m", "pip", "install", "-q", *pin, str(where)], check=True)
    return python


# With two cores or more, the relay gets the last and the measured run the others: a run's CPU
# time then does not depend on how the two happen to share a core (on two cores this narrows a
# live run's spread from about ±3% to ±1%).
CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
RELAY_CPUS, RUN_CPUS = (set(CPUS[-1:]), set(CPUS[:-1])) if len(CPUS) >= 2 else (set(), set())


def pinned(cpus: set[int]) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)


def measured(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, int, str]:
    """CPU seconds (user + system), peak RSS in MB, exit code and stdout of one process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=err, preexec_fn=lambda: pinned(RUN_CPUS)
        )
        _, status, usage = os.wait4(process.pid, 0)
        out.seek(0)
        text = out.read().decode()
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            print(err.read().decode()[-2000:], file=sys.stderr)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, code, text


def dry_run(python: Path, tree: Path, catalog: Path, work: Path) -> tuple[float, float]:
    out = Path(tempfile.mkdtemp(dir=work))
    command = [str(python), "-m", "localize", "estimate", str(catalog), "-l", LOCALES, "--out", str(out), "--json"]
    cpu, rss, code, _ = measured(command, tree, {**os.environ, "HOLYSHEEP_API_KEY": ""})
    assert code == 0, f"{tree}: the dry run exited {code}"
    return cpu, rss


def live_run(python: Path, tree: Path, catalog: Path, work: Path, products: int) -> tuple[float, float]:
    out = Path(tempfile.mkdtemp(dir=work))
    port = free_port()
    relay = start_relay(port, latency_ms=80, jitter_ms=40)
    if RELAY_CPUS:
        os.sched_setaffinity(relay.pid, RELAY_CPUS)
    try:
        command = [str(python), "-m", "localize", "run", str(catalog), "-l", LOCALES, "--out", str(out)]
        command += ["--base-url", f"http://127.0.0.1:{port}/v1", "--rpm", "1000000", "--concurrency", "64"]
        command += ["--pack", "1", "--no-progress", "--json"]
        cpu, rss, code, _ = measured(command, tree, {**os.environ, "HOLYSHEEP_API_KEY": "sk-bench"})
    finally:
        stop_relay(relay)
    assert code == 0, f"{tree}: the live run exited {code}"
    jobs = products * len(LOCALES.split(","))
    return cpu / jobs * 1000, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="dfbef12")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dry-products", type=int, default=100_000)
    parser.add_argument("--live-products", type=int, default=3_000)
    parser.add_argument("--where", type=Path, default=Path(tempfile.gettempdir()) / "localize-versus")
    args = parser.parse_args()
    base_tree = args.where / args.base
    builds = {"this": (Path(sys.executable), REPO), args.base: (build(args.base, base_tree), base_tree)}
    # pip compiled the earlier build's bytecode as it installed it; this tree's is compiled here,
    # or, under PYTHONDONTWRITEBYTECODE, each run of it would compile what changed since its last.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "localize")], check=True)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        dry_catalog, live_catalog = work / "dry.csv", work / "live.csv"
        write_catalog(dry_catalog, args.dry_products)
        write_catalog(live_catalog, args.live_products)
        figures: dict[str, dict[str, list[float]]] = {name: {} for name in builds}
        for number in range(args.rounds):
            order = list(builds) if number % 2 == 0 else list(reversed(builds))
            for name in order:
                python, tree = builds[name]
                cpu, rss = dry_run(python, tree, dry_catalog, work)
                figures[name].setdefault("dry_cpu_s", []).append(cpu)
                figures[name].setdefault("dry_rss_mb", []).append(rss)
                per_job, live_rss = live_run(python, tree, live_catalog, work, args.live_products)
                figures[name].setdefault("live_cpu_ms_per_job", []).append(per_job)
                figures[name].setdefault("live_rss_mb", []).append(live_rss)
                print(
                    f"round {number + 1} {name:>8}: dry {cpu:.1f} s {rss:.0f} MB; live {per_job:.2f} ms/job "
                    f"{live_rss:.0f} MB",
                    flush=True,
                )
    print()
    print(
        f"medians of {args.rounds} rounds; dry run {args.dry_products:,} products × 2 locales, "
        f"live run {args.live_products:,} × 2 (--pack 1, concurrency 64)"
    )
    print(f"{'measure':<22}{'this':>10}{args.base:>10}{'ratio':>8}")
    for measure in ("dry_cpu_s", "dry_rss_mb", "live_cpu_ms_per_job", "live_rss_mb"):
        mine = statistics.median(figures["this"][measure])
        theirs = statistics.median(figures[args.base][measure])
        print(f"{measure:<22}{mine:>10.2f}{theirs:>10.2f}{mine / theirs:>8.2f}")


if __name__ == "__main__":
    main()
