"""PostgreSQL through asyncpg: connection pool, migrations, read-model writes and reads."""
