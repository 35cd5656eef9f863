"""Shared benchmark helpers: machine facts, measured subprocesses, JSON results.

Every benchmark records the machine it ran on (cores, memory, CPU, library versions, load
average) next to its figures, so a reader can tell a slow machine from a slow pipeline. Child
processes are measured from outside: wall time, and the peak RSS of every process in the
child's tree (the Python driver, the Spark JVM it launches, PySpark workers), sampled with
psutil. Not imported by tests (benchmarks are never part of ``make test``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
MB = 2**20

# Distributions whose versions every result file records.
LIBRARIES = (
    "pyspark",
    "duckdb",
    "torch",
    "faiss-cpu",
    "numpy",
    "pyarrow",
    "pandas",
    "apache-airflow",
    "great-expectations",
    "psutil",
)


def load_average() -> list[float]:
    """The 1/5/15-minute load averages (other work on the machine skews every figure)."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_info() -> dict[str, Any]:
    """Cores, memory, CPU model, OS, Python/Java and library versions, current load."""
    import psutil

    cpu_model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30).stderr.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        java = None
    return {
        "hostname": platform.node(),
        "cpu_model": cpu_model,
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "java": java,
        "libraries": versions,
        "load_average": load_average(),
    }


def git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_json(path: Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)
    return path


def last_json_object(text: str) -> Any:
    """The last top-level JSON value printed in ``text`` (a child's result line or block)."""
    decoder = json.JSONDecoder()
    # Try each line start from the end: children print one JSON line or one indented block last.
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i][:1] in "{[":
            try:
                obj, _ = decoder.raw_decode("\n".join(lines[i:]))
                return obj
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON object in the output")


def _label(proc) -> str:
    """A short name for a process: java / python (driver or pyspark worker) / other."""
    try:
        name = proc.name()
        cmd = proc.cmdline()
    except Exception:  # the process just exited
        return "gone"
    if name == "java" or (cmd and cmd[0].endswith("/java")):
        main = next((c for c in cmd if c.startswith("org.apache.spark.")), "")
        return "java:" + main.rsplit(".", 1)[-1] if main else "java"
    if "python" in name:
        if any("pyspark.daemon" in c or "pyspark/daemon" in c or "pyspark.worker" in c for c in cmd):
            return "python:pyspark-worker"
        return "python"
    return name


@dataclass
class TreeSampler:
    """Samples the RSS of a process and all its descendants every ``interval`` seconds.

    Records each process's peak RSS (by pid, with a label), the peak of the whole tree's
    simultaneous sum, and the CPU time of every process. Short spikes between samples can be missed: the interval is reported.
    """

    pid: int
    interval: float = 0.25
    peak_tree_mb: float = 0.0
    per_pid: dict[int, dict[str, Any]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TreeSampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            total = 0.0
            for p in procs:
                try:
                    rss = p.memory_info().rss / MB
                    cpu = p.cpu_times()
                except psutil.Error:
                    continue
                total += rss
                rec = self.per_pid.setdefault(p.pid, {"label": "?", "peak_rss_mb": 0.0})
                rec["cpu_s"] = cpu.user + cpu.system
                if rss > rec["peak_rss_mb"]:
                    # Re-label at each new peak: spark-submit (bash) execs into the JVM.
                    rec["peak_rss_mb"], rec["label"] = rss, _label(p)
            self.peak_tree_mb = max(self.peak_tree_mb, total)
            self._stop.wait(self.interval)

    def summary(self) -> dict[str, Any]:
        """Peak tree RSS, the largest single process, and the peak per process kind."""
        by_label: dict[str, float] = {}
        for rec in self.per_pid.values():
            by_label[rec["label"]] = max(by_label.get(rec["label"], 0.0), rec["peak_rss_mb"])
        largest = max(self.per_pid.values(), key=lambda r: r["peak_rss_mb"], default={"label": None, "peak_rss_mb": 0.0})
        return {
            "peak_tree_rss_mb": round(self.peak_tree_mb, 1),
            "peak_process_rss_mb": round(largest["peak_rss_mb"], 1),
            "peak_process": largest["label"],
            "peak_rss_mb_by_process": {k: round(v, 1) for k, v in sorted(by_label.items())},
            # CPU seconds the tree used (user + system, as last sampled): unlike wall time, it
            # barely moves when other work shares the machine.
            "cpu_s": round(sum(r.get("cpu_s", 0.0) for r in self.per_pid.values()), 1),
            "processes_seen": len(self.per_pid),
            "sample_interval_s": self.interval,
        }


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every descendant (nested measured children have their own groups)."""
    import psutil

    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()


def run_measured(
    cmd: list[str],
    *,
    cwd: Path = REPO,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run ``cmd`` to completion, measuring wall time and its process tree's memory.

    stderr goes to ``log_path`` and stdout to ``<log_path>.out`` (else both are kept in memory). Returns ``{"rc", "wall_s",
    "load_before", "load_after", **TreeSampler.summary(), "stdout"}``; ``stdout`` is the
    child's stdout text (for result JSON it prints last).
    """
    full_env = {**os.environ, **(env or {})}
    out_file = open(log_path, "w") if log_path else None  # noqa: SIM115 (closed below)
    # With a log, stdout goes to <log>.out as it is printed (follow it with tail -f), else a pipe.
    stdout_path = log_path.with_name(log_path.name + ".out") if log_path else None
    stdout_file = open(stdout_path, "w") if stdout_path else None  # noqa: SIM115 (closed below)
    load_before = load_average()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=full_env,
        stdout=stdout_file if stdout_file else subprocess.PIPE,
        stderr=out_file if out_file else subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: killed as a whole on timeout
    )
    sampler = TreeSampler(proc.pid).start()
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        stdout, _ = proc.communicate()
        stdout = (stdout or "") + f"\n[bench] timed out after {timeout} s"
    finally:
        sampler.stop()
        for f in (out_file, stdout_file):
            if f:
                f.close()
    if stdout_path:
        stdout = stdout_path.read_text() + (stdout or "")
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = sampler.summary()
    # The sampler misses the last interval; the reaped children's rusage misses orphans (a JVM
    # nobody waited for): take the larger.
    reaped = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    summary["cpu_s"] = round(max(summary["cpu_s"], reaped), 1)
    return {
        "rc": proc.returncode,
        "wall_s": round(wall, 2),
        "load_before": load_before,
        "load_after": load_average(),
        **summary,
        "stdout": stdout or "",
    }


def python_cmd(*args: str) -> list[str]:
    """The current interpreter (the project venv) with ``args``."""
    return [sys.executable, *args]


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.1f} min" if seconds >= 600 else f"{seconds:.1f} s"


def fmt_mb(mb: float | None) -> str:
    if mb is None:
        return "-"
    return f"{mb / 1024:.2f} GB" if mb >= 1024 else f"{mb:.0f} MB"
