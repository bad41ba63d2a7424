#!/usr/bin/env python3
"""Whole-proxy load benchmark for batv-proxy (see README.md beside this file).

Measures, in one run, on 127.0.0.1 only:
  1. throughput of 5 KB messages, 20 concurrent sessions, one message per
     connection (smtp-source -> smtp-sink): direct, through haproxy in TCP
     mode, through batv-proxy outbound (signing) and inbound (verifying);
     with the relay's CPU time per message and peak RSS;
  2. memory per idle session with thousands of sessions held open, and the
     421 reply beyond max_connections;
  3. added latency of one command round trip (p50/p99).

Prints Markdown tables, then the same figures as key=value lines.
Every process it starts is stopped by its pid; the temporary directory is
removed at the end (unless --keep).
"""

import argparse
import asyncio
import datetime
import gc
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")
SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
SENDER = "alice@example.com"
RECIPIENT = "bob@example.net"
SESSIONS = 20  # concurrent smtp-source sessions
BODY = 5120  # smtp-source -l: body bytes
# CPUs for the load generator and the sink when pinning (see README).
SOURCE_CPU, SINK_CPU = "0", "1"
# What --only can choose.
SECTIONS = ("throughput", "concurrency", "latency")


def log(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes


class Processes:
    """The processes this benchmark started; stopped by pid, never by name."""

    def __init__(self):
        self.running = []

    def start(self, argv, log_path=None, env=None):
        out = open(log_path, "wb") if log_path else subprocess.DEVNULL
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT if log_path else out, env=env
        )
        if log_path:
            out.close()
        self.running.append(child)
        return child

    def stop(self, child, grace=10.0):
        if child.poll() is None:
            os.kill(child.pid, signal.SIGTERM)
            try:
                child.wait(grace)
            except subprocess.TimeoutExpired:
                os.kill(child.pid, signal.SIGKILL)
                child.wait(5)
        if child in self.running:
            self.running.remove(child)

    def stop_all(self):
        for child in list(self.running):
            try:
                self.stop(child, grace=5.0)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass


