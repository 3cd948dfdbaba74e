"""foundation: reference data

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("person", sa.LargeBinary(), nullable=True),
        sa.Column("surname_bidx", sa.LargeBinary(length=16), nullable=True),
        sa.Column("address_bidx", sa.LargeBinary(length=16), nullable=True),
        sa.Column("employer", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("cluster", sa.String(length=8), nullable=False),
        sa.Column("active_from", sa.Date(), nullable=True),
        sa.Column("active_to", sa.Date(), nullable=True),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("row_mac", sa.LargeBinary(length=16), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_accounts")),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_accounts_address_bidx"), ["address_bidx"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_accounts_employer"), ["employer"], unique=False)
        batch_op.create_index(batch_op.f("ix_accounts_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_accounts_surname_bidx"), ["surname_bidx"], unique=False
        )

    op.create_table(
        "encounters",
        sa.Column("encounter_key", sa.LargeBinary(length=16), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=True),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("encounter_key", name=op.f("pk_encounters")),
    )
    with op.batch_alter_table("encounters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_encounters_account_id"), ["account_id"], unique=False)
        batch_op.create_index("ix_encounters_patient_start", ["patient_id", "start"], unique=False)

    op.create_table(
        "grants",
        sa.Column("grant_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("scope_cluster", sa.String(length=8), nullable=False),
        sa.Column("scope_fields", sa.Text(), nullable=False),
        sa.Column("actions", sa.Text(), nullable=False),
        sa.Column("max_rows", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("row_mac", sa.LargeBinary(length=16), nullable=True),
        sa.PrimaryKeyConstraint("grant_id", name=op.f("pk_grants")),
    )
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_grants_account_id"), ["account_id"], unique=False)

    op.create_table(
        "import_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("rows_bad", sa.Integer(), nullable=False),
        sa.Column("inserted", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("strict", sa.Boolean(), nullable=False),
        sa.Column("committed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_runs")),
    )
    op.create_table(
        "patients",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("pii", sa.LargeBinary(), nullable=False),
        sa.Column("hkid_bidx", sa.LargeBinary(length=16), nullable=True),
        sa.Column("hospital_no_bidx", sa.LargeBinary(length=16), nullable=True),
        sa.Column("surname_bidx", sa.LargeBinary(length=16), nullable=True),
        sa.Column("address_bidx", sa.LargeBinary(length=16), nullable=True),
        sa.Column("sex", sa.String(length=1), nullable=False),
        sa.Column("birth_year", sa.Integer(), nullable=True),
        sa.Column("cluster", sa.String(length=8), nullable=False),
        sa.Column("has_phone", sa.Boolean(), nullable=False),
        sa.Column("has_address", sa.Boolean(), nullable=False),
        sa.Column("app_registered", sa.Boolean(), nullable=False),
        sa.Column("vip", sa.Boolean(), nullable=False),
        sa.Column("is_canary", sa.Boolean(), nullable=False),
        sa.Column("row_mac", sa.LargeBinary(length=16), nullable=False),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_patients")),
    )
    with op.batch_alter_table("patients", schema=None) as batch_op:
        # unique *indexes* rather than constraints: a bulk load into an empty table drops
        # and rebuilds them, which SQLite cannot do with inline constraints
        batch_op.create_index(batch_op.f("ix_patients_hkid_bidx"), ["hkid_bidx"], unique=True)
        batch_op.create_index(
            batch_op.f("ix_patients_hospital_no_bidx"), ["hospital_no_bidx"], unique=True
        )
        batch_op.create_index(
            batch_op.f("ix_patients_address_bidx"), ["address_bidx"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_patients_cluster"), ["cluster"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_patients_surname_bidx"), ["surname_bidx"], unique=False
        )

    op.create_table(
        "vendors",
        sa.Column("vendor_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("dpa_signed", sa.Boolean(), nullable=False),
        sa.Column("last_assessment", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("row_mac", sa.LargeBinary(length=16), nullable=False),
        sa.PrimaryKeyConstraint("vendor_id", name=op.f("pk_vendors")),
    )
    op.create_table(
        "contracts",
        sa.Column("contract_id", sa.String(length=64), nullable=False),
        sa.Column("vendor_id", sa.String(length=64), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("end", sa.Date(), nullable=True),
        sa.Column("dpa_signed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendors.vendor_id"], name=op.f("fk_contracts_vendor_id_vendors")
        ),
        sa.PrimaryKeyConstraint("contract_id", name=op.f("pk_contracts")),
    )
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contracts_vendor_id"), ["vendor_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contracts_vendor_id"))

    op.drop_table("contracts")
    op.drop_table("vendors")
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patients_surname_bidx"))
        batch_op.drop_index(batch_op.f("ix_patients_cluster"))
        batch_op.drop_index(batch_op.f("ix_patients_address_bidx"))

    op.drop_table("patients")
    op.drop_table("import_runs")
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_grants_account_id"))

    op.drop_table("grants")
    with op.batch_alter_table("encounters", schema=None) as batch_op:
        batch_op.drop_index("ix_encounters_patient_start")
        batch_op.drop_index(batch_op.f("ix_encounters_account_id"))

    op.drop_table("encounters")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounts_surname_bidx"))
        batch_op.drop_index(batch_op.f("ix_accounts_patient_id"))
        batch_op.drop_index(batch_op.f("ix_accounts_employer"))
        batch_op.drop_index(batch_op.f("ix_accounts_address_bidx"))

    op.drop_table("accounts")
