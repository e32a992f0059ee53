"""The library behind the user commands (`keyhall login`, `ls`, `configure`, `credential-process` …).

Modules, by job:

- ``config``: which Keyhall and which sso-session to use (args > env > ``~/.aws/config``).
- ``token_cache`` / ``credential_cache``: the AWS-format caches the AWS CLI, boto3 and the JS SDK share.
- ``oidc`` (sso-oidc: RegisterClient, StartDeviceAuthorization, CreateToken, PKCE) and ``portal``
  (ListAccounts, ListAccountRoles, GetRoleCredentials, Logout): the wire clients, transports injectable.
- ``session``: login, refresh and logout over those; ``credentials``: role credentials, env and exec.
- ``aws_config``: `keyhall configure`; ``process`` + ``keyhall.cli.fast``: the credential_process fast path.

Nothing is imported here on purpose: the fast path imports ``keyhall.client.process`` on every AWS SDK start.
"""
