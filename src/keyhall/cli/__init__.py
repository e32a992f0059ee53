"""The `keyhall` command: server, admin and (later) user commands, one module per command group."""
