"""The configs travel with the package: a wheel and an sdist built from the repository carry
`models/` inside the package (never as a top-level `models` module) and find it at run time."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tracked_copy(dest: Path) -> Path:
    """The repository's tracked files, so a build neither sees nor writes anything else."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / name.decode()
        if source.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def _build(kind: str, source: Path, out: Path) -> Path:
    code = f"import setuptools.build_meta as b; print(b.build_{kind}({str(out)!r}))"
    result = subprocess.run([sys.executable, "-c", code], cwd=source, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return out / result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def wheel_and_sdist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to list the repository's files")
    base = tmp_path_factory.mktemp("build")
    source = _tracked_copy(base / "repo")
    sdist = _build("sdist", source, base / "dist")
    wheel = _build("wheel", source, base / "dist")
    return wheel, sdist


def test_every_subpackage_is_listed_for_the_wheel():
    pyproject = (ROOT / "pyproject.toml").read_text()
    block = pyproject.split("[tool.setuptools]", 1)[1].split("]", 1)[0]
    listed = set(re.findall(r'"([\w.]+)"', block))
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "yolospan").rglob("__init__.py")
    }
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"


def test_the_wheel_carries_the_configs_inside_the_package(wheel_and_sdist):
    wheel, _ = wheel_and_sdist
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(p.name for p in (ROOT / "models").glob("*.yaml"))
    assert sorted(Path(n).name for n in names if n.startswith("yolospan/_configs/")) == shipped
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"yolospan"}  # no top-level `models` (or anything else) lands in site-packages
    tracked_modules = {str(p.relative_to(ROOT)) for p in (ROOT / "yolospan").rglob("*.py")}
    assert tracked_modules <= set(names)


def test_the_sdist_carries_models_and_builds_the_same_wheel(wheel_and_sdist, tmp_path):
    _, sdist = wheel_and_sdist
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
        members = archive.getnames()
    assert any(m.endswith("/models/yolov5s.yaml") for m in members)
    (unpacked,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    rebuilt = _build("wheel", unpacked, tmp_path / "dist")
    assert "yolospan/_configs/yolov5n.yaml" in zipfile.ZipFile(rebuilt).namelist()


def test_an_installed_wheel_traces_yolov5n(wheel_and_sdist, tmp_path):
    wheel, _ = wheel_and_sdist
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # The dependencies (torch, OpenTelemetry, ...) come from this environment as a plain path: its
    # .pth files, among them the editable install of the checkout, are not processed from there.
    (purelib / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        check=True,
    )
    run = tmp_path / "elsewhere"
    run.mkdir()
    where = subprocess.run(
        [python, "-c", "import yolospan.yolo.configs as c; print(c.__file__); print(c.config_dir())"],
        cwd=run,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert where[0].startswith(str(purelib)) and where[1] == str(purelib / "yolospan" / "_configs")
    traced = subprocess.run(
        [venv / "bin" / "yolospan", "trace", "yolov5n", "--out", "t.jsonl"],
        cwd=run,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert traced.returncode == 0, traced.stderr[-2000:]
    assert "model.init" in traced.stdout and "model.name=yolov5n" in traced.stdout
    assert (run / "t.jsonl").stat().st_size > 0
