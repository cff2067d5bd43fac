"""`tenantry bench`: the benchmark harness (never a timed test).

database.py seeds and caches the databases, raw_app.py is the raw asyncpg baseline without a
framework and raw_litestar.py the one with Litestar, servers.py
runs production server processes, load.py drives them (wrk or Python), scenarios.py says what each
scenario sends and compares, results.py judges it, report.py writes JSON, markdown and a plot,
runner.py ties them together and cli.py is the command. citus.py is scenario z: the API on a
Citus cluster beside a single node.
"""

ALL_SCENARIOS = ("a", "b", "c", "d", "e", "f", "n", "s")
# Run only when asked for: z needs a Citus cluster (--citus-url; citus.py).
OPTIONAL_SCENARIOS = ("z",)
