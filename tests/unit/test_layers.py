"""The package's layers import only downward, so the composition root can change without touching what it wires."""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "fittrack"

# What each layer may import from the package, besides itself.
ALLOWED = {
    "core": {"generated"},
    "server": {"core", "generated"},
    "workers": {"core"},
    "clients": {"core", "generated"},
    "app": {"core", "server", "workers", "generated"},
    "generated": set(),
}


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
    return modules


def imported_layers(path: Path) -> set[str]:
    return {module.split(".")[1] for module in imported_modules(path) if module.startswith("fittrack.")}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_the_layers_below_it(layer):
    wrong = {
        f"{path.relative_to(PACKAGE.parent)} imports fittrack.{other}"
        for path in (PACKAGE / layer).rglob("*.py")
        for other in imported_layers(path) - ALLOWED[layer] - {layer}
    }
    assert not wrong, sorted(wrong)


def test_the_domain_imports_nothing_but_the_standard_library_and_itself():
    wrong = {
        f"{path.name} imports {module}"
        for path in (PACKAGE / "core" / "domain").rglob("*.py")
        for module in imported_modules(path)
        if not module.startswith("fittrack.core.domain")
        and module.split(".")[0] not in sys.stdlib_module_names | {"__future__"}
    }
    assert not wrong, sorted(wrong)
