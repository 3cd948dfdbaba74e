"""Read models for pages that no single domain service answers: the patient's access
history (accounting of disclosures) and the dashboard's aggregates over the event store.

Plain functions over the App (no FastAPI), so routes stay thin and the CLI or a report could
call them too. They read the Parquet event store through DuckDB exactly as detection does
(``docs/dev/contracts.md``) and the reference tables through SQLAlchemy.
"""
