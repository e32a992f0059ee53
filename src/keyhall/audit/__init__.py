"""The audit log: who did what, when and from where, written in the same transaction as the change."""
