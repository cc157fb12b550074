"""README sections generated from the code, so the docs cannot drift: ``python -m lossbench.docs``."""

from __future__ import annotations

import re
import sys
from pathlib import Path


def metrics_table() -> str:
    from lossbench.metrics import METRICS

    rows = ["| name | better | needs probabilities | what it is |", "|---|---|---|---|"]
    for info in METRICS.values():
        better = "higher" if info.higher_is_better else "lower"
        rows.append(
            f"| `{info.name}` | {better} | {'yes' if info.needs_proba else 'no'} | {info.description} |"
        )
    return "\n".join(rows)


def compat_matrix() -> str:
    from lossbench.compat import matrix_markdown

    return matrix_markdown()


SECTIONS = {"metrics-table": metrics_table, "compat-matrix": compat_matrix}


def render(text: str) -> str:
    """Replace every ``<!-- NAME:start -->…<!-- NAME:end -->`` block with its generated content."""
    for name, make in SECTIONS.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    path = Path(argv[0] if argv else "README.md")
    old = path.read_text()
    new = render(old)
    if new != old:
        path.write_text(new)
        print(f"updated {path}")
    else:
        print(f"{path} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
