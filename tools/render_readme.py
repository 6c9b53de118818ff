"""Write the README's headline block (between its `<!-- headline:start/end -->` markers) from the results files.

    python tools/render_readme.py           # rewrite README.md
    python tools/render_readme.py --check   # exit 1 when the README differs from its results files"""

from __future__ import annotations

import sys
from pathlib import Path

from rsrt_utils.study.findings import render_readme

README = Path(__file__).resolve().parents[1] / "README.md"


def main() -> int:
    text = README.read_text(encoding="utf-8")
    rendered = render_readme(text)
    if "--check" in sys.argv[1:]:
        if rendered != text:
            print("README.md's headline block differs from benchmarks/results: run python tools/render_readme.py")
            return 1
        return 0
    README.write_text(rendered, encoding="utf-8")
    print(f"wrote {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
