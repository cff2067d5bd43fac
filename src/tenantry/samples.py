"""Every domain's probe sample factory, in the order they run (later ones use earlier ids).

`tenantry probe` makes one object of every resource in each of its two workspaces through these,
and reports any tenant route that no factory covers, so a new route needs its sample here.
"""

from __future__ import annotations

from tenantry.audit.samples import audit_event_sample
from tenantry.auth.samples import whoami_sample
from tenantry.catalog.samples import product_sample
from tenantry.lookups.samples import lookup_sample
from tenantry.members.samples import invitation_sample, member_sample
from tenantry.orders.samples import order_sample
from tenantry.probe.samples import SampleFactory
from tenantry.tokens.samples import token_sample

SAMPLES: list[SampleFactory] = [
    lookup_sample,
    product_sample,
    order_sample,
    member_sample,
    invitation_sample,
    token_sample,
    audit_event_sample,
    whoami_sample,
]
