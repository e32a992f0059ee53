"""Users, groups and memberships of the identity store; sources: builtin (default), scim, ldap."""
