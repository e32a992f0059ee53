"""Real AWS accounts: Keyhall as a SAML identity provider (or OIDC issuer) that IAM trusts, credentials
through AssumeRoleWithSAML / AssumeRoleWithWebIdentity with no AWS keys on the server, and provisioning
of the trusted roles into member accounts."""
