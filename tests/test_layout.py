"""The package's layout (issue 12): the import graph has no cycle and every import points down
the declared layer order; no private name crosses modules; ``import tf_talkface`` stays cheap;
every CLI is a console script and a ``python -m`` module; docs/architecture.md lists exactly the
package's modules.

The graph is read from the source (``ast``), imports inside functions included: a lazy import is
still an arrow. Edges between a package and its own submodules are not arrows of design (as in
``/work/shared/tools/import_cycles.py``)."""
from __future__ import annotations

import ast
import configparser
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tf_talkface

PKG_DIR = Path(tf_talkface.__file__).resolve().parent
REPO = PKG_DIR.parent
PKG = PKG_DIR.name

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("settings", ("config", "resources", "atomic", "console", "assets")),
    ("audio/face", ("audio", "face")),
    ("data", ("data", "prepare", "files")),
    ("models/losses", ("models", "metrics")),
    ("training", ("train", "gan_callbacks", "train_atvgnet")),
    ("serving/inference", ("card", "streamer", "stream_graph", "atvgnet_serving", "export",
                           "saved_model", "post_filter")),
    ("animation/evaluation/drawing", ("viz", "animate", "evaluate", "replicate", "video_metrics",
                                      "evaluate_atvgnet")),
    ("CLIs", ("stream", "generate", "client")),
]
"""The layer order, lowest first: a module may import only from its own layer or the ones above
it in this list (within a layer, the cycle test keeps the arrows one way). Each entry names a
top-level module or subpackage of ``tf_talkface``."""

CLIS = ("prepare", "train", "train_atvgnet", "export", "post_filter", "generate", "stream",
        "evaluate", "evaluate_atvgnet", "replicate", "client")
"""Every command-line tool: ``python -m tf_talkface.NAME`` and console script ``tf-talkface-NAME``
(underscores as hyphens)."""


