"""A store read's cost as SQLite virtual-machine steps: the same for the same work on any
machine, unlike a time, so a test can say a read does not grow with the store."""


def steps(store, fn) -> int:
    """SQLite steps (in tens, from its progress handler) fn's statements take."""
    conn = store.db.connection()
    n = [0]

    def tick():
        n[0] += 1
        return 0
    conn.set_progress_handler(tick, 10)
    try:
        fn()
    finally:
        conn.set_progress_handler(None, 0)
    return n[0]
