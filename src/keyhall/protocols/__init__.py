"""Wire plumbing only: how each AWS protocol frames requests and errors."""
