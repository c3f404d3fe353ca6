"""The app's settings, read once from the environment (app settings in Azure, `Values` locally)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

API_KEYS = "ASSISTANTS_API_KEYS"
STORAGE_CONNECTION_STRING = "ASSISTANTS_STORAGE_CONNECTION_STRING"
TABLE_PREFIX = "ASSISTANTS_TABLE_PREFIX"

# Table names are 3-63 alphanumerics starting with a letter; the longest suffix we add is 10.
_TABLE_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9]{0,50}")


class ConfigurationError(RuntimeError):
    """The app cannot serve with these settings; the message says which one to fix."""


@dataclass(frozen=True)
class Settings:
    api_keys: tuple[bytes, ...]
    storage_connection_string: str
    table_prefix: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        keys = tuple(k.strip().encode() for k in env.get(API_KEYS, "").split(",") if k.strip())
        if not keys:
            raise ConfigurationError(
                f"{API_KEYS} is not set: configure at least one API key (comma-separated) "
                "before serving requests."
            )
        connection_string = env.get(STORAGE_CONNECTION_STRING, "").strip()
        if not connection_string:
            raise ConfigurationError(
                f"{STORAGE_CONNECTION_STRING} is not set: give the Table Storage connection string "
                "(UseDevelopmentStorage=true for Azurite)."
            )
        prefix = env.get(TABLE_PREFIX, "").strip()
        if prefix and not _TABLE_PREFIX.fullmatch(prefix):
            raise ConfigurationError(
                f"{TABLE_PREFIX} must be 1-51 letters or digits starting with a letter, got {prefix!r}."
            )
        return cls(api_keys=keys, storage_connection_string=connection_string, table_prefix=prefix)
