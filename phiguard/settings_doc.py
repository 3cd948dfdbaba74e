"""Generates docs/user/settings.md from every settings class, so the reference cannot drift:
``python -m phiguard.settings_doc > docs/user/settings.md``; a test fails when it is stale."""

from __future__ import annotations

import importlib
import pkgutil

from pydantic_settings import BaseSettings

import phiguard


def settings_classes() -> list[type[BaseSettings]]:
    found: list[type[BaseSettings]] = []
    names = [
        "phiguard.settings",
        *sorted(
            m.name
            for m in pkgutil.walk_packages(phiguard.__path__, "phiguard.")
            if m.name.endswith(".settings")
        ),
    ]
    for name in names:
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, BaseSettings)
                and obj is not BaseSettings
                and obj.__module__ == name
                and obj not in found
            ):
                found.append(obj)
    return found


def markdown() -> str:
    lines = [
        "# Settings",
        "",
        "Every setting is read from the environment. Generated from the code by",
        "`python -m phiguard.settings_doc`; do not edit by hand.",
        "",
    ]
    for cls in settings_classes():
        prefix = cls.model_config.get("env_prefix", "")
        lines += [
            f"## {cls.__module__}.{cls.__name__}",
            "",
            "| variable | default | meaning |",
            "|---|---|---|",
        ]
        for name, field in cls.model_fields.items():
            default = field.default if field.default is not None else ""
            desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{prefix}{name.upper()}` | `{default}` | {desc} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
