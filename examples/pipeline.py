"""A small data pipeline in which ftdag runs only what the requested output needs.

    raw -> normalize -> hash ---> report
                    \\-> fee ---/

``raw`` is a source (a batch of payment records as they arrive), ``normalize`` cleans them,
``hash`` fingerprints the clean batch, ``fee`` adds up the processing fees and ``report``
combines both.  Requesting only ``hash`` runs raw, normalize and hash: ``fee`` and
``report`` never run.  Requesting ``report`` then runs all five.

What a run executes is exactly ``dag.ancestors(outputs)``, each node once; the script prints
that set and checks its size against the run's own ``res.stats``.

Run it from the repository root:  python examples/pipeline.py
"""

import hashlib
import json
import sys
from pathlib import Path

try:
    import ftdag
except ImportError:  # a checkout where ftdag is not installed: use its src/
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import ftdag

RAW = [
    {"id": 3, "amount": " 19.99", "currency": "eur"},
    {"id": 1, "amount": "250.00 ", "currency": "EUR"},
    {"id": 2, "amount": "7.5", "currency": "usd "},
    {"id": 4, "amount": "1200", "currency": "Usd"},
]

FEE_BASIS_POINTS = 150  # 1.5 %


def normalize(records: list[dict]) -> list[dict]:
    """Amounts as integer cents, currencies upper-case, records sorted by id."""
    clean = []
    for r in records:
        units, _, cents = r["amount"].strip().partition(".")
        clean.append({
            "id": r["id"],
            "cents": int(units) * 100 + int((cents + "00")[:2]),
            "currency": r["currency"].strip().upper(),
        })
    return sorted(clean, key=lambda r: r["id"])


def fingerprint(records: list[dict]) -> str:
    return hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()


def fees(records: list[dict]) -> dict[str, int]:
    """Fee in cents per currency, rounded half up per record."""
    total: dict[str, int] = {}
    for r in records:
        total[r["currency"]] = total.get(r["currency"], 0) + (r["cents"] * FEE_BASIS_POINTS + 5000) // 10000
    return dict(sorted(total.items()))


def report(digest: str, fee: dict[str, int]) -> str:
    fee_text = ", ".join(f"{cur} {cents / 100:.2f}" for cur, cents in fee.items())
    return f"batch {digest[:12]}: fees {fee_text}"


def build_pipeline() -> ftdag.Dag:
    b = ftdag.DagBuilder()
    b.add_source("raw", RAW)
    b.add_task("normalize", ["raw"], normalize)
    b.add_task("hash", ["normalize"], fingerprint)
    b.add_task("fee", ["normalize"], fees)
    b.add_task("report", ["hash", "fee"], report)
    return b.build()


def request(ex: ftdag.Executor, dag: ftdag.Dag, outputs: list[str]) -> None:
    res = ex.run(dag, outputs)
    executed = dag.ancestors(outputs)
    ran = [k for k in dag if k in executed]  # dag.keys() is in topological order
    never = [k for k in dag if k not in executed]
    print(f"Request {outputs}:")
    print(f"  executed:  {', '.join(ran)}")
    print(f"  never ran: {', '.join(never) if never else '(nothing)'}")
    print(f"  backend: {res.stats.backend}, executed {res.stats.executed}, pruned {res.stats.pruned}, "
          f"wall: {res.stats.wall_s * 1e3:.2f} ms")
    for key in outputs:
        print(f"  {key} = {res[key]}")
    if res.stats.executed != len(ran) or res.stats.pruned != len(never):
        sys.exit(f"error: the run executed {res.stats.executed} nodes, expected {len(ran)}")
    print()


def main() -> None:
    dag = build_pipeline()
    print(f"Pipeline raw -> normalize -> {{hash, fee}} -> report ({len(dag)} nodes)")
    print()
    with ftdag.Executor() as ex:  # the default backend: threads without the GIL, else processes
        request(ex, dag, ["hash"])
        request(ex, dag, ["report"])


if __name__ == "__main__":
    main()
