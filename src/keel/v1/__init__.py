"""Generated from proto/keel/v1 by scripts/generate_protos.py: do not edit."""
