"""Sign-in factors: password hashing and policy, and TOTP as a second factor."""
