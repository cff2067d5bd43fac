"""`tenantry probe`: the cross-tenant prober over HTTP.

It finds every tenant route (discovery.py), makes two fresh workspaces A and B with one object of
every resource each through the domains' sample factories (tenantry.tools.probe.samples), then, as A, calls
every route with B's ids in paths, bodies and queries, with B's cursors and Idempotency-Keys, and
with headers, query parameters and body fields naming B (checks.py). Every answer must equal the
one for a random id; no answer to A may carry B's data; B must be unchanged; and every tenant
route must have been reached, so a new route without a sample fails (prober.py).
"""
