"""Every domain's probe sample factory, in the order they run (later ones use earlier ids).

`tenantry probe` makes one object of every resource in each of its two workspaces through these,
and reports any tenant route that no factory covers, so a new route needs its sample here.
"""

from __future__ import annotations

from tenantry.tools.probe.samples.auditlog import audit_event_sample
from tenantry.tools.probe.samples.base import SampleFactory
from tenantry.tools.probe.samples.catalog import product_sample
from tenantry.tools.probe.samples.lookups import lookup_sample
from tenantry.tools.probe.samples.members import invitation_sample, member_sample
from tenantry.tools.probe.samples.orders import order_sample
from tenantry.tools.probe.samples.tokens import token_sample
from tenantry.tools.probe.samples.whoami import whoami_sample

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
