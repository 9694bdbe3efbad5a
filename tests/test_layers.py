"""Guards the import arrows of design.md: who may import whom, and the one-adapter rules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from applets.errors import CardError
from common.errors import CardlineError
from hsm.errors import HSMError
from personalization.errors import PersonalizationError
from printers.errors import PrinterError
from qa.errors import QAError

ROOT = Path(__file__).resolve().parent.parent
OURS = {"common", "applets", "hsm", "printers", "qa", "personalization"}
ALLOWED: dict[str, set[str]] = {
    "common": set(),
    "applets": {"common"},
    "hsm": {"common"},
    "printers": {"common"},
    "qa": {"common", "applets", "hsm"},
    "personalization": {"common", "applets", "hsm", "printers", "qa"},
}
# Third-party libraries that exactly one adapter module may import.
ADAPTERS: dict[str, set[str]] = {
    "smartcard": {"applets/transport/pcsc.py"},
    "pkcs11": {"hsm/pkcs11.py"},
    "serial": {"printers/link.py"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_design_allows(package: str) -> None:
    """Each package imports only the packages of ours that design.md allows it to."""
    bad = []
    for path in _modules(package):
        for name in _imports(path) & OURS - {package} - ALLOWED[package]:
            bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("library", sorted(ADAPTERS))
def test_hardware_library_has_one_adapter(library: str) -> None:
    """pyscard, python-pkcs11 and pyserial are each imported by exactly one adapter module."""
    users = {
        str(path.relative_to(ROOT))
        for package in OURS
        for path in _modules(package)
        if library in _imports(path)
    }
    assert users <= ADAPTERS[library], f"{library} imported by {sorted(users - ADAPTERS[library])}"


def test_qa_uses_only_certificates_from_hsm() -> None:
    """QA may reach into hsm only for certificates, never for signing or key management."""
    bad = []
    for path in _modules("qa"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if module and module.startswith("hsm") and module != "hsm.certificates":
                bad.append(f"{path.relative_to(ROOT)}: {module}")
            if isinstance(node, ast.Import):
                bad += [
                    f"{path.relative_to(ROOT)}: {a.name}"
                    for a in node.names
                    if a.name.startswith("hsm") and a.name != "hsm.certificates"
                ]
    assert not bad, "\n".join(bad)


def test_guard_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The import scanner really finds imports, so the guards above cannot pass vacuously."""
    sample = tmp_path / "m.py"
    sample.write_text("import personalization.cli\nfrom hsm import pkcs11\n", encoding="utf-8")
    assert _imports(sample) == {"personalization", "hsm"}


@pytest.mark.parametrize("root", [CardError, HSMError, PrinterError, QAError,
                                  PersonalizationError])
def test_package_error_roots_derive_from_the_one_root(root: type[Exception]) -> None:
    """Every package's error root is a CardlineError, so a front end catches them all at once."""
    assert issubclass(root, CardlineError)


def _modules_imported(path: Path) -> set[str]:
    """Full dotted names of the modules a file imports (``from a.b import c`` gives a.b)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


# What a front end may import of ours: the services, plain configuration types, the error
# root, and (the CLI) its one shared module of rendering helpers.
FRONT_END_MAY_IMPORT = ("personalization.service", "personalization.config", "common.errors",
                        "personalization.cli.common")


# The CLI may start the dashboard (`cardline serve`, `demo --serve`) through its entry point.
CLI_MAY_START = ("personalization.web.serve",)
FRONT_ENDS = ("personalization/service/", "personalization/cli/", "personalization/web/")


@pytest.mark.parametrize("path", sorted((ROOT / "personalization" / "cli").glob("*.py")),
                         ids=lambda p: p.name)
def test_cli_reaches_the_packages_only_through_the_services(path: Path) -> None:
    """A CLI module imports nothing of ours but the service layer, the configuration types,
    the error root, cli.common and the dashboard's entry point; no CLI command module imports
    another."""
    bad = []
    for name in _modules_imported(path):
        if name.split(".")[0] not in OURS:
            continue
        allowed = any(name == p or name.startswith(p + ".")
                      for p in (*FRONT_END_MAY_IMPORT, *CLI_MAY_START))
        assembles = path.name == "__init__.py" and name.startswith("personalization.cli")
        if not (allowed or assembles):
            bad.append(name)
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", sorted((ROOT / "personalization" / "web").glob("*.py")),
                         ids=lambda p: p.name)
def test_the_dashboard_reaches_the_packages_only_through_the_services(path: Path) -> None:
    """The dashboard is a front end like the CLI: services, configuration types, the error
    root and its own modules; never the journal, a device or the HSM."""
    bad = [name for name in _modules_imported(path) if (name.split(".")[0] in OURS
           and not any(name == p or name.startswith(p + ".")
                       for p in (*FRONT_END_MAY_IMPORT, "personalization.web")))
           or name == "personalization.cli.common"]
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_only_the_cli_reaches_the_dashboard() -> None:
    """The dashboard is a front end: nothing of ours imports it but the CLI (which starts
    it); a benchmark drives it over HTTP, as a browser does."""
    bad = []
    for package in sorted(OURS):
        for path in _modules(package):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith(("personalization/web/", "personalization/cli/")):
                continue
            if any(n.startswith("personalization.web") for n in _modules_imported(path)):
                bad.append(relative)
    assert not bad, "\n".join(bad)


def test_nothing_below_the_services_imports_them() -> None:
    """Only the front ends (the CLI, the dashboard) import the service layer; nothing it
    calls imports it."""
    bad = []
    for package in sorted(OURS):
        for path in _modules(package):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith(FRONT_ENDS):
                continue
            if any(n.startswith("personalization.service") for n in _modules_imported(path)):
                bad.append(relative)
    assert not bad, "\n".join(bad)
