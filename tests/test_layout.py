"""The layout the project's design names: one installed namespace, imports running one way."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORED = shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc")
DATA_LAYER = [
    p
    for p in (ROOT / "quickdraw_tools").glob("*.py")
    if p.name != "cli.py"  # cli.py and commands/ sit above everything
]


def imported_modules(path: Path, package: str) -> set[str]:
    """Absolute names of what `path` (a module of `package`) imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names |= {f"{module}.{a.name}" for a in node.names}
    return names


def test_the_data_layer_imports_neither_models_nor_eval():
    for path in DATA_LAYER:
        for name in imported_modules(path, "quickdraw_tools"):
            assert not name.startswith(("quickdraw_tools.models", "quickdraw_tools.eval")), (
                path.name,
                name,
            )
            assert name.split(".")[0] not in ("models", "eval"), (path.name, name)


def test_models_and_eval_know_nothing_of_the_command_line():
    for folder, package in (("models", "quickdraw_tools.models"), ("eval", "quickdraw_tools.eval")):
        for path in (ROOT / folder).rglob("*.py"):
            pkg = package + "".join(f".{p}" for p in path.relative_to(ROOT / folder).parts[:-1])
            names = imported_modules(path, pkg)
            assert "argparse" not in names, path
            assert not any(n.startswith(("quickdraw_tools.cli", "quickdraw_tools.commands"))
                           for n in names), path  # fmt: skip
            text = path.read_text()
            assert "args." not in text, f"{path} reads argparse results"
            # relative imports only, inside the namespace (never a top-level `models`/`eval`)
            tree = ast.parse(text)
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and not node.level:
                    assert not (node.module or "").startswith("quickdraw_tools"), (
                        path,
                        node.module,
                    )
                    assert (node.module or "").split(".")[0] not in ("models", "eval"), path


def test_the_wheel_holds_one_top_level_package(tmp_path):
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    for name in ("quickdraw_tools", "models", "eval", "pyproject.toml", "README.md"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name, **({"ignore": IGNORED} if copy is shutil.copytree else {}))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("quickdraw_tools-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"quickdraw_tools"}, tops
    for needed in ("quickdraw_tools/models/sketch_rnn.py", "quickdraw_tools/eval/likelihood.py",
                   "quickdraw_tools/eval/grading/static/app.js",
                   "quickdraw_tools/eval/grading/static/favicon.svg"):  # fmt: skip
        assert needed in names, needed
    metadata = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License: Apache-2.0" in text or "License-Expression: Apache-2.0" in text


def test_a_models_py_in_the_working_directory_is_not_imported(tmp_path):
    """torchrun runs `python -m quickdraw_tools.cli` from the user's folder: a `models.py`
    there used to shadow our models package."""
    (tmp_path / "models.py").write_text("raise SystemExit('the wrong models was imported')\n")
    (tmp_path / "eval.py").write_text("raise SystemExit('the wrong eval was imported')\n")
    code = (
        "import quickdraw_tools.models.sketch_rnn, quickdraw_tools.eval.grading.server, "
        "quickdraw_tools.eval.likelihood; from quickdraw_tools.cli import main; "
        "raise SystemExit(main(['train', 'draw', '--help']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "quickdraw train draw" in done.stdout
