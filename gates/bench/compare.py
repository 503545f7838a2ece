"""Times hakiri-core against Python duckdb and polars at several input sizes:
python3 compare.py HAKIRI WORKDIR ROWS [ROWS ...].

For each size: a generated CSV, flushed and read into the page cache, is
ingested into zstd Parquet by each tool (whole processes, the tools taking
turns, median wall time of 3, peak RSS). Then the RSS slope (MB of
peak RSS per GB of CSV) between the smallest and largest size, and a group-by
on the largest dataset's Parquet. One run, same machine, same data."""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

hakiri, work, sizes = sys.argv[1], sys.argv[2], [int(n) for n in sys.argv[3:]]
here = os.path.dirname(os.path.abspath(__file__))
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


def interleaved(tools, n=3):
    """Median wall time and peak RSS of each tool, running them in turns
    (round 1: every tool, round 2: every tool, …), so that what drifts
    during a run (writeback, the VM's neighbours) falls on all of them.
    Each tool's previous output is deleted before its run, untimed: the
    Python tools would otherwise truncate theirs inside the timed run and
    write into the page cache it just freed, while hakiri, whose replaced
    versions are retained, would write into memory the VM's balloon may
    have handed back to the host (slower to touch again)."""
    results = {tool: [] for tool in tools}
    for _ in range(n):
        for tool, (cmd, output) in tools.items():
            if os.path.isdir(output):
                shutil.rmtree(output)
            elif os.path.exists(output):
                os.remove(output)
            results[tool].append(run(cmd))
    return {
        tool: (statistics.median(r[0] for r in rs), max(r[1] for r in rs))
        for tool, rs in results.items()
    }


def settle(path):
    """Flushes the generated file to disk and reads it once, so every tool
    starts from the page cache rather than the first one paying for the
    generator's writeback."""
    os.sync()
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


results = []
for rows in sizes:
    csv = os.path.join(work, f"sales-{rows}.csv")
    subprocess.run([sys.executable, os.path.join(here, "generate.py"), csv, str(rows)], check=True)
    gb = os.path.getsize(csv) / 1e9
    settle(csv)
    name = f"sales_{rows}"
    # (command, what it writes): hakiri's is its home, catalog included.
    tools = {
        "hakiri-core": ([hakiri, "ingest", csv, "--as", name, "--quiet"], env["HAKIRI_HOME"]),
        "python duckdb": ([sys.executable, "-c", f"import duckdb; duckdb.sql(\"COPY (SELECT * FROM read_csv_auto('{csv}')) TO '{work}/duck.parquet' (FORMAT parquet, COMPRESSION zstd)\")"], f"{work}/duck.parquet"),
        "python polars": ([sys.executable, "-c", f"import polars as pl; pl.scan_csv('{csv}', try_parse_dates=True).sink_parquet('{work}/polars.parquet', compression='zstd')"], f"{work}/polars.parquet"),
    }
    measured = interleaved(tools)
    results.append((rows, gb, measured))
    print(f"ingest {rows} rows ({gb:.2f} GB CSV) -> zstd Parquet, median of 3, tools in turns:")
    for tool, (wall, rss) in measured.items():
        print(f"  {tool:14} {wall:7.2f} s  peak RSS {rss:6.0f} MB")
    h, p = measured["hakiri-core"][0], measured["python polars"][0]
    print(f"  hakiri / polars: {h / p:.2f} (target <= 1.1 at >= 2 GB); hakiri / duckdb: {h / measured['python duckdb'][0]:.2f}")
    if rows != sizes[-1]:
        os.remove(csv)

if len(results) > 1:
    (r0, g0, m0), (r1, g1, m1) = results[0], results[-1]
    print("peak RSS slope, MB per GB of CSV (flat is 0):")
    for tool in m0:
        print(f"  {tool:14} {(m1[tool][1] - m0[tool][1]) / (g1 - g0):7.1f}")
    print(f"  hakiri peak RSS at {g1:.2f} GB vs polars: {m1['hakiri-core'][1]:.0f} vs {m1['python polars'][1]:.0f} MB (target <= polars + 100)")

# Group-by on the largest dataset: its latest version only (replaced ones are retained a while).
rows = sizes[-1]
listed = json.loads(subprocess.run([hakiri, "datasets", "--json"], env=env, capture_output=True, check=True).stdout)
location = next(d["location"] for d in listed if d["name"] == f"sales_{rows}")
query = "select region, count(*) as orders, sum(amount) as revenue from {t} group by 1 order by 3 desc"
hk_query = [hakiri, "sql", "--format", "csv", query.format(t=f"sales_{rows}")]
py_duck_query = [sys.executable, "-c", "import duckdb, sys; duckdb.sql(sys.argv[1]).fetchall()",
                 query.format(t=f"read_parquet('{location}/*.parquet')")]
hq, hq_rss = median(hk_query, 5)
dq, dq_rss = median(py_duck_query, 5)
print(f"group-by on the {rows}-row Parquet (median of 5, whole process):")
print(f"  hakiri-core sql  {hq:6.3f} s  peak RSS {hq_rss:5.0f} MB")
print(f"  python duckdb    {dq:6.3f} s  peak RSS {dq_rss:5.0f} MB")
print(f"  ratio hakiri / duckdb: {hq / dq:.2f} (target <= 1.2)")
