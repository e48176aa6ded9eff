"""`make psql`: psql (the client matched to the server) connected to the project's database."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from config.embedded_db import embedded_database_url, pg_bin_dir  # noqa: E402

url = os.environ.get("DATABASE_URL") or embedded_database_url()
os.execv(str(pg_bin_dir() / "psql"), ["psql", url, *sys.argv[1:]])
