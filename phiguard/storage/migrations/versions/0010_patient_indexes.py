"""patients: one household index instead of separate surname, address and cluster indexes

Nothing looks patients up by address alone or by cluster through SQL (detection reads a
snapshot in DuckDB); the surname look-ups of the leak scanner and the household join
(surname and address) both use the composite index. Three B-trees fewer to build and keep
per patient makes the PMI bulk load and every later write cheaper.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("patients") as b:
        b.drop_index("ix_patients_surname_bidx")
        b.drop_index("ix_patients_address_bidx")
        b.drop_index("ix_patients_cluster")
        b.create_index("ix_patients_surname_address", ["surname_bidx", "address_bidx"])


def downgrade() -> None:
    with op.batch_alter_table("patients") as b:
        b.drop_index("ix_patients_surname_address")
        b.create_index("ix_patients_cluster", ["cluster"])
        b.create_index("ix_patients_address_bidx", ["address_bidx"])
        b.create_index("ix_patients_surname_bidx", ["surname_bidx"])
