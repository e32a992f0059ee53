"""Shared fixtures: every service test runs on SQLite and on PostgreSQL.

KEYHALL_TEST_DATABASES=sqlite (or postgresql) narrows the set; KEYHALL_TEST_POSTGRES_URL uses an existing
server instead of a throwaway cluster.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))

from dbs import DATABASES, TEMPLATE_DB, drop_postgres, fresh_postgres
from keyhall.audit.events import Actor
from keyhall.clock import FrozenClock
from keyhall.container import Container
from keyhall.crypto import generate_master_key
from keyhall.db import migrate
from keyhall.db.database import Database
from keyhall.db.engine import build_engine, normalise_url
from keyhall.settings import Settings
from keyhall.signin.passwords import PasswordHasher
from pg import throwaway_cluster


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    url = os.environ.get("KEYHALL_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    with throwaway_cluster() as cluster_url:
        yield cluster_url


@pytest.fixture(scope="session")
def postgres_template(postgres_server_url: str) -> str:
    """A database migrated once to head; each test copies it (CREATE DATABASE … TEMPLATE, ~30 ms)."""
    admin = create_engine(normalise_url(postgres_server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}"))
        conn.execute(text(f"CREATE DATABASE {TEMPLATE_DB}"))
    admin.dispose()
    url = make_url(postgres_server_url).set(database=TEMPLATE_DB).render_as_string(hide_password=False)
    engine = build_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return postgres_server_url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = build_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "keyhall.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    server_url = request.getfixturevalue("postgres_template")
    name, url = fresh_postgres(server_url)
    try:
        yield url
    finally:
        drop_postgres(server_url, name)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture(scope="session")
def fast_hasher() -> PasswordHasher:
    """ASVS minimum parameters, to keep tests quick (production defaults are stronger)."""
    return PasswordHasher(time_cost=2, memory_cost=19 * 1024)


@pytest.fixture
def container(
    database_url: str, clock: FrozenClock, fast_hasher: PasswordHasher, tmp_path: Path
) -> Iterator[Container]:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    built = Container.build(
        settings, clock=clock, db=Database(database_url), hasher=fast_hasher, master_key=generate_master_key()
    )
    try:
        yield built
    finally:
        built.db.dispose()


@pytest.fixture
def actor() -> Actor:
    return Actor(type="LocalOperator", id="tester@host", name="tester", source_ip="local")
