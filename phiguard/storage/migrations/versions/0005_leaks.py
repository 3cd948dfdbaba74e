"""leaks: scan records, affected sets, canary registry, patient check challenges

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "leak_scans",
        sa.Column("scan_id", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("started", _ts(), nullable=False),
        sa.Column("finished", _ts(), nullable=False),
        sa.Column("files", sa.Text(), nullable=False),
        sa.Column("result_sha256", sa.String(length=64), nullable=False),
        sa.Column("affected_count", sa.Integer(), nullable=False),
        sa.Column("unmatched", sa.Integer(), nullable=False),
        sa.Column("fields_exposed", sa.String(length=200), nullable=False),
        sa.Column("attribution", sa.Text(), nullable=False),
        sa.Column("top_account", sa.String(length=64), nullable=True),
        sa.Column("top_query", sa.String(length=64), nullable=True),
        sa.Column("top_vendor", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("scan_id", name=op.f("pk_leak_scans")),
    )
    with op.batch_alter_table("leak_scans") as b:
        b.create_index(b.f("ix_leak_scans_finished"), ["finished"])

    op.create_table(
        "leak_scan_patients",
        sa.Column("scan_id", sa.String(length=32), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("matched_on", sa.String(length=160), nullable=False),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["leak_scans.scan_id"],
            name=op.f("fk_leak_scan_patients_scan_id_leak_scans"),
        ),
        sa.PrimaryKeyConstraint("scan_id", "patient_id", name=op.f("pk_leak_scan_patients")),
    )
    with op.batch_alter_table("leak_scan_patients") as b:
        b.create_index(b.f("ix_leak_scan_patients_patient_id"), ["patient_id"])

    op.create_table(
        "leak_canaries",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("vendor_id", sa.String(length=64), nullable=True),
        sa.Column("account_id", sa.String(length=64), nullable=True),
        sa.Column("query_id", sa.String(length=64), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("planted_at", _ts(), nullable=False),
        sa.Column("planted_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_leak_canaries")),
    )
    with op.batch_alter_table("leak_canaries") as b:
        b.create_index(b.f("ix_leak_canaries_vendor_id"), ["vendor_id"])

    op.create_table(
        "leak_link_keys",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("row_mac", sa.LargeBinary(length=16), nullable=False),
        sa.Column("dob_bidx", sa.LargeBinary(length=16), nullable=True),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_leak_link_keys")),
    )
    with op.batch_alter_table("leak_link_keys") as b:
        b.create_index(b.f("ix_leak_link_keys_dob_bidx"), ["dob_bidx"])

    op.create_table(
        "leak_check_challenges",
        sa.Column("challenge_id", sa.String(length=48), nullable=False),
        sa.Column("subject_bidx", sa.LargeBinary(length=16), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("code_mac", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created", _ts(), nullable=False),
        sa.Column("expires", _ts(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("challenge_id", name=op.f("pk_leak_check_challenges")),
    )
    with op.batch_alter_table("leak_check_challenges") as b:
        b.create_index(b.f("ix_leak_check_challenges_subject_bidx"), ["subject_bidx"])
        b.create_index(b.f("ix_leak_check_challenges_created"), ["created"])


def downgrade() -> None:
    op.drop_table("leak_check_challenges")
    op.drop_table("leak_link_keys")
    op.drop_table("leak_canaries")
    op.drop_table("leak_scan_patients")
    op.drop_table("leak_scans")
