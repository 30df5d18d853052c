# Alembic environment of the demo's exam platform: the URL comes only from EXAM_DATABASE_URL.
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine

if context.config.config_file_name is not None:
    fileConfig(context.config.config_file_name)

url = os.environ.get("EXAM_DATABASE_URL")
if not url:
    raise SystemExit("EXAM_DATABASE_URL is not set: dbops sets it from the target's URL (url_env)")
# SQLAlchemy 1.4+ only knows the postgresql:// spelling.
if url.startswith("postgres://"):
    url = "postgresql://" + url[len("postgres://"):]

if context.is_offline_mode():
    context.configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    with create_engine(url).connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
