"""
The direction of imports that C{docs/architecture.md} promises, checked on
the source: arrows run down a request's path (web, gateway, operations,
stores, forwarder) and to the shared vocabulary, never back.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

PACKAGE = Path(__file__).resolve().parents[2] / "multistore"

#: For each step, the packages and modules it must not import.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "multistore.s3": (
        "multistore.metering",
        "multistore.oidc",
        "multistore.web",
        "multistore.gateway",
        "multistore.operations",
        "multistore.stores",
        "multistore.forwarder",
        "multistore.sts",
        "multistore.tap",
    ),
    "multistore.auth": (
        "multistore.metering",
        "multistore.oidc",
        "multistore.web",
        "multistore.gateway",
        "multistore.operations",
        "multistore.stores",
        "multistore.forwarder",
        "multistore.sts",
        "multistore.tap",
    ),
    "multistore.forwarder": (
        "multistore.web",
        "multistore.gateway",
        "multistore.operations",
        "multistore.stores",
        "multistore.sts",
    ),
    "multistore.stores": (
        "multistore.web",
        "multistore.gateway",
        "multistore.operations",
        "multistore.sts",
    ),
    "multistore.operations": ("multistore.web", "multistore.gateway", "multistore.sts"),
    "multistore.gateway": (
        "multistore.web",
        "multistore.stores",
        "multistore.forwarder",
    ),
    "multistore.metering": (
        "multistore.web",
        "multistore.gateway",
        "multistore.operations",
        "multistore.stores",
        "multistore.forwarder",
        "multistore.sts",
        "multistore.tap",
    ),
    "multistore.oidc": (
        "multistore.web",
        "multistore.gateway",
        "multistore.operations",
        "multistore.stores",
        "multistore.sts",
        "multistore.metering",
        "multistore.tap",
    ),
    "multistore.model": ("multistore.interfaces",),
    "multistore.bodies": ("multistore.interfaces", "multistore.model"),
}

#: The kinds of store: none may import another.
STORES = ("s3", "azure", "gcs", "local")


def modules() -> Iterator[tuple[str, set[str]]]:
    """
    :return: each module of the package with the modules it imports
        (type-checking imports included).
    """
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = parts if path.name == "__init__.py" else parts[:-1]
                    anchor = package[: len(package) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                imported.add(base)
                imported.update(f"{base}.{a.name}" for a in node.names)
        yield name, imported


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


class ImportDirectionTests(SynchronousTestCase):
    """
    Each rule of C{docs/architecture.md}'s "Which way imports run".
    """

    def test_steps(self) -> None:
        """
        No step imports a step after it or the web layer before it.
        """
        broken = [
            f"{name} imports {target}"
            for name, imported in modules()
            for step, forbidden in FORBIDDEN.items()
            if within(name, step)
            for target in sorted(imported)
            if any(within(target, f) for f in forbidden)
        ]
        self.assertEqual(broken, [])

    def test_stores_apart(self) -> None:
        """
        No store imports another store.
        """
        broken = [
            f"{name} imports {target}"
            for name, imported in modules()
            for kind in STORES
            if within(name, f"multistore.stores.{kind}")
            for target in sorted(imported)
            for other in STORES
            if other != kind and within(target, f"multistore.stores.{other}")
        ]
        self.assertEqual(broken, [])

    def test_testing_imported_by_none(self) -> None:
        """
        The test doubles are for tests: the daemon never imports them.
        """
        broken = [
            name
            for name, imported in modules()
            if not within(name, "multistore.testing")
            and any(within(t, "multistore.testing") for t in imported)
        ]
        self.assertEqual(broken, [])

    def test_rules_see_imports(self) -> None:
        """
        The scan finds imports, so the rules above can fail.
        """
        found = dict(modules())
        self.assertIn("multistore.gateway.pipeline", found["multistore.web.site"])
        self.assertIn("multistore.testing.stores", found["multistore.testing"])
        self.assertIn(
            "multistore.operations.table", found["multistore.gateway.pipeline"]
        )
