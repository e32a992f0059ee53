"""Credential issuers: `local` (Keyhall's own STS: mint role credentials, verify SigV4) and later `aws`."""
