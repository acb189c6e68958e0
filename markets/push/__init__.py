"""Live floors: from a commit in any process to every browser that shows the session.

    a command commits (web request, run_oracle, settle, the admin: any process)
      -> this process: ledger.store calls feed.appended after the commit (fanout.start subscribes it)
         other processes: the SQLite write-ahead log changes (looked at every 10 ms), a PostgreSQL NOTIFY
         (for the table written to), or the poll interval
    feed (one asyncio task per web process, started by the first socket: fanout.start; every socket
         reads its first floor or backlog only once the feed holds its starting position)
      -> reads each new event (by seq) and tick (by id) once, in batches, and in the same trip to its
         thread renders what this process sends for them (fanout's sources); a busy session at most
         every FEED_PUSH_GAP_SECONDS, what committed meanwhile in one batch
    render (markets.push.render), per session and batch, once:
      -> quoting and trading as rows (markets.push.panels.Delta: the log's and the blotter's new rows,
         the holdings rows that moved, the RFQs touched; status and pool whole), any other change
         as the panels it made stale (markets.push.panels: the one registry)
    fanout (markets.push.fanout)
      -> writes it to the session's sockets of this process in one loop (fanout.deliver): rows to a
         socket whose floor stands at the version they start from, the whole floor to one elsewhere; a
         socket still connecting is told it missed a push and reads its floor again
      -> the JSON stream's group "json.<id>" gets the events (the one serialiser) and the holdings,
         where a stream of this process follows the session
    consumers (markets.push.consumers)
      -> each floor socket adds its viewer's RFQ board or its touched rows (rendered once per way of
         standing to the RFQs) and sends; static/js/floor.js swaps them in with htmx.swap (out of band,
         table rows wrapped in <template>) and keeps each table's newest rows

A socket that (re)connects is sent the whole floor unless its page is already current (`?at=`). User
actions never travel over the socket: they are CSRF-checked hx-posts to the views.
"""
