"""Writes on the current tenant's inventory. Every function acts on the schema the connection is
set to; the entry points (middleware, task wrapper, command option) choose the tenant."""
