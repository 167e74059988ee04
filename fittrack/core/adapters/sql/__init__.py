"""The account repositories, written once for SQLite and PostgreSQL against a small dialect object."""
