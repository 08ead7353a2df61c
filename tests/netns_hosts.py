"""Separate network hosts for the cluster tests, made with Linux network namespaces.

Each host is a namespace with its own ``eth0`` and address on 10.77.0.0/24; their links
meet on a bridge inside a switch namespace of their own, so no address or route is added
to this machine's own network stack and no traffic can leave the namespaces. Programs are
started inside a host with ``ip netns exec`` exactly as a user would start them there
(``dask scheduler``, ``dask worker``, a web server, an S3 server, a client). ``close()``
kills every program started and deletes every namespace, also after a failed test.

Needs root and iproute2; ``unavailable()`` says why not when they are missing (tests skip
with that reason, and fail instead when CI is set).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

SUBNET = "10.77.0"


def unavailable() -> str | None:
    """Why namespaced hosts cannot be made here, or None when they can."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    probe = f"smprobe{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def need_hosts() -> None:
    """Skip the calling test where namespaced hosts cannot be made; under CI (the CI
    variable set) fail instead: CI must run them."""
    import pytest

    why = unavailable()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the cluster-across-hosts tests: {why}")
        pytest.skip(why)


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + ["ip", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")
    return done


class Host:
    """One namespaced host: its namespace name and address."""

    def __init__(self, net: "Network", name: str, address: str):
        self.net, self.name, self.address = net, name, address
        self.ns = f"{net.prefix}-{name}"

    def popen(self, argv: list[str], log: str | None = None, env: dict | None = None,
              **kw) -> subprocess.Popen:
        """Start ``argv`` inside this host (its own session, output to ``log``)."""
        return self.net.popen(self, argv, log=log, env=env, **kw)

    def run(self, argv: list[str], timeout: float = 300, env: dict | None = None,
            **kw) -> subprocess.CompletedProcess:
        """Run ``argv`` inside this host to completion (output captured)."""
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(["ip", "netns", "exec", self.ns, *argv], capture_output=True,
                              text=True, timeout=timeout, env=full_env, **kw)

    def link(self, up: bool) -> None:
        """Cut (``up=False``) or restore this host's network link, as a pulled cable
        would: packets are dropped silently, no connection is closed."""
        _ip("link", "set", "eth0", "up" if up else "down", ns=self.ns)

    def drop_randomly(self, percent: int) -> None:
        """Drop ``percent``% of the packets this host receives and of those it sends,
        at random (nftables; 0 removes the rule)."""
        nft = ["ip", "netns", "exec", self.ns, "nft"]
        subprocess.run(nft + ["delete", "table", "inet", "streammix_loss"],
                       capture_output=True)
        if percent <= 0:
            return
        rules = (f"table inet streammix_loss {{\n"
                 f" chain in {{ type filter hook input priority 0; "
                 f"numgen random mod 100 < {percent} drop; }}\n"
                 f" chain out {{ type filter hook output priority 0; "
                 f"numgen random mod 100 < {percent} drop; }}\n}}\n")
        done = subprocess.run(nft + ["-f", "-"], input=rules, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"nft: {done.stderr.strip()}")

    def counters(self) -> tuple[int, int, int, int]:
        """(rx_bytes, tx_bytes, rx_packets, tx_packets) of this host's link."""
        out = subprocess.run(["ip", "netns", "exec", self.ns, "cat",
                              *(f"/sys/class/net/eth0/statistics/{k}" for k in
                                ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets"))],
                             capture_output=True, text=True, check=True).stdout.split()
        return tuple(int(x) for x in out)  # type: ignore[return-value]


class Network:
    """Hosts on one bridge; ``add(name)`` makes a host, ``close()`` removes everything."""

    def __init__(self, workdir: str):
        self.prefix = f"sm{os.getpid() % 100000}{uuid.uuid4().hex[:4]}"
        self.switch = f"{self.prefix}-switch"
        self.workdir = workdir
        self.hosts: dict[str, Host] = {}
        self.procs: list[subprocess.Popen] = []
        self._logs: list = []
        os.makedirs(workdir, exist_ok=True)
        subprocess.run(["ip", "netns", "add", self.switch], check=True)
        _ip("link", "set", "lo", "up", ns=self.switch)
        _ip("link", "add", "br0", "type", "bridge", ns=self.switch)
        _ip("link", "set", "br0", "up", ns=self.switch)

    def add(self, name: str) -> Host:
        host = Host(self, name, f"{SUBNET}.{len(self.hosts) + 1}")
        subprocess.run(["ip", "netns", "add", host.ns], check=True)
        self.hosts[name] = host
        port = f"v{len(self.hosts)}"
        _ip("link", "add", "eth0", "netns", host.ns, "type", "veth", "peer", "name", port,
            "netns", self.switch)
        _ip("link", "set", port, "master", "br0", ns=self.switch)
        _ip("link", "set", port, "up", ns=self.switch)
        _ip("link", "set", "lo", "up", ns=host.ns)
        _ip("addr", "add", f"{host.address}/24", "dev", "eth0", ns=host.ns)
        _ip("link", "set", "eth0", "up", ns=host.ns)
        return host

    def popen(self, host: Host, argv: list[str], log: str | None = None,
              env: dict | None = None, **kw) -> subprocess.Popen:
        out = open(log or os.devnull, "ab")
        self._logs.append(out)
        proc = subprocess.Popen(["ip", "netns", "exec", host.ns, *argv], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **(env or {})}, **kw)
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        """Stop ``proc`` and everything it started (its session), SIGKILL after
        ``timeout``."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                pass
        if proc.poll() is None or sig != signal.SIGKILL:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def close(self) -> None:
        """Kill every program started here, then delete every namespace."""
        for proc in reversed(self.procs):
            self.stop(proc, timeout=5)
        for out in self._logs:
            out.close()
        for host in list(self.hosts.values()) + [None]:
            ns = host.ns if host else self.switch
            # a namespace still held by a stray process would survive `ip netns del`
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                                  text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.hosts.clear()


def dask_program() -> str:
    """The `dask` command of the Python running the tests."""
    path = os.path.join(os.path.dirname(sys.executable), "dask")
    return path if os.path.exists(path) else "dask"


class DaskCluster:
    """A scheduler and workers started with the `dask` command line on namespaced hosts,
    as a user starts them by hand. ``env`` goes to every process (Dask settings as
    DASK_* variables); ``tls`` = {"ca": ..., "cert": ..., "key": ...} starts everything
    on tls:// with those files."""

    def __init__(self, net: Network, scheduler: Host, port: int = 8786,
                 env: dict | None = None, tls: dict | None = None, delay_ms: float = 0):
        self.net, self.host, self.port = net, scheduler, port
        self.env, self.tls = dict(env or {}), tls
        # latency: every listener (scheduler, workers) sits on loopback behind a relay
        # on the host's address that delays each direction by delay_ms (tests/delay_relay)
        self.delay_ms = delay_ms
        self.scheduler: subprocess.Popen | None = None
        self.workers: dict[str, subprocess.Popen] = {}
        self.relays: list[subprocess.Popen] = []
        self._starts = 0
        self.scheduler_log = ""

    @property
    def address(self) -> str:
        return f"{'tls' if self.tls else 'tcp'}://{self.host.address}:{self.port}"

    def _tls_args(self, tls: dict | None) -> list[str]:
        if not tls:
            return []
        return ["--tls-ca-file", tls["ca"], "--tls-cert", tls["cert"], "--tls-key", tls["key"]]

    def start_scheduler(self, timeout: float = 60) -> None:
        self._starts += 1
        self.scheduler_log = os.path.join(self.net.workdir,
                                          f"scheduler-{self.port}-{self._starts}.log")
        if self.delay_ms:
            self.relay(self.host, self.port, self.port + 10000)
        argv = [dask_program(), "scheduler", "--host",
                "127.0.0.1" if self.delay_ms else self.host.address, "--port",
                str(self.port + 10000 if self.delay_ms else self.port), "--no-dashboard",
                "--no-show"]
        if self.tls:
            argv += ["--protocol", "tls", *self._tls_args(self.tls)]
        self.scheduler = self.host.popen(argv, log=self.scheduler_log, env=self.env)
        self._wait(lambda text: "Scheduler at:" in text, self.scheduler_log, timeout,
                   "the scheduler to start", self.scheduler)

    def start_worker(self, host: Host, *extra: str, tls: dict | None | bool = True,
                     wrap: list[str] | None = None) -> subprocess.Popen:
        """Start `dask worker` (one thread) on ``host``; ``tls``: True for the cluster's
        certificates, or other files; ``wrap``: a command line the worker runs under."""
        log = os.path.join(self.net.workdir, f"worker-{host.name}-{self.port}.log")
        files = self.tls if tls is True else (tls or None)
        if self.delay_ms:
            inner = self.port + 1000
            self.relay(host, inner + 1, inner)
            where = ["--listen-address", f"tcp://127.0.0.1:{inner}", "--contact-address",
                     f"tcp://{host.address}:{inner + 1}"]
        else:
            where = ["--host", host.address]
        argv = [dask_program(), "worker", self.address, "--nthreads", "1", *where,
                "--no-dashboard", "--name", host.name, *self._tls_args(files), *extra]
        proc = host.popen((wrap or []) + argv, log=log, env=self.env)
        self.workers[host.name] = proc
        return proc

    def relay(self, host: Host, port: int, inner: int) -> None:
        """A delaying relay on host.address:port to 127.0.0.1:inner."""
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        log = os.path.join(self.net.workdir, f"relay-{host.name}-{port}.log")
        self.relays.append(host.popen(
            [sys.executable, "-m", "tests.delay_relay", "--listen", f"{host.address}:{port}",
             "--to", f"127.0.0.1:{inner}", "--delay-ms", str(self.delay_ms)], log=log,
            cwd=repo))
        self._wait(lambda text: "relaying" in text, log, 30, "the relay",
                   self.relays[-1])

    def worker_log(self, name: str) -> str:
        with open(os.path.join(self.net.workdir, f"worker-{name}-{self.port}.log")) as f:
            return f.read()

    def registered(self) -> int:
        """Workers the current scheduler holds, from its log."""
        with open(self.scheduler_log) as f:
            text = f.read()
        return text.count("Register worker") - text.count("Remove worker")

    def wait_workers(self, n: int, timeout: float = 60) -> None:
        self._wait(lambda text: self.registered() >= n, self.scheduler_log, timeout,
                   f"{n} workers to register", self.scheduler)

    @staticmethod
    def _wait(ready, log: str, timeout: float, what: str, proc) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with open(log) as f:
                text = f.read()
            if ready(text):
                return
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"waiting for {what}: the process exited:\n{text[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}:\n{text[-3000:]}")
            time.sleep(0.1)

    def kill_scheduler(self) -> None:
        Network.stop(self.scheduler, signal.SIGKILL)

    def stop(self) -> None:
        for proc in list(self.workers.values()) + [self.scheduler] + self.relays:
            if proc is not None:
                Network.stop(proc, timeout=5)
        self.workers.clear()
        self.relays.clear()


def hosts_fixture(tmp_path_factory, names: tuple[str, ...]):
    """A module fixture's body: the named hosts on one network, removed afterwards."""
    need_hosts()
    network = Network(str(tmp_path_factory.mktemp("hosts")))
    try:
        for name in names:
            network.add(name)
        yield network
    finally:
        network.close()
