"""Thin views: parse the request, call one service or selector, render a page or a partial."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from markets import selectors


def health(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


@login_required
def session_list(request: HttpRequest) -> HttpResponse:
    return render(request, "markets/session_list.html", {"sessions": selectors.session_rows()})
