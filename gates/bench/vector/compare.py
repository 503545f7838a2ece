"""hakiri-full's vector index against Python hnswlib and faiss-cpu (HNSW), in
one run: python3 compare.py HAKIRI_FULL WORKDIR [--n 100000] [--queries 1000]
[--real 10000] [--packages FILE]. Needs numpy, pyarrow, hnswlib and faiss-cpu
from PyPI; the real-text part needs the local model (`hakiri embed init`).

1. Scale: N clustered synthetic vectors of dimension 384 (unit length, 300
   Gaussian clusters with noise as wide as their spread, so HNSW has to
   work for its recall), 1000 queries from the same distribution. Ground truth
   by brute force. Each system builds an HNSW index with hakiri's shape (M
   and ef_construction as its meta.json records them), on every core; queries
   run one at a time on one thread, in process (hakiri: `hakiri index query
   --ef`, which times the index's search around each query). Every system
   sweeps ef_search; "equal recall" compares each at the smallest ef that
   reaches a target recall (0.95 and 0.99).
   Build time and peak RSS (GNU time), index size on disk against the raw
   vectors, and hakiri-full's RSS as a daemon after one query loaded it.
2. Quality on real text: the first R Debian package descriptions (plus the
   packages qrels.json names) embedded by hakiri itself (all-MiniLM-L6-v2,
   in process; sentences/s reported), the qrels queries embedded alike;
   recall@10 against brute force, hnswlib on the same vectors.
3. Hybrid: the queries in qrels.json with the packages known relevant
   (natural-language questions, and keyword queries of the kind people type
   into a package search); recall@10 of text, vector and hybrid search over
   the corpus, per kind and overall."""
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import debian_corpus  # noqa: E402

hakiri, work = sys.argv[1], sys.argv[2]
args = sys.argv[3:]


def opt(name, default):
    return type(default)(args[args.index(name) + 1]) if name in args else default


N, NQ, REAL, DIM, K = opt("--n", 100000), opt("--queries", 1000), opt("--real", 10000), 384, 10
packages = opt("--packages", "") or None
HERE = os.path.dirname(os.path.abspath(__file__))


def env(home):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("HAKIRI_", "AWS_"))}
    e.update(HAKIRI_HOME=home, HAKIRI_MCP__LISTEN="127.0.0.1:0")
    return e


def timed(argv, home=None, stdin=None):
    """Runs argv under GNU time: (seconds, peak RSS MB, stdout, stderr)."""
    start = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], env=env(home) if home else None, capture_output=True, text=True, input=stdin)
    took = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])} failed: {p.stderr[-2000:]}")
    lines = p.stderr.strip().splitlines()
    return took, int(lines[-1]) / 1024, p.stdout, "\n".join(lines[:-1])


def recall(found, truth):
    return float(np.mean([len(set(f[:K]) & set(t[:K])) / K for f, t in zip(found, truth)]))


def brute(base, queries):
    sims = queries @ base.T
    top = np.argpartition(-sims, K, axis=1)[:, :K]
    return [list(row[np.argsort(-sims[i, row])]) for i, row in enumerate(top)]


def hakiri_index(home, name, vectors, column="embedding"):
    import pyarrow as pa
    import pyarrow.parquet as pq
    path = os.path.join(work, f"{name}.parquet")
    emb = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), DIM).cast(pa.list_(pa.float32()))
    pq.write_table(pa.table({"id": pa.array(np.arange(len(vectors))), column: emb}), path)
    timed([hakiri, "ingest", path, "--as", name, "-q"], home)
    build_s, build_mb, _, _ = timed([hakiri, "index", "create", name, "--vector", column], home)
    return build_s, build_mb


def hakiri_queries(home, name, queries):
    qfile = os.path.join(work, f"{name}-queries.ndjson")
    with open(qfile, "w") as f:
        for q in queries:
            f.write(json.dumps([float(x) for x in q]) + "\n")
    return hakiri_query_file(home, name, qfile)


def hakiri_query_file(home, name, qfile, ef=None):
    extra = ["--ef", str(ef)] if ef else []
    _, _, out, err = timed([hakiri, "index", "query", name, "--vectors", qfile, "--limit", str(K), *extra], home)
    rows = [json.loads(line)["rows"] for line in out.splitlines()]
    # "1000 queries: p50 210 us, p99 540 us, 4400 queries/s"
    words = err.strip().splitlines()[-1].replace(",", "").split()
    return rows, {"p50_ms": float(words[3]) / 1e3, "p99_ms": float(words[6]) / 1e3, "qps": float(words[8])}


