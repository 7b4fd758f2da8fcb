"""The serving scenario's parts: the server's lifecycle, the streaming client, the load generator,
the per-request records and the statistics computed from them (one module per job)."""
