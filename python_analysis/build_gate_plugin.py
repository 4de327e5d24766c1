"""The dbt-duckdb plugin of the build gate (build_gate): dbt's first connection waits for the build file.

dbt-duckdb calls ``update_connection_config`` on its plugins just before ``duckdb.connect``. A separate module
from ``build_gate`` so that the segfit process, which only opens the gate, does not import dbt.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

from python_analysis import build_gate


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self._parent = os.getppid()  # the segfit CLI, when it runs dbt

    def update_connection_config(self, creds: Any, config: dict[str, Any]) -> None:
        gate = os.environ.get(build_gate.ENVIRONMENT_VARIABLE, "")
        if gate:
            build_gate.wait_for_gate(Path(gate), self._parent)
