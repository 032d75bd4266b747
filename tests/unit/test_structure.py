"""The architecture, read from the code itself: import direction, no import cycles, areas apart, one writer of places.

Every import statement counts, including those inside functions (a lazy import still ties two modules
together). Each check carries a negative control: the same check run on a small made-up tree that breaks the
rule must report it, so a check that silently finds nothing cannot pass.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("events", "lifedesign")
AREAS = ("seminars", "invites", "visits", "exchanges", "feedback")
# Another area's tables may be read (the kernel's Event and Registration live in the seminars app); its services not.
SHARED_AREA_MODULES = ("tables",)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def sources(root: Path) -> dict[str, ast.Module]:
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            found[module_name(path, root)] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return found


def imports_of(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """Project modules this module imports anywhere in its body (top level or inside functions)."""
    out: set[str] = set()
    package = name if name in known and any(k.startswith(name + ".") for k in known) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def all_imports(root: Path) -> dict[str, set[str]]:
    trees = sources(root)
    known = set(trees)
    return {name: imports_of(name, tree, known) for name, tree in trees.items()}


def raw_imports(root: Path) -> dict[str, set[str]]:
    """Every imported name, project or not (to find events -> litestar)."""
    out: dict[str, set[str]] = {}
    for name, tree in sources(root).items():
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
        out[name] = names
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def area_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) >= 2 and parts[0] in PACKAGES and parts[1] in AREAS:
        return parts[1]
    if len(parts) >= 3 and parts[:2] == ["lifedesign", "areas"] and parts[2] in AREAS:
        return parts[2]
    return None


def cross_area_services(graph: dict[str, set[str]]) -> list[str]:
    """An area (or the kernel: events/*.py) importing another area's services (anything but its tables)."""
    bad = []
    for module, targets in graph.items():
        own = area_of(module)
        kernel = module.startswith("events.") and module.count(".") == 1
        for target in targets:
            theirs = area_of(target)
            if theirs is None or theirs == own or not target.startswith("events."):
                continue
            if not (own or kernel):
                continue
            if target.split(".")[-1] in SHARED_AREA_MODULES:
                continue
            bad.append(f"{module} -> {target}")
    return sorted(bad)


def domain_imports_shell(raw: dict[str, set[str]]) -> list[str]:
    return sorted(f"{module} -> {target}" for module, targets in raw.items() if module.startswith("events")
                  for target in targets if target.split(".")[0] in ("lifedesign", "litestar"))


# ---------------------------------------------------------------- the rules on this code


def test_no_import_cycle_anywhere_in_functions_too():
    found = cycles(all_imports(ROOT))
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_domain_never_imports_the_shell_or_litestar():
    assert domain_imports_shell(raw_imports(ROOT)) == []


def test_no_area_imports_another_areas_services():
    assert cross_area_services(all_imports(ROOT)) == []


# ---------------------------------------------------------------- one writer of places


_WRITE_SQL = re.compile(r"\bUPDATE\s+(event\s+SET\s+[^;]*\b(taken|waiting)\b|registration\s+SET\s+[^;]*\bstatus\b)",
                        re.I | re.S)
_INSERT_SQL = re.compile(r"\bINSERT\s+INTO\s+registration\b", re.I)
_LEDGER_COLUMNS = (("Event", "taken"), ("Event", "waiting"), ("Registration", "status"))


def place_writers(root: Path) -> dict[str, list[str]]:
    """Where Event.taken, Event.waiting or Registration.status is written: Piccolo updates and inserts, or raw SQL."""
    found: dict[str, list[str]] = {}
    for name, tree in sources(root).items():
        hits = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                for key in node.keys:
                    if isinstance(key, ast.Attribute) and isinstance(key.value, ast.Name) and (
                            (key.value.id, key.attr) in _LEDGER_COLUMNS):
                        hits.append(f"line {key.lineno}: {key.value.id}.{key.attr} in an update")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("Event", "Registration"):
                for keyword in node.keywords:
                    if (node.func.id, keyword.arg) in _LEDGER_COLUMNS:
                        hits.append(f"line {node.lineno}: {node.func.id}({keyword.arg}=…)")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "insert_query" and (
                    node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in ("Event", "Registration")):
                hits.append(f"line {node.lineno}: insert_query({node.args[0].id}, …)")  # events.db's fast INSERT
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                    _WRITE_SQL.search(node.value) or _INSERT_SQL.search(node.value)):
                hits.append(f"line {node.lineno}: raw SQL")
        if hits:
            found[name] = hits
    return found


def test_the_place_ledger_is_the_only_writer_of_seats_and_statuses():
    writers = place_writers(ROOT)
    assert set(writers) == {"events.places"}, writers


# ---------------------------------------------------------------- negative controls: each check bites


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for package in PACKAGES:
        (tmp_path / package).mkdir(exist_ok=True)
        (tmp_path / package / "__init__.py").touch()
    return tmp_path


def _names(items: Iterable[str]) -> set[str]:
    return set(items)


def test_negative_controls_each_check_reports_a_broken_tree(tmp_path):
    root = _tree(tmp_path, {
        "events/seminars/__init__.py": "",
        "events/seminars/registration.py": "from events.seminars import schedule\n",
        # a cycle closed only by an in-function import still counts
        "events/seminars/schedule.py": "def later():\n    from events.seminars import registration\n",
        "events/seminars/tables.py": "",
        "events/visits/__init__.py": "",
        "events/visits/confirmations.py": (
            "from events.seminars.tables import Event\n"          # allowed: another area's tables
            "def go():\n    from events.seminars import registration\n"  # not allowed: its services
            "    from litestar import Request\n"                   # not allowed: the domain on the shell
        ),
        "events/places.py": "",
        "events/rogue.py": (
            "from events.seminars.tables import Event, Registration\n"
            "async def f():\n"
            "    await Event.update({Event.taken: Event.taken + 1})\n"
            "    await Registration.insert(Registration(status='confirmed'))\n"
            "    await raw('UPDATE registration SET status = {} WHERE id = {}')\n"
            "    await raw(insert_query(Registration, {'status': 'confirmed'}))\n"
            "    await raw('UPDATE event SET waiting = waiting - 1 WHERE id = {}')\n"
        ),
    })
    graph = all_imports(root)
    assert ["events.seminars.registration", "events.seminars.schedule"] in cycles(graph)
    assert "events.visits.confirmations -> events.seminars.registration" in cross_area_services(graph)
    assert "events.visits.confirmations -> events.seminars.tables" not in cross_area_services(graph)
    assert domain_imports_shell(raw_imports(root)) == ["events.visits.confirmations -> litestar"]
    assert len(place_writers(root)["events.rogue"]) == 5
