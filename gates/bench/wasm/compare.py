"""Ingest through a WebAssembly connector against the built-in connectors,
in one run: python3 compare.py HAKIRI_FULL JSONFEED_WASM HOSTILE_WASM WORKDIR
[--items N] [--page P] [--runs R].

The same N records (JSON Feed items) are ingested three ways: through the
example `jsonfeed` connector (pages of P items over loopback HTTP, each page
a batch through the guest), through the built-in `file` connector (one
NDJSON file) and through the built-in `http` connector (that file over the
same loopback server). Reports the median wall time and peak RSS of each,
the per-use cost of instantiating a connector in the daemon (MCP
`connector.inspect`, which instantiates the guest, minus `connector.list`,
which does not), and start-up with 0 and 20 connectors installed. Prints
one JSON report."""
import http.server
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

hakiri, jsonfeed, hostile, work = sys.argv[1:5]
args = sys.argv[5:]
ITEMS = int(args[args.index("--items") + 1]) if "--items" in args else 200_000
PAGE = int(args[args.index("--page") + 1]) if "--page" in args else 2_000
RUNS = int(args[args.index("--runs") + 1]) if "--runs" in args else 3

shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
site = os.path.join(work, "site")
os.makedirs(site)


def env(home):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("HAKIRI_", "AWS_"))}
    e.update(HAKIRI_HOME=home, HAKIRI_MCP__LISTEN="127.0.0.1:0")
    return e


def run(home, *argv):
    """Runs hakiri to completion; returns (seconds, peak RSS in MB, stderr).
    GNU time measures the peak: a child's own ru_maxrss would include this
    Python process's pages from before the exec."""
    start = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", hakiri, *argv], env=env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    took = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"hakiri {' '.join(argv)} failed: {p.stderr.decode()}")
    return took, int(p.stderr.decode().strip().splitlines()[-1]) / 1024, p.stderr


def ok(home, *argv):
    r = subprocess.run([hakiri, *argv], env=env(home), capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"hakiri {' '.join(argv)} failed: {r.stderr}")
    return r.stdout


# The data: N items, as pages of a JSON Feed and as one NDJSON file.
def item(i):
    return {"id": str(i), "url": f"https://example.com/posts/{i}", "title": f"Post number {i}",
            "content_text": "Whales sing to each other across whole oceans; " * 3,
            "date_published": "2026-11-01T00:00:00Z", "tags": ["sea", "song"], "words": i % 977}


class Quiet(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k):
        super().__init__(*a, directory=site, **k)

    def log_message(self, *a):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
port = server.server_address[1]
threading.Thread(target=server.serve_forever, daemon=True).start()
pages = (ITEMS + PAGE - 1) // PAGE
with open(os.path.join(site, "items.ndjson"), "w") as nd:
    for p in range(pages):
        items = [item(i) for i in range(p * PAGE, min(ITEMS, (p + 1) * PAGE))]
        feed = {"version": "https://jsonfeed.org/version/1.1", "title": "Bench", "items": items}
        if p + 1 < pages:
            feed["next_url"] = f"http://127.0.0.1:{port}/feed-{p + 2}.json"
        with open(os.path.join(site, f"feed-{p + 1}.json"), "w") as f:
            json.dump(feed, f)
        for it in items:
            nd.write(json.dumps(it) + "\n")
ndjson_mb = os.path.getsize(os.path.join(site, "items.ndjson")) / 1e6

home = os.path.join(work, "home")
os.makedirs(home)
ok(home, "connector", "add", jsonfeed, "--allow-host", f"127.0.0.1:{port}", "--set", "protocol=http")
ok(home, "connector", "add", hostile, "--allow-host", "example.com")

