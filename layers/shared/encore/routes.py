"""The API's routes: one table for the CDK app (API Gateway resources) and the twin's front door."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    path: str  # API Gateway resource template, e.g. "/v1/users/{user_id}"
    methods: tuple[str, ...]
    function: str  # the Lambda folder under lambdas/
    api_key: bool = True


ROUTES: tuple[Route, ...] = (
    Route("/v1/events", ("POST",), "events"),
    Route("/v1/users/{user_id}", ("GET", "PUT"), "api"),
    Route("/v1/users/{user_id}/recommendations", ("GET",), "api"),
    Route("/v1/users/{user_id}/next", ("GET",), "api"),
    Route("/v1/tracks/{track_id}", ("GET",), "api"),
    Route("/v1/tracks/{track_id}/similar", ("GET",), "api"),
    Route("/v1/charts/{region}", ("GET",), "api"),
    Route("/v1/trending", ("GET",), "api"),
    Route("/v1/openapi.json", ("GET",), "api"),
    Route("/v1/docs", ("GET",), "api"),
    Route("/v1/health", ("GET",), "api", api_key=False),
)
