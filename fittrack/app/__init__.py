"""The composition root: configuration (config.py), which adapter serves which port (wiring.py), and one
entrypoint per process (server, persister, dispatcher, evaluator, admin, migrate). Nothing else in the
package imports it."""
