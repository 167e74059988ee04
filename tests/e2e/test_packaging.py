"""The package installs as a wheel, generated code and its type stubs included."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_package_imports_the_generated_code_outside_the_source_tree(tmp_path):
    # Built from a copy of the tracked sources: setuptools reuses a checkout's build/ directory, where a
    # module deleted since an earlier build would still be, and would make this pass.
    source = tmp_path / "source"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in tracked.splitlines():
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", tmp_path, source],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("fittrack-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    # One top-level name in site-packages: nothing like `core` or `server` to collide with another package.
    assert {name.split("/")[0] for name in names if not name.startswith("fittrack-")} == {"fittrack"}
    assert "fittrack/generated/v1/metric_pb2.pyi" in names
    assert "fittrack/app/server.py" in names and "fittrack/clients/cli/main.py" in names
    assert "fittrack/core/adapters/migrations/postgres/0001_initial.sql" in names
    # The embedded schema too, its data steps (.py) with its scripts.
    assert "fittrack/core/adapters/migrations/sqlite/0001_initial.sql" in names
    assert "fittrack/core/adapters/migrations/sqlite/0005_day_minute_blobs.py" in names
    assert "fittrack/core/adapters/data/common-passwords.txt" in names

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", target, wheel], check=True
    )
    probe = (
        "import fittrack.generated.v1.metric_pb2_grpc as stubs, fittrack.app.server, fittrack.clients.cli.main;"
        f"assert stubs.__file__.startswith({str(target)!r}), stubs.__file__;"
        "print(stubs.MetricServiceStub.__name__)"
    )
    # -I: isolated mode, so the current directory is not on the path; the
    # assertion above proves the copy in `target` won over the editable install.
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {probe}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "MetricServiceStub"
