"""Run in its own process (botocore fixes its cache directories from HOME at import time): resolve an SSO
profile's credentials with boto3's own providers and call STS GetCallerIdentity. Prints one JSON line."""

from __future__ import annotations

import json
import sys

import boto3
import botocore.exceptions


def main() -> None:
    session = boto3.Session(profile_name=sys.argv[1])
    try:
        identity = session.client("sts").get_caller_identity()
        frozen = session.get_credentials().get_frozen_credentials()  # type: ignore[union-attr]
        print(json.dumps({"arn": identity["Arn"], "account": identity["Account"], "key": frozen.access_key}))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
        sys.exit(1)


if __name__ == "__main__":
    main()
