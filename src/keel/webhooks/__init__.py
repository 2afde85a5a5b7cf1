"""Outgoing webhooks (SPEC §10): endpoints, Standard Webhooks signing, durable delivery."""
