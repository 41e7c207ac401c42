"""The package's imports run one way: from the explainer down to the families.

Every module is parsed with ``ast``; each import of another part of the package
must point to a lower layer (or stay inside its own part). ``plotting`` may only
be imported lazily, inside a function.
"""

import ast
import shutil
from pathlib import Path

import pytest

import skinfluence

PACKAGE = Path(skinfluence.__file__).parent

#: the layer of each part of the package; a part may import only lower layers
LAYERS = {
    "families": 0,
    "solvers": 0,
    "datasets": 0,
    "_influence": 0,
    "_threads": -2,
    "_rows": -1,
    "_labels": 0,
    "_progress": 0,
    "_result": 0,
    "_resolve": 0,
    "exact": 1,
    "_fitcheck": 1,
    "_fitted": 2,
    "estimators": 3,
    "applications": 3,
    "evaluation": 4,
    "_explainer": 5,
    "plotting": 6,
    "__init__": 7,
    "__main__": 8,
}
LAZY_ONLY = {"plotting"}


def _part(module):
    """``skinfluence.exact.refit`` -> ``exact``; the package itself -> ``__init__``."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def _imports(path, package_dir):
    """``(target_part, lineno, lazy)`` for every import of the package in a file."""
    relative = path.relative_to(package_dir.parent).with_suffix("")
    module = ".".join(relative.parts)
    is_package = path.name == "__init__.py"
    if is_package:
        module = module[: -len(".__init__")]
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []

    def visit(node, lazy):
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "skinfluence":
                        found.append((alias.name, child.lineno, lazy))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".")
                    if not is_package:
                        base = base[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] != "skinfluence":
                    continue
                if target == "skinfluence":  # from . import applications, or a name
                    for alias in child.names:
                        is_part = ((package_dir / f"{alias.name}.py").exists()
                                   or (package_dir / alias.name).is_dir())
                        found.append((f"skinfluence.{alias.name}" if is_part
                                      else "skinfluence", child.lineno, lazy))
                else:
                    found.append((target, child.lineno, lazy))
            visit(child, inner)

    visit(tree, False)
    return module, [(_part(target), line, lazy) for target, line, lazy in found]


def import_violations(package_dir):
    """Every import against the layer order, as readable strings."""
    problems = []
    for path in sorted(package_dir.rglob("*.py")):
        module, imports = _imports(path, package_dir)
        source = _part(module) if module != "skinfluence" else "__init__"
        if path.name == "__main__.py" and module == "skinfluence.__main__":
            source = "__main__"
        for target, line, lazy in imports:
            where = f"{path.relative_to(package_dir)}:{line}"
            if target == source:
                continue
            if target not in LAYERS or source not in LAYERS:
                problems.append(f"{where}: {source} -> {target}: part without a layer")
            elif target in LAZY_ONLY and not lazy:
                problems.append(f"{where}: {source} imports {target} at module level "
                                "(import it inside the function that plots)")
            elif LAYERS[target] >= LAYERS[source] and target not in LAZY_ONLY:
                problems.append(f"{where}: {source} (layer {LAYERS[source]}) imports "
                                f"{target} (layer {LAYERS[target]})")
    return problems


def test_every_part_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    assert parts <= set(LAYERS), sorted(parts - set(LAYERS))


def test_imports_run_one_way():
    assert import_violations(PACKAGE) == []


@pytest.mark.parametrize("file, line, expected", [
    ("families/squared.py", "from ..exact import newton_minimize\n", "families (layer 0) imports exact"),
    ("families/logistic.py", "from ..solvers import make_solver\n", "families (layer 0) imports solvers"),
    ("exact/refit.py", "from .._fitted import FittedInfluence\n", "exact (layer 1) imports _fitted"),
    ("applications/groups.py", "from .._explainer import InfluenceExplainer\n",
     "applications (layer 3) imports _explainer"),
    ("evaluation/trust.py", "from ..plotting import EstimatedVsActualDisplay\n",
     "evaluation imports plotting at module level"),
])
def test_an_import_against_the_direction_is_caught(tmp_path, file, line, expected):
    """The check can fail: add one wrong import to a copy of the package."""
    copy = tmp_path / "skinfluence"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / file
    text = target.read_text()
    head, sep, rest = text.partition('"""\n\n')  # after the module docstring
    target.write_text(head + sep + line + rest)
    problems = import_violations(copy)
    assert any(expected in p for p in problems), problems
