"""Footprint: the minimal stack's measured RSS against the t3.micro budget.

The measurement itself is benchmarks/footprint.py (its own command); this
module runs it once as a child process and turns its JSON into a section.
"""

from __future__ import annotations

import json
import sys

from benchmarks.measure import REPO, BenchmarkError, run_timed
from benchmarks.results import Measurement, Options, Section

NAME = "footprint"
TITLE = "Footprint: minimal stack RSS against the t3.micro budget"
METHOD = (
    "`python benchmarks/footprint.py --json FILE` starts the minimal variant's "
    "real servers natively with the memory settings iotstack renders for "
    "t3.micro, puts a small bounded load on them and reads each process "
    "tree's resident memory. The ratio is the peak RSS over the service's "
    "memory limit in the rendered compose file (below 1 fits)."
)


def run(options: Options) -> Section:
    """Run footprint.py and report each service's peak against its budget."""
    script = REPO / "benchmarks" / "footprint.py"
    if not script.exists():
        raise BenchmarkError("benchmarks/footprint.py is not there yet")

    out = options.work_dir / "footprint.json"
    rounds = "20" if options.quick else "300"
    argv = [sys.executable, str(script), "--rounds", rounds, "--json", str(out)]
    run_timed(argv, cwd=REPO, timeout=900)
    result = json.loads(out.read_text())

    section = Section(NAME, TITLE, METHOD)
    for row in result["measured"]:
        section.add(
            Measurement(
                f"{row['service']} peak RSS",
                row["peak_mib"],
                "MiB",
                "limit",
                row["budget_mib"],
                note=f"after start {row['after_start_mib']:.0f} MiB, after load "
                f"{row['after_load_mib']:.0f} MiB {row.get('note', '')}".strip(),
            )
        )
    section.notes.append(
        f"Host profile {result['profile']}, {result['rounds']} load rounds."
    )
    return section
