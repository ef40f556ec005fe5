#!/usr/bin/env python3
"""dispatch_probe — where a dispatch row's time goes, and what-ifs side by side.

`make bench` says how fast the dispatch and fan-out rows are; this says why. It loads the same workload once
(bench.py's Stack: Redis, a KRaft broker, nginx over HTTPS with the test CA, producer-api for the webhooks), then
runs the dispatcher over it several times from scratch (a fresh consumer group each run), cycling through the
configurations given, so that every configuration meets the same stack in the same minutes:

    python3 tests/bench/dispatch_probe.py [--fanout] [--runs N] [--config "K=V,K=V"]... [--sockets] [--syscalls] [--keep]

--config    dispatcher environment for one configuration (e.g. "MAX_IN_FLIGHT=8000"); BIN=dir runs another
            build's dispatcher (a directory holding `dispatcher`). Run i uses configuration i mod count; none given:
            one configuration, the defaults of HOOKD_BIN (default: bin/).
--fanout    the fan-out workload (10,000 events, 10 webhooks each) instead of the dispatch one (100,000, 1 each).
--sockets   samples `ss` every 50 ms during each run: how many connections hold an unread request on nginx's side
            and an unread response on the dispatcher's (who waits for whom). Each sample is a process: compare
            runs made with the same flags.
--smoke     5,000 deliveries per run: `make bench-smoke` (CI) runs it so that it cannot rot.
--timeline  prints each run's deliveries per 100 ms from its first (stalls, ramps, a slow tail), and beside them
            the dispatcher's in-flight and queued deliveries and events consumed (/metrics read every 25 ms).
--syscalls  one more run, with the first configuration, with `strace -c -f` attached to the dispatcher for 1.5 s:
            its system call counts (strace slows the dispatcher a lot: compare counts per delivery, not times).
--keep      leaves the work directory (the broker's and Redis's data, every process's log) in $TMPDIR or /tmp;
            without it the directory is removed at the end (each run's is ~70-90 MiB of Kafka data).

Per run it prints deliveries/s (first to last delivery nginx logged), how busy the machine was, each busy
dispatcher thread's share of a core with its voluntary and involuntary context switches per delivery, nginx's and
the broker's share of a core, the connections used and how many resumed a TLS session, and the dispatcher's
backlog holds, parked deliveries and fetch kicks. docs/BENCHMARKS.md's log entries quote its output. Bench tool
only: not part of hookd, not run by CI.
"""
import argparse
import calendar
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (bench.py beside this file)

HZ = os.sysconf("SC_CLK_TCK")
ETYPE = "project.updated"
DEFAULT_BIN = bench.BIN  # HOOKD_BIN, else bin/


