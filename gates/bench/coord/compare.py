"""hakiri-coord against etcd, both as 3-node clusters on loopback, in one run:
python3 compare.py HAKIRI_COORD WORKDIR [--writes N] [--seconds S].

Both are driven the same way, over HTTP/JSON with keep-alive connections
(etcd through its v3 JSON gateway): sequential write latency, write
throughput with 16 concurrent clients, linearizable read latency, leader
failover (kill -9 the leader; time until a write is acknowledged through
another node), idle RSS per node and binary size. Prints one JSON report."""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import multiprocessing
import threading
import time

hakiri, work = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
WRITES = int(args[args.index("--writes") + 1]) if "--writes" in args else 2000
SECONDS = float(args[args.index("--seconds") + 1]) if "--seconds" in args else 5.0
CLIENTS = 16
ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Conn:
    """One keep-alive HTTP connection."""

    def __init__(self, port):
        self.port = port
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data else {}
        try:
            self.c.request(method, path, body=data, headers=headers)
            r = self.c.getresponse()
            return r.status, r.read()
        except (OSError, http.client.HTTPException):
            self.c.close()
            self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            raise


def b64(s):
    return base64.b64encode(s.encode()).decode()


class Hakiri:
    name = "hakiri-coord"

    def __init__(self, root):
        self.root = root
        self.nodes = []

    def start(self):
        peers = [(free_port(), free_port()) for _ in range(3)]
        for i, (peer, api) in enumerate(peers, start=1):
            home = os.path.join(self.root, f"n{i}")
            os.makedirs(home, exist_ok=True)
            env = {k: v for k, v in os.environ.items() if not k.startswith("HAKIRI_")}
            env.update(
                HAKIRI_HOME=home,
                HAKIRI_RAFT__NODE_ID=str(i),
                HAKIRI_RAFT__LISTEN=f"127.0.0.1:{peer}",
                HAKIRI_COORD_API__LISTEN=f"127.0.0.1:{api}",
                HAKIRI_COORD_API__AUTH="none",
                HAKIRI_CLUSTER_SECRET="bench",
            )
            if i > 1:
                env["HAKIRI_RAFT__JOIN"] = f"http://127.0.0.1:{peers[0][0]}"
            p = subprocess.Popen([hakiri, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for line in p.stderr:
                if " ready: " in line:
                    break
            else:
                raise SystemExit(f"hakiri-coord node {i} did not start")
            threading.Thread(target=lambda s=p.stderr: s.read(), daemon=True).start()
            self.nodes.append((p, api))

    def put(self, conn, key, value):
        status, body = conn.request("PUT", f"/v1/kv/{key}", {"value": value})
        return status == 200

    def get(self, conn, key):
        status, body = conn.request("GET", f"/v1/kv/{key}")
        return status in (200, 404)

    def leader(self):
        for i, (p, api) in enumerate(self.nodes):
            if p.poll() is not None:
                continue
            try:
                c = Conn(api)
                c.c.timeout = 0.5
                status, body = c.request("GET", "/v1/cluster")
                if status == 200 and json.loads(body)["state"] == "leader":
                    return i
            except OSError:
                pass
        return None

    def binary(self):
        # The stripped copy the gates measure and releases ship.
        shipped = os.path.join(os.path.dirname(hakiri), "shipped", os.path.basename(hakiri))
        return shipped if os.path.exists(shipped) else hakiri


class Etcd:
    name = "etcd"

    def __init__(self, root):
        self.root = root
        self.nodes = []

    def start(self):
        ports = [(free_port(), free_port()) for _ in range(3)]
        cluster = ",".join(f"e{i}=http://127.0.0.1:{peer}" for i, (peer, _) in enumerate(ports, start=1))
        procs = []
        for i, (peer, client) in enumerate(ports, start=1):
            cmd = [
                ETCD, "--name", f"e{i}", "--data-dir", os.path.join(self.root, f"e{i}"),
                "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                "--listen-client-urls", f"http://127.0.0.1:{client}",
                "--advertise-client-urls", f"http://127.0.0.1:{client}",
                "--initial-cluster", cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", "bench", "--log-level", "error",
            ]
            procs.append((subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), client))
        self.nodes = procs
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.leader() is not None and self.put(Conn(procs[0][1]), "warm", "up"):
                return
            time.sleep(0.1)
        raise SystemExit("etcd cluster did not start")

    def put(self, conn, key, value):
        status, body = conn.request("POST", "/v3/kv/put", {"key": b64(key), "value": b64(value)})
        return status == 200

    def get(self, conn, key):
        status, body = conn.request("POST", "/v3/kv/range", {"key": b64(key)})
        return status == 200

    def leader(self):
        for i, (p, client) in enumerate(self.nodes):
            if p.poll() is not None:
                continue
            try:
                c = Conn(client)
                c.c.timeout = 0.5
                status, body = c.request("POST", "/v3/maintenance/status", {})
                if status == 200:
                    s = json.loads(body)
                    if s.get("leader") == s.get("header", {}).get("member_id"):
                        return i
            except (OSError, ValueError):
                pass
        return None

    def binary(self):
        return ETCD


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000


def measure(sut):
    sut.start()
    time.sleep(1)
    port = sut.nodes[sut.leader()][1]
    conn = Conn(port)
    lat = []
    for i in range(WRITES):
        t = time.perf_counter()
        assert sut.put(conn, f"seq{i}", "v" * 100)
        lat.append(time.perf_counter() - t)
    reads = []
    for i in range(WRITES):
        t = time.perf_counter()
        assert sut.get(conn, f"seq{i}")
        reads.append(time.perf_counter() - t)
    done = multiprocessing.Value("i", 0)
    stop = time.time() + SECONDS

    def client(c):
        # One process per client (no GIL between them), spread over all
        # nodes as real clients would be.
        conn = Conn(sut.nodes[c % 3][1])
        n = ok = 0
        while time.time() < stop:
            if sut.put(conn, f"c{c}-{n}", "v" * 100):
                ok += 1
            n += 1
        with done.get_lock():
            done.value += ok

    procs = [multiprocessing.Process(target=client, args=(c,)) for c in range(CLIENTS)]
    start = time.time()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    throughput = done.value / (time.time() - start)
    time.sleep(2)
    idle = [round(rss_mb(p.pid), 1) for p, _ in sut.nodes]
    lead = sut.leader()
    p, _ = sut.nodes[lead]
    p.send_signal(signal.SIGKILL)
    p.wait()
    t0 = time.perf_counter()
    failover = None
    while time.perf_counter() - t0 < 30:
        now = sut.leader()
        if now is not None and now != lead:
            failover = time.perf_counter() - t0
            break
        time.sleep(0.01)
    for p, _ in sut.nodes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait()
    return {
        "write_p50_ms": round(pct(lat, 0.5), 2),
        "write_p99_ms": round(pct(lat, 0.99), 2),
        "read_p50_ms": round(pct(reads, 0.5), 2),
        "read_p99_ms": round(pct(reads, 0.99), 2),
        "writes_per_s_16_clients": round(throughput),
        "failover_s": None if failover is None else round(failover, 3),
        "idle_rss_mb_per_node": idle,
        "binary_mb": round(os.path.getsize(sut.binary()) / 1e6, 1),
    }


os.makedirs(work, exist_ok=True)
report = {}
for cls in (Hakiri, Etcd):
    root = os.path.join(work, cls.name)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    report[cls.name] = measure(cls(root))
h, e = report["hakiri-coord"], report["etcd"]
report["ratios_hakiri_over_etcd"] = {
    k: round(h[k] / e[k], 2)
    for k in ("write_p50_ms", "write_p99_ms", "read_p50_ms", "writes_per_s_16_clients", "failover_s", "binary_mb")
    if h.get(k) and e.get(k)
}
report["timeouts"] = {
    "hakiri-coord": "defaults: heartbeat 50 ms, election 150-300 ms (a follower first waits out the leader's lease, election_timeout_max)",
    "etcd": "defaults: heartbeat 100 ms, election 1000 ms",
}
print(json.dumps(report, indent=2))
