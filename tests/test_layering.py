"""The package's layers: a module imports only from its own layer or those below, and never a private (``_name``)
helper of another module; configs import nothing that imports torch.

From the bottom: the shared rules (errors, files, hardware, layout, precision, measuring, tables, plotting,
report_page), then
data (with the config loader), models, losses and dictionary learning, the engine, extraction, the applications
(detection, benchmarks, ...), and the command line on top.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

LAYERS = (
    ("anomaly", "anomaly.errors", "anomaly.files", "anomaly.hardware", "anomaly.layout", "anomaly.precision",
     "anomaly.measuring", "anomaly.tables", "anomaly.plotting", "anomaly.report_page"),
    ("anomaly.data", "anomaly.config"),
    ("anomaly.models",),
    ("anomaly.losses", "anomaly.dictionary_learning"),
    ("anomaly.engine",),
    ("anomaly.extraction",),
    ("anomaly.detection", "anomaly.benchmark", "anomaly.live", "anomaly.video_dataset", "anomaly.importing",
     "anomaly.deploy"),
    ("anomaly.cli",),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The layer of the longest prefix of ``module`` that names one."""
    best = None
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best[1])):
                best = (index, name)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[0]


def imports(path: Path):
    """(module imported, names imported from it) for every import of ``path``, function-level ones included."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, tuple(alias.name for alias in node.names)


PACKAGE = sorted((REPO / "anomaly").rglob("*.py"))


@pytest.mark.parametrize("path", PACKAGE, ids=lambda path: module_name(path))
def test_a_module_imports_nothing_above_its_layer_and_no_private_helper(path):
    module = module_name(path)
    for imported, names in imports(path):
        if not imported.startswith("anomaly"):
            continue
        assert layer_of(imported) <= layer_of(module), f"{module} imports {imported}, a layer above it"
        if imported != module:
            private = [name for name in names if name.startswith("_")]
            assert not private, f"{module} imports private helpers of {imported}: {private}"


def test_configs_import_no_torch():
    code = "import sys, importlib, pkgutil, configs\n" \
           "for info in pkgutil.walk_packages(configs.__path__, 'configs.'): importlib.import_module(info.name)\n" \
           "print('torch' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "False"