ways = {
    "wasm_jsonfeed": f"jsonfeed://127.0.0.1:{port}/feed-1.json",
    "file": os.path.join(site, "items.ndjson"),
    "http": f"http://127.0.0.1:{port}/items.ndjson",
}
results = {}
for name, source in ways.items():
    times, rss = [], []
    for r in range(RUNS):
        took, peak, err = run(home, "ingest", source, "--as", f"b_{name}", "-q")
        times.append(took)
        rss.append(peak)
    rows = json.loads(ok(home, "sql", f"select count(*) n from b_{name}", "--format", "json"))[0]["n"]
    assert rows == ITEMS, f"{name}: {rows} rows, expected {ITEMS}: {err}"
    results[name] = {"seconds_median": round(statistics.median(times), 3), "peak_rss_mb": round(max(rss), 1),
                     "mb_per_s": round(ndjson_mb / statistics.median(times), 1)}


# Per-use instantiation in the daemon, over MCP.
def mcp_session(url, token):
    def post(body, session=None):
        req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
            "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {token}", **({"Mcp-Session-Id": session} if session else {})})
        with urllib.request.urlopen(req) as resp:
            return resp.headers.get("mcp-session-id"), resp.read()
    sid, _ = post({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
    post({"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
    return lambda tool, arguments: post({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                         "params": {"name": tool, "arguments": arguments}}, sid)[1]


ok(home, "auth", "init")
token = ok(home, "auth", "token", "--tool", "*").strip()


def start_serve(home):
    start = time.perf_counter()
    p = subprocess.Popen([hakiri, "serve"], env=env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "ready" in line:
            return p, time.perf_counter() - start, line
    sys.exit("serve did not become ready")


daemon, _, ready = start_serve(home)
# `hakiri-full ready: mcp on http://127.0.0.1:PORT/mcp, …`
url = next(part.split(" on ")[1] for part in ready.strip().split(" ready: ")[1].split(", ") if part.startswith("mcp on "))
call = mcp_session(url, token)
N = 300
lat = {}
for tool, arguments in [("connector.list", {}), ("connector.inspect", {"source": "hostile://x"})]:
    call(tool, arguments)  # warm: the first use compiles or maps the component
    samples = []
    for _ in range(N):
        t = time.perf_counter()
        body = call(tool, arguments)
        samples.append(time.perf_counter() - t)
        assert b'"isError":true' not in body, body[:300]
    samples.sort()
    lat[tool] = {"p50_ms": round(samples[N // 2] * 1e3, 3), "p99_ms": round(samples[int(N * 0.99)] * 1e3, 3)}
daemon.terminate()
daemon.wait()

# Start-up with 0 and 20 connectors installed.
startup = {}
for count in (0, 20):
    h = os.path.join(work, f"home{count}")
    os.makedirs(h)
    for i in range(count):
        ok(h, "connector", "add", jsonfeed, "--name", f"feed{i}", "--scheme", f"feed{i}")
    caps = statistics.median(run(h, "capabilities", "--json")[0] for _ in range(5))
    ready_s = []
    for _ in range(3):
        p, took, _ = start_serve(h)
        ready_s.append(took)
        p.terminate()
        p.wait()
    startup[f"{count}_connectors"] = {"capabilities_json_ms": round(caps * 1e3, 1), "serve_ready_ms": round(statistics.median(ready_s) * 1e3, 1)}

report = {
    "items": ITEMS, "pages": pages, "ndjson_mb": round(ndjson_mb, 1), "runs": RUNS,
    "ingest": results,
    "ratio_wasm_vs_file": round(results["wasm_jsonfeed"]["seconds_median"] / results["file"]["seconds_median"], 2),
    "ratio_wasm_vs_http": round(results["wasm_jsonfeed"]["seconds_median"] / results["http"]["seconds_median"], 2),
    "daemon_call_latency": lat,
    "instantiate_overhead_ms_p50": round(lat["connector.inspect"]["p50_ms"] - lat["connector.list"]["p50_ms"], 3),
    "startup": startup,
    "wasm_bytes": {"jsonfeed": os.path.getsize(jsonfeed), "hostile": os.path.getsize(hostile)},
}
print(json.dumps(report, indent=2))
server.shutdown()
