"""``phiguard demo generate`` passes every option through to the generator."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli


def test_generate_command_passes_its_options_to_the_generator(
    sqlite_cli: Cli, tmp_path: Path
) -> None:
    out = tmp_path / "hospital"
    args = ["--patients", "100", "--days", "1", "--format", "parquet", "--no-scenarios"]
    result = sqlite_cli("demo", "generate", str(out), *args, "--start", "2026-03-01")
    assert result.exit_code == 0, result.output
    assert "wrote a synthetic hospital to" in result.output
    labels = json.loads((out / "labels.json").read_text())
    assert labels["generator"]["start"] == "2026-03-01"
    assert labels["generator"]["patients"] == 100
    assert labels["files"]["patients.parquet"] == 100 and not (out / "patients.csv").exists()
    assert labels["scenarios"] == []
    again = sqlite_cli("demo", "generate", str(out), *args)
    assert again.exit_code != 0  # an existing hospital is replaced only with --overwrite
    assert sqlite_cli("demo", "generate", str(out), *args, "--overwrite").exit_code == 0
