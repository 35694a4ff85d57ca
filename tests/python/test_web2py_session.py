"""rcache.web2py.redis_session as web2py's session code and cleanup script
use it, on the old module's data, and against each defect of the old module
it fixes (shown failing on tests/python/legacy_web2py.py)."""

import datetime
import pickle
import threading
import time
import uuid

import pytest

from web2py_support import Storage, app, conn, legacy, rconn_for, redis_session, rpy  # noqa: F401
import legacy_web2py

RedisSession = redis_session.RedisSession


def tablename(app):
    return f"web2py_session_{app}"


@pytest.fixture
def db(conn, app):
    return RedisSession(redis_conn=conn, session_expiry=False)


@pytest.fixture
def table(db, app):
    return db.define_table(tablename(app), db.Field("locked", "boolean", default=False), db.Field("client_ip", length=64))


def save(table, record_id, unique_key, data, now=None):
    """What web2py's globals.py does to store a session."""
    fields = dict(
        locked=False,
        client_ip="127.0.0.1",
        modified_datetime=now or datetime.datetime.now(),
        session_data=pickle.dumps(data, pickle.HIGHEST_PROTOCOL),
        unique_key=unique_key,
    )
    if record_id:
        if not table._db(table.id == record_id).update(**fields):
            record_id = None
    if not record_id:
        record_id = table.insert(**fields)
    return record_id


def load(table, record_id, unique_key):
    """What globals.py does to read one: the session dict, or None."""
    row = table(record_id, unique_key=unique_key)
    return pickle.loads(row.session_data) if row else None


def last_visit(row):
    """How web2py's cleanup script reads a row's age."""
    if isinstance(row.modified_datetime, datetime.datetime):
        return row.modified_datetime
    return datetime.datetime.strptime(row.modified_datetime, "%Y-%m-%d %H:%M:%S.%f")


def trash(table, expiration):
    """web2py's cleanup script on a session table: deletes sessions idle for
    more than expiration seconds."""
    now = datetime.datetime.now()
    for row in table._db(table.id > 0).select():
        if (now - last_visit(row)).total_seconds() > expiration:
            assert row.delete_record() is None
    table._db.commit()


# --- web2py's own tests (gluon/tests/test_redis.py), on both backends -------------


def _record(unique_key):
    return dict(
        locked=0,
        client_ip="127.0.0.1",
        modified_datetime=datetime.datetime.now().isoformat(),
        unique_key=unique_key,
        session_data=pickle.dumps({"test": 123, "me": 112312312}, pickle.HIGHEST_PROTOCOL),
    )


def test_web2py_insert_then_select_and_update(db, table):
    dd = _record(str(uuid.uuid4()))
    record_id = table.insert(**dd)
    assert db(table.id == record_id).select()[0] == Storage(dd)
    dd["locked"] = 1
    table._db(table.id == record_id).update(**dd)
    assert db(table.id == record_id).select()[0] == Storage(dd)


def test_web2py_unique_key_must_match(db, table):
    unique_key = str(uuid.uuid4())
    record_id = table.insert(**_record(unique_key))
    assert table(record_id, unique_key=unique_key)
    assert not table(record_id, unique_key=str(uuid.uuid4()))
    assert not table(record_id, unique_key="")
    assert not table(record_id, unique_key=unique_key[:-1])


def test_web2py_list_and_delete_every_record(db, table):
    for _ in range(3):
        table.insert(**_record(str(uuid.uuid4())))
    rows = db(table.id > 0).select()
    assert len(rows) == 3
    for row in rows:
        assert row.delete_record() is None
    assert db(table.id > 0).select() == []


# --- how web2py uses it ---------------------------------------------------------


def test_setup_calls_of_globals(db, app):
    assert db and db.get(tablename(app), None) is None
    table = db.define_table(tablename(app), db.Field("locked", "boolean", default=False))
    assert table and db.get(tablename(app)) is table and db[tablename(app)] is table
    assert db.define_table(tablename(app)) is table
    assert RedisSession(redis_conn=None) is db


