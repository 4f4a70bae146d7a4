"""The layering of fastnn/ (../shared/ARCHITECTURE.md): arrows point down, no import cycles.

    models -> nn, optim, utils, distributed -> tensor -> kernels -> backends -> (csrc)

The import graph is read from the source (ast), counting every import, including those inside
functions: a lazy upward import is still an upward edge.
"""
import ast
import pathlib

import fastnn
from fastnn.kernels import REGISTRY, dispatch

ROOT = pathlib.Path(fastnn.__file__).parent

# Layers, bottom first. A module may import from its own layer or any layer below it.
LAYERS = [
    {"backends", "errors"},
    {"kernels"},
    {"threads", "info", "cuda"},
    {"tensor", "indexing", "_torch_rng", "_tensor_str"},
    {"serialization", "_pt_format", "nn", "optim", "utils", "distributed", "data", "text",
     "random", "accelerator", "linalg", "special", "fft", "distributions", "extras"},
    {"training", "viz"},
    {"models"},
    {"bench", "benchmarks"},
    {"cli", "__init__", "__main__"},
]


def _module_name(path):
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _graph():
    edges = {}
    for path in ROOT.rglob("*.py"):
        mod = _module_name(path)
        is_pkg = path.name == "__init__.py"
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("fastnn")}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".")
                    base = base[:len(base) - node.level + (1 if is_pkg else 0)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                elif node.module and node.module.startswith("fastnn"):
                    prefix = node.module
                else:
                    continue
                for a in node.names:   # `from . import x` names a submodule x, else a name in prefix
                    sub = f"{prefix}.{a.name}"
                    as_path = ROOT.parent / sub.replace(".", "/")
                    is_module = as_path.is_dir() or as_path.with_suffix(".py").exists()
                    targets.add(sub if is_module else prefix)
        edges[mod] = {t for t in targets if t != mod}
    return edges


def _top(mod):
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(mod):
    top = _top(mod)
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"{mod}: top-level module {top!r} is in no layer of this test; add it")


def test_no_upward_imports():
    bad = []
    for mod, targets in _graph().items():
        for t in targets:
            if t == "fastnn" and _layer(mod) < _layer("fastnn.cli"):
                bad.append(f"{mod} imports the fastnn package top level")
            elif t != "fastnn" and _layer(t) > _layer(mod):
                bad.append(f"{mod} -> {t}")
    assert bad == []


def test_no_import_cycles():
    edges = _graph()
    # collapse to module files that exist (a name imported from a module is that module)
    known = set(edges)

    def resolve(t):
        while t and t not in known:
            t = t.rpartition(".")[0]
        return t
    graph = {m: {resolve(t) for t in ts} - {None, "", m} for m, ts in edges.items()}
    # a package's __init__ importing its own submodules is how packages work, not a cycle
    for m in graph:
        graph[m] = {t for t in graph[m] if not t.startswith(m + ".")}
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2
    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert cycles == []


def test_kernel_list_lives_only_in_the_registry():
    # Backends hold no list of kernel names: the Backend object is built from the registry.
    for path in (ROOT / "backends").rglob("*"):
        if path.suffix in (".py", ".pyx"):
            assert "__all__" not in path.read_text(), path


def test_every_backend_package_declares_its_modules():
    for name in dispatch.backend_names():
        assert dispatch._MODULES[name] == f"fastnn.backends.{name}"
    assert dispatch.load("numpy").missing() == []   # the reference implements every kernel
