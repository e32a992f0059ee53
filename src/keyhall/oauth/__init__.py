"""The authorization server behind sso-oidc: clients, device grant (RFC 8628), code + PKCE (RFC 7636),
refresh-token rotation (RFC 9700 §4.14). No web framework in here; ``keyhall.api.sso_oidc`` adapts it."""
