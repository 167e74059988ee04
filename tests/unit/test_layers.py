"""The package's layers import only downward, so the composition root can change without touching what it wires."""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "fittrack"

# What each layer may import from the package besides itself, by module prefix.
ALLOWED = {
    "generated": (),
    "core": (),
    "workers": ("fittrack.core",),
    "server": ("fittrack.core", "fittrack.generated"),
    # The clients speak the contract; from the core they read only the domain's facts (metric limits, units).
    "clients": ("fittrack.core.domain", "fittrack.generated"),
    "app": ("fittrack.core", "fittrack.server", "fittrack.workers", "fittrack.generated"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, typing_too: bool = True, modules_known: frozenset[str] = frozenset()) -> set[str]:
    """Absolute names of what a module imports: `from x import y` counts as x.y as well (y may be a module),
    and as x itself unless every name is one of modules_known (the package x is then only their parent)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    tree = ast.parse(path.read_text())
    skipped = set()
    if not typing_too:  # imports only a type checker runs cannot make a cycle
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped |= {id(child) for child in ast.walk(node)}
    modules = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = {f"{base}.{alias.name}" for alias in node.names}
            modules |= names
            if not names <= modules_known:
                modules.add(base)
        elif isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
    return modules


def layer_files(layer: str) -> list[Path]:
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files, f"fittrack/{layer} has no modules: was the layer renamed? update ALLOWED"
    return files


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_what_is_below_it(layer):
    own = f"fittrack.{layer}"
    wrong = {
        f"{path.relative_to(PACKAGE.parent)} imports {module}"
        for path in layer_files(layer)
        for module in imported_modules(path)
        if (module == "fittrack" or module.startswith("fittrack."))
        and not module.startswith(own)
        and not module.startswith(ALLOWED[layer])
        # `from fittrack.core import domain`-style names of the allowed modules' parents
        and not any(allowed.startswith(module + ".") for allowed in ALLOWED[layer])
    }
    assert not wrong, sorted(wrong)


def test_every_layer_is_listed():
    layers = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists()}
    assert layers == set(ALLOWED)


def test_the_domain_imports_nothing_but_the_standard_library_and_itself():
    wrong = {
        f"{path.name} imports {module}"
        for path in (PACKAGE / "core" / "domain").rglob("*.py")
        for module in imported_modules(path)
        if not module.startswith("fittrack.core.domain")
        and module.split(".")[0] not in sys.stdlib_module_names | {"__future__"}
    }
    assert not wrong, sorted(wrong)


def test_no_module_of_the_package_imports_itself_back_through_others():
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    known = frozenset(modules)
    graph = {
        name: {other for other in imported_modules(path, False, known) if other in modules and other != name}
        for name, path in modules.items()
    }
    cycles, done, stack = [], set(), []

    def visit(name: str) -> None:
        if name in stack:
            cycles.append(stack[stack.index(name) :] + [name])
            return
        if name in done:
            return
        stack.append(name)
        for other in sorted(graph[name]):
            visit(other)
        stack.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
    assert not cycles, [" -> ".join(cycle) for cycle in cycles]
