"""The packages' shape: imports point down the layers, the library (al_bnn) never imports the research
harness (al_bnn_lab), selection runs without TensorFlow, the public API is exported from the root, and
every script is a thin entry point."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "source"
PACKAGE = SOURCE / "al_bnn"
LAB = SOURCE / "al_bnn_lab"

# Lower number = lower layer; a module may import its own layer and the ones below.
LAYERS = {
    "al_bnn.errors": 0, "al_bnn.version": 0, "al_bnn.headers": 0, "al_bnn.randomness": 0, "al_bnn.paths": 0,
    "al_bnn.safe_arrays": 0,
    "al_bnn.selection": 1,
    "al_bnn.selection.posterior": 1,  # the one feature-space GP posterior that GPA and the batch family share
    "al_bnn.config": 2, "al_bnn.data": 2, "al_bnn.plugins": 2, "al_bnn.recipe": 2,
    "al_bnn.registry": 2,  # model and kernel names (what the config validates against), no TensorFlow
    "al_bnn.models": 3, "al_bnn.kernels": 3,  # the networks and their Protocol; kernels from a model, by name
    # the selection entry point (one selection from a model), the checkpoint format and run fingerprint
    # (with the one fingerprint hash), the memory estimate: what the loop and the learner build on
    "al_bnn.acquisition": 4, "al_bnn.checkpoint": 4, "al_bnn.memory": 4,
    "al_bnn.stack_calibration": 4,  # the loop's variance calibration of a stack (models, no loop)
    "al_bnn.loop": 5, "al_bnn.results": 5, "al_bnn.learner": 5, "al_bnn.selector": 5,
    "al_bnn.cli": 6, "al_bnn.suggest": 6,  # the commands' shared exit codes and signals; suggest's core
    "al_bnn_lab": 7,  # the research harness: imports the library, never imported by it
}


def layer_of(module: str) -> int:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in LAYERS:
            return LAYERS[".".join(parts[:end])]
    raise AssertionError(f"{module} is in no layer; add it to LAYERS")


def package_modules(package: Path = PACKAGE):
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(SOURCE).with_suffix("")
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def imported_modules(path: Path, module: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):  # function-level imports count too
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = module.split(".")[: len(module.split(".")) - node.level + (path.name == "__init__.py")]
                names.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.startswith("al_bnn.") or name.split(".")[0] == "al_bnn_lab"}


def test_no_lower_layer_imports_a_higher_one():
    violations = []
    for module, path in [*package_modules(), *package_modules(LAB)]:
        if module == "al_bnn":
            continue  # the root re-exports the public API (lazily)
        for imported in imported_modules(path, module):
            if imported.split(".")[-1][:1].isupper():  # `from al_bnn.x import Name`: the module decides
                continue
            if layer_of(imported) > layer_of(module):
                violations.append(f"{module} (layer {layer_of(module)}) imports {imported} "
                                  f"(layer {layer_of(imported)})")
    assert not violations, "\n".join(violations)


def test_the_layer_check_catches_an_upward_import(tmp_path):
    offender = tmp_path / "offender.py"
    offender.write_text("from al_bnn_lab.sweep import run_task\n")
    module = "al_bnn.selection.offender"
    assert any(layer_of(i) > layer_of(module) for i in imported_modules(offender, module))


def harness_references(path: Path, module: str) -> set[str]:
    """What a module imports from al_bnn_lab, or names as a module path in a string (`-m al_bnn_lab.x`)."""
    found = {name for name in imported_modules(path, module) if name.split(".")[0] == "al_bnn_lab"}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.update(word for word in node.value.split() if word.split(".")[0].split(":")[0] == "al_bnn_lab")
    return found


def test_the_library_never_imports_the_harness():
    offenders = {module: sorted(names) for module, path in package_modules()
                 if (names := harness_references(path, module))}
    assert not offenders, f"library modules that reach into al_bnn_lab (the harness): {offenders}"
    lab_modules = [module for module, _ in package_modules(LAB)]
    assert "al_bnn_lab.sweep" in lab_modules and "al_bnn.loop" in dict(package_modules())  # the walks see both


@pytest.mark.parametrize("line", ["from al_bnn_lab.sweep import run_task", "import al_bnn_lab.study",
                                  "from al_bnn_lab import plotting", "def f():\n    from al_bnn_lab import sweep",
                                  "CMD = ['python', '-m', 'al_bnn_lab.bench_suggest']"])
def test_the_harness_check_catches_a_library_module_that_uses_the_harness(tmp_path, line):
    offender = tmp_path / "offender.py"
    offender.write_text(line + "\n")
    assert harness_references(offender, "al_bnn.loop")
    module = "al_bnn.loop"
    assert "import" not in line or any(layer_of(i) > layer_of(module) for i in imported_modules(offender, module))


@pytest.mark.parametrize("module", ["al_bnn", "al_bnn.selection", "al_bnn.selection.gpa_math",
                                    "al_bnn.selection.posterior", "al_bnn.config",
                                    "al_bnn.data", "al_bnn.registry"])
def test_lower_layers_import_without_tensorflow(module):
    code = (f"import sys, {module}; assert 'tensorflow' not in sys.modules, 'tensorflow was imported'; "
            f"from al_bnn.selection import select_gpa; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], cwd=SOURCE, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_scripts_are_thin_entry_points():
    for script in sorted(SOURCE.glob("*.py")):
        tree = ast.parse(script.read_text())
        functions = [node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
        assert not functions, f"{script.name} defines {functions}; code belongs in the al_bnn or al_bnn_lab package"
        assert len(script.read_text().splitlines()) < 25, f"{script.name} is not a thin entry point"


def test_every_script_is_also_a_console_command():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    commands = set(tomllib.loads((SOURCE.parent / "pyproject.toml").read_text())["project"]["scripts"].values())
    for script in sorted(SOURCE.glob("*.py")):
        targets = {f"{node.module}:{alias.name}" for node in ast.walk(ast.parse(script.read_text()))
                   if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("al_bnn")
                   for alias in node.names}
        assert targets & commands, f"{script.name} calls {targets}, which no [project.scripts] entry names"
