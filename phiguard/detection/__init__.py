"""Detection: grant-aware rules, explanation-based filtering and anomaly scoring over the
access events, on DuckDB or Spark, in batch (``phiguard detect``) and live (``phiguard watch``).

Entry points: :func:`phiguard.detection.service.detect` (a batch run),
:class:`phiguard.detection.watch.Watcher` (the live path), :mod:`phiguard.detection.alerts`
(stored alerts, verdicts, accuracy). Design notes: ``docs/dev/detection.md``.
"""
