"""No import cycle among quantbench's modules, counting imports inside functions too: a cycle that
only a lazy import hides still makes two modules one, and breaks as soon as either is imported first
from a third place."""

from __future__ import annotations

import ast
from pathlib import Path

import quantbench

PACKAGE_DIR = Path(quantbench.__file__).parent


def module_files(package_dir: Path) -> dict[str, Path]:
    modules = {}
    for path in package_dir.rglob("*.py"):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `name` imports anywhere in its file (the package itself and
    `name`'s own parent packages left out: importing them is how Python runs a submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            targets += [base] + [f"{base}.{alias.name}" for alias in node.names]
    found = set()
    root = name.split(".")[0]
    for target in targets:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name and target != root and not name.startswith(target + "."):
            found.add(target)
    return found


def import_cycle(package_dir: Path) -> list[str] | None:
    """One import cycle (its modules in import order, the first repeated at the end), or None."""
    modules = module_files(package_dir)
    graph = {name: sorted(imported_modules(name, path, modules)) for name, path in modules.items()}
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path, on_path = [start], {start}
        stack = [iter(graph[start])]
        while stack:
            target = next(stack[-1], None)
            if target is None:  # every import of path[-1] explored: no cycle through it
                stack.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                continue
            if target in on_path:
                return path[path.index(target) :] + [target]
            if target not in done:
                path.append(target)
                on_path.add(target)
                stack.append(iter(graph[target]))
    return None


def test_quantbench_has_no_import_cycle():
    cycle = import_cycle(PACKAGE_DIR)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_check_finds_a_cycle_hidden_in_a_function(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text("def thing():\n    from . import c\n")
    (package / "c.py").write_text("import pkg.a\n")
    (package / "d.py").write_text("import pkg.a\n")  # imports into the cycle, is not part of it
    assert import_cycle(package) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    (package / "c.py").write_text("")
    assert import_cycle(package) is None


# The layers (pyproject.toml's [tool.importlinter]): imports run down, never back up a layer.
PYPROJECT = PACKAGE_DIR.parent / "pyproject.toml"


def layer_contract() -> dict:
    import tomllib

    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    return next(contract for contract in contracts if contract["type"] == "layers")


def test_imports_keep_the_layers():
    """`lint-imports` with the project's contracts, as .ci/run runs it."""
    import subprocess
    import sys

    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint_imports), "--config", str(PYPROJECT)], cwd=PYPROJECT.parent, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_every_room_is_a_layer():
    """A new subpackage or top-level module has a place in the layers, so the contract covers it."""
    named = {name.strip() for layer in layer_contract()["layers"] for name in layer.replace("|", ":").split(":")}
    rooms = {f"quantbench.{path.stem}" for path in PACKAGE_DIR.glob("*.py") if path.stem != "__init__"}
    rooms |= {f"quantbench.{path.parent.name}" for path in PACKAGE_DIR.glob("*/__init__.py")}
    rooms.discard("quantbench.conf")  # YAML files, no code
    assert sorted(rooms - named) == []
    assert sorted(named - rooms) == []


def test_the_top_of_the_package_holds_only_what_every_layer_uses():
    """Every module has a room; at the top only the entry point, the plugins' facade and the few
    modules every layer imports (errors, atomic writes, the cache)."""
    assert sorted(path.name for path in PACKAGE_DIR.glob("*.py")) == [
        "__init__.py",
        "__main__.py",
        "api.py",
        "atomic.py",
        "cache.py",
        "errors.py",
    ]
