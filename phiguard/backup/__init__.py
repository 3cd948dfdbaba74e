"""Encrypted backups of a whole home, verification, restore, and scheduled backups."""
