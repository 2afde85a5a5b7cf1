"""Backups and recovery (SPEC §12): portable, verified, optionally encrypted snapshots."""