def proc_times(pid):
    """(utime, stime) in clock ticks of the whole process, all threads."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]), int(fields[12])


def proc_stat(pid):
    """utime + stime in clock ticks."""
    return sum(proc_times(pid))


def proc_status(pid, key):
    """A `VmRSS:`-style value from /proc/PID/status, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def system_ticks():
    """(busy, total) clock ticks of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    idle = values[3] + values[4]  # idle, iowait
    total = sum(values)
    return total - idle, total


def wait_for_calm(limit_seconds, threshold):
    """Waits (at most `limit_seconds`) until other processes use less than
    `threshold` % of the CPUs over 3 s; returns the last share seen."""
    deadline = time.monotonic() + limit_seconds
    while True:
        busy0, total0 = system_ticks()
        time.sleep(3)
        busy1, total1 = system_ticks()
        share = (busy1 - busy0) / max(1, total1 - total0) * 100
        if share <= threshold or time.monotonic() >= deadline:
            return share
        log(f"other processes use {share:.0f}% of the CPUs; waiting for a calmer moment")


def context_switches(pid):
    """Voluntary + involuntary context switches summed over the threads."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, child, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"{child.args[0]} exited with {child.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def pinned(cpu, argv, pin):
    return ["taskset", "-c", cpu, *argv] if pin else argv


# ------------------------------------------------------------------- setup


class Bench:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.procs = Processes()
        self.binary = str(ROOT / "target" / "release" / "batv-proxy")
        self.keys = work / "keys"
        subprocess.run([self.binary, "keygen", "--output", str(self.keys)], check=True, capture_output=True)
        self.counter = 0

    def name(self, prefix):
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def start_sink(self, pin, max_sessions=256, backlog=1000, cpu=SINK_CPU):
        port = free_port()
        argv = [SMTP_SINK, "-u", "root", "-m", str(max_sessions), f"127.0.0.1:{port}", str(backlog)]
        child = self.procs.start(pinned(cpu, argv, pin), self.work / (self.name("sink") + ".log"))
        wait_port(port, child)
        return child, port

    def write_proxy_config(self, listeners, worker_threads=None):
        """listeners: list of dicts with role, listen, upstream and optional keys."""
        lines = []
        if worker_threads:
            lines += ["[server]", f"worker_threads = {worker_threads}", ""]
        lines += ["[batv]", f'key_file = "{self.keys}"', 'domains = ["example.com"]', ""]
        for listener in listeners:
            lines.append("[[listener]]")
            for key, value in listener.items():
                lines.append(f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {value}")
            lines.append("")
        path = self.work / (self.name("proxy") + ".toml")
        path.write_text("\n".join(lines))
        return path

    def start_proxy(self, listeners, env_extra=None, cpu=None, worker_threads=None, binary=None):
        config = self.write_proxy_config(listeners, worker_threads)
        env = dict(os.environ)
        env.pop("RUST_LOG", None)  # the default level (info), as deployed
        env.update(env_extra or {})
        argv = [binary or self.binary, "run", "--config", str(config), "--log-format", "json"]
        child = self.procs.start(pinned(cpu, argv, cpu is not None), config.with_suffix(".log"), env=env)
        for listener in listeners:
            wait_port(int(listener["listen"].rsplit(":", 1)[1]), child)
        return child, config

    def start_haproxy(self, upstream_port, nbthread):
        port = free_port()
        config = self.work / (self.name("haproxy") + ".cfg")
        config.write_text(
            f"""global
    nbthread {nbthread}
    maxconn 9000

defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend smtp
    bind 127.0.0.1:{port}
    default_backend sink

backend sink
    server sink 127.0.0.1:{upstream_port}
"""
        )
        child = self.procs.start(["haproxy", "-f", str(config), "-db"], config.with_suffix(".log"))
        wait_port(port, child)
        return child, port

    def tagged_recipient(self):
        config = self.write_proxy_config(
            [{"role": "inbound", "listen": "127.0.0.1:1", "upstream": "127.0.0.1:1", "client_identity": "none"}]
        )
        result = subprocess.run(
            [self.binary, "sign", "--config", str(config), SENDER], check=True, capture_output=True, text=True
        )
        return result.stdout.strip()

    # ---------------------------------------------------------- throughput

    def smtp_source(self, port, messages, sender, recipient, pin):
        argv = [SMTP_SOURCE, "-s", str(SESSIONS), "-l", str(BODY), "-m", str(messages)]
        argv += ["-f", sender, "-t", recipient, f"127.0.0.1:{port}"]
        result = subprocess.run(
            pinned(SOURCE_CPU, argv, pin), capture_output=True, text=True, timeout=self.args.run_timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"smtp-source failed ({result.returncode}): {result.stderr.strip()[:500]}")

    def throughput_run(self, config):
        """One measured run of a configuration; returns its figures."""
        pin = not self.args.no_pin
        sink, sink_port = self.start_sink(pin)
        relay = None
        sender, recipient = SENDER, RECIPIENT
        try:
            if config["kind"] == "direct":
                port = sink_port
            elif config["kind"] == "haproxy":
                relay, port = self.start_haproxy(sink_port, config["nbthread"])
            else:
                port = free_port()
                listener = proxy_listener(config["role"], port, sink_port, config["identity"])
                env = {}
                if config.get("log"):
                    env["RUST_LOG"] = config["log"]
                relay, _ = self.start_proxy(
                    [listener], env, worker_threads=config.get("workers"), binary=config.get("binary")
                )
                if config["role"] == "inbound":
                    sender, recipient = "", self.tag
            # Warm-up, not measured: thread pools, allocator arenas, page cache.
            self.smtp_source(port, self.args.warmup, sender, recipient, pin)
            messages = self.args.messages
            relay_before = proc_times(relay.pid) if relay else (0, 0)
            switches_before = context_switches(relay.pid) if relay else 0
            sink_before = proc_stat(sink.pid)
            children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            system_before = system_ticks()
            started = time.monotonic()
            self.smtp_source(port, messages, sender, recipient, pin)
            elapsed = time.monotonic() - started
            relay_user, relay_sys = (
                (a - b for a, b in zip(proc_times(relay.pid), relay_before)) if relay else (0, 0)
            )
            sink_ticks = proc_stat(sink.pid) - sink_before
            children = resource.getrusage(resource.RUSAGE_CHILDREN)  # smtp-source, reaped
            source_seconds = (children.ru_utime + children.ru_stime) - (
                children_before.ru_utime + children_before.ru_stime
            )
            busy, total = (a - b for a, b in zip(system_ticks(), system_before))
            ours = relay_user + relay_sys + sink_ticks + source_seconds * CLK_TCK
            per_message = lambda ticks: ticks / CLK_TCK * 1e6 / messages  # µs
            figures = {
                "msgs_per_s": messages / elapsed,
                "seconds": elapsed,
                "messages": messages,
                "sink_cpu_us_per_msg": per_message(sink_ticks),
                "source_cpu_us_per_msg": source_seconds * 1e6 / messages,
                # CPU used by anything but source, sink and relay during the
                # run (other processes, interrupts, steal): high means noise.
                "other_cpu_percent": max(0.0, (busy - ours) / total * 100) if total else 0.0,
            }
            if relay:
                figures["cpu_us_per_msg"] = per_message(relay_user + relay_sys)
                figures["cpu_user_us_per_msg"] = per_message(relay_user)
                figures["cpu_sys_us_per_msg"] = per_message(relay_sys)
                figures["ctx_switches_per_msg"] = (context_switches(relay.pid) - switches_before) / messages
                figures["peak_rss_kib"] = proc_status(relay.pid, "VmHWM")
            return figures
        finally:
            if relay:
                self.procs.stop(relay)
            self.procs.stop(sink)

    # --------------------------------------------------------- concurrency

    def idle_sessions(self):
        """Holds N idle sessions through the proxy; RSS before, with, after."""
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        sink, sink_port = self.start_sink(pin=False, max_sessions=self.args.sessions + 100, backlog=4096)
        port = free_port()
        listener = proxy_listener("outbound", port, sink_port)
        proxy, _ = self.start_proxy([listener])
        try:
            # One full session first, so lazily built state is in the baseline.
            Session(port).close()
            time.sleep(0.5)
            baseline_fds = open_fds(proxy.pid)
            # Each session holds two descriptors in the proxy (client, upstream).
            wanted = self.args.sessions
            capacity = (hard - baseline_fds - 16) // 2
            count = min(wanted, capacity)
            if count < wanted:
                log(f"fd hard limit {hard}: holding {count} sessions instead of {wanted}")
            rss_before = proc_status(proxy.pid, "VmRSS")
            figures = asyncio.run(hold_sessions(port, count, lambda: measure_held(proxy.pid)))
            figures.update(
                {
                    "requested": wanted,
                    "attempted": count,
                    "nofile_hard_limit": hard,
                    "rss_before_kib": rss_before,
                    "rss_after_close_kib": proc_status(proxy.pid, "VmRSS"),
                    "peak_rss_kib": proc_status(proxy.pid, "VmHWM"),
                }
            )
            for wave in ("", "second_wave_"):
                held = figures[wave + "greeted"]
                growth = figures[wave + "rss_with_kib"] - rss_before
                figures[wave + "kib_per_session"] = growth / held if held else float("nan")
            return figures
        finally:
            self.procs.stop(proxy)
            self.procs.stop(sink)

    def connection_limit(self, limit=50, extra=100):
        """A small max_connections: the sessions beyond it must get 421."""
        sink, sink_port = self.start_sink(pin=False)
        port = free_port()
        listener = {**proxy_listener("outbound", port, sink_port), "max_connections": limit}
        proxy, _ = self.start_proxy([listener])
        try:
            time.sleep(0.3)  # the readiness probe's session ends
            return asyncio.run(limit_check(port, limit, extra))
        finally:
            self.procs.stop(proxy)
            self.procs.stop(sink)

    # ------------------------------------------------------------- latency

    def latency(self, cpu=None, binary=None):
        """Round trips direct and through the proxy. With `cpu`, the client,
        the sink and the proxy all run on that one CPU: no cross-CPU wake-ups,
        whose cost on a VM varies from run to run, so the difference is the
        proxy's own work. Without, the scheduler places everything."""
        sink, sink_port = self.start_sink(pin=cpu is not None, cpu=cpu)
        out_port, in_port = free_port(), free_port()
        common = {"upstream": f"127.0.0.1:{sink_port}", "client_identity": "none"}
        proxy, _ = self.start_proxy(
            [
                {"role": "outbound", "listen": f"127.0.0.1:{out_port}", **common},
                {"role": "inbound", "listen": f"127.0.0.1:{in_port}", **common},
            ],
            cpu=cpu,
            binary=binary,
        )
        affinity = os.sched_getaffinity(0)
        if cpu is not None:
            os.sched_setaffinity(0, {int(cpu)})
        gc.disable()  # no collector pauses inside a timed round trip
        n = self.args.samples
        noop = [("NOOP", True)]
        mail = [(f"MAIL FROM:<{SENDER}>", True), ("RSET", False)]
        rcpt = [("MAIL FROM:<>", False), (f"RCPT TO:<{self.tag}>", True), ("RSET", False)]
        cases = {"noop": (out_port, noop), "mail_outbound": (out_port, mail), "rcpt_inbound": (in_port, rcpt)}
        results = {}
        try:
            for name, (port, script) in cases.items():
                # Tail latencies suffer most from other work on the machine:
                # a disturbed case is measured again, as throughput runs are.
                for attempt in range(self.args.retries + 1):
                    system_before = system_ticks()
                    servers_before = proc_stat(proxy.pid) + proc_stat(sink.pid)
                    client_before = os.times()
                    direct, proxied = latency_pair(sink_port, port, script, n)
                    busy, total = (a - b for a, b in zip(system_ticks(), system_before))
                    client = os.times()
                    ours = proc_stat(proxy.pid) + proc_stat(sink.pid) - servers_before
                    ours += (client.user + client.system - client_before.user - client_before.system) * CLK_TCK
                    other = max(0.0, (busy - ours) / total * 100) if total else 0.0
                    if other <= self.args.max_other_load:
                        break
                    log(f"latency {name}: other processes used {other:.0f}% CPU; measuring again")
                results[name] = self.latency_figures(direct, proxied)
                results[name]["other_cpu_percent"] = other
        finally:
            gc.enable()
            os.sched_setaffinity(0, affinity)
            self.procs.stop(proxy)
            self.procs.stop(sink)
        return results

    @staticmethod
    def latency_figures(direct, proxied):
        (direct_p50, direct_p99), (proxy_p50, proxy_p99) = percentiles(direct), percentiles(proxied)
        return {
            "samples": len(proxied),
            "direct_p50_us": direct_p50,
            "direct_p99_us": direct_p99,
            "proxy_p50_us": proxy_p50,
            "proxy_p99_us": proxy_p99,
            "added_p50_us": proxy_p50 - direct_p50,
            "added_p99_us": proxy_p99 - direct_p99,
        }

    # ------------------------------------------------------------- strace

    def syscalls(self, messages=2000):
        """Syscalls per message of the proxy (outbound) and haproxy, by strace -c -f."""
        results = {}
        for label, kind in (("proxy_outbound", "proxy"), ("haproxy", "haproxy")):
            sink, sink_port = self.start_sink(pin=False)
            relay = None
            try:
                if kind == "haproxy":
                    relay, port = self.start_haproxy(sink_port, 1)
                else:
                    port = free_port()
                    listener = proxy_listener("outbound", port, sink_port)
                    relay, _ = self.start_proxy([listener])
                self.smtp_source(port, 200, SENDER, RECIPIENT, False)
                out = self.work / (self.name("strace") + ".txt")
                tracer = self.procs.start(["strace", "-c", "-f", "-p", str(relay.pid), "-o", str(out)])
                time.sleep(1.0)  # strace attaches to every thread
                self.smtp_source(port, messages, SENDER, RECIPIENT, False)
                time.sleep(0.3)
                os.kill(tracer.pid, signal.SIGINT)
                tracer.wait(10)
                self.procs.running.remove(tracer)
                counts = {}
                for line in out.read_text().splitlines():
                    parts = line.split()
                    if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                        counts[parts[-1]] = int(parts[3])
                results[label] = {name: calls / messages for name, calls in counts.items()}
            finally:
                if relay:
                    self.procs.stop(relay)
                self.procs.stop(sink)
        return results


# ------------------------------------------------------------- SMTP clients


def read_reply(sock, buffer):
    """Reads one (possibly multi-line) reply; returns (code, rest of buffer)."""
    while True:
        while b"\r\n" in buffer:
            line, buffer = buffer.split(b"\r\n", 1)
            if line[3:4] != b"-":
                return int(line[:3]), buffer
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        buffer += chunk


class Session:
    """A blocking SMTP session for timing single round trips."""

    def __init__(self, port):
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        code, self.buffer = read_reply(self.sock, self.buffer)
        if code != 220:
            raise RuntimeError(f"port {port}: greeting {code}")
        self.command("EHLO load.test")

    def command(self, line):
        """Sends one command; returns the round trip in microseconds."""
        data = line.encode() + b"\r\n"
        started = time.perf_counter_ns()
        self.sock.sendall(data)
        code, self.buffer = read_reply(self.sock, self.buffer)
        elapsed = time.perf_counter_ns() - started
        if code // 100 != 2:
            raise RuntimeError(f"{line!r} on port {self.port}: reply {code}")
        return elapsed / 1000

    def close(self):
        try:
            self.sock.sendall(b"QUIT\r\n")
        except OSError:
            pass
        self.sock.close()


def latency_pair(direct_port, proxy_port, script, samples, warmup=200):
    """Runs `script` (list of (command, timed)) alternately on a direct and a
    proxied session, so both see the same machine state; returns the timed
    round trips (µs) of each."""
    direct, proxied = Session(direct_port), Session(proxy_port)
    times = ([], [])
    try:
        for i in range(samples + warmup):
            # Alternate which goes first, so neither always follows the other.
            order = ((0, direct), (1, proxied)) if i % 2 else ((1, proxied), (0, direct))
            for index, session in order:
                for command, timed in script:
                    elapsed = session.command(command)
                    if timed and i >= warmup:
                        times[index].append(elapsed)
    finally:
        direct.close()
        proxied.close()
    return times


def percentiles(samples):
    ordered = sorted(samples)
    nearest = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    return statistics.median(ordered), nearest(0.99)


async def open_session(port, timeout=30.0):
    """Connects and reads the first reply line; returns (code, writer)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, asyncio.TimeoutError):
        return "connect_error", None
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, asyncio.TimeoutError):
        writer.close()
        return "no_reply", None
    code = line[:3].decode(errors="replace") if line else "closed"
    return code, writer


async def open_many(port, count, parallel=200):
    gate = asyncio.Semaphore(parallel)

    async def one():
        async with gate:
            return await open_session(port)

    return await asyncio.gather(*(one() for _ in range(count)))


def tally(results):
    counts = {}
    for code, _ in results:
        counts[code] = counts.get(code, 0) + 1
    return counts


async def close_all(results):
    for _, writer in results:
        if writer is not None:
            writer.close()
    await asyncio.sleep(0.5)


async def hold_sessions(port, count, measure):
    """Opens `count` idle sessions, measures, closes them; then a second
    wave of the same size, which shows whether memory is reused or grows."""
    figures = {}
    for wave in ("", "second_wave_"):
        started = time.monotonic()
        results = await open_many(port, count)
        opened = time.monotonic() - started
        await asyncio.sleep(1.0)  # let the proxy settle (buffers released when idle)
        for key, value in measure().items():
            figures[wave + key] = value
        figures[wave + "open_seconds"] = opened
        figures[wave + "replies"] = tally(results)
        figures[wave + "greeted"] = figures[wave + "replies"].get("220", 0)
        await close_all(results)
        await asyncio.sleep(1.0)
    return figures


def measure_held(pid):
    return {"rss_with_kib": proc_status(pid, "VmRSS"), "fds_with": open_fds(pid)}


async def limit_check(port, limit, extra):
    held = await open_many(port, limit)
    beyond = await open_many(port, extra)
    # The refused ones are closed by the proxy right after the 421.
    await close_all(beyond)
    await close_all(held)
    await asyncio.sleep(0.5)
    again = await open_many(port, 1)
    await close_all(again)
    return {
        "max_connections": limit,
        "held_replies": tally(held),
        "beyond_replies": tally(beyond),
        "beyond_421": tally(beyond).get("421", 0),
        "beyond_attempted": extra,
        "after_release_reply": again[0][0],
    }


# ------------------------------------------------------------------ report


def sections(text):
    """--only's argument: a comma-separated subset of SECTIONS."""
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [part for part in chosen if part not in SECTIONS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(SECTIONS)}")
    return chosen


def at_least_one(text):
    """A count that must be 1 or more (0 rounds would leave nothing to report)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be 1 or more")
    return value


def median(values):
    return statistics.median(values) if values else float("nan")


def table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def flatten(prefix, value, out):
    if isinstance(value, dict):
        for key, inner in value.items():
            flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif isinstance(value, float):
        out.append(f"{prefix}={value:.3f}")
    elif isinstance(value, list):
        out.append(f"{prefix}={','.join(f'{v:.1f}' if isinstance(v, float) else str(v) for v in value)}")
    else:
        out.append(f"{prefix}={value}")


def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        memory = int(f.readline().split()[1]) / 1024 / 1024

    def version(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unknown"

    commit = version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory, 1),
        "kernel": platform.release(),
        "os": version(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "haproxy": version(["haproxy", "-v"]).replace("HAProxy version ", ""),
        "postfix": version(["postconf", "-d", "-h", "mail_version"]),
        "batv_proxy_commit": commit,
        "loadavg_at_start": open("/proc/loadavg").read().split()[0],
    }


# -------------------------------------------------------------------- main

def proxy_listener(role, port, upstream_port, identity="none"):
    """A [[listener]] table on 127.0.0.1:port in front of the sink, with
    connection limits high enough for every measurement."""
    return {
        "role": role,
        "listen": f"127.0.0.1:{port}",
        "upstream": f"127.0.0.1:{upstream_port}",
        "client_identity": identity,
        "max_connections": 20000,
        "max_connections_per_ip": 20000,
    }


def proxy_config(role, **options):
    return {"kind": "proxy", "role": role, "identity": "none", **options}


# key, label, settings
CONFIGS = [
    # measured --runs times, interleaved
    ("direct", "smtp-source → smtp-sink (direct)", {"kind": "direct"}),
    ("haproxy", "haproxy TCP, nbthread 1", {"kind": "haproxy", "nbthread": 1}),
    ("proxy_outbound", "batv-proxy outbound (sign)", proxy_config("outbound")),
    ("proxy_inbound", "batv-proxy inbound (verify)", proxy_config("inbound")),
]
EXTRA = [
    # measured --extra-runs times, interleaved with the above: what options cost
    ("proxy_outbound_xclient", "batv-proxy outbound + XCLIENT", proxy_config("outbound", identity="xclient")),
    ("proxy_inbound_xclient", "batv-proxy inbound + XCLIENT", proxy_config("inbound", identity="xclient")),
    ("proxy_outbound_1worker", "batv-proxy outbound, 1 worker thread", proxy_config("outbound", workers=1)),
    ("proxy_outbound_quiet", "batv-proxy outbound, log level warn", proxy_config("outbound", log="warn")),
    ("haproxy_nbthread2", "haproxy TCP, nbthread 2", {"kind": "haproxy", "nbthread": 2}),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10000, help="messages per measured run (default 10000)")
    parser.add_argument("--warmup", type=int, default=300, help="unmeasured messages before each run (default 300)")
    parser.add_argument("--runs", type=at_least_one, default=7, help="interleaved runs of each main configuration (default 7)")
    parser.add_argument("--extra-runs", type=int, default=3, help="runs of the XCLIENT and thread variants (default 3)")
    parser.add_argument("--sessions", type=int, default=10000, help="idle sessions to hold (default 10000)")
    parser.add_argument("--samples", type=int, default=3000, help="latency samples per case (default 3000)")
    parser.add_argument("--max-other-load", type=float, default=10.0,
                        help="repeat a run when other processes used more than this %% of all CPUs (default 10)")
    parser.add_argument("--retries", type=int, default=2, help="repeats of one disturbed run at most (default 2)")
    parser.add_argument("--retry-budget", type=int, default=12, help="repeats of disturbed runs in all (default 12)")
    parser.add_argument("--wait-calm", type=float, default=60,
                        help="wait up to this many seconds for the machine to be idle before starting (default 60)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin smtp-source and smtp-sink to CPUs")
    parser.add_argument("--syscalls", action="store_true", help="also count syscalls per message with strace -c -f")
    parser.add_argument("--only", type=sections, default=SECTIONS, metavar="SECTION[,SECTION]",
                        help=f"measure only these sections: {', '.join(SECTIONS)} (default all)")
    parser.add_argument("--latency-rounds", type=at_least_one, default=1,
                        help="rounds of the one-CPU latency measurement; figures are medians over rounds (default 1)")
    parser.add_argument("--compare", type=Path, metavar="BINARY",
                        help="another batv-proxy build (a baseline commit's) measured in the same run: "
                             "its outbound and inbound rows interleaved with the others, its latency rounds "
                             "alternating with this build's")
    parser.add_argument("--quick", action="store_true", help="small counts, for trying the script (figures are noisy)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs)")
    parser.add_argument("--run-timeout", type=float, default=120.0, help="seconds allowed per smtp-source run")
    parser.add_argument("--deadline", type=int, default=900, help="abort the whole benchmark after this many seconds")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.warmup, args.runs, args.extra_runs = 2000, 100, 1, 1
        args.sessions, args.samples = 1000, 500
    if args.compare and not args.compare.is_file():
        sys.exit(f"--compare {args.compare}: no such file (build the baseline with cargo build --release)")
    args.compare = str(args.compare.resolve()) if args.compare else None

    binary = ROOT / "target" / "release" / "batv-proxy"
    for tool in (binary, Path(SMTP_SOURCE), Path(SMTP_SINK), Path(shutil.which("haproxy") or "/nonexistent")):
        if not tool.exists():
            sys.exit(f"missing {tool} (build with cargo build --release; install postfix and haproxy)")
    if not args.no_pin and (os.cpu_count() or 1) < 2:
        args.no_pin = True

    # Raise the descriptor limit to the hard limit; children inherit it.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def deadline(*_):
        raise TimeoutError(f"benchmark exceeded --deadline {args.deadline}s")

    signal.signal(signal.SIGALRM, deadline)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    signal.alarm(args.deadline)

    work = Path(tempfile.mkdtemp(prefix="batv-load."))
    bench = Bench(args, work)
    results = {"machine": machine(), "parameters": {}}
    results["parameters"] = {
        "messages_per_run": args.messages,
        "warmup_messages": args.warmup,
        "runs": args.runs,
        "extra_runs": args.extra_runs,
        "concurrent_sessions": SESSIONS,
        "body_bytes": BODY,
        "max_other_load_percent": args.max_other_load,
        "pinning": "none" if args.no_pin else f"smtp-source cpu {SOURCE_CPU}, smtp-sink cpu {SINK_CPU}, relay unpinned",
        "sections": ",".join(args.only),
        "latency_rounds": args.latency_rounds,
    }
    if args.compare:
        results["parameters"]["compare_binary"] = args.compare
    started = time.monotonic()
    try:
        bench.tag = bench.tagged_recipient()
        results["parameters"]["other_load_percent_at_start"] = wait_for_calm(args.wait_calm, args.max_other_load)
        if "throughput" in args.only:
            results["throughput"] = measure_throughput(bench, args)
        if "concurrency" in args.only:
            log(f"idle sessions: holding {args.sessions}")
            results["idle"] = bench.idle_sessions()
            log("connection limit: 421 beyond max_connections")
            results["limit"] = bench.connection_limit()
        if "latency" in args.only:
            results.update(measure_latency(bench, args))
        if args.syscalls:
            log("syscalls per message (strace -c -f)")
            results["syscalls_per_msg"] = bench.syscalls()
    finally:
        signal.alarm(0)
        bench.procs.stop_all()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["duration_s"] = time.monotonic() - started
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


def measure_throughput(bench, args):
    """Every configuration, interleaved in rotating order; medians per configuration."""
    configs = CONFIGS + (compare_configs(args.compare) if args.compare else [])
    runs = {key: [] for key, _, _ in configs + EXTRA}
    discarded = {}
    rounds = max(args.runs, args.extra_runs)
    for round_number in range(rounds):
        todo = (configs if round_number < args.runs else []) + (EXTRA if round_number < args.extra_runs else [])
        # Rotate the order so no configuration always runs first.
        shift = round_number % len(todo)
        for key, label, config in todo[shift:] + todo[:shift]:
            # The machine may be shared: a run during which other work took
            # much CPU is measured again (a few times at most).
            for attempt in range(args.retries + 1):
                figures = bench.throughput_run(config)
                calm = figures["other_cpu_percent"] <= args.max_other_load
                if calm or attempt == args.retries or sum(discarded.values()) >= args.retry_budget:
                    break
                discarded[key] = discarded.get(key, 0) + 1
                log(f"{key}: other processes used {figures['other_cpu_percent']:.0f}% CPU; measuring again")
            runs[key].append(figures)
            cpu = f", {figures['cpu_us_per_msg']:.0f} µs CPU/msg" if "cpu_us_per_msg" in figures else ""
            log(f"round {round_number + 1}/{rounds} {key}: {figures['msgs_per_s']:.0f} msg/s{cpu}")

    throughput = {}
    for key, label, _ in configs + EXTRA:
        samples = runs[key]
        if not samples:
            continue
        entry = {"label": label, "runs": len(samples), "discarded_runs": discarded.get(key, 0)}
        entry["msgs_per_s"] = median([s["msgs_per_s"] for s in samples])
        entry["msgs_per_s_all"] = [s["msgs_per_s"] for s in samples]
        for field in ("cpu_us_per_msg", "cpu_user_us_per_msg", "cpu_sys_us_per_msg", "ctx_switches_per_msg",
                      "sink_cpu_us_per_msg", "source_cpu_us_per_msg", "other_cpu_percent"):
            values = [s[field] for s in samples if field in s]
            if values:
                entry[field] = median(values)
        if any("cpu_us_per_msg" in s for s in samples):
            entry["cpu_us_per_msg_all"] = [s["cpu_us_per_msg"] for s in samples]
            entry["peak_rss_kib"] = max(s["peak_rss_kib"] for s in samples)
        throughput[key] = entry
    direct, haproxy = throughput["direct"], throughput["haproxy"]
    for entry in throughput.values():
        entry["vs_direct"] = entry["msgs_per_s"] / direct["msgs_per_s"]
        entry["vs_haproxy"] = entry["msgs_per_s"] / haproxy["msgs_per_s"]
        if "cpu_us_per_msg" in entry:
            entry["cpu_vs_haproxy"] = entry["cpu_us_per_msg"] / haproxy["cpu_us_per_msg"]
    return throughput


def compare_configs(binary):
    return [
        ("compare_outbound", "compare build outbound (sign)", proxy_config("outbound", binary=binary)),
        ("compare_inbound", "compare build inbound (verify)", proxy_config("inbound", binary=binary)),
    ]


def measure_latency(bench, args):
    """One-CPU latency in --latency-rounds rounds (alternating with the
    compare build), medians over rounds; then one unpinned round each."""
    builds = [("latency", None)] + ([("latency_compare", args.compare)] if args.compare else [])
    rounds = {key: [] for key, _ in builds}
    for round_number in range(args.latency_rounds):
        for key, binary in builds:
            log(f"latency round {round_number + 1}/{args.latency_rounds} ({key}): {args.samples} samples per case, "
                "on one CPU")
            rounds[key].append(bench.latency(cpu=SOURCE_CPU, binary=binary))
    results = {}
    for key, binary in builds:
        log(f"latency ({key}): unpinned")
        results[key] = {"one_cpu": latency_medians(rounds[key]), "unpinned": bench.latency(binary=binary)}
    return results


def latency_medians(rounds):
    """Per case, the median of each figure over rounds, with every round's added latency."""
    merged = {}
    for case in rounds[0]:
        figures = {field: median([r[case][field] for r in rounds]) for field in rounds[0][case]}
        figures["rounds"] = len(rounds)
        figures["added_p50_us_rounds"] = [r[case]["added_p50_us"] for r in rounds]
        figures["added_p99_us_rounds"] = [r[case]["added_p99_us"] for r in rounds]
        merged[case] = figures
    return merged


def report(results):
    m, p = results["machine"], results["parameters"]
    print(f"# batv-proxy load benchmark — {m['date']}")
    print()
    print(f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, {m['os']}, Linux {m['kernel']}; "
          f"haproxy {m['haproxy']}, Postfix {m['postfix']}; batv-proxy {m['batv_proxy_commit']} (release build).")
    print(f"Load: {p['concurrent_sessions']} concurrent sessions, {p['body_bytes']}-byte bodies, one message per "
          f"connection, {p['messages_per_run']} messages per run; pinning: {p['pinning']}.")
    if "compare_binary" in p:
        print(f"Compare build: {p['compare_binary']}.")
    print()
    if "throughput" in results:
        report_throughput(results["throughput"])
    if "idle" in results:
        report_concurrency(results["idle"], results["limit"])
    if "latency" in results:
        report_latency(results)
    if "syscalls_per_msg" in results:
        report_syscalls(results["syscalls_per_msg"])
    print("## Targets")
    print()
    print(table(["target", "measured", "met"], targets(results)))
    print()
    print(f"Total benchmark time: {results['duration_s']:.0f} s")
    print()
    print("## Machine-readable")
    print()
    lines = []
    flatten("", {k: v for k, v in results.items() if k != "machine"}, lines)
    flatten("machine", results["machine"], lines)
    for line in lines:
        print(line)


def report_throughput(throughput):
    rows = []
    for t in throughput.values():
        spread = f"{min(t['msgs_per_s_all']):.0f}–{max(t['msgs_per_s_all']):.0f}" if t["runs"] > 1 else "—"
        rows.append([
            t["label"], f"{t['runs']}" + (f" (+{t['discarded_runs']} redone)" if t["discarded_runs"] else ""),
            f"{t['msgs_per_s']:.0f}", spread, f"{t['vs_direct']:.2f}", f"{t['vs_haproxy']:.2f}",
            f"{t['cpu_us_per_msg']:.0f}" if "cpu_us_per_msg" in t else "—",
            f"{t['cpu_vs_haproxy']:.2f}" if "cpu_vs_haproxy" in t else "—",
            f"{t['ctx_switches_per_msg']:.1f}" if "ctx_switches_per_msg" in t else "—",
            f"{t['peak_rss_kib'] / 1024:.1f}" if "peak_rss_kib" in t else "—",
            f"{t['other_cpu_percent']:.0f}",
        ])
    print("## 1. Throughput (medians)")
    print()
    print(table(["configuration", "runs", "msg/s", "min–max", "× direct", "× haproxy", "relay CPU µs/msg",
                 "CPU × haproxy", "ctx sw/msg", "peak RSS MiB", "other load %"], rows))
    print()


def report_concurrency(i, lim):
    print("## 2. Concurrency")
    print()
    print(table(["figure", "value"], [
        ["idle sessions held (greeted 220)",
         f"{i['greeted']} of {i['attempted']} attempted "
         f"({i['requested']} requested; fd hard limit {i['nofile_hard_limit']})"],
        ["replies while opening", ", ".join(f"{k}: {v}" for k, v in sorted(i["replies"].items()))],
        ["time to open them", f"{i['open_seconds']:.1f} s"],
        ["proxy RSS before / with sessions",
         f"{i['rss_before_kib'] / 1024:.1f} MiB / {i['rss_with_kib'] / 1024:.1f} MiB"],
        ["**KiB per idle session** (client + upstream connection)", f"**{i['kib_per_session']:.2f}** (target ≤ 16)"],
        ["proxy descriptors with sessions", i["fds_with"]],
        ["second wave (after closing the first): greeted, RSS with them",
         f"{i['second_wave_greeted']}, {i['second_wave_rss_with_kib'] / 1024:.1f} MiB"],
        ["KiB per idle session, second wave", f"{i['second_wave_kib_per_session']:.2f}"],
        ["proxy peak RSS / RSS after closing all",
         f"{i['peak_rss_kib'] / 1024:.1f} MiB / {i['rss_after_close_kib'] / 1024:.1f} MiB"],
        [f"beyond max_connections = {lim['max_connections']}",
         f"{lim['beyond_421']} of {lim['beyond_attempted']} got 421 "
         f"(all replies: {', '.join(f'{k}: {v}' for k, v in sorted(lim['beyond_replies'].items()))})"],
        ["the sessions within the limit", ", ".join(f"{k}: {v}" for k, v in sorted(lim["held_replies"].items()))],
        ["a new session after they closed", lim["after_release_reply"]],
    ]))
    print()


def report_latency(results):
    print("## 3. Added latency of one command round trip (µs, loopback)")
    print()
    builds = [("latency", "this build")] + ([("latency_compare", "compare build")] if "latency_compare" in results else [])
    placements = {"one_cpu": "one CPU", "unpinned": "unpinned"}
    rows = []
    for key, build in builds:
        for placement, cases in results[key].items():
            for command, l in cases.items():
                rounds = l.get("added_p99_us_rounds", [])
                rows.append([
                    command, build, placements[placement], int(l["samples"]), l.get("rounds", 1),
                    f"{l['direct_p50_us']:.0f}", f"{l['proxy_p50_us']:.0f}", f"{l['added_p50_us']:+.0f}",
                    f"{l['direct_p99_us']:.0f}", f"{l['proxy_p99_us']:.0f}", f"{l['added_p99_us']:+.0f}",
                    " ".join(f"{value:+.0f}" for value in rounds) if len(rounds) > 1 else "—",
                ])
    print(table(["command", "build", "placement", "samples", "rounds", "direct p50", "proxy p50", "added p50",
                 "direct p99", "proxy p99", "added p99", "added p99 per round"], rows))
    print()


def report_syscalls(s):
    names = sorted(set(s["proxy_outbound"]) | set(s["haproxy"]),
                   key=lambda n: -(s["proxy_outbound"].get(n, 0) + s["haproxy"].get(n, 0)))
    rows = [[n, f"{s['proxy_outbound'].get(n, 0):.2f}", f"{s['haproxy'].get(n, 0):.2f}"] for n in names]
    rows.append(["**total**", f"{sum(s['proxy_outbound'].values()):.1f}", f"{sum(s['haproxy'].values()):.1f}"])
    print("## Syscalls per message (strace -c -f, outbound)")
    print()
    print(table(["syscall", "batv-proxy", "haproxy"], rows))
    print()


def targets(results):
    """The issue's targets, for the sections that were measured."""
    rows = []
    yes = lambda met: "yes" if met else "no"
    if "throughput" in results:
        t = results["throughput"]
        out, inb, ha = t["proxy_outbound"], t["proxy_inbound"], t["haproxy"]
        worst_rate = min(out["vs_haproxy"], inb["vs_haproxy"])
        worst_cpu = max(out["cpu_vs_haproxy"], inb["cpu_vs_haproxy"])
        rows += [
            ["throughput ≥ 1.1 × haproxy", f"{worst_rate:.2f} (worst of outbound, inbound)", yes(worst_rate >= 1.1)],
            ["CPU/message ≤ haproxy", f"{worst_cpu:.2f} × ({max(out['cpu_us_per_msg'], inb['cpu_us_per_msg']):.0f} vs "
                                      f"{ha['cpu_us_per_msg']:.0f} µs)", yes(worst_cpu <= 1.0)],
        ]
    if "idle" in results:
        i, lim = results["idle"], results["limit"]
        rows += [
            ["≤ 16 KiB per idle session (first wave)", f"{i['kib_per_session']:.2f} KiB", yes(i["kib_per_session"] <= 16)],
            ["≤ 16 KiB per idle session (second wave)", f"{i['second_wave_kib_per_session']:.2f} KiB",
             yes(i["second_wave_kib_per_session"] <= 16)],
            ["421 beyond max_connections", f"{lim['beyond_421']}/{lim['beyond_attempted']}",
             yes(lim["beyond_421"] == lim["beyond_attempted"])],
        ]
    if "latency_compare" in results:
        ours, theirs = results["latency"]["one_cpu"], results["latency_compare"]["one_cpu"]
        for command in ours:
            a, b = ours[command]["added_p99_us"], theirs[command]["added_p99_us"]
            rows.append([f"added p99 {command} ≤ compare build's (one CPU)", f"{a:+.0f} vs {b:+.0f} µs", yes(a <= b)])
    return rows


if __name__ == "__main__":
    main()