def thread_stats(pid):
    """{(tid, name): (cpu seconds, voluntary switches, involuntary switches)} of a live process's threads."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue  # the thread ended meanwhile
        fields = stat[stat.rindex(")") + 2:].split()
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        out[(tid, name)] = ((int(fields[11]) + int(fields[12])) / HZ,
                            int(status["voluntary_ctxt_switches"]), int(status["nonvoluntary_ctxt_switches"]))
    return out


def stack_pids(st):
    """{"nginx": [worker pids], "broker": [java pid]} of this stack (not of any other on the machine)."""
    def pgrep(*args):
        r = subprocess.run(["pgrep", *args], capture_output=True, text=True)
        return [int(x) for x in r.stdout.split()]
    broker = [p for p in pgrep("-f", str(st.dir)) if Path(f"/proc/{p}/comm").read_text().strip() == "java"]
    return {"nginx": pgrep("-P", str(st.nginx.pid)), "broker": broker}


def cpu_seconds(pids):
    total = 0.0
    for pid in pids:
        s = bench.proc_stat(pid)
        total += s[0] if s else 0.0
    return total


def socket_queues(port):
    """(nginx connections with an unread request, dispatcher connections with an unread response) right now."""
    out = subprocess.run(["ss", "-tnH", "state", "established"], capture_output=True, text=True).stdout
    server = client = 0
    for line in out.splitlines():
        f = line.split()
        if len(f) < 4 or f[0] == "0":
            continue
        if f[2].endswith(f":{port}"):
            server += 1
        elif f[3].endswith(f":{port}"):
            client += 1
    return server, client


class MetricsSampler:
    """With --timeline: reads the dispatcher's /metrics every 25 ms in a thread, keeping (wall time, in flight,
    queued, events consumed, fetch kicks), so a stall in the timeline shows whether the intake window was empty
    (waiting for Kafka) or full (waiting for receivers or the delivery threads)."""

    NAMES = ("hookd_dispatcher_deliveries_in_flight", "hookd_dispatcher_deliveries_queued",
             "hookd_dispatcher_events_consumed_total", "hookd_dispatcher_fetch_kicks_total")

    def __init__(self, url):
        self.url, self.samples, self.stop = url, [], threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=1) as r:
                    text = r.read().decode()
                values = [bench.metric_in(text, name) or 0.0 for name in self.NAMES]
                lag = sum(float(v) for v in re.findall(r"^hookd_dispatcher_consumer_lag{[^}]*} (\S+)", text, re.M))
                self.samples.append((time.time(), *values, lag))
            except OSError:
                pass
            self.stop.wait(0.025)

    def finish(self):
        self.stop.set()
        self.thread.join()

    def per_bucket(self, t0, n):
        """Per 100 ms bucket from t0: 'in flight/queued +events consumed' at the bucket's last sample, and when
        none were consumed '~consumer lag' (librdkafka's, as of its last statistics)."""
        out = []
        prev_consumed = None
        for b in range(n):
            inside = [s for s in self.samples if t0 + 0.1 * b <= s[0] < t0 + 0.1 * (b + 1)]
            if not inside:
                out.append("-")
                continue
            last = inside[-1]
            consumed = last[3] - (prev_consumed if prev_consumed is not None else inside[0][3])
            prev_consumed = last[3]
            out.append(f"{last[1]:.0f}/{last[2]:.0f}+{consumed:.0f}" + (f"~{last[5]:.0f}" if consumed == 0 else ""))
        return out


def parse_config(text):
    env = dict(kv.split("=", 1) for kv in text.split(",") if kv)
    binary = Path(env.pop("BIN")) if "BIN" in env else DEFAULT_BIN
    return binary, env


def one_run(st, args, run, binary, env, key, expected, others, trace=False):
    """One dispatcher run over the pre-loaded events, printed. With trace, only strace's counts are printed: a
    traced dispatcher is too slow for its other figures to mean anything."""
    bench.BIN = binary  # Stack.start_dispatcher runs bench.BIN / "dispatcher"
    off = bench.file_size(st.deliveries_log)
    d = st.start_dispatcher(f"{key}.", f"dispatcher-{key}{run}", **env)
    counter = bench.DeliveryCounter(st.deliveries_log, off, f"/{key}/")
    sampler = MetricsSampler(d.metrics_url) if args.timeline and not trace else None
    first = None
    queues = []
    tracer = None
    next_sample = 0.0
    deadline = time.monotonic() + 60
    seen = 0
    while time.monotonic() < deadline and seen < expected:
        if not d.alive():
            raise bench.HarnessError(f"dispatcher exited:\n{d.tail()}")
        time.sleep(0.01)
        seen = counter.poll()
        if seen and first is None:
            first = (time.monotonic(), thread_stats(d.pid), bench.machine_ticks(),
                     {k: cpu_seconds(v) for k, v in others.items()}, seen)
        if args.sockets and not trace and seen > expected // 5 and time.monotonic() >= next_sample:
            queues.append(socket_queues(st.https_port))
            next_sample = time.monotonic() + 0.05
        if trace and tracer is None and seen > expected // 20:
            trace_out = st.dir / "strace.txt"
            tracer = subprocess.Popen(["strace", "-c", "-f", "-p", str(d.pid), "-o", str(trace_out)],
                                      stderr=subprocess.DEVNULL)
            time.sleep(0.3)  # attached to every thread
            traced_from = counter.poll()
            time.sleep(1.5)
            traced = counter.poll() - traced_from
            tracer.send_signal(signal.SIGINT)
            tracer.wait()
    last = (time.monotonic(), thread_stats(d.pid), bench.machine_ticks(),
            {k: cpu_seconds(v) for k, v in others.items()})
    holds = bench.metric_value(d, "hookd_dispatcher_backlog_holds_total")
    parked = bench.metric_value(d, "hookd_dispatcher_deliveries_parked_total")
    kicks = bench.metric_value(d, "hookd_dispatcher_fetch_kicks_total")
    if sampler is not None:
        sampler.finish()
    d.stop(timeout=8)
    got = bench.deliveries_since(st.deliveries_log, off, f"/{key}/")
    if first is None or len(got) < 2:
        raise bench.HarnessError(f"run {run}: no deliveries\n{d.tail()}")
    if tracer is not None:
        print(f"strace -c -f of the dispatcher over 1.5 s of a run with the first configuration ({traced} deliveries "
              f"logged meanwhile):")
        print("\n".join("    " + line for line in (st.dir / "strace.txt").read_text().splitlines()))
        return
    ts = sorted(g[0] for g in got)
    counted = seen - first[4]
    elapsed = last[0] - first[0]
    print(f"run {run} [{','.join(f'{k}={v}' for k, v in env.items()) or 'defaults'}"
          f"{'' if binary == DEFAULT_BIN else f' bin={binary}'}]: "
          f"{len(got)}/{expected} delivered, {(len(ts) - 1) / max(ts[-1] - ts[0], 1e-3):,.0f}/s, "
          f"machine {bench.machine_busy_pct(first[2], last[2]):.0f} % busy")
    for k, (cpu, vol, invol) in sorted(last[1].items(), key=lambda kv: kv[0][1]):
        if k in first[1] and cpu - first[1][k][0] > 0.01 and counted > 0:
            c0, v0, i0 = first[1][k]
            print(f"    {k[1]:16s} {100 * (cpu - c0) / elapsed:5.1f} % of a core, context switches per delivery "
                  f"{(vol - v0) / counted:.3f} voluntary, {(invol - i0) / counted:.3f} involuntary")
    for name in others:
        print(f"    {name:16s} {100 * (last[3][name] - first[3][name]) / elapsed:5.1f} % of a core")
    conns = {g[2] for g in got}
    print(f"    connections {len(conns)}, {len({g[2] for g in got if g[3]})} resumed a TLS session; "
          f"backlog holds {count(holds)}, parked {count(parked)}, fetch kicks {count(kicks)}")
    if args.timeline:
        buckets = [0] * (int((ts[-1] - ts[0]) / 0.1) + 1)
        for t in ts:
            buckets[int((t - ts[0]) / 0.1)] += 1
        print(f"    deliveries per 100 ms from the first: {' '.join(str(b) for b in buckets)}")
        if sampler is not None:
            print(f"    in flight/queued +events consumed, per 100 ms: {' '.join(sampler.per_bucket(ts[0], len(buckets)))}")
        gaps = [(ts[i] - ts[i - 1], ts[i - 1]) for i in range(1, len(ts)) if ts[i] - ts[i - 1] > 0.2]
        for gap, since in gaps:
            print(f"    stall: no delivery for {gap * 1000:.0f} ms from {since - ts[0]:.2f} s; the dispatcher's log then:")
            for line in d.log_path.read_text(errors="replace").splitlines():
                try:
                    at = calendar.timegm(time.strptime(line[7:26], "%Y-%m-%dT%H:%M:%S")) + float(line[26:30])
                except ValueError:
                    continue
                if since - 0.5 <= at <= since + gap + 0.2:
                    print("        " + line[:240])
    if queues:
        print(f"    unread requests on nginx's side (of {len(conns)} connections): {spread([q[0] for q in queues])}; "
              f"unread responses on the dispatcher's: {spread([q[1] for q in queues])} ({len(queues)} samples)")


def spread(values):
    """"low–high, median m" of a non-empty list of numbers."""
    ordered = sorted(values)
    return f"{ordered[0]}–{ordered[-1]}, median {ordered[len(ordered) // 2]}"


def count(value):
    """A counter read from /metrics, or "?" when it could not be read."""
    return "?" if value is None else f"{value:.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(usage="%(prog)s [options]", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fanout", action="store_true", help="the fan-out workload")
    ap.add_argument("--runs", type=int, default=4, help="dispatcher runs (default 4)")
    ap.add_argument("--config", action="append", default=[], help="dispatcher settings of one configuration")
    ap.add_argument("--sockets", action="store_true", help="sample who holds unread data")
    ap.add_argument("--timeline", action="store_true", help="deliveries per 100 ms of each run")
    ap.add_argument("--syscalls", action="store_true", help="one more run under strace -c")
    ap.add_argument("--smoke", action="store_true", help="5,000 deliveries per run")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (Kafka's and Redis's data, the logs)")
    args = ap.parse_args()
    if args.syscalls and not subprocess.run(["which", "strace"], capture_output=True).stdout:
        ap.error("--syscalls needs strace")
    configs = [parse_config(c) for c in (args.config or [""])]
    hooks, key = (10, "f") if args.fanout else (1, "d")
    orgs = list(range(2001, 2005)) if args.fanout else list(range(1001, 1009))
    n_events = (5000 if args.smoke else 100000) // hooks
    bench.build_tool()
    workdir = Path(tempfile.mkdtemp(prefix="hookd-probe-", dir=os.environ.get("TMPDIR", "/tmp")))
    st = bench.Stack(workdir)
    try:
        st.start()
        st.start_api(f"{key}.", "producer-api")
        for org in orgs:
            for k in range(hooks):
                st.webhook(org, st.https(f"/{key}/{org}/{k}"), ETYPE)
        loaded = st.produce(f"{key}.{ETYPE}", n_events, orgs[0], len(orgs), bench.PAD_1K, key, ETYPE)
        if loaded["delivered"] != n_events:
            raise bench.HarnessError(f"pre-load: {loaded}")
        others = stack_pids(st)
        for run in range(args.runs):
            binary, env = configs[run % len(configs)]
            one_run(st, args, run, binary, env, key, n_events * hooks, others)
        if args.syscalls:
            binary, env = configs[0]
            one_run(st, args, args.runs, binary, env, key, n_events * hooks, others, trace=True)
    except bench.HarnessError as e:
        print(f"dispatch_probe: {e}", file=sys.stderr)
        return 1
    finally:
        st.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
