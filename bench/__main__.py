"""`make bench`: run every benchmark, one JSON line each on stdout.

    python -m bench            # ingest (embedded, then production or a "skipped" line), streams, report, evaluate
                               # (embedded, production), store and view (production: FerretDB at 10 k to 1 M
                               # documents, ViewMetric under load), soak (production: writes and reads for 20 min),
                               # sustained (production: the highest paced write rate that meets the targets),
                               # cluster (as root: every fault on the cluster, and its ingest beside one node's)
    python -m bench --quick    # the same with tiny numbers: a smoke test of the benchmarks, not a measurement

Each benchmark also runs on its own with its options: `python -m bench.ingest --help`,
`python -m bench.streams --help`, `python -m bench.report --help`, `python -m bench.evaluate --help`,
`python -m bench.store --help`, `python -m bench.view --help`, `python -m bench.soak --help`,
`python -m bench.sustained --help`, `python -m bench.cluster --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bench import cluster, evaluate, ingest, report, soak, store, streams, sustained, view

# Each benchmark run: its module, its arguments, and what --quick adds to them.
RUNS = [
    (ingest, [], ["--devices", "4", "--readings", "2000"]),
    (streams, [], ["--streams", "50"]),
    (report, [], ["--days", "60", "--repeat", "3", "--pdf-repeat", "1"]),
    (evaluate, [], ["--users", "2000"]),
    (evaluate, ["--profile", "production"], ["--users", "2000"]),
    (store, [], ["--sizes", "2000,5000", "--samples", "30"]),
    (view, [], ["--documents", "5000", "--users", "5", "--seconds", "2"]),
    (soak, [], ["--seconds", "5", "--rate", "2000", "--devices", "10"]),
    (sustained, [], ["--rates", "1000,2000", "--step-seconds", "5", "--devices", "10"]),
    (cluster, [], ["--faults", "server-killed", "--devices", "4", "--readings", "4000"]),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny numbers, to check that the benchmarks run")
    options = parser.parse_args(argv)
    failed = 0
    for bench, arguments, quick in RUNS:
        failed |= asyncio.run(bench.main(arguments + (quick if options.quick else [])))
    return failed


if __name__ == "__main__":
    sys.exit(main())
