"""Live floors: from a commit in any process to every browser that shows the session.

    a command commits (web request, run_oracle, settle, the admin: any process)
      -> this process: ledger.store calls feed.nudge after the commit (fanout.start subscribes it)
         other processes: the SQLite write-ahead log changes (looked at every 10 ms), or the poll interval
    feed (one asyncio task per web process, started by the first socket: fanout.start; every socket
         reads its first floor or backlog only once the feed holds its starting position)
      -> reads each new event (by seq) and tick (by id) once, in batches
    fanout (markets.push.fanout)
      -> per session: which panels the batch made stale (markets.push.panels: the one registry), rendered
         once from markets.selectors, written to the session's sockets of this process in one loop
         (fanout.deliver; a socket still connecting is told it missed a push and reads its floor again)
      -> the JSON stream's group "json.<id>" gets the events (the one serialiser) and the holdings
    consumers (markets.push.consumers)
      -> each floor socket adds its viewer's RFQ board (rendered once per way of standing to the RFQs)
         and sends the fragments; htmx swaps them in out of band (hx-swap-oob)

A socket that (re)connects is sent the whole floor unless its page is already current (`?at=`). User
actions never travel over the socket: they are CSRF-checked hx-posts to the views.
"""
