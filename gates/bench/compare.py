"""Times hakiri-core against Python duckdb and polars: python3 compare.py HAKIRI WORKDIR."""
import os
import statistics
import subprocess
import sys
import time

hakiri, work = sys.argv[1], sys.argv[2]
csv = os.path.join(work, "sales.csv")
env = dict(os.environ, HAKIRI_HOME=os.path.join(work, "home"))


def run(cmd):
    """Wall seconds and peak RSS (MB) of one whole process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{cmd[:3]} failed with status {status}")
    return wall, usage.ru_maxrss / 1024


def median(cmd, n=3):
    results = [run(cmd) for _ in range(n)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


py_duck_ingest = [sys.executable, "-c", f"import duckdb; duckdb.sql(\"COPY (SELECT * FROM read_csv_auto('{csv}')) TO '{work}/duck.parquet' (FORMAT parquet, COMPRESSION zstd)\")"]
py_polars_ingest = [sys.executable, "-c", f"import polars as pl; pl.scan_csv('{csv}', try_parse_dates=True).sink_parquet('{work}/polars.parquet', compression='zstd')"]
hk_ingest = [hakiri, "ingest", csv, "--as", "sales", "--quiet"]

size_mb = os.path.getsize(csv) / 1e6
print(f"input: {csv} ({size_mb:.0f} MB)")
h, h_rss = median(hk_ingest)
d, d_rss = median(py_duck_ingest)
p, p_rss = median(py_polars_ingest)
fastest = min(d, p)
print(f"ingest CSV -> zstd Parquet (median of 3):")
print(f"  hakiri-core    {h:6.2f} s  peak RSS {h_rss:6.0f} MB")
print(f"  python duckdb  {d:6.2f} s  peak RSS {d_rss:6.0f} MB")
print(f"  python polars  {p:6.2f} s  peak RSS {p_rss:6.0f} MB")
print(f"  ratio hakiri / faster peer: {h / fastest:.2f} (target <= 1.3); hakiri peak RSS {h_rss:.0f} MB (target <= 300)")

query = "select region, count(*) as orders, sum(amount) as revenue from {t} group by 1 order by 3 desc"
parquet_glob = os.path.join(work, "home", "datasets", "sales", "v*", "*.parquet")
hk_query = [hakiri, "sql", "--format", "csv", query.format(t="sales")]
duck_sql = query.format(t=f"read_parquet('{parquet_glob}')")
py_duck_query = [sys.executable, "-c", f"import duckdb, sys; duckdb.sql(sys.argv[1]).fetchall()", duck_sql]
hq, hq_rss = median(hk_query, 5)
dq, dq_rss = median(py_duck_query, 5)
print("group-by on the ingested Parquet (median of 5, whole process):")
print(f"  hakiri-core sql  {hq:6.3f} s  peak RSS {hq_rss:5.0f} MB")
print(f"  python duckdb    {dq:6.3f} s  peak RSS {dq_rss:5.0f} MB")
print(f"  ratio hakiri / duckdb: {hq / dq:.2f} (target <= 1.2)")
