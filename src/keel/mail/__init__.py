"""Outgoing mail (SPEC §11): messages sent over SMTP as durable jobs, or written as .eml files."""
