"""CI's check of a finished demo: every artifact is there and the pixel branch learned.

    python scripts/check_demo.py demo_output
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# The pixel branch must separate held-out VAE reconstructions from real photos well
# above chance (0.5). It sees no block-shuffled fakes: those are the semantic branch's.
MIN_PIXEL_ACC_ON_VAE = 0.75


def main(out: Path) -> int:
    required = ["report/report.md", "report/metrics.json", "detect/results.jsonl",
                "zoo/pixel/README.md", "zoo/semantic/README.md", "zoo/fusion/README.md"]
    missing = [name for name in required if not (out / name).is_file()]
    if missing:
        print(f"demo check: missing {missing}")
        return 1
    metrics = json.loads((out / "report/metrics.json").read_text())
    vae = metrics["benchmarks"]["pixel"]["subsets"]["vae"]
    rows = [json.loads(line) for line in (out / "detect/results.jsonl").read_text().splitlines()]
    errors = [row for row in rows if row.get("error")]
    print(f"demo check: pixel branch on held-out VAE fakes: acc {vae['acc']:.3f} "
          f"(real {vae['real_acc']:.3f}, fake {vae['fake_acc']:.3f}), AUROC {vae['auroc']:.3f}; "
          f"detect wrote {len(rows)} rows, {len(errors)} errors")
    if vae["acc"] < MIN_PIXEL_ACC_ON_VAE:
        print(f"demo check: pixel branch accuracy {vae['acc']:.3f} < {MIN_PIXEL_ACC_ON_VAE}")
        return 1
    if not rows or errors:
        print("demo check: detect produced no rows or rows with errors")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo_output")))
