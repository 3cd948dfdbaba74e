"""The tamper-evident audit log: Merkle tree, signed checkpoints, ingestion, verification."""
