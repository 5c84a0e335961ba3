"""The shape of the package: no import cycle among tflm's modules (counting imports inside functions), and
no module over `MAX_LINES` lines. Read from the source with `ast`; nothing is imported."""

import ast
import os

TFLM = os.path.join(os.path.dirname(__file__), "..", "tflm")
MAX_LINES = 400


def module_files():
    """tflm module name -> its file (`tflm.serving` for `tflm/serving/__init__.py`)."""
    modules = {}
    root = os.path.dirname(os.path.abspath(TFLM))
    for directory, _, files in os.walk(os.path.abspath(TFLM)):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                parts = os.path.relpath(path, root)[: -len(".py")].split(os.sep)
                modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(module, path, modules):
    """The tflm modules `module` imports, at its top level or inside a function: `import tflm.x`, `from
    tflm.x import y` (`tflm.x.y` when that is a module, else `tflm.x`), relative imports resolved."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:  # `import tflm.x.y` of a name inside a module
                name = name.rpartition(".")[0]
            if name.startswith("tflm") and name != module:
                found.add(name)
    return found


def find_cycle(graph):
    """One cycle of `graph` (module -> set of modules) as a list `[a, b, ..., a]`, or None."""
    visiting, done = [], set()

    def visit(node):
        visiting.append(node)
        for child in sorted(graph.get(node, ())):
            if child in visiting:
                return visiting[visiting.index(child):] + [child]
            if child not in done:
                cycle = visit(child)
                if cycle:
                    return cycle
        visiting.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        if node not in done:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) is None


def test_tflm_has_no_import_cycle():
    modules = module_files()
    graph = {module: imports_of(module, path, modules) for module, path in modules.items()}
    assert graph["tflm.serving.core"] >= {"tflm.serving.errors", "tflm.serving.batching"}  # the parser reads
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_serving_errors_import_nothing_from_serving():
    modules = module_files()
    found = imports_of("tflm.serving.errors", modules["tflm.serving.errors"], modules)
    assert not {name for name in found if name.startswith("tflm.serving")}, found


def test_no_module_is_over_400_lines():
    long = {}
    for module, path in module_files().items():
        with open(path, encoding="utf-8") as f:
            lines = sum(1 for _ in f)
        if lines > MAX_LINES:
            long[module] = lines
    assert not long, f"modules over {MAX_LINES} lines (split them by concern): {long}"
