"""The JSON API (django-ninja), mounted at /api/v1/; OpenAPI docs at /api/v1/docs.

Thin like the views: authenticate the token's user, validate the body with a pydantic schema, call one
service (which checks permissions and writes) or one selector (which checks who may see what), shape the
answer. The API never writes market state itself.

    parser.py       exact JSON numbers; the bearer token's user
    schemas.py      request shapes (pydantic), with the limits; answers.py the response shapes
    errors.py       every error as {"code", "message"}, here and for what never reaches django-ninja
    idempotency.py  Idempotency-Key on every POST
    sessions.py     sessions, participants, holdings, the audit log, prices, settlement
    results.py      a settled session's results: payout, P&L against the initial allocation, rank
    trading.py      RFQs, quotes, accepts, withdrawals, cancels, trades
    batches.py      batch auctions: sealed limit orders, held / reserved / available, the batches and fills
    margin.py       bounded shorting: each holder's margin (W, requirement, status, short used)
    actions.py      corporate actions: schedule one (organiser), list them with what each did
"""

from ninja import NinjaAPI

from markets.api import actions, batches, errors, margin, results, sessions, trading
from markets.api import export as export_api
from markets.api import invites as invites_api
from markets.api.parser import ExactJSONParser, bearer

api = NinjaAPI(
    title="Session Contracts API",
    version="1",
    description=(
        "RFQ trading and batch auctions of reallocations in a ring-fenced basket pool. Authenticate with "
        "`Authorization: Bearer <token>` (make one with `manage.py create_api_token USERNAME`). "
        "Quantities (6 dp), rates (8 dp), prices (6 dp) and money (12 dp) are decimal strings in "
        "responses; send JSON numbers or strings. Every POST accepts an `Idempotency-Key` header."
    ),
    auth=bearer,
    parser=ExactJSONParser(),
    urls_namespace="api",
    docs_url="/docs",
)
errors.install(api)
api.add_router("", sessions.router)
api.add_router("", trading.router)
api.add_router("", export_api.router)
api.add_router("", invites_api.router)
api.add_router("", results.router)
api.add_router("", batches.router)
api.add_router("", margin.router)
api.add_router("", actions.router)