EFS = [10, 16, 24, 32, 40, 48, 56, 64, 80, 100, 128]
SHAPE = {"m": 16, "ef_construction": 128}
PEER = r'''
import json, sys, time, numpy as np
kind, base_f, q_f, dim, k, m, efc = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
base = np.load(base_f); queries = np.load(q_f)
t0 = time.perf_counter()
if kind == "hnswlib":
    import hnswlib
    index = hnswlib.Index(space="ip", dim=dim); index.init_index(max_elements=len(base), ef_construction=efc, M=m)
    index.set_num_threads(2); index.add_items(base); index.set_num_threads(1)
    def search(q, ef):
        index.set_ef(ef); return index.knn_query(q, k=k)[0][0].tolist()
else:
    import faiss
    index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT); index.hnsw.efConstruction = efc
    index.add(base); faiss.omp_set_num_threads(1)
    def search(q, ef):
        index.hnsw.efSearch = ef; return index.search(q.reshape(1, -1), k)[1][0].tolist()
build = time.perf_counter() - t0
out = {"build_s": build, "sweep": {}}
for ef in EFS:
    rows, took = [], []
    for q in queries:
        s = time.perf_counter(); rows.append(search(q, ef)); took.append(time.perf_counter() - s)
    out["sweep"][ef] = {"rows": rows, "took": took}
print(json.dumps(out))
'''


