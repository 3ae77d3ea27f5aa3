//! Durable call records: SQLite in WAL mode, written turn by turn.
