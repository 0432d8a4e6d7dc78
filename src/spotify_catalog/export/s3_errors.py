"""botocore's exceptions, which the S3 code paths catch, when the ``s3`` extra is installed. Without
it no lake is on S3 (``open_lake`` says which extra to install), nothing raises them, and the
``except`` clauses naming them catch nothing more."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botocore.exceptions import BotoCoreError, ClientError
else:
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ModuleNotFoundError:

        class BotoCoreError(Exception):
            """Never raised: botocore is not installed."""

        class ClientError(Exception):
            """Never raised: botocore is not installed."""


__all__ = ["BotoCoreError", "ClientError"]
