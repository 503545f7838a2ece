"""hakiri-full's text index against Tantivy's Python bindings, SQLite FTS5 and LanceDB,
in one run: python3 compare.py HAKIRI_FULL WORKDIR [--packages FILE] [--rounds N].
Needs `tantivy` and `lancedb` from PyPI for those two columns (skipped without).

The corpus is Debian's package list (every package's name and description,
about 63 000 documents), read from apt's lists (`apt-helper cat-file`) or a
decompressed Packages file. Each system indexes the same two columns
(title = package name, body = description) and answers the same 40 queries
(terms OR-ed, as Tantivy's query parser does by default; FTS5 gets the same
terms joined with OR, ranked by bm25). Reports build time and peak RSS,
query latency p50/p99 and QPS (hakiri over MCP `search.dataset` to a running
daemon, as an agent calls it; the others in-process), and the top-10 overlap
of hakiri with tantivy-py (same library and scoring, so close to 1)."""
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import debian_corpus  # noqa: E402

hakiri, work = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
ROUNDS = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 5
packages = args[args.index("--packages") + 1] if "--packages" in args else None

QUERIES = [
    "python library", "http server", "compression", "image viewer", "video editor", "ssh client",
    "database", "postgresql extension", "font", "game", "rust compiler", "java runtime", "perl module",
    "documentation", "kernel module", "bluetooth", "printer driver", "spell checker", "music player",
    "mail client", "dns resolver", "firewall", "backup tool", "xml parser", "json", "regular expressions",
    "terminal emulator", "text editor", "window manager", "scientific computing", "machine learning",
    "cryptography", "network monitoring", "virtual machine", "container", "web browser", "pdf",
    "audio codec", "gtk widgets", "command line",
]

shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)


docs = debian_corpus.load(packages)
data = os.path.join(work, "debian.ndjson")
with open(data, "w") as f:
    for d in docs:
        f.write(json.dumps(d) + "\n")


def env(home):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("HAKIRI_", "AWS_"))}
    e.update(HAKIRI_HOME=home, HAKIRI_MCP__LISTEN="127.0.0.1:0")
    return e


def peak_rss(home, *argv):
    """Runs hakiri to completion; returns (seconds, peak RSS in MB). GNU time
    measures it: a child's own ru_maxrss would include this Python process's
    pages from before the exec."""
    start = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", hakiri, *argv], env=env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"hakiri {' '.join(argv)} failed: {p.stderr}")
    return time.perf_counter() - start, int(p.stderr.strip().splitlines()[-1]) / 1024