def _modules() -> dict[str, Path]:
    mods = {}
    for f in PKG_DIR.rglob("*.py"):
        rel = f.relative_to(REPO).with_suffix("")
        mods[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = f
    return mods


MODULES = _modules()


def _imports(name: str) -> list[tuple[ast.AST, list[str], list[str]]]:
    """(node, package modules it imports, names it takes) for every import statement of a module,
    wherever it is (module level or inside a function)."""
    f = MODULES[name]
    out = []
    for node in ast.walk(ast.parse(f.read_text(), str(f))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
            names: list[str] = []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")
                parts = parts[: len(parts) - node.level + (1 if f.name == "__init__.py" else 0)]
                base = ".".join(parts + ([base] if base else []))
            names = [a.name for a in node.names]
            targets = [base] + [f"{base}.{n}" for n in names]
        else:
            continue
        out.append((node, [t for t in targets if t in MODULES and t != name], names))
    return out


def _related(a: str, b: str) -> bool:
    """A package and its own submodules (either way): not an arrow of design."""
    return a.startswith(b + ".") or b.startswith(a + ".")


def _edges() -> dict[str, dict[str, int]]:
    """module -> {imported module: first line}."""
    edges: dict[str, dict[str, int]] = {m: {} for m in MODULES}
    for m in MODULES:
        for node, targets, _ in _imports(m):
            for t in targets:
                if not _related(m, t):
                    edges[m].setdefault(t, node.lineno)
    return edges


def _layer(module: str) -> int | None:
    rel = module[len(PKG) + 1:]
    for i, (_, entries) in enumerate(LAYERS):
        if any(rel == e or rel.startswith(e + ".") for e in entries):
            return i
    return None


def test_every_module_has_a_layer():
    missing = sorted(m for m in MODULES if m != PKG and _layer(m) is None)
    assert not missing, f"modules without a layer (add them to LAYERS): {missing}"


def test_no_import_cycles():
    edges = _edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(MODULES):
        if v not in index:
            strong(v)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_imports_follow_the_layer_order():
    bad = []
    for m, targets in _edges().items():
        if m == PKG:
            continue
        for t, line in targets.items():
            lm, lt = _layer(m), _layer(t)
            if lm is not None and lt is not None and lt > lm:
                bad.append(f"{MODULES[m].relative_to(REPO)}:{line}: {m} ({LAYERS[lm][0]}) imports "
                           f"{t} ({LAYERS[lt][0]})")
    assert not bad, "imports against the layer order " + \
        " -> ".join(n for n, _ in LAYERS) + ":\n" + "\n".join(sorted(bad))


def test_no_private_names_imported_from_other_modules():
    bad = []
    for m in MODULES:
        for node, targets, names in _imports(m):
            if isinstance(node, ast.ImportFrom) and targets:
                bad += [f"{m}:{node.lineno}: {n} from {node.module}" for n in names
                        if n.startswith("_") and not (n.startswith("__") and n.endswith("__"))]
    assert not bad, "private names imported across modules: " + "; ".join(bad)


def test_import_tf_talkface_is_cheap_and_load_model_is_real():
    # the package root imports nothing of its own at import time (load_model is lazy)
    top = [n for n in ast.parse(MODULES[PKG].read_text()).body
           if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not [n for n in top if not (isinstance(n, ast.ImportFrom) and n.module == "__future__")]
    code = ("import sys, tf_talkface; heavy = [m for m in ('tensorflow', 'keras', 'numpy') "
            "if m in sys.modules]; print(heavy); f = tf_talkface.load_model; "
            "import tf_talkface.saved_model as s; assert f is s.load_model, f; "
            "assert 'load_model' in dir(tf_talkface) and 'load_model' in tf_talkface.__all__")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"import tf_talkface loaded {out.stdout.strip()}"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tf_talkface.nope  # noqa: B018


def test_every_cli_is_a_console_script_and_a_module():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    scripts = dict(line.split("=", 1) for line in
                   cfg["options.entry_points"]["console_scripts"].strip().splitlines())
    scripts = {k.strip(): v.strip() for k, v in scripts.items()}
    assert scripts == {f"tf-talkface-{n.replace('_', '-')}": f"{PKG}.{n}:main" for n in CLIS}
    readme = (REPO / "README.md").read_text()
    for n in CLIS:
        tree = ast.parse(MODULES[f"{PKG}.{n}"].read_text())
        assert any(isinstance(x, ast.FunctionDef) and x.name == "main" for x in tree.body), n
        assert any(isinstance(x, ast.If) and "__main__" in ast.unparse(x.test) for x in tree.body), \
            f"python -m {PKG}.{n} needs an `if __name__ == \"__main__\"` block"
        script = f"tf-talkface-{n.replace('_', '-')}"
        assert script in readme, f"README does not show {script}"


def test_architecture_doc_lists_exactly_the_modules():
    doc = (REPO / "docs" / "architecture.md").read_text()
    listed = set(re.findall(r"^\| `([\w/]+\.py)` \|", doc, flags=re.M))
    actual = {str(f.relative_to(PKG_DIR)) for f in MODULES.values() if f.name != "__init__.py"}
    assert listed == actual, (f"in docs/architecture.md but not in the package: {sorted(listed - actual)}; "
                              f"in the package but not in the doc: {sorted(actual - listed)}")


def test_architecture_doc_serving_arrows_are_the_code():
    """The arrow list of docs/architecture.md's serving/inference block equals the import graph
    restricted to that layer."""
    doc = (REPO / "docs" / "architecture.md").read_text()
    drawn = {}
    for name, rest in re.findall(r"^(\w+)\.py +(leaf|→ [\w, ]+)$", doc, flags=re.M):
        drawn[name] = set() if rest == "leaf" else {t.strip() for t in rest[2:].split(",")}
    serving = dict(LAYERS)["serving/inference"]
    actual = {m[len(PKG) + 1:]: {t[len(PKG) + 1:] for t in ts if t[len(PKG) + 1:] in serving}
              for m, ts in _edges().items() if m[len(PKG) + 1:] in serving}
    assert drawn == actual

