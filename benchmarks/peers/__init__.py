"""What each compared system runs: its no-op handler or job, and the docs' lease queue."""
