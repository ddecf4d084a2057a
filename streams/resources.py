"""The files the sync reads at run time (Avro schemas, connector configs, SQL, the JMX exporter's
rules, the alert rules), found with ``importlib.resources``: installed, from the wheel; in a
checkout, through the links in ``streams/`` to the top-level ``schemas/``, ``connect/`` and
``deploy/``, where people look for them."""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def path(*parts: str) -> Path:
    """A file or folder of the ``streams`` package's data, e.g. ``path("schemas", "contract.avsc")``."""
    return Path(str(files("streams").joinpath(*parts)))
