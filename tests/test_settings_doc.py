from __future__ import annotations

from pathlib import Path

from phiguard.settings_doc import markdown, settings_classes

DOC = Path(__file__).parents[1] / "docs" / "user" / "settings.md"


def test_every_setting_has_help_text() -> None:
    missing = [
        f"{cls.__name__}.{name}"
        for cls in settings_classes()
        for name, field in cls.model_fields.items()
        if not field.description
    ]
    assert not missing, f"settings without help text: {missing}"


def test_settings_reference_is_current() -> None:
    assert DOC.read_text() == markdown() + "\n", (
        "docs/user/settings.md is stale: "
        "run `python -m phiguard.settings_doc > docs/user/settings.md`"
    )
