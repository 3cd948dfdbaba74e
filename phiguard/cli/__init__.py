"""The ``phiguard`` command line: one module per command group, discovered at start-up.

A module here that defines ``register(app: typer.Typer) -> None`` adds its commands; the
CLI layer only parses arguments and prints, the work is done by the domain services.
"""