def test_a_session_keeps_its_id_across_requests(table):
    unique_key = str(uuid.uuid4())
    record_id = save(table, None, unique_key, {"step": 1})
    for step in (2, 3, 4):
        assert load(table, record_id, unique_key) == {"step": step - 1}
        assert save(table, record_id, unique_key, {"step": step}) == record_id
    assert len(table._db(table.id > 0).select()) == 1


def test_renew_and_clear(table):
    unique_key = str(uuid.uuid4())
    record_id = save(table, None, unique_key, {"a": 1})
    row = table(record_id)  # session.renew(): by id only
    assert row.unique_key == unique_key
    new_key = str(uuid.uuid4())
    assert table._db(table.id == record_id).update(unique_key=new_key)
    assert load(table, record_id, unique_key) is None
    assert load(table, record_id, new_key) == {"a": 1}
    assert table._db(table.id == record_id).delete() == 1  # session.clear()
    assert load(table, record_id, new_key) is None
    assert table._db(table.id == record_id).delete() == 0


def test_ids_that_name_no_record(table):
    unique_key = str(uuid.uuid4())
    save(table, None, unique_key, {"a": 1})
    for forged in ("serial", "abc", "-1", "0", "1:lock", "", None, "1 OR 1", b"\xff", True):
        assert not table(forged, unique_key=unique_key)
        assert not table._db(table.id == forged).update(locked=0)
    with pytest.raises(NotImplementedError):
        table._db(table.id > 0).update(locked=0)


def test_sessions_expire(conn, app):
    db = redis_session.RedisClient(conn, session_expiry=1, application=app)
    table = db.define_table(tablename(app))
    record_id = save(table, None, "k", {"a": 1})
    assert load(table, record_id, "k") == {"a": 1}
    deadline = time.monotonic() + 5
    while table(record_id):  # a read by id alone does not renew the expiry
        assert time.monotonic() < deadline, "the session never expired"
        time.sleep(0.1)