def lat(samples):
    samples = sorted(samples)
    return {"p50_ms": round(samples[len(samples) // 2] * 1e3, 3), "p99_ms": round(samples[int(len(samples) * 0.99)] * 1e3, 3),
            "qps": round(len(samples) / sum(samples), 1)}


report = {"documents": len(docs), "queries": len(QUERIES), "rounds": ROUNDS}

# hakiri: ingest, index, then queries over MCP to a running daemon.
home = os.path.join(work, "home")
os.makedirs(home)
peak_rss(home, "ingest", data, "--as", "debian", "-q")
build_s, build_rss = peak_rss(home, "index", "create", "debian", "--text", "title,body", "--id", "id")
subprocess.run([hakiri, "auth", "init"], env=env(home), check=True, capture_output=True)
token = subprocess.run([hakiri, "auth", "token", "--tool", "search.dataset", "--dataset", "debian"], env=env(home), check=True, capture_output=True, text=True).stdout.strip()
daemon = subprocess.Popen([hakiri, "serve"], env=env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
ready = next(line for line in daemon.stderr if " ready: " in line)
url = next(p.split(" on ")[1] for p in ready.strip().split(" ready: ")[1].split(", ") if p.startswith("mcp on "))


def post(body, session=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
        "Authorization": f"Bearer {token}", **({"Mcp-Session-Id": session} if session else {})})
    with urllib.request.urlopen(req) as resp:
        return resp.headers.get("mcp-session-id"), resp.read().decode()


sid, _ = post({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
post({"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)


def hakiri_query(q):
    _, body = post({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                    "params": {"name": "search.dataset", "arguments": {"dataset": "debian", "query": q, "limit": 10}}}, sid)
    if not body.lstrip().startswith("{"):  # server-sent events: the data line with the reply
        body = next(line[5:] for line in body.splitlines() if line.startswith("data:") and '"id"' in line)
    result = json.loads(body)["result"]
    assert not result.get("isError"), result
    return [h["id"] for h in result["structuredContent"]["hits"]]


hakiri_top = {q: hakiri_query(q) for q in QUERIES}
samples = []
for _ in range(ROUNDS):
    for q in QUERIES:
        t = time.perf_counter()
        hakiri_query(q)
        samples.append(time.perf_counter() - t)
with open(f"/proc/{daemon.pid}/status") as f:
    daemon_rss = next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))
daemon.terminate()
daemon.wait()
report["hakiri"] = {"build_s": round(build_s, 2), "build_peak_rss_mb": round(build_rss, 1), "daemon_rss_after_mb": round(daemon_rss, 1), **lat(samples)}

# tantivy-py, in process, the same fields and tokenizer.
try:
    import tantivy
    start = time.perf_counter()
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("title", stored=True)
    sb.add_text_field("body", stored=True)
    sb.add_text_field("id", stored=True, tokenizer_name="raw")
    schema = sb.build()
    tdir = os.path.join(work, "tantivy")
    os.makedirs(tdir)
    index = tantivy.Index(schema, path=tdir)
    writer = index.writer()
    for d in docs:
        writer.add_document(tantivy.Document(id=d["id"], title=d["title"], body=d["body"]))
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    tbuild = time.perf_counter() - start
    searcher = index.searcher()

    def tq(q):
        parsed = index.parse_query(q, ["title", "body"])
        return [searcher.doc(addr)["id"][0] for _, addr in searcher.search(parsed, 10).hits]

    ty_top = {q: tq(q) for q in QUERIES}
    samples = []
    for _ in range(ROUNDS):
        for q in QUERIES:
            t = time.perf_counter()
            tq(q)
            samples.append(time.perf_counter() - t)
    overlap = statistics.mean(len(set(hakiri_top[q]) & set(ty_top[q])) / max(1, len(ty_top[q])) for q in QUERIES)
    report["tantivy_py"] = {"build_s": round(tbuild, 2), **lat(samples), "top10_overlap_with_hakiri": round(overlap, 3)}
except ImportError:
    report["tantivy_py"] = "skipped: pip install tantivy"

# SQLite FTS5, in process, bm25 ranking.
start = time.perf_counter()
db = sqlite3.connect(os.path.join(work, "fts.db"))
db.execute("create virtual table t using fts5(id unindexed, title, body)")
db.executemany("insert into t values (?, ?, ?)", [(d["id"], d["title"], d["body"]) for d in docs])
db.commit()
fbuild = time.perf_counter() - start


def fq(q):
    terms = " OR ".join(f'"{w}"' for w in q.split())
    return [r[0] for r in db.execute("select id from t where t match ? order by rank limit 10", (terms,))]


samples = []
for _ in range(ROUNDS):
    for q in QUERIES:
        t = time.perf_counter()
        fq(q)
        samples.append(time.perf_counter() - t)
report["sqlite_fts5"] = {"build_s": round(fbuild, 2), **lat(samples)}
# LanceDB's native full-text search (BM25), in process: one FTS index over
# title and body joined (its FTS indexes one column each).
try:
    import lancedb
    start = time.perf_counter()
    ldb = lancedb.connect(os.path.join(work, "lance"))
    table = ldb.create_table("docs", data=[{"id": d["id"], "text": d["title"] + " " + d["body"]} for d in docs])
    table.create_fts_index("text")
    lbuild = time.perf_counter() - start

    def lq(q):
        return [r["id"] for r in table.search(q, query_type="fts").limit(10).select(["id"]).to_list()]

    lq(QUERIES[0])
    samples = []
    for _ in range(ROUNDS):
        for q in QUERIES:
            t = time.perf_counter()
            lq(q)
            samples.append(time.perf_counter() - t)
    report["lancedb_fts"] = {"build_s": round(lbuild, 2), **lat(samples), "version": lancedb.__version__}
except ImportError:
    report["lancedb_fts"] = "skipped: pip install lancedb"
print(json.dumps(report, indent=2))
