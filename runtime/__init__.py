"""Process wiring: settings, the Temporal client and worker, embedded services, the `accord` CLI."""
