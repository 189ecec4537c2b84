"""Database sessions, models, migrations and TaskFlow persistence."""