def test_threads_never_see_each_others_sessions(table):
    errors = []

    def request_loop():
        unique_key = str(uuid.uuid4())
        record_id = None
        for step in range(30):
            if record_id is not None:
                data = load(table, record_id, unique_key)
                if data != {"owner": unique_key, "step": step - 1}:
                    errors.append((unique_key, step, data))
            record_id = save(table, record_id, unique_key, {"owner": unique_key, "step": step})

    threads = [threading.Thread(target=request_loop) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(table._db(table.id > 0).select()) == 8


def test_cleanup_by_age(table):
    now = datetime.datetime.now()
    ids = {
        age: save(table, None, str(uuid.uuid4()), {"age": age}, now=now - datetime.timedelta(seconds=age))
        for age in (7200, 600, 0)
    }
    trash(table, expiration=3600)
    remaining = {row.id for row in table._db(table.id > 0).select()}
    assert remaining == {int(ids[600]), int(ids[0])}


# --- the old module's data --------------------------------------------------------


@pytest.fixture
def old_table(rpy, app):
    return legacy_web2py.LegacySessionDb(rpy).define_table(tablename(app))


@pytest.fixture
def new_table(redis_server, app):
    db = redis_session.RedisClient(rconn_for(redis_server, app), application=app)
    return db.define_table(tablename(app))


def test_reads_and_updates_sessions_the_old_module_wrote(old_table, new_table):
    unique_key = str(uuid.uuid4())
    record_id = save(old_table, None, unique_key, {"from": "old"})
    assert load(new_table, record_id, unique_key) == {"from": "old"}
    assert save(new_table, record_id, unique_key, {"from": "new"}) == record_id
    assert load(old_table, record_id, unique_key) == {"from": "new"}
    assert not new_table(record_id, unique_key="wrong")


def test_old_module_reads_sessions_rcache_wrote(old_table, new_table, rpy, app):
    first = save(old_table, None, "k1", {"n": 1})
    second = save(new_table, None, "k2", {"n": 2})
    assert int(second) == int(first) + 1  # one id counter
    assert load(old_table, second, "k2") == {"n": 2}
    row = old_table(second)
    assert row.locked == 0 and row.client_ip == "127.0.0.1" and row.unique_key == "k2"
    assert rpy.type(f"w2p:sess:{app}:{second}") == b"hash"


# --- the defects of the old module, each shown on it --------------------------------


@pytest.fixture
def make(redis_server, rpy, app):
    """make(impl, **options): the session table of the test's application."""

    def build(impl, **options):
        if impl == "legacy":
            db = legacy_web2py.LegacySessionDb(rpy, **options)
        else:
            db = redis_session.RedisClient(rconn_for(redis_server, app), application=app, **options)
        return db.define_table(tablename(app))

    return build


@pytest.mark.parametrize("impl", ["rcache", legacy("S1: update() of an existing session is falsy")])
def test_S1_update_reports_whether_the_record_existed(make, impl):
    table = make(impl)
    record_id = save(table, None, "k", {"n": 1})
    assert save(table, record_id, "k", {"n": 2}) == record_id
    assert not table._db(table.id == 999999).update(locked=0)


@pytest.mark.parametrize("impl", ["rcache", legacy("S2: listed rows have no fields")])
def test_S2_listed_rows_carry_every_field(make, impl):
    table = make(impl)
    save(table, None, "k", {"n": 1})
    (row,) = table._db(table.id > 0).select()
    assert row.unique_key == "k"
    assert pickle.loads(row.session_data) == {"n": 1}
    assert row.client_ip == "127.0.0.1" and row.locked == 0


@pytest.mark.parametrize("impl", ["rcache", legacy("S3: modified_datetime is written with a T")])
def test_S3_modified_datetime_is_what_the_cleanup_script_parses(make, impl):
    table = make(impl)
    when = datetime.datetime(2026, 11, 26, 9, 30, 0)
    record_id = save(table, None, "k", {}, now=when)
    assert last_visit(table(record_id)) == when


@pytest.mark.parametrize("impl", ["rcache", legacy("S4: every read takes a lock only a write releases")])
def test_S4_reads_take_no_lock(make, impl, rpy, app):
    table = make(impl, with_lock=True)
    record_id = save(table, None, "k", {"n": 1})
    lock = f"w2p:sess:{app}:{record_id}:lock"
    assert not table(record_id, unique_key="wrong")
    assert not rpy.exists(lock)
    assert load(table, record_id, "k") == {"n": 1}
    assert not rpy.exists(lock)


@pytest.mark.parametrize("impl", ["rcache", legacy("S5: queries share one object per table")])
def test_S5_queries_are_independent(make, impl):
    table = make(impl)
    first = save(table, None, "k1", {"n": 1})
    second = save(table, None, "k2", {"n": 2})
    query_first = table.id == first
    query_second = table.id == second  # another request, in another thread
    table._db(query_first).update(session_data=pickle.dumps({"n": 10}))
    assert load(table, first, "k1") == {"n": 10}
    assert load(table, second, "k2") == {"n": 2}
    del query_second


@pytest.mark.parametrize("impl", ["rcache", legacy("S7: reads do not renew the expiry")])
def test_S7_reads_renew_the_expiry(make, impl, rpy, app):
    table = make(impl, session_expiry=100)
    record_id = save(table, None, "k", {"n": 1})
    rpy.expire(f"w2p:sess:{app}:{record_id}", 5)
    assert load(table, record_id, "k") == {"n": 1}
    assert rpy.ttl(f"w2p:sess:{app}:{record_id}") > 50


@pytest.mark.parametrize("impl", ["rcache", legacy("S8: the index set keeps every session ever made")])
def test_S8_no_unbounded_index(make, impl, rpy, app):
    table = make(impl, session_expiry=1)
    for n in range(30):
        save(table, None, f"k{n}", {"n": n})
    deadline = time.monotonic() + 5
    while any(rpy.type(key) == b"hash" for key in rpy.scan_iter(f"w2p:sess:{app}:*")):
        assert time.monotonic() < deadline, "sessions did not expire"
        time.sleep(0.1)
    left = sorted(key.decode() for key in rpy.scan_iter(f"w2p:sess:{app}:*"))
    assert left == [f"w2p:sess:{app}:serial"]
