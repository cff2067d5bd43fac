"""The tenant machinery: the request's tenant scope, the session hook that sets it on every
transaction, and keyset paging bound to the tenant."""