def peer(kind, base, queries, truth):
    bf, qf = os.path.join(work, "base.npy"), os.path.join(work, "queries.npy")
    np.save(bf, base)
    np.save(qf, queries)
    code = PEER.replace("for ef in EFS:", f"for ef in {EFS}:")
    _, peak_mb, out, _ = timed([sys.executable, "-c", code, kind, bf, qf, str(DIM), str(K), str(SHAPE["m"]), str(SHAPE["ef_construction"])])
    res = json.loads(out)
    sweep = {}
    for ef, r in res["sweep"].items():
        took = sorted(r["took"])
        sweep[int(ef)] = {"recall": recall(r["rows"], truth), "p50_ms": took[len(took) // 2] * 1e3,
                          "p99_ms": took[int(len(took) * 0.99)] * 1e3, "qps": len(took) / sum(took)}
    return {"build_s": res["build_s"], "peak_rss_mb": peak_mb, "sweep": sweep}


def at_recall(p, target):
    ok = [(ef, s) for ef, s in sorted(p["sweep"].items()) if s["recall"] >= target]
    ef, s = ok[0] if ok else max(p["sweep"].items(), key=lambda kv: kv[1]["recall"])
    return {"ef": ef, **{k: round(v, 4) for k, v in s.items()}}


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
report = {}

# 1. Scale: clustered synthetic vectors.
rng = np.random.default_rng(7)
centers = rng.normal(size=(300, DIM)).astype(np.float32)
def sample(n):
    x = centers[rng.integers(0, len(centers), n)] + 1.0 * rng.normal(size=(n, DIM)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
base, queries = sample(N), sample(NQ)
truth = brute(base, queries)
home = os.path.join(work, "home")
os.makedirs(home)
build_s, build_mb = hakiri_index(home, "synthetic", base)
vdir = next(os.path.join(d) for d, _, fs in os.walk(home) if "graph.bin" in fs)
meta = json.load(open(os.path.join(vdir, "meta.json")))
SHAPE.update(m=meta["m"], ef_construction=meta.get("ef_construction", SHAPE["ef_construction"]))
qfile = os.path.join(work, "synthetic-queries.ndjson")
with open(qfile, "w") as f:
    for q in queries:
        f.write(json.dumps([float(x) for x in q]) + "\n")
sweep = {}
for ef in EFS:
    rows, lat = hakiri_query_file(home, "synthetic", qfile, ef)
    sweep[ef] = {"recall": recall(rows, truth), **lat}
ours = {"build_s": round(build_s, 2), "peak_rss_mb": round(build_mb, 1), "sweep": sweep}
ours["index_on_disk_vs_raw"] = round(du(vdir) / (N * DIM * 4), 3)
hn, fa = peer("hnswlib", base, queries, truth), peer("faiss", base, queries, truth)
report["synthetic"] = {"n": N, "dim": DIM, "queries": NQ, "shape": dict(SHAPE),
                       "build": {"hakiri_s": ours["build_s"], "hakiri_peak_rss_mb": ours["peak_rss_mb"],
                                 "hnswlib_s": round(hn["build_s"], 2), "hnswlib_peak_rss_mb": round(hn["peak_rss_mb"], 1),
                                 "faiss_s": round(fa["build_s"], 2), "faiss_peak_rss_mb": round(fa["peak_rss_mb"], 1)},
                       "index_on_disk_vs_raw": ours["index_on_disk_vs_raw"], "at_recall": {}}
for target in [0.95, 0.99]:
    row = {"hakiri": at_recall(ours, target), "hnswlib": at_recall(hn, target), "faiss": at_recall(fa, target)}
    row["qps_vs_hnswlib"] = round(row["hakiri"]["qps"] / row["hnswlib"]["qps"], 3)
    row["qps_vs_faiss"] = round(row["hakiri"]["qps"] / row["faiss"]["qps"], 3)
    report["synthetic"]["at_recall"][str(target)] = row
report["synthetic"]["hakiri_default_ef"] = {k: round(v, 4) for k, v in sweep[64].items()}

# The daemon's RSS with this index loaded by one MCP search.vector call.
subprocess.run([hakiri, "auth", "init"], env=env(home), check=True, capture_output=True)
token = subprocess.run([hakiri, "auth", "token", "--tool", "search.vector", "--dataset", "synthetic"], env=env(home), check=True, capture_output=True, text=True).stdout.strip()
daemon = subprocess.Popen([hakiri, "serve"], env=env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
ready = next(line for line in daemon.stderr if " ready: " in line)
url = next(p.split(" on ")[1] for p in ready.strip().split(" ready: ")[1].split(", ") if p.startswith("mcp on "))


def post(body, session=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
        "Authorization": f"Bearer {token}", **({"Mcp-Session-Id": session} if session else {})})
    with urllib.request.urlopen(req) as resp:
        return resp.headers.get("mcp-session-id"), resp.read().decode()


def rss(pid):
    return int(next(line for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS")).split()[1]) / 1024


time.sleep(1)
idle_before = rss(daemon.pid)
sid, _ = post({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
post({"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
_, body = post({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "search.vector", "arguments": {
    "dataset": "synthetic", "vector": [float(x) for x in queries[0]], "limit": 10}}}, sid)
assert '"isError":true' not in body.replace(" ", ""), body[:500]
time.sleep(1)
report["synthetic"]["daemon_rss_mb"] = {"idle": round(idle_before, 1), "after_one_vector_query": round(rss(daemon.pid), 1)}
daemon.terminate()
daemon.wait()

# 2. Real text embedded by hakiri's local model.
if REAL:
    kinds = json.load(open(os.path.join(HERE, "qrels.json")))
    qrels = {q: rel for kind in kinds.values() for q, rel in kind.items()}
    wanted = {r for rel in qrels.values() for r in rel}
    every = debian_corpus.load(packages)
    # The first R packages, plus every package qrels.json names relevant.
    docs = every[:REAL] + [d for d in every[REAL:] if d["id"] in wanted]
    rhome = os.path.join(work, "real")
    os.makedirs(rhome)
    init = subprocess.run([hakiri, "embed", "init", *([ "--from", os.environ["HAKIRI_EMBED_WHEEL"]] if os.environ.get("HAKIRI_EMBED_WHEEL") else [])], env=env(rhome), capture_output=True, text=True)
    if init.returncode != 0:
        sys.exit(f"embed init failed: {init.stderr}")
    data = os.path.join(work, "debian.ndjson")
    with open(data, "w") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
    timed([hakiri, "ingest", data, "--as", "debian", "-q"], rhome)
    embed_s, embed_mb, _, _ = timed([hakiri, "index", "create", "debian", "--text", "title,body", "--id", "id", "--embed", "body"], rhome)
    vdir = next(d for d, _, fs in os.walk(rhome) if "graph.bin" in fs)
    vectors = np.fromfile(os.path.join(vdir, "vectors.f32"), dtype="<f4").reshape(-1, DIM)
    texts = list(qrels)
    _, _, out, _ = timed([hakiri, "embed", "text", *texts], rhome)
    qv = np.array(json.loads(out)["vectors"], dtype=np.float32)
    rows, lat = hakiri_queries(rhome, "debian", qv)
    real_truth = brute(vectors, qv)
    hn = peer("hnswlib", vectors, qv, real_truth)
    report["real"] = {"documents": len(docs), "model": "all-MiniLM-L6-v2 (local)",
                      "index_create_s": round(embed_s, 1), "sentences_per_s": round(len(docs) / embed_s, 1), "peak_rss_mb": round(embed_mb, 1),
                      "hakiri": {"recall": round(recall(rows, real_truth), 4), **lat}, "hnswlib": at_recall(hn, recall(rows, real_truth))}

    # 3. Hybrid against known relevant packages, per kind of query and overall.
    modes = {}
    for mode in ["text", "vector", "hybrid"]:
        per_kind = {}
        for kind, queries in kinds.items():
            for q, relevant in queries.items():
                _, _, out, _ = timed([hakiri, "search", "debian", q, "--mode", mode, "--limit", str(K), "--format", "json"], rhome)
                found = [h["id"] for h in json.loads(out)]
                per_kind.setdefault(kind, []).append(len(set(found) & set(relevant)) / min(K, len(relevant)))
        modes[mode] = {kind: round(float(np.mean(v)), 3) for kind, v in per_kind.items()}
        modes[mode]["all"] = round(float(np.mean([x for v in per_kind.values() for x in v])), 3)
    report["hybrid_recall_at_10"] = modes

print(json.dumps(report, indent=2))
