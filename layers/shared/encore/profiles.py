"""Listener profiles in the users table, through PynamoDB.

One table holds two kinds of item per listener: the profile (``user_id``) that the API and the events path
write, and the model's long-term vector (``vec#<user_id>``) that the nightly load_vectors job writes. They are
separate items so neither writer can clobber the other's fields; a read gets both in one BatchGetItem.
Every method raises ``StoreUnavailable("profiles")`` for a failure of the table (PynamoDB's or botocore's).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

from pynamodb.attributes import BinaryAttribute, ListAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import PynamoDBException, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from encore.clients import RETRIES, on_reset
from encore.errors import NotFound
from encore.models import ProfileUpdate, ProfileView, StoredProfile
from encore.stores import AWS_ERRORS, VECTOR_PREFIX, unavailable_as
from encore.vectors import decode

TABLE_ERRORS = (*AWS_ERRORS, PynamoDBException)
# What ``PUT /v1/users/{id}`` may set (``ProfileUpdate``); everything else is written by Encore itself.
CLIENT_FIELDS = ("display_name", "region", "signup_date")


class ProfileItem(Model):
    """A profile or a vector item. The table name is the deployment's: use ``profile_model(table, region)``."""

    class Meta:
        table_name = "encore-users"
        # A Lambda waiting on a sick table should degrade within its budget, not hang: short timeouts and the
        # shared retry policy (encore.clients.RETRIES).
        connect_timeout_seconds = 2
        read_timeout_seconds = 3
        max_retry_attempts = 3
        retry_configuration: ClassVar[dict[str, Any]] = RETRIES
        max_pool_connections = 32

    user_id = UnicodeAttribute(hash_key=True)
    display_name = UnicodeAttribute(null=True)
    region = UnicodeAttribute(null=True)
    signup_date = UnicodeAttribute(null=True)
    recently_played = ListAttribute(of=UnicodeAttribute, null=True)
    updated_at = NumberAttribute(null=True)
    vector = BinaryAttribute(null=True, legacy_encoding=False)
    # The tracks the listener liked in the model's training window, most recent first (the item-item source)
    history = ListAttribute(of=UnicodeAttribute, null=True)
    model_version = UnicodeAttribute(null=True)


@functools.cache
def profile_model(table: str, region: str | None) -> type[ProfileItem]:
    """The model class bound to one table (PynamoDB keeps the table name and connection on the class)."""

    class Meta(ProfileItem.Meta):
        table_name = table

    if region:
        Meta.region = region  # type: ignore[attr-defined]
    return type(f"ProfileItem_{table}", (ProfileItem,), {"Meta": Meta})


on_reset(profile_model.cache_clear)  # a new endpoint (tests, the twin) means new connections


class ProfileStore:
    def __init__(self, table: str, region: str | None = None) -> None:
        self.table, self.region = table, region

    @property
    def model(self) -> type[ProfileItem]:
        return profile_model(self.table, self.region)

    def get(self, user_id: str) -> StoredProfile | None:
        """The profile with the model's vector item (either may be missing), or ``None`` when neither is there."""
        with unavailable_as("profiles", TABLE_ERRORS):
            items = {i.user_id: i for i in self.model.batch_get([user_id, VECTOR_PREFIX + user_id])}
        profile, vector = items.get(user_id), items.get(VECTOR_PREFIX + user_id)
        if profile is None and vector is None:
            return None
        return StoredProfile(
            user_id=user_id,
            display_name=profile.display_name if profile else None,
            region=profile.region if profile else None,
            signup_date=profile.signup_date if profile else None,
            recently_played=tuple(map(str, profile.recently_played or [])) if profile else (),
            updated_at=int(profile.updated_at) if profile and profile.updated_at is not None else None,
            long_term_vector=decode(vector.vector) if vector else None,
            history=tuple(map(str, vector.history or [])) if vector else (),
            model_version=vector.model_version if vector else None,
        )

    def view(self, user_id: str) -> ProfileView:
        """``GET /v1/users/{user_id}``: the profile, or ``NotFound``."""
        profile = self.get(user_id)
        if profile is None:
            raise NotFound(f"listener '{user_id}' has no profile")
        return ProfileView.of(profile)

    def record_plays(self, user_id: str, region: str, newest_first: Sequence[str], bound: int, now_ms: int) -> None:
        """Put the plays at the front of the bounded recently-played list (optimistic concurrency, retried)."""
        with unavailable_as("profiles", TABLE_ERRORS):
            self._record_plays(user_id, region, newest_first, bound, now_ms)

    def _record_plays(self, user_id: str, region: str, newest_first: Sequence[str], bound: int, now_ms: int) -> None:
        model = self.model
        for _ in range(3):
            try:
                current = model.get(
                    user_id, consistent_read=True, attributes_to_get=["user_id", "recently_played", "updated_at"]
                )
                previous, before = list(current.recently_played or []), current.updated_at
            except model.DoesNotExist:
                current, previous, before = model(user_id), [], None
            merged = list(dict.fromkeys([*newest_first, *previous]))[:bound]
            condition = model.updated_at.does_not_exist() if before is None else model.updated_at == before
            try:
                current.update(
                    actions=[
                        model.recently_played.set(merged),  # type: ignore[arg-type]  # stubs: list of str
                        model.updated_at.set(now_ms),
                        model.region.set(model.region | region),  # if_not_exists: a profile's own region wins
                    ],
                    condition=condition,
                )
                return
            except UpdateError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise
                # another request updated it meanwhile: read and merge again

    def delete(self, user_id: str) -> bool:
        """Delete the profile and the vector item; whether either was there."""
        with unavailable_as("profiles", TABLE_ERRORS):
            found = list(self.model.batch_get([user_id, VECTOR_PREFIX + user_id]))
            with self.model.batch_write() as batch:
                for key in (user_id, VECTOR_PREFIX + user_id):
                    batch.delete(self.model(key))
        return bool(found)

    def put(self, user_id: str, fields: dict[str, Any], now_ms: int) -> None:
        """``PUT /v1/users/{id}``: the fields a client may set, leaving the rest of the profile as it is."""
        model = self.model
        actions: list[Action] = [model.updated_at.set(now_ms)]
        actions += [
            getattr(model, name).set(str(fields[name])) for name in CLIENT_FIELDS if fields.get(name) is not None
        ]
        with unavailable_as("profiles", TABLE_ERRORS):
            model(user_id).update(actions=actions)

    def update(self, user_id: str, update: ProfileUpdate, now_ms: int) -> ProfileView:
        """``PUT /v1/users/{user_id}``: set what the client sent, answer the profile as it now is."""
        self.put(user_id, update.model_dump(mode="json"), now_ms)
        return self.view(user_id)
