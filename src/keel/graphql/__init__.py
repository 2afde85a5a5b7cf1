"""GraphQL front door (SPEC §8): a thin adapter over the same services as REST."""
