"""gRPC front door (SPEC §9): Keel's services for other services, on a second port."""
