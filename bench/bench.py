#!/usr/bin/env python3
"""Runs the rb6 benchmark and prints its figures next to their targets.

bench/run.sh builds rb6 and calls this script; see docs/benchmarks.md for what each figure
means. Plan timings come from hyperfine when it is installed, otherwise from repeated runs
timed here. Applies and the commands they are compared with run interleaved (rb6, make, rb6,
make, ...), so disk and CPU contention from other processes hits both sides alike. Each
figure is the median of its runs, and every apply starts from an empty state directory.
"""

import argparse
import json
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "gen.py")


def generate(kind, *args):
    subprocess.run([sys.executable, GEN, kind, *map(str, args)], check=True)


def timed_runs(command, runs, warmup):
    """Wall times in seconds of `runs` runs, with mean user and system CPU seconds."""
    if shutil.which("hyperfine"):
        return hyperfine(command, runs, warmup)
    times, cpu = [], []
    for index in range(warmup + runs):
        before = os.times()
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        elapsed = time.perf_counter() - start
        after = os.times()
        if index >= warmup:
            times.append(elapsed)
            cpu.append((after.children_user - before.children_user, after.children_system - before.children_system))
    return times, statistics.mean(u for u, _ in cpu), statistics.mean(s for _, s in cpu)


def hyperfine(command, runs, warmup):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as export:
        path = export.name
    arguments = ["hyperfine", "-N", "--style", "none", "--runs", str(runs), "--warmup", str(warmup), "--export-json", path]
    quoted = " ".join(shlex.quote(part) for part in command)
    finished = subprocess.run(arguments + [quoted], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if finished.returncode != 0:
        sys.exit(f"hyperfine failed on {quoted}:\n{finished.stderr}")
    with open(path, encoding="utf-8") as file:
        result = json.load(file)["results"][0]
    os.unlink(path)
    return result["times"], result["user"], result["system"]


def interleaved(commands, runs, warmup):
    """Runs each named command once per round, `warmup + runs` rounds, and returns the wall
    times in seconds of the last `runs` rounds, with mean user+system CPU seconds, by name.

    `commands` maps a name to (argv, directory to delete before each run or None).
    """
    times = {name: [] for name in commands}
    cpu = {name: [] for name in commands}
    for index in range(warmup + runs):
        for name, (command, scratch) in commands.items():
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            elapsed = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if index >= warmup:
                times[name].append(elapsed)
                cpu[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return times, {name: statistics.mean(values) for name, values in cpu.items()}


def peak_rss_mb(command, runs):
    """Median peak resident set size in MB, read from GNU time -v."""
    peaks = []
    for _ in range(runs):
        finished = subprocess.run(["/usr/bin/time", "-v", *command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", finished.stderr)
        peaks.append(int(match.group(1)) / 1024)
    return statistics.median(peaks)


def fsync_cost_ms(directory, count=500):
    """Median and mean time of one 64-byte append plus fdatasync in `directory`."""
    path = os.path.join(directory, "fsync-probe")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)
    samples = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            os.write(descriptor, b"x" * 64)
            os.fdatasync(descriptor)
            samples.append((time.perf_counter() - start) * 1000)
    finally:
        os.close(descriptor)
        os.unlink(path)
    return statistics.median(samples), statistics.mean(samples)


def machine(work):
    def read(command):
        try:
            return subprocess.run(command, shell=True, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"
    cpu = read("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    memory = read("free -h | awk '/^Mem:/ {print $2}'")
    disk = read(f"df -T {shlex.quote(work)} | awk 'NR==2 {{print $1, $2}}'")
    return {
        "cores (nproc)": str(os.cpu_count()),
        "CPU": cpu or "?",
        "memory": memory or "?",
        "disk of the state": disk or "?",
        "kernel": platform.release(),
        "load average at start": " ".join(f"{value:.2f}" for value in os.getloadavg()),
    }


class Table:
    def __init__(self):
        self.rows = []

    def add(self, measure, rb6, other, ratio, target, met):
        verdict = "-"
        if met is not None:
            verdict = "yes" if met else "NO"
        self.rows.append((measure, rb6, other, ratio, target, verdict))

    def markdown(self):
        header = ("Measure", "rb6", "Compared with", "Ratio", "Target", "Met")
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


def ms(seconds):
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def bench_plan(args, table, raw):
    runs = 3 if args.quick else 15
    for steps in (1000, 10000):
        path = os.path.join(args.work, f"mix{steps}.rb6")
        generate("mix", steps, path)
        command = [args.rb6, "plan", path, "--state", os.path.join(args.work, "no-state")]
        times, user, system = timed_runs(command, runs, 2)
        median = statistics.median(times)
        rss = peak_rss_mb(command, 3)
        raw[f"plan {steps}"] = {"wall_s": times, "user_s": user, "system_s": system, "peak_rss_mb": rss}
        big = steps == 10000
        table.add(f"plan, {steps:,} steps, wall (median)", ms(median), "-", "-", "≤ 200 ms" if big else "-", median <= 0.2 if big else None)
        table.add(f"plan, {steps:,} steps, CPU user+sys (mean)", ms(user + system), "-", "-", "-", None)
        table.add(f"plan, {steps:,} steps, peak RSS", f"{rss:.1f} MB", "-", "-", "≤ 100 MB" if big else "-", rss <= 100 if big else None)


def bench_apply(args, table, raw):
    runs = 2 if args.quick else 10
    steps = 1000
    runbook = os.path.join(args.work, "chain.rb6")
    makefile = os.path.join(args.work, "Makefile.chain")
    makefile_sh = os.path.join(args.work, "Makefile.chain-sh")
    state = os.path.join(args.work, "chain-state")
    generate("chain", steps, runbook)
    generate("make-chain", steps, makefile)
    generate("make-chain-sh", steps, makefile_sh)

    commands = {
        "rb6": ([args.rb6, "apply", runbook, "--auto-approve", "--parallelism", "1", "--state", state], state),
        "make": (["make", "-s", "-j1", "-f", makefile], None),
        "make through sh": (["make", "-s", "-j1", "-f", makefile_sh], None),
    }
    fsync_before = fsync_cost_ms(args.work)
    times, cpu = interleaved(commands, runs, 1)
    fsync_after = fsync_cost_ms(args.work)
    fsync_median, fsync_mean = statistics.mean([fsync_before[0], fsync_after[0]]), statistics.mean([fsync_before[1], fsync_after[1]])
    rb6_median, make_median, make_sh_median = (statistics.median(times[name]) for name in commands)
    floor = make_sh_median + 2 * steps * fsync_median / 1000
    raw["apply chain"] = {"wall_s": times, "cpu_s_mean": cpu, "fsync_ms_median_before_after": [fsync_before[0], fsync_after[0]],
                          "fsync_ms_mean_before_after": [fsync_before[1], fsync_after[1]]}
    ratio = round(rb6_median / make_median, 2)
    table.add(f"apply {steps:,} `true` steps, -p 1 (median)", ms(rb6_median), f"make -j1: {ms(make_median)}", f"{ratio:.2f}×", "≤ 1.6×", ratio <= 1.6)
    table.add("  make -j1, each recipe through sh", ms(make_sh_median), f"make -j1: {ms(make_median)}",
              f"{make_sh_median / make_median:.2f}×", "-", None)
    table.add("  floor: make through sh + 2 fdatasyncs a step", ms(floor), f"fdatasync median {fsync_median:.2f} ms, mean {fsync_mean:.2f} ms",
              f"{floor / make_median:.2f}×", "-", None)

    if args.ansible_tasks and os.access(args.ansible, os.X_OK):
        bench_ansible(args, table, raw, rb6_median / steps)
    else:
        table.add("Ansible, per local task", "-", "ansible-core not installed or skipped", "-", "rb6 200× faster", None)


def bench_ansible(args, table, raw, rb6_per_step):
    tasks = args.ansible_tasks
    runs = 1 if args.quick else 3
    environment = dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOWS="1")
    interpreter = os.path.join(os.path.dirname(args.ansible), "python")
    totals = {}
    for count in (1, tasks):
        playbook = os.path.join(args.work, f"play{count}.yml")
        generate("ansible", count, playbook)
        command = [args.ansible, "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={interpreter}", playbook]
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            samples.append(time.perf_counter() - start)
        totals[count] = statistics.median(samples)
    per_task = (totals[tasks] - totals[1]) / (tasks - 1)
    raw["ansible"] = {"tasks": tasks, "wall_s_1_task": totals[1], f"wall_s_{tasks}_tasks": totals[tasks], "per_task_s": per_task}
    speedup = per_task / rb6_per_step
    table.add("per step: rb6 vs Ansible local task", f"{rb6_per_step * 1000:.2f} ms",
              f"ansible-playbook: {per_task * 1000:.0f} ms ({tasks} tasks)", f"{speedup:.0f}× faster", "≥ 200× faster", speedup >= 200)


def bench_sleeps(args, table, raw):
    runs = 2 if args.quick else 9
    count, seconds, parallelism = 64, 0.2, 16
    runbook = os.path.join(args.work, "sleeps.rb6")
    makefile = os.path.join(args.work, "Makefile.sleeps")
    state = os.path.join(args.work, "sleeps-state")
    generate("sleeps", count, seconds, runbook)
    generate("make-sleeps", count, seconds, makefile)
    ideal = count / parallelism * seconds

    commands = {
        "rb6": ([args.rb6, "apply", runbook, "--auto-approve", "--parallelism", str(parallelism), "--state", state], state),
        "make": (["make", "-s", f"-j{parallelism}", "-f", makefile], None),
    }
    times, _ = interleaved(commands, runs, 1)
    rb6_median, make_median = statistics.median(times["rb6"]), statistics.median(times["make"])
    raw["sleeps"] = {"wall_s": times, "critical_path_s": ideal}
    ratio = round(rb6_median / ideal, 3)
    table.add(f"makespan, {count} × sleep {seconds} at -p {parallelism}", ms(rb6_median), f"critical path {ms(ideal)}", f"{ratio:.3f}×", "≤ 1.05×", ratio <= 1.05)
    table.add(f"  make -j{parallelism}, same sleeps", ms(make_median), f"critical path {ms(ideal)}", f"{make_median / ideal:.3f}×", "-", None)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rb6", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--quick", type=int, default=0)
    parser.add_argument("--ansible", default="")
    parser.add_argument("--ansible-tasks", type=int, default=40)
    args = parser.parse_args()
    args.work = os.path.abspath(args.work)
    args.ansible = os.path.abspath(args.ansible) if args.ansible else ""
    os.makedirs(args.work, exist_ok=True)

    info = machine(args.work)
    table, raw = Table(), {}
    for name, step in (("plan", bench_plan), ("apply", bench_apply), ("makespan", bench_sleeps)):
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        step(args, table, raw)
    info["load average at end"] = " ".join(f"{value:.2f}" for value in os.getloadavg())

    report = "\n".join([
        "## Machine", "", *(f"- {key}: {value}" for key, value in info.items()), "",
        "## Figures", "", table.markdown(), "",
        "## Raw timings (seconds)", "", "```json", json.dumps(raw, indent=1), "```", "",
    ])
    with open(os.path.join(args.work, "results.md"), "w", encoding="utf-8") as file:
        file.write(report)
    print("\n".join([*(f"{key}: {value}" for key, value in info.items()), "", table.markdown()]))
    print(f"\nresults and raw timings: {os.path.join(args.work, 'results.md')}", file=sys.stderr)


if __name__ == "__main__":
    main()
