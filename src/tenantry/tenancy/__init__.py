"""The tenant machinery and the data-access layer (docs/03-architecture.md): the request's tenant
scope, the session hook that sets it on every transaction, the unit of work, the repository bases
and keyset paging bound to the tenant."""
